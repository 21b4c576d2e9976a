//! Mail: where it goes (`url`), how it gets there (`transport`), what a
//! message looks like (`message`) and whom a refusal concerns (`failure`).
//! No database types: callers hand in rendered text and addresses.

mod failure;
mod message;
// Issue 20: wired into the transport next.
#[allow(dead_code)]
mod oauth;
#[allow(dead_code)] // Issue 13: VERP, Message-IDs and unsubscribe tokens are wired next.
pub mod token;
mod transport;
mod url;

pub use failure::{Blame, SendFailure};
pub use message::{Sender, build, message_id};
pub use transport::Mailer;
pub use url::MailUrl;
