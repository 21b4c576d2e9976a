//! What guardians and teachers are sent, from the `contact_messages` queue:
//! a guardian's daily or weekly digest of each followed student's missing and
//! upcoming work, a copy of a student's overdue notice to their guardians
//! (`send --escalate-after`), and a teacher's weekly course report.
//!
//! `plan` decides which digests and reports are owed, `escalate` which
//! overdue steps are copied, `job` turns a claimed row into its email, and
//! `course` is the course report that `reminders report` shows too.

pub mod course;
pub mod escalate;
pub mod job;
pub mod plan;
