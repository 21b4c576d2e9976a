-- When things first happened on this database: see the PostgreSQL migration.
CREATE TABLE milestones (
  name TEXT PRIMARY KEY NOT NULL,
  at TEXT NOT NULL CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
);
-- A database that sent summaries before this migration went live then.
INSERT INTO milestones (name, at)
  SELECT 'summaries_began', min(created_at) FROM daily_summaries HAVING count(*) > 0;
