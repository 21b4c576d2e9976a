DROP INDEX assignments_student_due_idx;
CREATE INDEX assignments_student_due_idx ON assignments (student_id, due_at);
