-- Every address a student had before the current one, so that `user forget`
-- finds what was sent to each. A trigger keeps it, so every path that changes
-- users.email does (`user edit`, and an operator's hand-written UPDATE); it
-- goes with the student (`user remove`, `user forget`).
CREATE TABLE former_emails (
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email TEXT NOT NULL,
  -- When the student stopped having it: what was sent to it later was not theirs.
  replaced_at TEXT NOT NULL,
  PRIMARY KEY (user_id, email)
);

-- A hand-written UPDATE leaves updated_at as it was (users_touch_updated_at
-- moves it after); then the change happened now.
CREATE TRIGGER users_keep_former_email AFTER UPDATE OF email ON users FOR EACH ROW
  WHEN NEW.email IS NOT OLD.email
BEGIN
  INSERT INTO former_emails (user_id, email, replaced_at)
  VALUES (
    OLD.id,
    OLD.email,
    CASE WHEN NEW.updated_at = OLD.updated_at THEN strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') ELSE NEW.updated_at END
  )
  ON CONFLICT (user_id, email) DO UPDATE SET replaced_at = excluded.replaced_at;
END;

-- Where the raw report stays (a Maildir file, `MBOX:N`, a file; NULL for
-- stdin), for `user forget` to name what it cannot erase.
ALTER TABLE bounce_reports ADD COLUMN source_file TEXT NULL;
