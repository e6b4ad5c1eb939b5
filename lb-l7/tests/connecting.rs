//! A request counts as outstanding on its target from its slot on, its connection attempt
//! included (`pipeline::attempt`): a draining target is not done with a request still
//! connecting to it (`TargetRt::busy`), and least-outstanding-requests sees it. On the code
//! before, the count began once the connection was made: 0 here.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// An HTTPS target that takes the TCP connection and never answers the TLS handshake.
#[tokio::test]
async fn a_request_whose_target_connection_is_being_made_is_outstanding() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let port = free_port();
    let w = start(&one_target_config(
        port,
        target.port(),
        "",
        "",
        "protocol = \"HTTPS\"",
    ));
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let key = format!("t/{target}");
    let outstanding = || {
        w.metrics
            .snapshot()
            .targets
            .get(&key)
            .map_or(0, |t| t.outstanding_requests)
    };
    let t = Instant::now();
    while outstanding() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "not outstanding while its TLS handshake waits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outstanding(), 1);
    drop(client);
    held.abort();
    // The worker stops with the test's runtime (its connect timeout is 10 s).
    drop(w);
}
