//! `reminders cgi`: one request to the preferences page, read from the
//! environment and stdin as a web server hands it over (RFC 3875), and its
//! response written to stdout.

use std::io::Read;

use super::{Context, Outcome, Run};
use crate::config::CgiJob;
use crate::db::types::Timestamp;
use crate::error::Failure;
use crate::output::PlainText;
use crate::web::{self, Request};

impl Run for CgiJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let database = cx.database()?;
        let now = Timestamp::now(&cx.clock());
        // Whatever the request, the web server gets a response: a refusal
        // is a page, not a failed run.
        let response = match web::body_length(self.request.content_length.as_deref()) {
            Err(refused) => refused,
            Ok(length) => {
                let mut body = Vec::with_capacity(length);
                match std::io::stdin().lock().take(length as u64).read_to_end(&mut body) {
                    Err(error) => {
                        crate::log::warning!("cannot read the request's body: {error}");
                        web::Response::refused(&web::form::Refusal {
                            status: 400,
                            reason: "the form did not arrive whole: send it again".to_string(),
                        })
                    }
                    Ok(_) => {
                        let request = Request {
                            method: self.request.method,
                            query: self.request.query,
                            content_type: self.request.content_type,
                            body,
                        };
                        web::handle(database, &self.site, &request, now)
                    }
                }
            }
        };
        Ok(Outcome::success(PlainText(response.to_cgi())))
    }
}
