//! Reminders: which are due and what a run does with each (`plan`), how a
//! claimed one is checked and put into words (`job`), and how several for one
//! student go out as one message (`digest`).

pub mod digest;
pub mod job;
pub mod plan;
