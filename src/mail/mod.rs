//! Mail: where it goes (`url`), how it gets there (`transport`), what a
//! message looks like (`message`) and whom a refusal concerns (`failure`).
//! No database types: callers hand in rendered text and addresses.

pub mod dkim;
mod failure;
mod message;
// Issue 20: wired into the transport next.
#[allow(dead_code)]
mod oauth;
pub mod token;
mod transport;
mod url;

pub use failure::{Blame, SendFailure};
pub use message::{Identity, Sender, build, message_id};
pub use transport::Mailer;
pub use url::MailUrl;
