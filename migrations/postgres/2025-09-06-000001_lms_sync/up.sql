-- Keeping in step with the school's systems (LMS sync).
--
-- external_id: the LMS's own key for the assignment (a Canvas or Moodle UID,
--   a CSV column), unique per student, so a nightly import updates rather
--   than duplicates. Only rows that have one are in the index (most have none,
--   and every index entry costs an import its time).
-- feed: the iCalendar feed an assignment came from, so that --remove-missing
--   removes only what that same feed no longer lists.
-- previous_due_at: the due time before the last move, for the message that
--   says the deadline moved. The trigger keeps it for moves made by hand too.
ALTER TABLE assignments ADD COLUMN external_id text;
ALTER TABLE assignments ADD COLUMN feed text;
ALTER TABLE assignments ADD COLUMN previous_due_at timestamptz;
CREATE UNIQUE INDEX assignments_student_external_id_key ON assignments (student_id, external_id)
  WHERE external_id IS NOT NULL;

CREATE FUNCTION assignments_remember_previous_due() RETURNS trigger AS $$
BEGIN
  NEW.previous_due_at := OLD.due_at;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER assignments_remember_previous_due BEFORE UPDATE OF due_at ON assignments FOR EACH ROW
  WHEN (NEW.due_at IS DISTINCT FROM OLD.due_at)
  EXECUTE FUNCTION assignments_remember_previous_due();

-- A reminder row now keeps the due time it was scheduled for: when the
-- assignment's deadline moves, the row is for an earlier deadline, and the
-- next run schedules that reminder type again for the new one (see the README).
DROP TRIGGER assignments_copy_due_at ON assignments;
DROP FUNCTION assignments_copy_due_at();

-- Removing an assignment or a user keeps the audit trail: its send logs stay,
-- with their links set to NULL.
ALTER TABLE send_logs
  DROP CONSTRAINT send_logs_reminder_id_fkey,
  ADD CONSTRAINT send_logs_reminder_id_fkey FOREIGN KEY (reminder_id) REFERENCES reminders(id) ON DELETE SET NULL,
  DROP CONSTRAINT send_logs_assignment_id_fkey,
  ADD CONSTRAINT send_logs_assignment_id_fkey FOREIGN KEY (assignment_id) REFERENCES assignments(id) ON DELETE SET NULL;
