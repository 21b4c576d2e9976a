-- Each report that `reminders bounces` judged, once. Its key (the report's
-- own Message-ID, or a hash of its content when it has none) is unique, so a
-- report read twice, or by two hosts at once, is acted on once.
CREATE TABLE bounce_reports (
  id uuid PRIMARY KEY,
  report_key text NOT NULL UNIQUE,
  -- hard, soft, complaint, unsubscribe or auto_reply
  kind text NOT NULL,
  -- Only a verified report changes anything (see the README).
  verified boolean NOT NULL,
  -- Why it was not verified, or what it said (Status and Diagnostic-Code).
  reason text NULL,
  to_email text NULL,
  reminder_id uuid NULL REFERENCES reminders(id) ON DELETE SET NULL,
  summary_id uuid NULL REFERENCES daily_summaries(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bounce_reports_created_idx ON bounce_reports (created_at);
