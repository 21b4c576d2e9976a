-- Which reminders reach a student, and a weekly summary (`user set`).
-- reminder_types: the types they get, comma-separated (`24h,overdue`, where
-- `overdue` means every overdue step); NULL for every type.
-- muted_types: the types they do not get, the same way; NULL for none.
-- A type `send --required-types` names reaches them whatever these say.
-- summary_weekday: NULL for a summary every day; the ISO weekday (Monday 1
-- to Sunday 7) of a weekly one.
ALTER TABLE user_preferences ADD COLUMN reminder_types text;
ALTER TABLE user_preferences ADD COLUMN muted_types text;
ALTER TABLE user_preferences ADD COLUMN summary_weekday int CHECK (summary_weekday BETWEEN 1 AND 7);
