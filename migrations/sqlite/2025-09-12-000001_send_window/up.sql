-- Send windows per person: see the PostgreSQL migration.
ALTER TABLE user_preferences ADD COLUMN send_window TEXT;
CREATE INDEX user_preferences_send_window_idx ON user_preferences (user_id) WHERE send_window IS NOT NULL;
ALTER TABLE guardians ADD COLUMN send_window TEXT;
