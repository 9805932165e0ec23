//! Unit tests of the restart policy and of the catching supervisor.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn cfg(max: u32) -> PolicyConfig {
    PolicyConfig {
        max_restarts: max,
        window: Duration::from_secs(10),
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_millis(350),
    }
}

#[test]
fn backoff_doubles_is_capped_and_the_limit_gives_up() {
    let c = cfg(4);
    let mut p = RestartPolicy::default();
    let t0 = Instant::now();
    let ms = |v| match v {
        Verdict::RestartAfter(d) => d.as_millis(),
        Verdict::GiveUp => 0,
    };
    assert_eq!(ms(p.on_failure(t0, &c)), 100);
    assert_eq!(ms(p.on_failure(t0, &c)), 200);
    assert_eq!(ms(p.on_failure(t0, &c)), 350);
    assert_eq!(ms(p.on_failure(t0, &c)), 350);
    assert_eq!(p.on_failure(t0, &c), Verdict::GiveUp);
    // Failures older than the window no longer count.
    let later = t0 + Duration::from_secs(11);
    assert_eq!(p.on_failure(later, &c), Verdict::RestartAfter(c.backoff));
}

/// Counts handled messages; panics on demand; its state is "rebuilt" (reset
/// to a marker) on restart.
struct Victim {
    state: u32,
    starts: Arc<AtomicU32>,
    ticks: Arc<AtomicU32>,
}

impl Actor for Victim {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.starts.fetch_add(1, Ordering::SeqCst);
        armed::fire("Victim", armed::Point::Started);
        ctx.run_interval(Duration::from_millis(5), |act, _| {
            act.ticks.fetch_add(1, Ordering::SeqCst);
            armed::fire("Victim", armed::Point::Interval);
        });
    }
}

impl Supervised for Victim {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.state = 1000;
    }
}

crate::inject_panic_handler!(Victim, "Victim");

#[derive(Message)]
#[rtype(result = "u32")]
struct Bump;

impl Handler<Bump> for Victim {
    type Result = u32;
    fn handle(&mut self, _: Bump, _: &mut Context<Self>) -> u32 {
        self.state += 1;
        self.state
    }
}

#[test]
fn panics_in_handler_started_and_interval_restart_the_actor() {
    configure(PolicyConfig {
        max_restarts: 50,
        window: Duration::from_secs(60),
        backoff: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    });
    let sys = actix::System::new();
    sys.block_on(async {
        let starts = Arc::new(AtomicU32::new(0));
        let ticks = Arc::new(AtomicU32::new(0));
        let (s, t) = (starts.clone(), ticks.clone());
        let addr = start("Victim", move |_| Victim {
            state: 0,
            starts: s,
            ticks: t,
        });
        assert_eq!(addr.send(Bump).await.unwrap(), 1);

        // Handler panic: the caller sees an error, the next send works on
        // rebuilt state.
        assert!(addr
            .send(InjectPanic {
                fault: Fault::Panic
            })
            .await
            .is_err());
        assert_eq!(addr.send(Bump).await.unwrap(), 1001);
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        // Panic, then a panic in started() of the restarted actor: two
        // restarts, then it serves again.
        let _ = addr
            .send(InjectPanic {
                fault: Fault::PanicInStarted,
            })
            .await;
        assert_eq!(addr.send(Bump).await.unwrap(), 1001);
        assert_eq!(starts.load(Ordering::SeqCst), 4);

        // Periodic closure panic.
        addr.send(InjectPanic {
            fault: Fault::PanicInInterval,
        })
        .await
        .unwrap()
        .unwrap();
        for _ in 0..200 {
            if starts.load(Ordering::SeqCst) == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(starts.load(Ordering::SeqCst), 5);
        assert_eq!(addr.send(Bump).await.unwrap(), 1001);
        let before = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            ticks.load(Ordering::SeqCst) > before,
            "interval rescheduled"
        );
    });
    configure(PolicyConfig::DEFAULT);
}
