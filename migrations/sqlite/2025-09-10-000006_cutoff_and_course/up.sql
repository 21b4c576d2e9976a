-- After the deadline: see the PostgreSQL migration.
ALTER TABLE assignments ADD COLUMN cutoff TEXT CHECK (cutoff IS NULL OR cutoff GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z');
ALTER TABLE assignments ADD COLUMN course TEXT;
CREATE INDEX assignments_course_due_idx ON assignments (course, due_at) WHERE course IS NOT NULL;
