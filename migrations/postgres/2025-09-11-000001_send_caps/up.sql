-- `--daily-cap N`: how many messages the runs of one window (a UTC day, or
-- each `--cap-window`, counted from the epoch) have taken for sending, shared
-- by every run on every host. A run takes its share of the cap here before
-- it claims messages, and gives back what it did not send when it ends; a
-- killed run's share is lost, never spent twice, so the cap holds.
CREATE TABLE send_caps (
  window_start timestamptz PRIMARY KEY,
  used int NOT NULL DEFAULT 0 CHECK (used >= 0)
);
