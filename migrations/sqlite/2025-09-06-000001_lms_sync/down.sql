CREATE TABLE send_logs_old (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))) CHECK (length(id) = 36),
  reminder_id TEXT REFERENCES reminders(id),
  assignment_id TEXT REFERENCES assignments(id),
  to_email TEXT NOT NULL,
  from_inbox TEXT NOT NULL,
  message_id TEXT,
  status TEXT NOT NULL,
  error TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  summary_id TEXT REFERENCES daily_summaries(id) ON DELETE SET NULL
);
INSERT INTO send_logs_old SELECT id, reminder_id, assignment_id, to_email, from_inbox, message_id, status, error, created_at, summary_id FROM send_logs;
DROP TABLE send_logs;
ALTER TABLE send_logs_old RENAME TO send_logs;
CREATE INDEX send_logs_reminder_created_idx ON send_logs (reminder_id, created_at);
CREATE INDEX send_logs_to_email_created_idx ON send_logs (to_email, created_at);

CREATE TRIGGER assignments_copy_due_at AFTER UPDATE OF due_at ON assignments FOR EACH ROW
  WHEN NEW.due_at IS NOT OLD.due_at
BEGIN
  UPDATE reminders SET due_at = NEW.due_at WHERE assignment_id = NEW.id;
END;
UPDATE reminders SET due_at = (SELECT due_at FROM assignments WHERE assignments.id = reminders.assignment_id);
DROP TRIGGER assignments_remember_previous_due;
DROP INDEX assignments_student_external_id_key;
ALTER TABLE assignments DROP COLUMN previous_due_at;
ALTER TABLE assignments DROP COLUMN feed;
ALTER TABLE assignments DROP COLUMN external_id;
