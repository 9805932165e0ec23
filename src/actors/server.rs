//! Accept loop shared by the name server and the broker: accepts
//! connections and starts a [`Session`] for each on one of the I/O arbiters
//! (one per core, round robin), so sessions spread over the cores.

use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use super::session::{Processor, Session};

/// A pool of arbiters (event-loop threads) for sessions.
#[derive(Clone)]
pub struct IoPool {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl IoPool {
    /// `threads == 0` picks the default: one per core but one, so the
    /// flusher, the prefaulter and co-located clients keep a core (on 2
    /// cores a single session thread measured best: see docs/performance.md).
    pub fn new(threads: usize) -> IoPool {
        let n = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_sub(1)
                .max(1)
        } else {
            threads
        };
        let arbiters = (0..n).map(|_| Arbiter::new().handle()).collect();
        IoPool {
            arbiters: Arc::new(arbiters),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn pick(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    /// The first arbiter (a fixed home for actors that want to share a
    /// thread with sessions).
    pub fn first(&self) -> &ArbiterHandle {
        &self.arbiters[0]
    }

    pub fn stop(&self) {
        for a in self.arbiters.iter() {
            a.stop();
        }
    }
}

/// Accepts connections until the returned handle is dropped or aborted.
pub fn serve(
    listener: TcpListener,
    processor: Arc<dyn Processor>,
    pool: IoPool,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let std_stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot hand over connection");
                            continue;
                        }
                    };
                    let p = processor.clone();
                    pool.pick().spawn_fn(move || {
                        match tokio::net::TcpStream::from_std(std_stream) {
                            Ok(s) => {
                                Session::start(s, p);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot adopt connection"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}
