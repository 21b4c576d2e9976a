ALTER TABLE bounce_reports DROP COLUMN contact_message_id;
ALTER TABLE send_logs DROP COLUMN contact_message_id;
DROP TABLE contact_messages;
