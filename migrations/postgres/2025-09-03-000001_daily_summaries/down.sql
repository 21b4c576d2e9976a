ALTER TABLE send_logs DROP COLUMN summary_id;
DROP TABLE daily_summaries;
DROP TABLE user_preferences;
