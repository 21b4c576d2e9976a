-- `--daily-cap`: see the PostgreSQL migration.
CREATE TABLE send_caps (
  window_start TEXT PRIMARY KEY NOT NULL CHECK (window_start GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
  used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0)
);
