-- The distinct zones of the students, read by a run with send windows
-- (db::reminders::student_zones), one probe per zone.
CREATE INDEX users_timezone_idx ON users (timezone);
