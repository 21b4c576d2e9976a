-- After the deadline.
--
-- cutoff: when work can no longer be handed in (NULL: never), so no overdue
--   notice goes out after it. Input keeps it at or after the due time; there
--   is no CHECK, so that a deadline moved by a feed or by hand is never
--   refused for it.
-- course: the course the assignment belongs to (a code such as `CS101`), for
--   per-course reports. Most schools fill it for some assignments only, so the
--   index holds just those, in due-time order within each course.
ALTER TABLE assignments ADD COLUMN cutoff timestamptz;
ALTER TABLE assignments ADD COLUMN course text;
CREATE INDEX assignments_course_due_idx ON assignments (course, due_at) WHERE course IS NOT NULL;
