//! A partitionable TCP relay for partition tests without network
//! namespaces: one tokio listener per directed link (`from` dials `to`)
//! forwarding to the real address. A process is given the relay's address
//! in its config (`bench::failover::Spec::dial`), so cutting the relay cuts
//! exactly that link:
//!
//! * [`Mode::Blackhole`] — a silent partition: existing connections stay
//!   open but nothing passes any more (no FIN, no RST: the peers learn of it
//!   only by their timeouts), new connections are accepted and never
//!   answered;
//! * [`Mode::Refuse`] — existing connections are dropped, new ones closed at
//!   once;
//! * [`Mode::Open`] — heal: connections held silent are closed (as their
//!   TCP timeouts would), new ones forward again.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Blackhole,
    Refuse,
}

/// One directed link.
pub struct Relay {
    pub addr: String,
    pub target: String,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and forwards to `target`. Call in a
    /// tokio runtime (it spawns the accept loop).
    pub fn start(target: &str) -> Relay {
        Relay::start_at("127.0.0.1:0", target)
    }

    /// The same on `at` (`host:port`).
    pub fn start_at(at: &str, target: &str) -> Relay {
        let std =
            std::net::TcpListener::bind(at).unwrap_or_else(|e| panic!("bind a relay on {at}: {e}"));
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("relay address").to_string();
        let listener = TcpListener::from_std(std).expect("tokio listener");
        let (mode, rx) = watch::channel(Mode::Open);
        let to = target.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let now = *rx.borrow();
                if now == Mode::Refuse {
                    continue; // dropped: closed at once
                }
                tokio::spawn(pump(inbound, to.clone(), rx.clone()));
            }
        });
        Relay {
            addr,
            target: target.to_owned(),
            mode,
            accept,
        }
    }

    pub fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        // Wakes every connection: held ones close.
        self.mode.send_replace(Mode::Refuse);
    }
}

enum Ended {
    Closed,
    Cut,
}

/// One connection through the relay.
async fn pump(mut inbound: TcpStream, target: String, mut rx: watch::Receiver<Mode>) {
    if *rx.borrow() == Mode::Blackhole {
        // Accepted, never answered; closed when healed.
        let _ = rx.wait_for(|m| *m != Mode::Blackhole).await;
        return;
    }
    let Ok(mut out) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = out.set_nodelay(true);
    let ended = {
        let copy = tokio::io::copy_bidirectional(&mut inbound, &mut out);
        let cut = rx.wait_for(|m| *m != Mode::Open);
        tokio::select! {
            _ = copy => Ended::Closed,
            _ = cut => Ended::Cut,
        }
    };
    if let Ended::Cut = ended {
        if *rx.borrow() == Mode::Blackhole {
            // Both sockets stay open and silent until healed.
            let _ = rx.wait_for(|m| *m != Mode::Blackhole).await;
        }
    }
}

/// Every relay of a cluster, by (from, to) process name.
#[derive(Default)]
pub struct Net {
    links: Mutex<BTreeMap<(String, String), Relay>>,
}

impl Net {
    pub fn new() -> Arc<Net> {
        Arc::new(Net::default())
    }

    /// The address `from` is to dial for `to` (whose real address is
    /// `addr`): a new relay's, on 127.0.0.1 and a free port — or, for an
    /// HA address (`to` ending in `-ha`, where only the host can be
    /// configured), on the same port at another loopback address
    /// (127.0.0.2, 127.0.0.3, ...).
    pub fn dial(&self, from: &str, to: &str, addr: &str) -> String {
        let mut links = self.links.lock().unwrap();
        let n = links.len();
        let r = links
            .entry((from.to_owned(), to.to_owned()))
            .or_insert_with(|| match addr.rsplit_once(':') {
                Some((_, port)) if to.ends_with("-ha") => {
                    Relay::start_at(&format!("127.0.0.{}:{port}", n + 2), addr)
                }
                _ => Relay::start(addr),
            });
        r.addr.clone()
    }

    /// Sets the link `from` → `to` (if it exists); whether it did.
    pub fn set(&self, from: &str, to: &str, m: Mode) -> bool {
        let links = self.links.lock().unwrap();
        match links.get(&(from.to_owned(), to.to_owned())) {
            Some(r) => {
                r.set(m);
                true
            }
            None => false,
        }
    }

    /// Cuts (or heals) every link between a member of `a` and a member of
    /// `b`, both ways; the links cut.
    pub fn split(&self, a: &[String], b: &[String], m: Mode) -> usize {
        let mut n = 0;
        for x in a {
            for y in b {
                n += usize::from(self.set(x, y, m)) + usize::from(self.set(y, x, m));
            }
        }
        n
    }

    /// Every link open again.
    pub fn heal(&self) {
        for r in self.links.lock().unwrap().values() {
            r.set(Mode::Open);
        }
    }
}
