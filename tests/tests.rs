//! One integration test binary driving the real `reminders` executable.

mod common;

mod cases;
