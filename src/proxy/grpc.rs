//! `MessagingService` over a [`Backend`]: request metadata, the client
//! registry, and one handler per RPC (the send side in `send.rs`, the
//! consume side in `receive.rs`, Telemetry in `telemetry.rs`). Unary errors
//! are answered as gRPC OK with `status` set, as the Java proxy does; what
//! it leaves unimplemented (PullMessage, offsets, recall, lite) answers
//! UNIMPLEMENTED from the generated default stubs.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

use super::backend::{Backend, Registration};
use super::config::ProxyConfig;
use super::pb::{self, messaging_service_server::MessagingService, ClientType, Code};
use super::send::TxCache;
use super::settings::{self, Clients};
use super::status::{ok, Failure};
use crate::service::Caller;

/// The authenticated user of a call (set by [`Interceptor`]).
#[derive(Clone)]
pub struct User(pub Arc<str>);

/// Checks the `authorization` metadata when authentication is on
/// (`Auth::authenticate_grpc`), before any handler runs.
#[derive(Clone)]
pub struct Interceptor {
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(auth) = &self.auth else {
            return Ok(req);
        };
        let md = req.metadata();
        let text = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
        match auth.authenticate_grpc(text("authorization"), text("x-mq-date-time")) {
            Ok(Some(u)) => {
                req.extensions_mut().insert(User(u.username));
                Ok(req)
            }
            Ok(None) => Ok(req),
            Err(e) => Err(Status::unauthenticated(e.to_string())),
        }
    }
}

/// State shared by every handler.
pub struct Proxy {
    pub cfg: Arc<ProxyConfig>,
    pub backend: Arc<dyn Backend>,
    pub clients: Clients,
    pub txs: TxCache,
    /// Push consumers' handles the proxy keeps invisible (auto-renew).
    pub renewals: super::renew::Renewals,
    /// Where this proxy listens (its own endpoint in routes).
    pub addr: SocketAddr,
}

/// Who is calling, from the request metadata.
pub struct Meta {
    pub caller: Caller,
    pub client_id: String,
    pub language: String,
}

impl Meta {
    pub fn of<T>(req: &Request<T>) -> Result<Meta, Failure> {
        let md = req.metadata();
        let text = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        let client_id = text("x-mq-client-id").trim().to_owned();
        if client_id.is_empty() {
            return Err(Failure::new(
                Code::ClientIdRequired,
                "x-mq-client-id is required",
            ));
        }
        let remote = req
            .remote_addr()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut caller = Caller::connection(remote, 0);
        caller.client_id = Some(Arc::from(client_id.as_str()));
        caller.user = req.extensions().get::<User>().map(|u| u.0.clone());
        Ok(Meta {
            caller,
            client_id,
            language: text("x-mq-language").to_owned(),
        })
    }
}

#[derive(Clone)]
pub struct Messaging(pub Arc<Proxy>);

impl Messaging {
    pub fn new(cfg: Arc<ProxyConfig>, backend: Arc<dyn Backend>, addr: SocketAddr) -> Messaging {
        let proxy = Arc::new(Proxy {
            cfg,
            backend,
            clients: Clients::default(),
            txs: TxCache::default(),
            renewals: Default::default(),
            addr,
        });
        super::telemetry::start_housekeeping(&proxy);
        super::renew::start(&proxy);
        Messaging(proxy)
    }
}

/// Runs a unary handler: metadata first, then `f`; a failure becomes the
/// response's status through `wrap`.
async fn unary<T, R, F, Fut>(
    req: Request<T>,
    wrap: impl FnOnce(pb::Status) -> R,
    f: F,
) -> Result<Response<R>, Status>
where
    F: FnOnce(Meta, T) -> Fut,
    Fut: std::future::Future<Output = Result<R, Failure>>,
{
    let meta = match Meta::of(&req) {
        Ok(m) => m,
        Err(e) => return Ok(Response::new(wrap(e.status()))),
    };
    match f(meta, req.into_inner()).await {
        Ok(r) => Ok(Response::new(r)),
        Err(e) => Ok(Response::new(wrap(e.status()))),
    }
}

type BoxStream<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn query_route(
        &self,
        req: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::QueryRouteResponse {
                status: Some(status),
                message_queues: vec![],
            },
            |m, r| async move { super::send::query_route(&p, m, r).await },
        )
        .await
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::HeartbeatResponse {
                status: Some(status),
            },
            |m, r| async move {
                heartbeat(&p, m, r).await?;
                Ok(pb::HeartbeatResponse { status: Some(ok()) })
            },
        )
        .await
    }

    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::SendMessageResponse {
                status: Some(status),
                entries: vec![],
            },
            |m, r| async move { super::send::send_message(&p, m, r).await },
        )
        .await
    }

    async fn query_assignment(
        &self,
        req: Request<pb::QueryAssignmentRequest>,
    ) -> Result<Response<pb::QueryAssignmentResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::QueryAssignmentResponse {
                status: Some(status),
                assignments: vec![],
            },
            |m, r| async move { super::receive::query_assignment(&p, m, r).await },
        )
        .await
    }

    async fn receive_message(
        &self,
        req: Request<pb::ReceiveMessageRequest>,
    ) -> Result<Response<BoxStream<pb::ReceiveMessageResponse>>, Status> {
        let deadline = super::receive::deadline_of(req.metadata());
        let items = match Meta::of(&req) {
            Ok(m) => super::receive::receive(&self.0, m, req.into_inner(), deadline).await,
            Err(e) => super::receive::failed(e),
        };
        let stream = futures_util::stream::iter(items.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack_message(
        &self,
        req: Request<pb::AckMessageRequest>,
    ) -> Result<Response<pb::AckMessageResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::AckMessageResponse {
                status: Some(status),
                entries: vec![],
            },
            |m, r| async move { super::receive::ack(&p, m, r).await },
        )
        .await
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        req: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<pb::ForwardMessageToDeadLetterQueueResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::ForwardMessageToDeadLetterQueueResponse {
                status: Some(status),
            },
            |m, r| async move {
                super::receive::forward_to_dlq(&p, m, r).await?;
                Ok(pb::ForwardMessageToDeadLetterQueueResponse { status: Some(ok()) })
            },
        )
        .await
    }

    async fn end_transaction(
        &self,
        req: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::EndTransactionResponse {
                status: Some(status),
            },
            |m, r| async move {
                super::send::end_transaction(&p, m, r).await?;
                Ok(pb::EndTransactionResponse { status: Some(ok()) })
            },
        )
        .await
    }

    async fn telemetry(
        &self,
        req: Request<tonic::Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<BoxStream<pb::TelemetryCommand>>, Status> {
        let meta = Meta::of(&req).map_err(|e| Status::invalid_argument(e.message))?;
        let rx = super::telemetry::open(&self.0, meta, req.into_inner());
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn notify_client_termination(
        &self,
        req: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::NotifyClientTerminationResponse {
                status: Some(status),
            },
            |m, r| async move {
                terminate(&p, m, r).await?;
                Ok(pb::NotifyClientTerminationResponse { status: Some(ok()) })
            },
        )
        .await
    }

    async fn change_invisible_duration(
        &self,
        req: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<pb::ChangeInvisibleDurationResponse>, Status> {
        let p = self.0.clone();
        unary(
            req,
            |status| pb::ChangeInvisibleDurationResponse {
                status: Some(status),
                receipt_handle: String::new(),
            },
            |m, r| async move { super::receive::change_invisible(&p, m, r).await },
        )
        .await
    }
}

/// The registration a client's Settings stand for, with its way back.
pub fn registration(p: &Proxy, meta: &Meta, s: &pb::Settings) -> Result<Registration, Failure> {
    let connection = super::telemetry::connection(p, &meta.client_id, meta.caller.remote);
    let mut reg = Registration {
        client_id: meta.client_id.clone(),
        producer_groups: Vec::new(),
        consumer: None,
        language: meta.language.clone(),
        connection,
    };
    match settings::client_type(s) {
        ClientType::Producer => {
            reg.producer_groups = settings::publishing_topics(s);
        }
        ClientType::PushConsumer | ClientType::SimpleConsumer => {
            reg.consumer = Some(super::receive::consumer_registration(s)?);
        }
        _ => {
            return Err(Failure::new(
                Code::UnrecognizedClientType,
                "unrecognized client type",
            ));
        }
    }
    Ok(reg)
}

/// What a call needs under ACL 2.0, checked as the remoting request it
/// stands for would be (`code` and its `topic` / `consumerGroup` fields),
/// against the same users and policies.
pub fn authorize(
    p: &Proxy,
    m: &Meta,
    code: i32,
    topic: &str,
    group: Option<&str>,
) -> Result<(), Failure> {
    let Some(auth) = p.backend.auth() else {
        return Ok(());
    };
    let mut ext = crate::wire::ExtFields::default();
    ext.insert("topic", topic);
    if let Some(g) = group {
        ext.insert("consumerGroup", g);
    }
    if let Some(u) = &m.caller.user {
        ext.insert(crate::auth::signature::ACCESS_KEY, u.as_ref());
    }
    auth.authorize_remoting(code, &ext, &[], Some(m.caller.remote.ip()))
        .map_err(|e| Failure::new(Code::Forbidden, e.to_string()))
}

/// Heartbeat: re-registers the client from its stored Settings.
async fn heartbeat(p: &Proxy, meta: Meta, _r: pb::HeartbeatRequest) -> Result<(), Failure> {
    let Some(s) = p.clients.settings(&meta.client_id) else {
        return Err(Failure::new(
            Code::UnrecognizedClientType,
            "cannot find client settings for this client",
        ));
    };
    p.clients.touch(&meta.client_id);
    let reg = registration(p, &meta, &s)?;
    p.backend.register(meta.caller.clone(), reg).await?;
    Ok(())
}

/// NotifyClientTermination: forget the client and unregister it.
async fn terminate(
    p: &Proxy,
    meta: Meta,
    r: pb::NotifyClientTerminationRequest,
) -> Result<(), Failure> {
    let Some(st) = p.clients.remove(&meta.client_id) else {
        return Ok(());
    };
    let s = st.settings.unwrap_or_default();
    let group = r
        .group
        .map(|g| g.name)
        .or_else(|| settings::consumer_group(&s).map(str::to_owned));
    let u = super::backend::Unregistration {
        client_id: meta.client_id.clone(),
        producer_groups: settings::publishing_topics(&s),
        consumer_group: group,
    };
    p.backend.unregister(meta.caller.clone(), u).await?;
    Ok(())
}
