-- The four tables of the spec (users, assignments, reminders, send_logs),
-- column for column. Operators query these names directly.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE,
  name text,
  timezone text,
  contact_opt_out boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assignments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  title text NOT NULL,
  description text,
  student_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  due_at timestamptz NOT NULL,
  completed boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  metadata jsonb
);
CREATE INDEX assignments_student_due_idx ON assignments (student_id, due_at);
CREATE INDEX assignments_due_idx ON assignments (due_at);

CREATE TABLE reminders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  assignment_id uuid NOT NULL REFERENCES assignments(id) ON DELETE CASCADE,
  reminder_type text NOT NULL,
  scheduled_for timestamptz NOT NULL,
  sent_at timestamptz,
  status text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (assignment_id, reminder_type)
);
CREATE INDEX reminders_scheduled_idx ON reminders (scheduled_for, status);

CREATE TABLE send_logs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  reminder_id uuid REFERENCES reminders(id),
  assignment_id uuid REFERENCES assignments(id),
  to_email text NOT NULL,
  from_inbox text NOT NULL,
  message_id text,
  status text NOT NULL,
  error text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_logs_reminder_created_idx ON send_logs (reminder_id, created_at);

-- updated_at follows every UPDATE, including an operator's hand-written one.
-- The WHEN guard lets a statement that sets updated_at itself keep its value.
CREATE FUNCTION reminders_touch_updated_at() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();
CREATE TRIGGER assignments_touch_updated_at BEFORE UPDATE ON assignments FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();
CREATE TRIGGER reminders_touch_updated_at BEFORE UPDATE ON reminders FOR EACH ROW
  WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
  EXECUTE FUNCTION reminders_touch_updated_at();
