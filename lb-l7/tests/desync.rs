//! ALB's desync mitigation modes against a real worker and a target that records what it
//! received: a table of raw requests × monitor / defensive / strictest — the status, whether
//! the target saw the request (and how it was framed), whether weir closed the client and the
//! target connection after it, the access log's classification and the non-compliant count.

mod common;
mod recorder;
use common::*;
use lb_l7::{AccessLogTarget, WorkerOptions};
use recorder::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Forwarded; both connections stay open.
    Pass,
    /// Forwarded; the client and the target connection are closed after it.
    PassThenClose,
    /// 400, the client connection closed, nothing forwarded.
    Blocked,
}
use Outcome::*;

struct Case {
    name: &'static str,
    /// The request; `{tag}` is replaced by a path unique to the case and mode.
    raw: &'static str,
    /// (classification, reason) in the access log; `-` for a compliant request.
    class: (&'static str, &'static str),
    /// monitor, defensive, strictest.
    want: [Outcome; 3],
    /// Framing lines the target must see (name, values), when forwarded.
    framing: &'static [(&'static str, &'static [&'static str])],
    body: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "compliant",
        raw: "GET {tag} HTTP/1.1\r\nHost: a\r\n\r\n",
        class: ("-", "-"),
        want: [Pass, Pass, Pass],
        framing: &[("content-length", &[]), ("transfer-encoding", &[])],
        body: "",
    },
    Case {
        name: "acceptable: GET with Content-Length: 0",
        raw: "GET {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        class: ("Acceptable", "GetHeadZeroContentLength"),
        want: [Pass, Pass, Pass],
        framing: &[("content-length", &["0"])],
        body: "",
    },
    Case {
        name: "acceptable: bare LF line ends",
        raw: "GET {tag} HTTP/1.1\nHost: a\n\n",
        class: ("Acceptable", "NonCrLfLineTermination"),
        want: [Pass, Pass, Pass],
        framing: &[],
        body: "",
    },
    Case {
        name: "ambiguous: Content-Length and Transfer-Encoding",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        class: ("Ambiguous", "BothTeClPresent"),
        want: [PassThenClose, PassThenClose, Blocked],
        framing: &[("content-length", &[]), ("transfer-encoding", &["chunked"])],
        body: "hello",
    },
    Case {
        name: "ambiguous: duplicate Content-Length",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        class: ("Ambiguous", "DuplicateContentLength"),
        want: [PassThenClose, PassThenClose, Blocked],
        framing: &[("content-length", &["5"])],
        body: "hello",
    },
    Case {
        name: "ambiguous: GET with a body",
        raw: "GET {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        class: ("Ambiguous", "UndefinedContentLengthSemantics"),
        want: [PassThenClose, PassThenClose, Blocked],
        framing: &[("content-length", &["5"])],
        body: "hello",
    },
    Case {
        name: "ambiguous: a name too close to Transfer-Encoding",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        class: ("Ambiguous", "SuspiciousHeader"),
        want: [PassThenClose, PassThenClose, Blocked],
        framing: &[("content-length", &["5"])],
        body: "hello",
    },
    Case {
        name: "severe: a Content-Length list",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        class: ("Severe", "BadContentLength"),
        want: [PassThenClose, Blocked, Blocked],
        framing: &[("content-length", &["5"])],
        body: "hello",
    },
    Case {
        name: "severe: Transfer-Encoding chunked twice",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        class: ("Severe", "MultipleTransferEncodingChunked"),
        want: [PassThenClose, Blocked, Blocked],
        framing: &[("transfer-encoding", &["chunked"])],
        body: "hello",
    },
    Case {
        // The framing cannot be known: a 400 in every mode (RFC 9112 §6.3), monitor included.
        name: "severe: differing Content-Lengths",
        raw: "POST {tag} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        class: ("Severe", "MultipleContentLength"),
        want: [Blocked, Blocked, Blocked],
        framing: &[],
        body: "",
    },
];

const MODES: [&str; 3] = ["monitor", "defensive", "strictest"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desync_mitigation_modes_act_as_alb_documents() {
    let rec = recorder().await;
    let dir = std::env::temp_dir().join(format!("weir-desync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (mi, mode) in MODES.iter().enumerate() {
        let port = free_port();
        let log = dir.join(format!("{mode}.log"));
        let _ = std::fs::remove_file(&log);
        let opts = WorkerOptions {
            access_log: Some(AccessLogTarget::File(log.clone())),
            ..WorkerOptions::default()
        };
        let w = start_with(
            &format!(
                r#"
[load_balancer]
routing.http.desync_mitigation_mode = "{mode}"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "app" }}
[[target_group]]
name = "app"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
                rec.addr.port()
            ),
            opts,
        );
        for (ci, case) in CASES.iter().enumerate() {
            let tag = format!("/{mode}-{ci}");
            let raw = case.raw.replace("{tag}", &tag);
            let x = exchange(port, raw.as_bytes()).await;
            let want = case.want[mi];
            let seen = rec.seen(&tag);
            let mut fail = |what: String| failures.push(format!("{mode} / {}: {what}", case.name));
            match want {
                Pass | PassThenClose => {
                    if x.status != 200 {
                        fail(format!("status {} (want 200): {}", x.status, x.response));
                    }
                    if seen.len() != 1 {
                        fail(format!("target saw it {} times", seen.len()));
                        continue;
                    }
                    let r = &seen[0].1;
                    for (name, values) in case.framing {
                        if r.header(name) != *values {
                            fail(format!("target's {name}: {:?}", r.header(name)));
                        }
                    }
                    if r.body != case.body.as_bytes() {
                        fail(format!(
                            "target's body {:?}",
                            String::from_utf8_lossy(&r.body)
                        ));
                    }
                    let close = want == PassThenClose;
                    if x.closed != close {
                        fail(format!("client connection closed: {}", x.closed));
                    }
                    let (target_closed, last) = if close {
                        rec.closed_after(&tag).await
                    } else {
                        let c = &rec.snapshot()[seen[0].0];
                        (c.closed, true)
                    };
                    if target_closed != close || !last {
                        fail(format!(
                            "target connection closed: {target_closed} (last: {last})"
                        ));
                    }
                }
                Blocked => {
                    if x.status != 400 || !x.closed {
                        fail(format!(
                            "status {} closed {}: {}",
                            x.status, x.closed, x.response
                        ));
                    }
                    if !seen.is_empty() {
                        fail(format!("forwarded: {:?}", seen[0].1));
                    }
                }
            }
        }
        let m = w.metrics.snapshot();
        let non_compliant = CASES.iter().filter(|c| c.class.0 != "-").count() as u64;
        if m.desync_non_compliant != non_compliant {
            failures.push(format!(
                "{mode}: DesyncMitigationMode_NonCompliant_Request_Count {} (want {non_compliant})",
                m.desync_non_compliant
            ));
        }
        w.stop().await;
        // The log's writer runs on its own: wait (up to 2 s) for every case's line.
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() >= CASES.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for (ci, case) in CASES.iter().enumerate() {
            let tag = format!("/{mode}-{ci} ");
            let line = text.lines().find(|l| l.contains(&tag));
            let want = format!("\"{}\" \"{}\"", case.class.0, case.class.1);
            if !line.is_some_and(|l| l.contains(&want)) {
                failures.push(format!(
                    "{mode} / {}: log line {line:?} lacks {want}",
                    case.name
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The host's target triple, as rustc names it (`rustc -vV`'s `host:` line).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// Where cargo unpacked the `http_desync_guardian` package weir depends on (its published
/// package carries its test vectors in `tests/*.yaml`): read from `cargo metadata`, so the
/// vectors are the crate's own, never a copy kept here.
fn guardian_vectors_dir() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Offline, the graph only resolves for what was downloaded: the host's packages (a
    // dependency's wasm-only ones, e.g. plotters' web-sys, never are).
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host_triple(),
            "--manifest-path",
        ])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http_desync_guardian")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("http_desync_guardian in cargo metadata");
    std::path::Path::new(manifest).with_file_name("tests")
}

/// The `http_desync_guardian` crate's own request vectors (its package's `tests/*.yaml`), each
/// written as a raw head and taken through weir's HTTP/1.1 parser (`pipeline::codec::parse_request`,
/// which classifies the head as the engine does): weir's tier and reason are the vector's
/// expectation. A head `httparse` refuses (a name with a space or a control character, a
/// folded line, HTTP/0.9) is a 400 in every mode before classification and is skipped.
#[test]
fn guardian_vectors_through_weirs_parse() {
    use yaml_rust2::{Yaml, YamlLoader};
    let dir = guardian_vectors_dir();
    let (mut compared, mut refused, mut wrong) = (0, 0, Vec::new());
    let mut tiers = std::collections::BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        // The crate's scratch file for debugging one case repeats a case of another file.
        .filter(|p| !p.ends_with("single-case.yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    for file in files {
        let docs = YamlLoader::load_from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in docs[0].as_vec().unwrap() {
            let text = |v: &Yaml| {
                unescape(&v.as_str().map_or_else(
                    || v.as_i64().map(|n| n.to_string()).unwrap_or_default(),
                    str::to_string,
                ))
            };
            let mut raw = format!(
                "{} {} {}\r\n",
                text(&case["method"]),
                text(&case["uri"]),
                text(&case["version"])
            );
            for h in case["headers"].as_vec().into_iter().flatten() {
                raw.push_str(&format!("{}: {}\r\n", text(&h["name"]), text(&h["value"])));
            }
            raw.push_str("\r\n");
            let mut buf = bytes::BytesMut::from(raw.as_bytes());
            let Ok(Some(head)) = lb_l7::pipeline::codec::parse_request(&mut buf) else {
                refused += 1;
                continue;
            };
            compared += 1;
            *tiers.entry(format!("{:?}", head.class.tier)).or_insert(0) += 1;
            let want = (
                text(&case["expected"]["tier"]),
                text(&case["expected"]["reason"]),
            );
            let tier = format!("{:?}", head.class.tier);
            if (tier.as_str(), head.class.reason) != (want.0.as_str(), want.1.as_str()) {
                wrong.push(format!(
                    "{} / {}: weir {tier} {}, vector {} {}",
                    file.file_name().unwrap().to_string_lossy(),
                    text(&case["name"]),
                    head.class.reason,
                    want.0,
                    want.1
                ));
            }
        }
    }
    eprintln!("guardian vectors: {compared} compared {tiers:?}, {refused} refused by httparse");
    assert!(compared >= 60, "only {compared} vectors parsed");
    assert!(
        tiers.len() == 4,
        "every tier among the vectors weir parses: {tiers:?}"
    );
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The crate's test-file escapes (`\xNN`, `\r`, `\n`, `\t`, …), as its own harness reads them.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                char::from(u8::from_str_radix(&hex, 16).unwrap_or(b'?'))
            }
            Some('b') => '\x08',
            Some('f') => '\x0c',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some(c) => c,
            None => '\\',
        });
    }
    out
}
