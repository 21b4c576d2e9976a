-- `user set --max-per-day N`: past N messages in a local day, a student's
-- reminders of a run are folded into one digest. NULL: no limit. The
-- partial index lets `send` ask whether anyone has a limit in one probe.
ALTER TABLE user_preferences ADD COLUMN max_per_day int CHECK (max_per_day >= 1);
CREATE INDEX user_preferences_max_per_day_idx ON user_preferences (user_id) WHERE max_per_day IS NOT NULL;
