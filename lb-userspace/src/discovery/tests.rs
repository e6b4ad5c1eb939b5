//! The runner: answers reach the sink, a reload restarts a changed group from the targets
//! handed over, a group losing its discovery gets an empty set; the board follows each.

use super::dns::tests::{Reply, a, server};
use super::*;
use hickory_resolver::proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<SetTarget>)>>);

impl Sink for Recorder {
    fn discovered(
        &self,
        group: String,
        targets: Vec<SetTarget>,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + '_>> {
        Box::pin(async move {
            let mut v = self.0.lock().unwrap();
            v.push((group, targets));
            Ok(v.len() as u64 + 1)
        })
    }
}

impl Recorder {
    async fn wait_for(&self, want: &[&str]) {
        let want: Vec<SetTarget> = want
            .iter()
            .map(|s| SetTarget::plain(s.parse().unwrap()))
            .collect();
        for _ in 0..100 {
            if self
                .0
                .lock()
                .unwrap()
                .last()
                .is_some_and(|(_, t)| *t == want)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never got {want:?}: {:?}", self.0.lock().unwrap());
    }
}

/// `web`'s record once `ok` holds for it.
async fn wait_board(board: &Board, ok: impl Fn(&GroupDiscovery) -> bool) -> GroupDiscovery {
    for _ in 0..100 {
        if let Some(r) = board.get("web").filter(|r| ok(r)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("web's record never got there: {:?}", board.get("web"));
}

fn config(dns: SocketAddr, port: u16, discovery: bool) -> L7Config {
    let d = if discovery {
        format!(
            "discovery = {{ name = \"web.svc.test\", type = \"A\", resolvers = [\"{dns}\"], ttl_floor_seconds = 1, ttl_ceiling_seconds = 1 }}"
        )
    } else {
        String::new()
    };
    let text = format!(
        "[[listener]]\nport = 80\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[target_group]]\nname = \"web\"\nport = {port}\n{d}\n"
    );
    let c: L7Config = toml::from_str(&text).unwrap();
    assert_eq!(c.validate(), vec![]);
    c
}

#[tokio::test]
async fn answers_reach_the_sink_and_reloads_are_followed() {
    let ips = Arc::new(Mutex::new(vec!["10.0.0.1"]));
    let zone_ips = ips.clone();
    let dns = server(Arc::new(move |n: &Name, t| {
        if *n == super::dns::tests::name("web.svc.test") && t == RecordType::A {
            let recs = zone_ips
                .lock()
                .unwrap()
                .iter()
                .map(|ip| a("web.svc.test", ip, 1))
                .collect();
            Reply::Records(recs, vec![])
        } else {
            Reply::Negative(false, 1)
        }
    }))
    .await;
    let sink = Arc::new(Recorder::default());
    let (stop_tx, stop) = watch::channel(false);
    let board = Board::default();
    let (reconf, task) = start(&config(dns, 8080, true), sink.clone(), board.clone(), stop);
    sink.wait_for(&["10.0.0.1:8080"]).await;
    // The board has the answer, the change's generation (the recorder's: 2) and the next time.
    let r = wait_board(&board, |r| r.last_change.is_some()).await;
    assert_eq!(
        (r.name.as_str(), r.record_type.as_str(), r.port),
        ("web.svc.test", "A", 8080)
    );
    assert_eq!(r.targets, ["10.0.0.1:8080"]);
    assert_eq!(r.last_change.map(|c| c.generation), Some(2));
    let last = r.last_resolution.expect("resolved");
    assert_eq!(last.outcome, view::Outcome::Answer { found: 1 });
    assert!(
        r.next_resolution_unix_ms
            .is_some_and(|n| n >= last.time_unix_ms + 1000)
    );
    assert_eq!((r.consecutive_failures, r.resolutions.failed), (0, 0));

    // A record change, picked up at the next resolution (TTL 1 s).
    *ips.lock().unwrap() = vec!["10.0.0.3", "10.0.0.2"];
    sink.wait_for(&["10.0.0.2:8080", "10.0.0.3:8080"]).await;

    // A reload changing the group's port restarts its discovery.
    reconf.apply(&config(dns, 9090, true));
    sink.wait_for(&["10.0.0.2:9090", "10.0.0.3:9090"]).await;
    let r = wait_board(&board, |r| r.targets.len() == 2 && r.port == 9090).await;
    assert!(r.resolutions.answer >= 3, "counts carried over: {r:?}");
    let calls = sink.0.lock().unwrap().len();
    // The same configuration again: nothing restarts, nothing is sent while records stay.
    reconf.apply(&config(dns, 9090, true));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(sink.0.lock().unwrap().len(), calls);

    // Discovery removed from the group: its discovered targets leave.
    reconf.apply(&config(dns, 9090, false));
    sink.wait_for(&[]).await;
    assert!(sink.0.lock().unwrap().iter().all(|(g, _)| g == "web"));
    assert!(
        board.snapshot().is_empty(),
        "no record for a group without discovery"
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .unwrap();
}

#[tokio::test]
async fn a_resolver_that_never_answers_shows_as_a_timed_out_failure() {
    let (dns, hole) = super::dns::tests::black_hole().await;
    let text = format!(
        "[[listener]]\nport = 80\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[target_group]]\nname = \"web\"\nport = 8080\n\
         discovery = {{ name = \"web.svc.test\", type = \"A+AAAA\", resolvers = [\"{dns}\"], timeout_seconds = 1 }}\n"
    );
    let cfg: L7Config = toml::from_str(&text).unwrap();
    assert_eq!(cfg.validate(), vec![]);
    let sink = Arc::new(Recorder::default());
    let (stop_tx, stop) = watch::channel(false);
    let board = Board::default();
    let t0 = std::time::Instant::now();
    let (_reconf, task) = start(&cfg, sink.clone(), board.clone(), stop);
    let r = wait_board(&board, |r| r.consecutive_failures >= 1).await;
    // 2 × timeout_seconds, then the outcome says why (the API and `weir targets discovery`
    // show this record; the metrics its counts).
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert_eq!(
        r.last_resolution.map(|l| l.outcome),
        Some(view::Outcome::Failed {
            error: "A+AAAA web.svc.test.: no answer within 2 s (2 × timeout_seconds)".into()
        })
    );
    let figures = crate::metrics::assemble::discovery(&board.snapshot());
    assert_eq!(figures[0].consecutive_failures, 1);
    assert_eq!(figures[0].resolutions.get("failed"), Some(&1));
    assert!(sink.0.lock().unwrap().is_empty(), "nothing handed over");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .unwrap();
    hole.abort();
}

/// An answer's unspecified, multicast and broadcast addresses were handed over as targets (the
/// file and the admin API refuse them); they are skipped and counted, the others kept.
#[tokio::test]
async fn addresses_no_target_may_have_are_skipped_and_counted() {
    let dns = server(Arc::new(move |n: &Name, t| {
        if *n == super::dns::tests::name("web.svc.test") && t == RecordType::A {
            let ips = ["0.0.0.0", "224.0.0.1", "255.255.255.255", "10.0.0.1"];
            Reply::Records(
                ips.iter().map(|ip| a("web.svc.test", ip, 1)).collect(),
                vec![],
            )
        } else {
            Reply::Negative(false, 1)
        }
    }))
    .await;
    let sink = Arc::new(Recorder::default());
    let (stop_tx, stop) = watch::channel(false);
    let board = Board::default();
    let (_reconf, task) = start(&config(dns, 8080, true), sink.clone(), board.clone(), stop);
    sink.wait_for(&["10.0.0.1:8080"]).await;
    let r = wait_board(&board, |r| r.resolutions.answer >= 2).await;
    assert_eq!(r.targets, ["10.0.0.1:8080"]);
    assert!(r.skipped_addresses >= 6, "3 per answer: {r:?}");
    assert_eq!(
        r.last_resolution.map(|l| l.outcome),
        Some(view::Outcome::Answer { found: 1 })
    );
    assert!(
        sink.0.lock().unwrap().iter().all(|(_, t)| t.len() == 1),
        "{:?}",
        sink.0.lock().unwrap()
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .unwrap();
}
