ALTER TABLE send_logs
  DROP CONSTRAINT send_logs_reminder_id_fkey,
  ADD CONSTRAINT send_logs_reminder_id_fkey FOREIGN KEY (reminder_id) REFERENCES reminders(id),
  DROP CONSTRAINT send_logs_assignment_id_fkey,
  ADD CONSTRAINT send_logs_assignment_id_fkey FOREIGN KEY (assignment_id) REFERENCES assignments(id);

CREATE FUNCTION assignments_copy_due_at() RETURNS trigger AS $$
BEGIN
  UPDATE reminders SET due_at = NEW.due_at WHERE assignment_id = NEW.id;
  RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER assignments_copy_due_at AFTER UPDATE OF due_at ON assignments FOR EACH ROW
  WHEN (NEW.due_at IS DISTINCT FROM OLD.due_at)
  EXECUTE FUNCTION assignments_copy_due_at();
UPDATE reminders SET due_at = assignments.due_at
  FROM assignments WHERE assignments.id = reminders.assignment_id;

DROP TRIGGER assignments_remember_previous_due ON assignments;
DROP FUNCTION assignments_remember_previous_due();
DROP INDEX assignments_student_external_id_key;
ALTER TABLE assignments DROP COLUMN previous_due_at;
ALTER TABLE assignments DROP COLUMN feed;
ALTER TABLE assignments DROP COLUMN external_id;
