//! The time rules of issue 22, one test for each reproduction, and a cron-like
//! sweep that holds `send` to one message per reminder type.

use crate::common::{TestEnv, on_both_backends};

on_both_backends! {
    fn second_60_is_refused_wherever_a_time_is_read(env: &TestEnv) {
        env.add_user("a@x.test", "UTC");
        let refused = "does not exist: a minute has seconds 00 to 59";
        for due in ["2025-06-30T12:00:60Z", "2025-06-30 12:00:60"] {
            env.fails(&["assignment", "add", "--student", "a@x.test", "--title", "PS1", "--due", due], 2, refused);
        }
        std::fs::write(env.path("work.csv"), "student,title,due\na@x.test,One,2025-06-30T12:00:59Z\na@x.test,Two,2025-06-30T12:00:60Z\n").unwrap();
        env.fails(&["assignment", "import", "work.csv"], 2, &format!("line 3: `2025-06-30T12:00:60Z` {refused}"));
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        env.fails(&["due", "--unit", "hours", "--targets", "24", "--now", "2025-06-30T11:59:60Z"], 2, refused);
        env.fails(&["status", "--now", "2025-06-30T11:59:60Z"], 2, refused);
        // Second 59 is an ordinary time, stored as given on both backends.
        env.add_assignment("a@x.test", "PS1", "2025-06-30T12:00:59Z");
        let listed = env.json(&["assignment", "list"]);
        assert_eq!(listed[0]["due_at"], "2025-06-30T12:00:59Z");
    }
}
