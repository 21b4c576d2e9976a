//! Reading bounce reports, complaints and unsubscribe mails, and the tokens that tie them to our messages.
//!
//! A leaf: it uses only std and crates, so the `bounces` command, the database
//! and the mail builder can use it without it knowing about them.

pub mod report;
pub mod source;
pub mod token;
pub mod trust;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod samples;
