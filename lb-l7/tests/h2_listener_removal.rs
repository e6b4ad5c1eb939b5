//! A reload that removes a listener, seen by the HTTP/2 connections on it: through a real
//! worker, a real backend and a raw-frame client, with each HTTP/2 engine (`weir_engine`,
//! `hyper_engine`). An idle h2c connection on the removed listener gets its graceful GOAWAY
//! (NO_ERROR) at once, not at its next stream, and then closes; a busy one there gets it at
//! once too and still gets its response whole; one on a listener that stays gets nothing and
//! goes on serving.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[path = "common/h2frames.rs"]
mod h2frames;
use h2frames::{GOAWAY, Got, H2, NO_ERROR, code_name, request};

fn config(engine: &str, ports: &[u16], backend: u16) -> String {
    let mut t = format!("[load_balancer]\nhttp2_engine = \"{engine}\"\n");
    for p in ports {
        t += &format!(
            "[[listener]]\naddress = \"127.0.0.1\"\nport = {p}\ndefault_action = {{ type = \"forward\", target_group = \"t\" }}\n"
        );
    }
    t += &format!(
        "[[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {backend} }}]\n"
    );
    t
}

/// Sends a request on `stream` and checks the response is the backend's answer to it.
async fn get(c: &mut H2, stream: u32, path: &str) {
    c.send(&request(stream, path, &[], true)).await.unwrap();
    let body = c
        .expect_response(stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(body.contains(&format!("GET {path} ")), "{body}");
}

async fn a_reload_removing_its_listener_sends_goaway_at_once_and_to_no_other(engine: &str) {
    let be = backend("be").await;
    let (kept, removed) = (free_port(), free_port());
    let (mut control, opts) = Control::new(lb_l7::WorkerOptions::default());
    let w = start_with(&config(engine, &[kept, removed], be.addr.port()), opts);
    let mut a = H2::connect(kept, &[]).await;
    get(&mut a, 1, "/kept").await;
    let mut b = H2::connect(removed, &[]).await;
    get(&mut b, 1, "/removed").await;
    // Both idle: whatever else the server had to say (SETTINGS ACKs) is read.
    for c in [&mut a, &mut b] {
        while let Got::Frame(_) = c.next(Duration::from_millis(200)).await {}
    }
    // A busy one on the removed listener: its request is still at the target at the reload.
    let mut busy = H2::connect(removed, &[]).await;
    busy.send(&request(1, "/slow?ms=1500", &[], true))
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(5),
        "the busy request at the target",
        || be.hits.load(std::sync::atomic::Ordering::SeqCst) >= 3,
    )
    .await;
    control.reload(
        2,
        "h2_listener_removal.toml",
        config(engine, &[kept], be.addr.port()),
    );
    let t0 = Instant::now();
    let code = b
        .until(Duration::from_secs(2), |f| {
            (f.ty == GOAWAY).then(|| f.code())
        })
        .await
        .unwrap_or_else(|e| panic!("{engine}: a GOAWAY within 2 s of the reload: {e}"));
    assert_eq!(
        code,
        Some(NO_ERROR),
        "{engine}: GOAWAY {}",
        code.map(code_name).unwrap_or_default()
    );
    eprintln!("{engine}: GOAWAY {:?} after the reload", t0.elapsed());
    let closed = b.closed_within(Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "{engine}: closed after its GOAWAY; frames: {}",
        b.trace()
    );
    eprintln!("{engine}: closed {:?} after the reload", t0.elapsed());
    // The busy one gets its GOAWAY before its response, which still comes whole.
    let code = busy
        .until(Duration::from_secs(1), |f| {
            assert!(
                f.stream != 1,
                "{engine}: the response came before the GOAWAY: {f}"
            );
            (f.ty == GOAWAY).then(|| f.code())
        })
        .await
        .unwrap_or_else(|e| panic!("{engine}: a GOAWAY for the busy one at once: {e}"));
    assert_eq!(code, Some(NO_ERROR), "{engine}");
    let body = busy
        .expect_response(1, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{engine}: the busy one's response: {e}"));
    assert!(body.contains("GET /slow?ms=1500 "), "{body}");
    assert!(
        busy.closed_within(Duration::from_secs(5)).await.is_some(),
        "{engine}: the busy one closed after its response; frames: {}",
        busy.trace()
    );
    // The connection on the listener that stays heard nothing, and serves its next request.
    match a.next(Duration::from_millis(300)).await {
        Got::Quiet => {}
        g => panic!("{engine}: the kept listener's connection got {g:?}"),
    }
    get(&mut a, 3, "/after-the-reload").await;
    if let Err(e) = a.expect_alive(Duration::from_secs(2)).await {
        panic!("{engine}: {e}");
    }
    drop((a, b));
    w.stop().await;
}

#[tokio::test]
async fn weir_engine_a_reload_removing_its_listener_sends_goaway_at_once_and_to_no_other() {
    a_reload_removing_its_listener_sends_goaway_at_once_and_to_no_other("weir").await;
}

#[tokio::test]
async fn hyper_engine_a_reload_removing_its_listener_sends_goaway_at_once_and_to_no_other() {
    a_reload_removing_its_listener_sends_goaway_at_once_and_to_no_other("hyper").await;
}
