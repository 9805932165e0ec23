//! Dispatch of requests a server sends to the client (flag bit 0 clear):
//! handlers registered per request code by the client roles, each under
//! its owner key, then one catch-all. Used by [`super::remoting`].

use std::sync::RwLock;

use crate::wire::codes::response;
use crate::wire::RemotingCommand;

use super::remoting::RequestHandler;

/// Handlers of server→client requests: per-code handlers registered by the
/// client roles (each under its own owner key, so several consumers or
/// producers can share one client), then the catch-all handler.
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) fallback: RwLock<Option<RequestHandler>>,
    pub(crate) by_code: RwLock<Vec<(String, i32, RequestHandler)>>,
}

impl Handlers {
    /// The first answer of the handlers registered for `req.code` (all are
    /// called for one-way requests, which need no answer), else the
    /// catch-all's.
    pub(crate) fn answer(&self, addr: &str, req: RemotingCommand) -> Option<RemotingCommand> {
        let hs: Vec<RequestHandler> = self
            .by_code
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, c, _)| *c == req.code)
            .map(|(_, _, h)| h.clone())
            .collect();
        if !hs.is_empty() {
            let oneway = req.is_oneway();
            let mut answer = None;
            for h in hs {
                if let Some(r) = h(addr.to_string(), req.clone()) {
                    if !oneway {
                        return Some(r);
                    }
                    answer = Some(r);
                }
            }
            if answer.is_some() {
                return answer;
            }
        }
        let fallback = self
            .fallback
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match fallback {
            Some(h) => h(addr.to_string(), req),
            None => Some(
                RemotingCommand::new_response(response::REQUEST_CODE_NOT_SUPPORTED, None)
                    .with_remark(format!(" request type {} not supported", req.code)),
            ),
        }
    }
}
