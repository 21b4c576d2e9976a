DROP INDEX assignments_course_due_idx;
ALTER TABLE assignments DROP COLUMN course;
ALTER TABLE assignments DROP COLUMN cutoff;
