-- When things first happened on this database, written once. `summaries_began`:
-- the first `summary --send`; a summary whose hour had passed well before it
-- is skipped as "before go-live" rather than sent late.
CREATE TABLE milestones (
  name text PRIMARY KEY,
  at timestamptz NOT NULL
);
-- A database that sent summaries before this migration went live then.
INSERT INTO milestones (name, at)
  SELECT 'summaries_began', min(created_at) FROM daily_summaries HAVING count(*) > 0;
