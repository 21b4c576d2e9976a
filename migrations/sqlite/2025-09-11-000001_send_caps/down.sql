DROP TABLE send_caps;
