//! A worker whose access-log file cannot be opened serves without it (it exited, and was
//! restarted forever serving nothing), and takes the file when a reopen brings it.

mod common;

use common::*;

#[tokio::test]
async fn a_log_the_worker_cannot_open_does_not_stop_it() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("weir-unopened-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let log = dir.join("a.log");
    let w = start(&format!(
        r#"
[load_balancer]
access_logs.enabled = true
access_logs.path = "{}"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "served\n" }}
"#,
        log.display()
    ));
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/a")]).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.ends_with("served\n"), "{text}");
    assert!(!log.exists());
    w.stop().await;
}
