ALTER TABLE bounce_reports DROP COLUMN source_file;
DROP TRIGGER users_keep_former_email;
DROP TABLE former_emails;
