ALTER TABLE guardians DROP COLUMN send_window;
DROP INDEX user_preferences_send_window_idx;
ALTER TABLE user_preferences DROP COLUMN send_window;
