DROP TABLE teacher_courses;
DROP TABLE teachers;
