DROP INDEX user_preferences_max_per_day_idx;
ALTER TABLE user_preferences DROP COLUMN max_per_day;
