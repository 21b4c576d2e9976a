DROP INDEX users_timezone_idx;
