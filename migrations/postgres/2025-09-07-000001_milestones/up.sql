-- When things first happened on this database, written once. `summaries_began`:
-- the first `summary --send`; a summary whose hour had passed well before it
-- is skipped as "before go-live" rather than sent late.
CREATE TABLE milestones (
  name text PRIMARY KEY,
  at timestamptz NOT NULL
);
