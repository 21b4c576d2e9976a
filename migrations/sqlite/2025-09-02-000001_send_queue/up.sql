-- What `send` needs beyond the spec's columns (see the PostgreSQL migration).
ALTER TABLE reminders ADD COLUMN claimed_until TEXT CHECK (claimed_until IS NULL OR claimed_until GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z');
ALTER TABLE reminders ADD COLUMN claimed_by TEXT CHECK (claimed_by IS NULL OR length(claimed_by) = 36);
ALTER TABLE reminders ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
CREATE INDEX reminders_queue_idx ON reminders (status, priority, scheduled_for);

ALTER TABLE users ADD COLUMN opt_out_reason TEXT;

CREATE INDEX send_logs_to_email_created_idx ON send_logs (to_email, created_at);
