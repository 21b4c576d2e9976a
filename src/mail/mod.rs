//! Mail: where it goes (`url`), how it gets there (`transport`), what a
//! message looks like (`message`), whom a refusal concerns (`failure`) and
//! the OAuth token for XOAUTH2 relays (`oauth`); `smtp` speaks the protocol.
//! No database types: callers hand in rendered text and addresses.

pub mod dkim;
mod failure;
mod message;
mod oauth;
mod smtp;
pub mod token;
mod transport;
mod url;

pub use failure::{Blame, SendFailure};
pub use message::{Identity, Sender, build, message_id};
#[cfg(test)]
pub use oauth::test_rsa_key;
pub use oauth::{OAuthSettings, Secret, ServiceAccountKey, shown_endpoint};
pub use transport::{Mailer, outbox_file_stem};
pub use url::MailUrl;
