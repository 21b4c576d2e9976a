-- What guardians and teachers are sent: see the PostgreSQL migration.
CREATE TABLE contact_messages (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))) CHECK (length(id) = 36),
  kind TEXT NOT NULL CHECK (kind IN ('guardian-digest', 'escalation', 'teacher-report')),
  guardian_id TEXT REFERENCES guardians(id) ON DELETE CASCADE,
  teacher_id TEXT REFERENCES teachers(id) ON DELETE CASCADE,
  reminder_id TEXT REFERENCES reminders(id) ON DELETE CASCADE,
  period TEXT NOT NULL,
  message_key TEXT NOT NULL UNIQUE,
  scheduled_for TEXT NOT NULL CHECK (scheduled_for GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  sent_at TEXT CHECK (sent_at IS NULL OR sent_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  claimed_until TEXT CHECK (claimed_until IS NULL OR claimed_until GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  claimed_by TEXT CHECK (claimed_by IS NULL OR length(claimed_by) = 36),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  CHECK ((guardian_id IS NULL) <> (teacher_id IS NULL))
);
CREATE INDEX contact_messages_queue_idx ON contact_messages (status, scheduled_for);
CREATE INDEX contact_messages_guardian_idx ON contact_messages (guardian_id);
CREATE INDEX contact_messages_teacher_idx ON contact_messages (teacher_id);
CREATE INDEX contact_messages_reminder_idx ON contact_messages (reminder_id);
CREATE TRIGGER contact_messages_touch_updated_at AFTER UPDATE ON contact_messages FOR EACH ROW
  WHEN NEW.updated_at = OLD.updated_at
BEGIN
  UPDATE contact_messages SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE id = NEW.id;
END;

ALTER TABLE send_logs ADD COLUMN contact_message_id TEXT REFERENCES contact_messages(id) ON DELETE SET NULL;
ALTER TABLE bounce_reports ADD COLUMN contact_message_id TEXT REFERENCES contact_messages(id) ON DELETE SET NULL;
