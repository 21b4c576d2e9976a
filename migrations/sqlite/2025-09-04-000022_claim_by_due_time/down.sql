DROP INDEX reminders_queue_idx;
CREATE INDEX reminders_queue_idx ON reminders (status, priority, scheduled_for);
DROP TRIGGER assignments_copy_due_at;
DROP TRIGGER reminders_copy_due_at;
ALTER TABLE reminders DROP COLUMN due_at;
