-- Which reminders reach a student, and a weekly summary: see the PostgreSQL migration.
ALTER TABLE user_preferences ADD COLUMN reminder_types TEXT;
ALTER TABLE user_preferences ADD COLUMN muted_types TEXT;
ALTER TABLE user_preferences ADD COLUMN summary_weekday INTEGER CHECK (summary_weekday BETWEEN 1 AND 7);
