-- What `send` needs beyond the spec's columns.
-- claimed_until / claimed_by: the lease a run holds on a pending reminder while
--   it sends it. A killed run's claims lapse when claimed_until passes.
-- priority: lower goes first (seed 002); 5 is normal.
-- scheduled_for doubles as the time of the next attempt after a transient failure.
ALTER TABLE reminders ADD COLUMN claimed_until timestamptz;
ALTER TABLE reminders ADD COLUMN claimed_by uuid;
ALTER TABLE reminders ADD COLUMN priority int NOT NULL DEFAULT 5;
-- The queue: pending rows in the order they are claimed.
CREATE INDEX reminders_queue_idx ON reminders (status, priority, scheduled_for);

-- Why a user stopped receiving mail: 'bounced' when `send` opted the address
-- out after repeated rejections, NULL for an operator's opt-out.
ALTER TABLE users ADD COLUMN opt_out_reason text;

-- The bounce rule reads an address's latest attempts.
CREATE INDEX send_logs_to_email_created_idx ON send_logs (to_email, created_at);
