//! Why a service said no: one closed set for every capability, and the one
//! place that maps it onto RocketMQ's remoting response codes
//! (`ResponseCode` / `RemotingSysResponseCode` in the Java broker). The
//! gRPC status mapping of the proxy sits beside this one.

use crate::wire::codes::response as rs;
use crate::wire::names::NameError;

/// A refused request. The text is what the client is shown as the remark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A topic or group name that breaks RocketMQ's rules.
    #[error("{0}")]
    InvalidName(#[from] NameError),
    /// A request field out of range (queue id, queue counts, ...).
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    TopicNotExist(String),
    #[error("{0}")]
    GroupNotExist(String),
    /// The topic's or the broker's permission forbids it.
    #[error("{0}")]
    NoPermission(String),
    /// The group may not consume (`consumeEnable`, broadcast); the forbidden
    /// type goes back in the `forbiddenType` field.
    #[error("{remark}")]
    ConsumeForbidden { remark: String, forbidden_type: i32 },
    /// The message itself is unacceptable (size, properties, batch).
    #[error("{0}")]
    MessageIllegal(String),
    /// The broker cannot take writes now (disk full, role).
    #[error("{0}")]
    ServiceNotAvailable(String),
    /// Only a master may do this (END_TRANSACTION on a slave).
    #[error("{0}")]
    SlaveNotAvailable(String),
    /// An actor's mailbox is full or gone: try again.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    SubscriptionParseFailed(String),
    #[error("{0}")]
    QueryNotFound(String),
    #[error("{0}")]
    ConsumerNotOnline(String),
    /// A client the broker called did not answer in time.
    #[error("{0}")]
    ClientTimeout(String),
    #[error("{0}")]
    IllegalOperation(String),
    /// The request cannot be served (a message not found by offset, a
    /// feature switched off, an internal failure).
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Unsupported(String),
    /// An ack or invisible-time change for an offset the queue does not
    /// hold (POP).
    #[error("{0}")]
    NoMessage(String),
    /// Too many POPs are long-polling (`popPollingSize`, `maxPopPollingSize`).
    #[error("{0}")]
    PollingFull(String),
}

impl Refusal {
    /// The remoting response code of this refusal.
    pub fn remoting_code(&self) -> i32 {
        match self {
            Refusal::InvalidName(_) | Refusal::InvalidParameter(_) => rs::INVALID_PARAMETER,
            Refusal::TopicNotExist(_) => rs::TOPIC_NOT_EXIST,
            Refusal::GroupNotExist(_) => rs::SUBSCRIPTION_GROUP_NOT_EXIST,
            Refusal::NoPermission(_) | Refusal::ConsumeForbidden { .. } => rs::NO_PERMISSION,
            Refusal::MessageIllegal(_) => rs::MESSAGE_ILLEGAL,
            Refusal::ServiceNotAvailable(_) => rs::SERVICE_NOT_AVAILABLE,
            Refusal::SlaveNotAvailable(_) => rs::SLAVE_NOT_AVAILABLE,
            Refusal::Busy(_) => rs::SYSTEM_BUSY,
            Refusal::SubscriptionParseFailed(_) => rs::SUBSCRIPTION_PARSE_FAILED,
            Refusal::QueryNotFound(_) => rs::QUERY_NOT_FOUND,
            Refusal::ConsumerNotOnline(_) => rs::CONSUMER_NOT_ONLINE,
            Refusal::ClientTimeout(_) => rs::CONSUME_MSG_TIMEOUT,
            Refusal::IllegalOperation(_) => rs::ILLEGAL_OPERATION,
            Refusal::Failed(_) => rs::SYSTEM_ERROR,
            Refusal::Unsupported(_) => rs::REQUEST_CODE_NOT_SUPPORTED,
            Refusal::NoMessage(_) => rs::NO_MESSAGE,
            Refusal::PollingFull(_) => rs::POLLING_FULL,
        }
    }

    /// A broker's error response as a refusal (the inverse of
    /// [`Self::remoting_code`]), for the proxy's CLUSTER mode.
    pub fn from_remoting(code: i32, remark: String) -> Refusal {
        match code {
            rs::INVALID_PARAMETER => Refusal::InvalidParameter(remark),
            rs::TOPIC_NOT_EXIST => Refusal::TopicNotExist(remark),
            rs::SUBSCRIPTION_GROUP_NOT_EXIST => Refusal::GroupNotExist(remark),
            rs::NO_PERMISSION => Refusal::NoPermission(remark),
            rs::MESSAGE_ILLEGAL => Refusal::MessageIllegal(remark),
            rs::SERVICE_NOT_AVAILABLE => Refusal::ServiceNotAvailable(remark),
            rs::SLAVE_NOT_AVAILABLE => Refusal::SlaveNotAvailable(remark),
            rs::SYSTEM_BUSY => Refusal::Busy(remark),
            rs::SUBSCRIPTION_PARSE_FAILED => Refusal::SubscriptionParseFailed(remark),
            rs::QUERY_NOT_FOUND => Refusal::QueryNotFound(remark),
            rs::CONSUMER_NOT_ONLINE => Refusal::ConsumerNotOnline(remark),
            rs::CONSUME_MSG_TIMEOUT => Refusal::ClientTimeout(remark),
            rs::ILLEGAL_OPERATION => Refusal::IllegalOperation(remark),
            rs::REQUEST_CODE_NOT_SUPPORTED => Refusal::Unsupported(remark),
            rs::NO_MESSAGE => Refusal::NoMessage(remark),
            rs::POLLING_FULL => Refusal::PollingFull(remark),
            _ => Refusal::Failed(format!("broker answered code {code}: {remark}")),
        }
    }

    /// The gRPC status code of this refusal (the proxy's mapping of broker
    /// codes in RocketMQ's `ResponseBuilder` / `GrpcProxyException`).
    pub fn grpc_code(&self) -> crate::proxy::pb::Code {
        use crate::proxy::pb::Code;
        match self {
            Refusal::InvalidName(e) => match e {
                NameError::Blank { kind }
                | NameError::TooLong { kind, .. }
                | NameError::Illegal { kind, .. } => {
                    if kind.contains("group") {
                        Code::IllegalConsumerGroup
                    } else {
                        Code::IllegalTopic
                    }
                }
            },
            Refusal::InvalidParameter(_) => Code::BadRequest,
            Refusal::TopicNotExist(_) => Code::TopicNotFound,
            Refusal::GroupNotExist(_) => Code::ConsumerGroupNotFound,
            Refusal::NoPermission(_) | Refusal::ConsumeForbidden { .. } => Code::Forbidden,
            Refusal::MessageIllegal(_) => Code::MessageCorrupted,
            Refusal::ServiceNotAvailable(_)
            | Refusal::Failed(_)
            | Refusal::ConsumerNotOnline(_) => Code::InternalServerError,
            Refusal::SlaveNotAvailable(_) => Code::HaNotAvailable,
            Refusal::Busy(_) => Code::TooManyRequests,
            Refusal::SubscriptionParseFailed(_) => Code::IllegalFilterExpression,
            Refusal::QueryNotFound(_) => Code::MessageNotFound,
            Refusal::ClientTimeout(_) => Code::ProxyTimeout,
            Refusal::IllegalOperation(_) => Code::BadRequest,
            Refusal::Unsupported(_) => Code::NotImplemented,
            Refusal::NoMessage(_) => Code::InvalidReceiptHandle,
            Refusal::PollingFull(_) => Code::TooManyRequests,
        }
    }

    /// Extra response fields some refusals carry.
    pub fn remoting_ext(&self) -> Option<(&'static str, i32)> {
        match self {
            Refusal::ConsumeForbidden { forbidden_type, .. } => {
                Some(("forbiddenType", *forbidden_type))
            }
            _ => None,
        }
    }

    /// A mailbox error while asking `what`.
    pub fn busy(what: &str) -> Refusal {
        Refusal::Busy(format!("[OVERLOAD] {what} busy, try again"))
    }

    pub fn topic_not_exist(topic: &str) -> Refusal {
        Refusal::TopicNotExist(format!("topic[{topic}] not exist, apply first please!"))
    }
}

impl From<actix::MailboxError> for Refusal {
    fn from(_: actix::MailboxError) -> Refusal {
        Refusal::Busy("[OVERLOAD] broker busy, try again".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_distinct_meaningful_code() {
        let all = [
            Refusal::InvalidParameter(String::new()),
            Refusal::TopicNotExist(String::new()),
            Refusal::GroupNotExist(String::new()),
            Refusal::NoPermission(String::new()),
            Refusal::MessageIllegal(String::new()),
            Refusal::ServiceNotAvailable(String::new()),
            Refusal::SlaveNotAvailable(String::new()),
            Refusal::Busy(String::new()),
            Refusal::SubscriptionParseFailed(String::new()),
            Refusal::QueryNotFound(String::new()),
            Refusal::ConsumerNotOnline(String::new()),
            Refusal::ClientTimeout(String::new()),
            Refusal::IllegalOperation(String::new()),
            Refusal::Failed(String::new()),
            Refusal::Unsupported(String::new()),
            Refusal::NoMessage(String::new()),
            Refusal::PollingFull(String::new()),
        ];
        let mut codes: Vec<i32> = all.iter().map(Refusal::remoting_code).collect();
        assert!(codes.iter().all(|c| *c != rs::SUCCESS));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn broker_codes_come_back_as_the_refusal_they_stand_for() {
        for r in [
            Refusal::TopicNotExist("t".into()),
            Refusal::Busy("b".into()),
            Refusal::Unsupported("u".into()),
        ] {
            assert_eq!(Refusal::from_remoting(r.remoting_code(), r.to_string()), r);
        }
        assert_eq!(
            Refusal::from_remoting(-7, "x".into()).remoting_code(),
            rs::SYSTEM_ERROR
        );
    }

    #[test]
    fn consume_forbidden_carries_its_type() {
        let r = Refusal::ConsumeForbidden {
            remark: "no".into(),
            forbidden_type: 4,
        };
        assert_eq!(r.remoting_code(), rs::NO_PERMISSION);
        assert_eq!(r.remoting_ext(), Some(("forbiddenType", 4)));
        assert_eq!(r.to_string(), "no");
    }

    #[test]
    fn names_map_to_invalid_parameter_with_the_rule_in_the_text() {
        let r: Refusal = crate::wire::names::check_topic("a/b").unwrap_err().into();
        assert_eq!(r.remoting_code(), rs::INVALID_PARAMETER);
        assert!(r.to_string().contains("illegal characters"));
    }
}
