-- What guardians and teachers are sent, one row per message owed: a queue
-- with the same columns and rules as reminders and daily_summaries.
-- kind: 'guardian-digest' (daily or weekly), 'escalation' (a copy of a
-- student's overdue notice to a guardian, `send --escalate-after`) or
-- 'teacher-report' (the weekly course report).
-- guardian_id or teacher_id: to whom (exactly one is set).
-- reminder_id: the overdue step an escalation copies.
-- period: what it covers: the guardian's local date ('2026-12-07') for a
-- daily digest, the ISO week ('2026-W49') for a weekly digest or a report,
-- the deadline the step was for (RFC 3339, UTC) for an escalation.
-- message_key: kind/recipient/period; unique, so overlapping runs owe each
-- message once, as UNIQUE(user_id, local_date) does for daily summaries.
CREATE TABLE contact_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind text NOT NULL CHECK (kind IN ('guardian-digest', 'escalation', 'teacher-report')),
  guardian_id uuid REFERENCES guardians(id) ON DELETE CASCADE,
  teacher_id uuid REFERENCES teachers(id) ON DELETE CASCADE,
  reminder_id uuid REFERENCES reminders(id) ON DELETE CASCADE,
  period text NOT NULL,
  message_key text NOT NULL UNIQUE,
  scheduled_for timestamptz NOT NULL,
  sent_at timestamptz,
  status text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0,
  last_error text,
  claimed_until timestamptz,
  claimed_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((guardian_id IS NULL) <> (teacher_id IS NULL))
);
CREATE INDEX contact_messages_queue_idx ON contact_messages (status, scheduled_for);
-- For the cascades: a forgotten person or a removed assignment.
CREATE INDEX contact_messages_guardian_idx ON contact_messages (guardian_id);
CREATE INDEX contact_messages_teacher_idx ON contact_messages (teacher_id);
CREATE INDEX contact_messages_reminder_idx ON contact_messages (reminder_id);
CREATE TRIGGER contact_messages_touch_updated_at BEFORE UPDATE ON contact_messages FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();

-- Their sends are logged, and reported on, beside the others.
ALTER TABLE send_logs ADD COLUMN contact_message_id uuid REFERENCES contact_messages(id) ON DELETE SET NULL;
ALTER TABLE bounce_reports ADD COLUMN contact_message_id uuid REFERENCES contact_messages(id) ON DELETE SET NULL;
