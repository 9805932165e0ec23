//! Tests of the remoting client against a fake server.

use super::*;
use futures_util::future::join_all;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

const HOLD_100: i32 = 100;
const ECHO: i32 = 1;
const SILENT: i32 = 999;
const HANG_UP: i32 = 998;
const CALL_BACK: i32 = 50;

/// A fake server: echoes requests with their opaque; holds HOLD_100
/// requests until 100 are in and answers them in reverse order; never
/// answers SILENT; drops the connection on HANG_UP; on CALL_BACK asks the
/// client a question first and echoes the client's answer.
async fn fake_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut io = Framed::new(sock, FrameCodec::default());
                let mut held = Vec::new();
                let mut waiting_callback: Option<RemotingCommand> = None;
                while let Some(Ok(Inbound::Command(cmd))) = io.next().await {
                    if cmd.is_response() {
                        if let Some(orig) = waiting_callback.take() {
                            let r =
                                RemotingCommand::response_to(&orig, 0).with_body(cmd.body_bytes());
                            io.send(r).await.unwrap();
                        }
                        continue;
                    }
                    match cmd.code {
                        HOLD_100 => {
                            held.push(cmd);
                            if held.len() == 100 {
                                for c in held.drain(..).rev() {
                                    let r = RemotingCommand::response_to(&c, 0)
                                        .with_body(c.body_bytes());
                                    io.feed(r).await.unwrap();
                                }
                                io.flush().await.unwrap();
                            }
                        }
                        SILENT => {}
                        HANG_UP => return,
                        CALL_BACK => {
                            let mut q = RemotingCommand::request(39);
                            q.opaque = 777;
                            waiting_callback = Some(cmd);
                            io.send(q).await.unwrap();
                        }
                        _ => {
                            let r =
                                RemotingCommand::response_to(&cmd, 0).with_body(cmd.body_bytes());
                            io.send(r).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_timeout_and_broken_connection() {
    let addr = fake_server().await;
    let client = RemotingClient::new(ClientConfig::default());
    let t = Duration::from_secs(5);

    // 100 concurrent calls: the server answers only once all 100 are
    // in, so they must all be in flight on the one connection.
    let calls = (0..100).map(|i| {
        let client = client.clone();
        let addr = addr.clone();
        async move {
            let req = RemotingCommand::request(HOLD_100).with_body(format!("m{i}"));
            let resp = client.invoke(&addr, req, t).await.unwrap();
            assert_eq!(resp.body_bytes(), format!("m{i}").as_bytes());
        }
    });
    join_all(calls).await;
    assert_eq!(client.connected_addrs(), vec![addr.clone()]);

    // A timeout leaves no pending entry behind.
    let err = client
        .invoke(
            &addr,
            RemotingCommand::request(SILENT),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let conn = client.conn(&addr).await.unwrap();
    assert!(lock(&conn.pending).is_empty());

    // Server→client request with a handler.
    client.set_request_handler(Arc::new(|_addr, req: RemotingCommand| {
        Some(RemotingCommand::response_to(&req, 0).with_body("pong"))
    }));
    let resp = client
        .invoke(&addr, RemotingCommand::request(CALL_BACK), t)
        .await
        .unwrap();
    assert_eq!(resp.body_bytes(), &b"pong"[..]);

    // A broken connection fails every pending call at once.
    let silent = (0..10).map(|_| {
        let client = client.clone();
        let addr = addr.clone();
        async move {
            client
                .invoke(&addr, RemotingCommand::request(SILENT), t)
                .await
        }
    });
    let silent = tokio::spawn(join_all(silent));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let _ = client
        .invoke(&addr, RemotingCommand::request(HANG_UP), t)
        .await;
    for r in silent.await.unwrap() {
        assert!(matches!(r, Err(ClientError::Closed { .. })), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    // ... and the next call reconnects.
    let resp = client
        .invoke(&addr, RemotingCommand::request(ECHO).with_body("again"), t)
        .await
        .unwrap();
    assert_eq!(resp.body_bytes(), &b"again"[..]);

    // Connect errors are typed.
    client.shutdown();
    let err = client
        .invoke(&addr, RemotingCommand::request(ECHO), t)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    let fresh = RemotingClient::new(ClientConfig::default());
    let err = fresh
        .invoke("127.0.0.1:1", RemotingCommand::request(ECHO), t)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
}

#[actix_rt::test]
async fn works_inside_actix_system() {
    let addr = fake_server().await;
    let client = RemotingClient::new(ClientConfig::default());
    let calls = (0..20).map(|i| {
        let req = RemotingCommand::request(ECHO).with_body(format!("{i}"));
        client.invoke(&addr, req, Duration::from_secs(5))
    });
    for (i, r) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(r.unwrap().body_bytes(), format!("{i}").as_bytes());
    }
    client.close(&addr);
    assert!(client.connected_addrs().is_empty());
}
