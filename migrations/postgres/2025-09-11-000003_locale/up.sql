-- Each person's language (BCP 47, such as `fr-CA`): which templates they
-- get (`NAME.fr-CA.txt`, then `NAME.fr.txt`, then `NAME.txt`) and how dates
-- and times are written in their messages. NULL: English.
ALTER TABLE users ADD COLUMN locale text;
ALTER TABLE guardians ADD COLUMN locale text;
ALTER TABLE teachers ADD COLUMN locale text;
