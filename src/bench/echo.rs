//! `bench echo`: the loopback baseline. A plain in-process TCP server on
//! 127.0.0.1 answers every remoting frame with itself (flag = response), and
//! the same client stack drives it with the same window: the physical limit
//! every broker figure is quoted against.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::stats::{progress, Report, Samples};
use super::target::{client, BenchResult};
use crate::wire::{FrameCodec, Inbound, RemotingCommand};

#[derive(clap::Args, Debug, Clone)]
pub struct EchoBench {
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(short = 'c', long, default_value_t = 1)]
    pub connections: usize,
    #[arg(short = 'w', long, default_value_t = 1)]
    pub window: usize,
    #[arg(short = 'd', long, default_value_t = 5)]
    pub duration: u64,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Starts the echo server; returns its address.
pub async fn start_echo_server() -> std::io::Result<String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (r, w) = s.into_split();
                let mut rd = FramedRead::new(r, FrameCodec::default());
                let mut wr = FramedWrite::new(w, FrameCodec::default());
                while let Some(Ok(Inbound::Command(mut cmd))) = rd.next().await {
                    cmd.flag |= 1;
                    if wr.feed(cmd).await.is_err() {
                        break;
                    }
                    // Flush only when nothing more is ready (batching like the broker).
                    if rd.read_buffer().is_empty() && wr.flush().await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

pub async fn run_echo(a: &EchoBench) -> BenchResult<Report> {
    let addr = start_echo_server().await?;
    let body = Bytes::from(vec![b'e'; a.size]);
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress("echo".into(), done.clone());
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.connections.max(1) {
        let c = client();
        for _ in 0..a.window.max(1) {
            let (c, addr, body, done) = (c.clone(), addr.clone(), body.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = Samples::default();
                while Instant::now() < deadline {
                    let req = RemotingCommand::request(10)
                        .with_ext("topic", "echo")
                        .with_body(body.clone());
                    let t0 = Instant::now();
                    match c.invoke(&addr, req, Duration::from_secs(5)).await {
                        Ok(_) => {
                            s.record(t0.elapsed(), 1, body.len() as u64);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => s.errors += 1,
                    }
                }
                s
            }));
        }
    }
    let all = super::stats::join_samples(tasks).await;
    bar.abort();
    Ok(Report::from_samples(
        "loopback echo",
        all,
        start.elapsed(),
        format!(
            "{} B, {} conn x {} in flight",
            a.size, a.connections, a.window
        ),
    ))
}
