-- The overdue steps sent lately, read by every run with --escalate-after
-- (db::contacts::sent_steps_with_guardians): without it that read walked every
-- reminder ever sent. Only overdue steps are in it, so a 24h or 2h reminder
-- marked sent writes nothing here.
CREATE INDEX reminders_overdue_sent_idx ON reminders (status, sent_at) WHERE reminder_type LIKE 'overdue-%';
