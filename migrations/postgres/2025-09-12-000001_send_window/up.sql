-- `user set --send-window` and `guardian add/set --send-window`: the hours,
-- per weekday on the person's own clock, in which messages may reach them
-- (schedule::window::SendWindow's canonical text). NULL: the run's
-- `--send-window`, or always open. The partial index lets a run ask
-- whether anyone has their own window in one probe.
ALTER TABLE user_preferences ADD COLUMN send_window text;
CREATE INDEX user_preferences_send_window_idx ON user_preferences (user_id) WHERE send_window IS NOT NULL;
ALTER TABLE guardians ADD COLUMN send_window text;
