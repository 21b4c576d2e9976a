//! Reading bounce reports, complaints and unsubscribe mails from a Maildir, an
//! mbox, a file or stdin, and deciding which of them can be trusted. The tokens
//! that tie a report to our message are `mail::token`.

pub mod cause;
pub mod process;
pub mod report;
pub mod source;
pub mod trust;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod samples;
