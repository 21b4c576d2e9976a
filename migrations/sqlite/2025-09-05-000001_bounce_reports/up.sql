-- Each report that `reminders bounces` judged, once. Its key (the report's
-- own Message-ID, or a hash of its content when it has none) is unique, so a
-- report read twice, or by two hosts at once, is acted on once.
CREATE TABLE bounce_reports (
  id TEXT PRIMARY KEY NOT NULL,
  report_key TEXT NOT NULL UNIQUE,
  -- hard, soft, complaint, unsubscribe or auto_reply
  kind TEXT NOT NULL,
  -- Only a verified report changes anything (see the README).
  verified BOOLEAN NOT NULL,
  -- Why it was not verified, or what it said (Status and Diagnostic-Code).
  reason TEXT NULL,
  to_email TEXT NULL,
  reminder_id TEXT NULL REFERENCES reminders(id) ON DELETE SET NULL,
  summary_id TEXT NULL REFERENCES daily_summaries(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX bounce_reports_created_idx ON bounce_reports (created_at);
