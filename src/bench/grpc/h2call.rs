//! A lean unary gRPC caller for the load generator, straight on the `h2`
//! crate: one HTTP/2 connection, a request per stream (the 5-byte gRPC
//! prefix + the protobuf body in one DATA frame), the response read and its
//! `grpc-status` checked.
//!
//! Why not tonic's client: the load generator shares the machine's cores
//! with the server it measures. Per call, tonic's `Channel` hops through a
//! tower buffer task and its codec layers; on two cores that cost ~3× a
//! remoting send's client side, so the gRPC row measured the client more
//! than the proxy. The remoting row's client is a lean pipelined codec too,
//! so the two rows now pay alike for their load generators.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use prost::Message;

use crate::bench::target::BenchResult;

/// One connection; clone it for each caller (streams are multiplexed).
#[derive(Clone)]
pub struct H2Caller {
    send: h2::client::SendRequest<Bytes>,
    base: String,
    headers: HeaderMap,
}

impl H2Caller {
    /// Connects to `host:port` (or `http://host:port`) and starts the
    /// connection's driver task.
    pub async fn connect(endpoint: &str, client_id: &str) -> BenchResult<H2Caller> {
        let hostport = endpoint.strip_prefix("http://").unwrap_or(endpoint);
        let tcp = tokio::net::TcpStream::connect(hostport).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 24)
            .handshake::<_, Bytes>(tcp)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-mq-client-id", HeaderValue::from_str(client_id)?);
        headers.insert("x-mq-language", HeaderValue::from_static("RUST"));
        headers.insert("x-mq-protocol", HeaderValue::from_static("v2"));
        Ok(H2Caller {
            send,
            base: format!("http://{hostport}"),
            headers,
        })
    }

    /// The URI of a method, e.g. `/apache.rocketmq.v2.MessagingService/SendMessage`;
    /// build it once and pass it to [`H2Caller::unary`].
    pub fn uri(&self, path: &str) -> BenchResult<Uri> {
        Ok(format!("{}{path}", self.base).parse()?)
    }

    /// One unary call: Err with the reason on a transport error, an HTTP
    /// status other than 200 or a `grpc-status` other than 0.
    pub async fn unary<Q: Message, R: Message + Default>(
        &mut self,
        uri: &Uri,
        req: &Q,
    ) -> Result<R, String> {
        let len = req.encoded_len();
        let mut frame = BytesMut::with_capacity(5 + len);
        frame.put_u8(0);
        frame.put_u32(len as u32);
        req.encode(&mut frame).map_err(|e| e.to_string())?;

        let mut head = Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = uri.clone();
        *head.headers_mut() = self.headers.clone();
        let mut send = self.send.clone().ready().await.map_err(|e| e.to_string())?;
        let (answer, mut body_tx) = send.send_request(head, false).map_err(|e| e.to_string())?;
        body_tx
            .send_data(frame.freeze(), true)
            .map_err(|e| e.to_string())?;

        let resp = answer.await.map_err(|e| e.to_string())?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("HTTP {}", resp.status()));
        }
        // Trailers-only answer: the status is in the headers.
        if let Some(st) = resp.headers().get("grpc-status") {
            if st != "0" {
                return Err(grpc_error(resp.headers()));
            }
        }
        let mut body = resp.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        if let Some(trailers) = body.trailers().await.map_err(|e| e.to_string())? {
            match trailers.get("grpc-status") {
                Some(st) if st == "0" => {}
                Some(_) => return Err(grpc_error(&trailers)),
                None => return Err("no grpc-status".into()),
            }
        }
        if data.len() < 5 || data[0] != 0 {
            return Err("no (uncompressed) message in the answer".into());
        }
        let mut data = data.freeze();
        data.advance(1);
        let n = data.get_u32() as usize;
        if data.len() < n {
            return Err("truncated answer".into());
        }
        R::decode(data.slice(..n)).map_err(|e| e.to_string())
    }
}

fn grpc_error(h: &HeaderMap) -> String {
    let field = |k| {
        h.get(k)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    format!(
        "grpc-status {} {}",
        field("grpc-status"),
        field("grpc-message")
    )
}
