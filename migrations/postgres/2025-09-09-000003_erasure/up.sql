-- Every address a student had before the current one, so that `user forget`
-- finds what was sent to each. A trigger keeps it, so every path that changes
-- users.email does (`user edit`, and an operator's hand-written UPDATE); it
-- goes with the student (`user remove`, `user forget`).
CREATE TABLE former_emails (
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email text NOT NULL,
  -- When the student stopped having it: what was sent to it later was not theirs.
  replaced_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, email)
);

-- An AFTER trigger: NEW.updated_at has been set by the statement or by
-- users_touch_updated_at.
CREATE FUNCTION reminders_keep_former_email() RETURNS trigger AS $$
BEGIN
  INSERT INTO former_emails (user_id, email, replaced_at)
  VALUES (OLD.id, OLD.email, NEW.updated_at)
  ON CONFLICT (user_id, email) DO UPDATE SET replaced_at = EXCLUDED.replaced_at;
  RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_keep_former_email AFTER UPDATE OF email ON users FOR EACH ROW
  WHEN (NEW.email IS DISTINCT FROM OLD.email)
  EXECUTE FUNCTION reminders_keep_former_email();

-- Where the raw report stays (a Maildir file, `MBOX:N`, a file; NULL for
-- stdin), for `user forget` to name what it cannot erase.
ALTER TABLE bounce_reports ADD COLUMN source_file text NULL;
