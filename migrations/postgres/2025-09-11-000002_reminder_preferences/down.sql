ALTER TABLE user_preferences DROP COLUMN summary_weekday;
ALTER TABLE user_preferences DROP COLUMN muted_types;
ALTER TABLE user_preferences DROP COLUMN reminder_types;
