-- Each person's language: see the PostgreSQL migration.
ALTER TABLE users ADD COLUMN locale TEXT;
ALTER TABLE guardians ADD COLUMN locale TEXT;
ALTER TABLE teachers ADD COLUMN locale TEXT;
