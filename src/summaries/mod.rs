//! Daily summaries: which are owed and when (`plan`), and how a claimed one
//! is checked and put into words (`job`).

pub mod job;
pub mod plan;
