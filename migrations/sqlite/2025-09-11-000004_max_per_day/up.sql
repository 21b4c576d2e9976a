-- `user set --max-per-day`: see the PostgreSQL migration.
ALTER TABLE user_preferences ADD COLUMN max_per_day INTEGER CHECK (max_per_day >= 1);
CREATE INDEX user_preferences_max_per_day_idx ON user_preferences (user_id) WHERE max_per_day IS NOT NULL;
