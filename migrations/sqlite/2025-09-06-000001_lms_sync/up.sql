-- Keeping in step with the school's systems: see the PostgreSQL migration.
ALTER TABLE assignments ADD COLUMN external_id TEXT;
ALTER TABLE assignments ADD COLUMN feed TEXT;
ALTER TABLE assignments ADD COLUMN previous_due_at TEXT CHECK (previous_due_at IS NULL OR previous_due_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z');
CREATE UNIQUE INDEX assignments_student_external_id_key ON assignments (student_id, external_id)
  WHERE external_id IS NOT NULL;

CREATE TRIGGER assignments_remember_previous_due AFTER UPDATE OF due_at ON assignments FOR EACH ROW
  WHEN NEW.due_at IS NOT OLD.due_at
BEGIN
  UPDATE assignments SET previous_due_at = OLD.due_at WHERE id = NEW.id;
END;

-- A reminder row keeps the due time it was scheduled for.
DROP TRIGGER assignments_copy_due_at;

-- Send logs survive removals with their links set to NULL. SQLite cannot
-- change a foreign key in place, so the table is rebuilt; nothing refers to it.
CREATE TABLE send_logs_new (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))) CHECK (length(id) = 36),
  reminder_id TEXT REFERENCES reminders(id) ON DELETE SET NULL,
  assignment_id TEXT REFERENCES assignments(id) ON DELETE SET NULL,
  to_email TEXT NOT NULL,
  from_inbox TEXT NOT NULL,
  message_id TEXT,
  status TEXT NOT NULL,
  error TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  summary_id TEXT REFERENCES daily_summaries(id) ON DELETE SET NULL
);
INSERT INTO send_logs_new (id, reminder_id, assignment_id, to_email, from_inbox, message_id, status, error, created_at, summary_id)
  SELECT id, reminder_id, assignment_id, to_email, from_inbox, message_id, status, error, created_at, summary_id FROM send_logs;
DROP TABLE send_logs;
ALTER TABLE send_logs_new RENAME TO send_logs;
CREATE INDEX send_logs_reminder_created_idx ON send_logs (reminder_id, created_at);
CREATE INDEX send_logs_to_email_created_idx ON send_logs (to_email, created_at);
