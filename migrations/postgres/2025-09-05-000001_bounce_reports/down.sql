DROP TABLE bounce_reports;
