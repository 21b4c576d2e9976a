//! Reminders: which are due and what a run does with each (`plan`), and how
//! a claimed one is checked and put into words (`job`).

pub mod job;
pub mod plan;
