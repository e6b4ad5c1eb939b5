//! The socket and a round trip through the real server and client, on a temporary path.

use std::{os::unix::fs::MetadataExt as _, path::PathBuf};

use super::*;
use crate::{
    admin::{Daemon, Delegates, client},
    config::Config,
};

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("weir-admin-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn bind_refuses_live_and_non_sockets_and_replaces_stale_ones() {
    let dir = TmpDir::new("bind");
    let p = dir.0.join("a.sock");
    let first = bind(&p).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    assert!(matches!(bind(&p), Err(BindError::InUse(_))));
    // A socket nobody listens on any more: what a SIGKILLed daemon leaves.
    let stale = std::os::unix::net::UnixListener::bind(dir.0.join("b.sock")).unwrap();
    drop(stale);
    let again = bind(&dir.0.join("b.sock")).unwrap();
    drop(again);
    assert!(!dir.0.join("b.sock").exists(), "removed when dropped");
    std::fs::write(dir.0.join("c.sock"), "x").unwrap();
    assert!(matches!(
        bind(&dir.0.join("c.sock")),
        Err(BindError::NotASocket(_))
    ));
    assert_eq!(std::fs::read_to_string(dir.0.join("c.sock")).unwrap(), "x");
    drop(first);
    assert!(!p.exists());
}

#[tokio::test]
async fn a_request_goes_round_the_real_server_and_client() {
    let dir = TmpDir::new("rt");
    let p = dir.0.join("a.sock");
    let cfg = Config::parse(
        "t.toml",
        "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"web\" }\n\
         [[target_group]]\nname = \"web\"\ntarget = [{ id = \"10.0.0.1\" }]\n",
    )
    .unwrap();
    let daemon = Daemon::new(&cfg, None, p.clone(), vec![], Delegates::default());
    let server = bind(&p).unwrap().serve(Arc::new(daemon)).unwrap();
    let st = client::call(&p, "GET", "/v1/status", None).await.unwrap();
    assert_eq!(st["generation"], 1);
    assert_eq!(st["pid"], std::process::id());
    let body = serde_json::json!({"targets": [{"id": "10.0.0.2"}]});
    match client::call(&p, "POST", "/v1/target-groups/web/targets", Some(&body)).await {
        Err(client::ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (501, "NotImplemented"))
        }
        other => panic!("{other:?}"),
    }
    match client::call(&p, "POST", "/v1/reload", None).await {
        Err(client::ClientError::Api { code, .. }) => assert_eq!(code, "NotImplemented"),
        other => panic!("{other:?}"),
    }
    drop(server);
    match client::call(&p, "GET", "/v1/status", None).await {
        Err(client::ClientError::NoSocket(_)) => {}
        other => panic!("{other:?}"),
    }
}

/// What one raw request on the socket gets within `limit` (the head and what came with it).
async fn raw(p: &Path, req: &[u8], limit: Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::UnixStream::connect(p).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_405_has_allow_and_a_declared_oversized_body_is_413_at_once() {
    let dir = TmpDir::new("limits");
    let p = dir.0.join("a.sock");
    let cfg = Config::parse(
        "t.toml",
        "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"web\" }\n\
         [[target_group]]\nname = \"web\"\n",
    )
    .unwrap();
    let daemon = Daemon::new(&cfg, None, p.clone(), vec![], Delegates::default());
    let _server = bind(&p).unwrap().serve(Arc::new(daemon)).unwrap();
    let out = raw(
        &p,
        b"PUT /v1/status HTTP/1.1\r\nHost: w\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("\r\nallow: get\r\n"),
        "{out}"
    );
    // Over the 64 KiB limit by its Content-Length: answered before any of it arrives.
    let started = std::time::Instant::now();
    let out = raw(
        &p,
        b"POST /v1/target-groups/web/targets HTTP/1.1\r\nHost: w\r\nContent-Length: 999999999\r\n\r\n{",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(out.contains("PayloadTooLarge"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
