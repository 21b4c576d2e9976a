DROP INDEX send_logs_to_email_created_idx;
ALTER TABLE users DROP COLUMN opt_out_reason;
DROP INDEX reminders_queue_idx;
ALTER TABLE reminders DROP COLUMN priority;
ALTER TABLE reminders DROP COLUMN claimed_by;
ALTER TABLE reminders DROP COLUMN claimed_until;
