//! `Status` values of responses. Service refusals go through the one
//! mapping `Refusal::grpc_code`; checks the proxy makes itself (message
//! validation, receipt handles) carry their own code.

use super::pb::{Code, Status};
use crate::service::Refusal;

/// A failed call: the code and message the client is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Status {
        status(self.code, &self.message)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::new(r.grpc_code(), r.to_string())
    }
}

pub fn status(code: Code, message: &str) -> Status {
    Status {
        code: code as i32,
        // Clients expect a message with every status (rocketmq #7115).
        message: if message.is_empty() {
            code.as_str_name().to_owned()
        } else {
            message.to_owned()
        },
    }
}

pub fn ok() -> Status {
    status(Code::Ok, "OK")
}

/// The status of a whole response from its entries' codes: the single
/// code, or MULTIPLE_RESULTS when they differ.
pub fn overall(codes: impl IntoIterator<Item = Status>) -> Status {
    let mut first: Option<Status> = None;
    for s in codes {
        match &first {
            None => first = Some(s),
            Some(f) if f.code != s.code => {
                return status(Code::MultipleResults, "multiple results")
            }
            Some(_) => {}
        }
    }
    first.unwrap_or_else(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_entry_codes_make_multiple_results() {
        let s = overall([ok(), status(Code::BadRequest, "x")]);
        assert_eq!(s.code, Code::MultipleResults as i32);
        assert_eq!(overall([ok(), ok()]).code, Code::Ok as i32);
    }

    #[test]
    fn refusals_map_to_grpc_codes_in_one_place() {
        let f: Failure = Refusal::topic_not_exist("T").into();
        assert_eq!(f.code, Code::TopicNotFound);
        let f: Failure = crate::wire::names::check_group("a b")
            .map_err(Refusal::from)
            .unwrap_err()
            .into();
        assert_eq!(f.code, Code::IllegalConsumerGroup);
        assert_eq!(status(Code::Forbidden, "").message, "FORBIDDEN");
    }
}
