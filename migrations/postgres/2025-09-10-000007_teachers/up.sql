-- Teachers: they are sent a weekly report on their courses. A teacher is
-- mailed as a student is, so the row carries the same opt-out columns as
-- users: contact_opt_out, and opt_out_reason ('bounced', 'complaint',
-- 'unsubscribed'; NULL for an operator's opt-out).
-- weekday: the ISO day (Monday 1 to Sunday 7) of the weekly report; Friday,
--   to look back on the week.
-- hour: the local hour, in their time zone, at which the report goes out.
CREATE TABLE teachers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE,
  name text,
  timezone text NOT NULL DEFAULT 'UTC',
  weekday int NOT NULL DEFAULT 5 CHECK (weekday BETWEEN 1 AND 7),
  hour int NOT NULL DEFAULT 16 CHECK (hour BETWEEN 0 AND 23),
  contact_opt_out boolean NOT NULL DEFAULT false,
  opt_out_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER teachers_touch_updated_at BEFORE UPDATE ON teachers FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();

-- Who teaches what. A course is the code assignments carry in their `course`
-- column; there is no table of courses, so a teacher may be linked to a
-- course before any assignment names it. The links go with the teacher.
CREATE TABLE teacher_courses (
  teacher_id uuid NOT NULL REFERENCES teachers(id) ON DELETE CASCADE,
  course text NOT NULL,
  PRIMARY KEY (teacher_id, course)
);
-- A course's teachers: the primary key serves a teacher's courses.
CREATE INDEX teacher_courses_course_idx ON teacher_courses (course);
