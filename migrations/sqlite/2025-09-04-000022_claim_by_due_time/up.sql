-- Claims take pending reminders by (priority, due time): see the PostgreSQL
-- migration. SQLite cannot add a NOT NULL column without a default, so the
-- column allows NULL and the insert trigger fills it.
ALTER TABLE reminders ADD COLUMN due_at TEXT CHECK (due_at IS NULL OR due_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z');
UPDATE reminders SET due_at = (SELECT due_at FROM assignments WHERE assignments.id = reminders.assignment_id);

CREATE TRIGGER reminders_copy_due_at AFTER INSERT ON reminders FOR EACH ROW
  WHEN NEW.due_at IS NULL
BEGIN
  UPDATE reminders SET due_at = (SELECT due_at FROM assignments WHERE id = NEW.assignment_id) WHERE id = NEW.id;
END;
CREATE TRIGGER assignments_copy_due_at AFTER UPDATE OF due_at ON assignments FOR EACH ROW
  WHEN NEW.due_at IS NOT OLD.due_at
BEGIN
  UPDATE reminders SET due_at = NEW.due_at WHERE assignment_id = NEW.id;
END;

DROP INDEX reminders_queue_idx;
CREATE INDEX reminders_queue_idx ON reminders (status, priority, due_at);
