DROP TABLE send_logs;
DROP TABLE reminders;
DROP TABLE assignments;
DROP TABLE users;
