-- The spec's optional user_preferences: a daily-summary opt-in and a preferred
-- local hour. A user without a row has the defaults (on, 07:00).
CREATE TABLE user_preferences (
  user_id uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  daily_summary boolean NOT NULL DEFAULT true,
  summary_hour int NOT NULL DEFAULT 7 CHECK (summary_hour BETWEEN 0 AND 23),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER user_preferences_touch_updated_at BEFORE UPDATE ON user_preferences FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();

-- One daily summary per student per local date: the unique constraint is what
-- makes overlapping runs send it once, as UNIQUE(assignment_id, reminder_type)
-- does for reminders. The other columns work as in reminders.
CREATE TABLE daily_summaries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  local_date date NOT NULL,
  scheduled_for timestamptz NOT NULL,
  sent_at timestamptz,
  status text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0,
  last_error text,
  claimed_until timestamptz,
  claimed_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, local_date)
);
CREATE INDEX daily_summaries_queue_idx ON daily_summaries (status, scheduled_for);
CREATE TRIGGER daily_summaries_touch_updated_at BEFORE UPDATE ON daily_summaries FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();

-- Summary sends are logged beside reminder sends.
ALTER TABLE send_logs ADD COLUMN summary_id uuid REFERENCES daily_summaries(id) ON DELETE SET NULL;
