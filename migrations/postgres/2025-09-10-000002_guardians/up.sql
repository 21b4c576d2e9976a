-- Guardians: the adults who follow one or more students (a parent, a carer).
-- A guardian is mailed as a student is, so the row carries the same opt-out
-- columns as users: contact_opt_out, and opt_out_reason ('bounced',
-- 'complaint', 'unsubscribed'; NULL for an operator's opt-out).
-- frequency: how often their digest goes out ('daily', 'weekly' or 'off').
-- weekday: the ISO day (Monday 1 to Sunday 7) of a weekly digest.
-- hour: the local hour, in their time zone, at which a digest goes out.
CREATE TABLE guardians (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE,
  name text,
  timezone text NOT NULL DEFAULT 'UTC',
  frequency text NOT NULL DEFAULT 'daily' CHECK (frequency IN ('daily', 'weekly', 'off')),
  weekday int NOT NULL DEFAULT 1 CHECK (weekday BETWEEN 1 AND 7),
  hour int NOT NULL DEFAULT 18 CHECK (hour BETWEEN 0 AND 23),
  contact_opt_out boolean NOT NULL DEFAULT false,
  opt_out_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER guardians_touch_updated_at BEFORE UPDATE ON guardians FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();

-- Who follows whom. A link goes with either side. A guardian left following
-- no one stays, listed, until forgotten; `user forget` erases those who
-- followed only the student it erases.
CREATE TABLE guardian_students (
  guardian_id uuid NOT NULL REFERENCES guardians(id) ON DELETE CASCADE,
  student_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  PRIMARY KEY (guardian_id, student_id)
);
-- A student's guardians: the primary key serves a guardian's students.
CREATE INDEX guardian_students_student_idx ON guardian_students (student_id);
