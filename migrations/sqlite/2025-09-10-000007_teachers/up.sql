-- Teachers and the courses they teach: see the PostgreSQL migration.
CREATE TABLE teachers (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))) CHECK (length(id) = 36),
  email TEXT NOT NULL UNIQUE,
  name TEXT,
  timezone TEXT NOT NULL DEFAULT 'UTC',
  weekday INTEGER NOT NULL DEFAULT 5 CHECK (weekday BETWEEN 1 AND 7),
  hour INTEGER NOT NULL DEFAULT 16 CHECK (hour BETWEEN 0 AND 23),
  contact_opt_out BOOLEAN NOT NULL DEFAULT 0 CHECK (contact_opt_out IN (0, 1)),
  opt_out_reason TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')) CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
);
CREATE TRIGGER teachers_touch_updated_at AFTER UPDATE ON teachers FOR EACH ROW
  WHEN NEW.updated_at = OLD.updated_at
BEGIN
  UPDATE teachers SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE id = NEW.id;
END;

CREATE TABLE teacher_courses (
  teacher_id TEXT NOT NULL REFERENCES teachers(id) ON DELETE CASCADE,
  course TEXT NOT NULL,
  PRIMARY KEY (teacher_id, course)
);
CREATE INDEX teacher_courses_course_idx ON teacher_courses (course);
