ALTER TABLE teachers DROP COLUMN locale;
ALTER TABLE guardians DROP COLUMN locale;
ALTER TABLE users DROP COLUMN locale;
