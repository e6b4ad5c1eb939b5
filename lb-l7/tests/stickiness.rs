//! Target-group stickiness (ALB semantics) over real sockets: `lb_cookie` (`AWSALB` /
//! `AWSALBCORS`), `app_cookie` (`AWSALBAPP-0` beside the application's own cookie) and forward
//! action group stickiness (`AWSALBTG` / `AWSALBTGCORS`), for HTTP/1.1 and h2c clients; a sticky
//! target that went away, garbled tokens, token stability across a restart, and the
//! configuration errors `validate()` reports.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Response parsing (curl `-i` output or a raw response; header names case-insensitive).

/// The header lines of the (last) response head in `text`.
fn head_lines(text: &str) -> Vec<&str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).collect()
}

/// Values of all headers called `name` (any case) in the response head.
fn header_values(text: &str, name: &str) -> Vec<String> {
    head_lines(text)
        .into_iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// All `Set-Cookie` values of the response.
fn set_cookies(text: &str) -> Vec<String> {
    header_values(text, "set-cookie")
}

/// The whole `Set-Cookie` value that sets cookie `name` (exact, case-sensitive cookie name).
fn set_cookie_for(text: &str, name: &str) -> Option<String> {
    set_cookies(text).into_iter().find(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .is_some_and(|(k, _)| k.trim() == name)
    })
}

/// The value of cookie `name` set by the response.
fn cookie_value(text: &str, name: &str) -> Option<String> {
    set_cookie_for(text, name).map(|c| {
        let kv = c.split(';').next().unwrap();
        kv.split_once('=').unwrap().1.trim().to_string()
    })
}

/// The attributes (after the first `name=value`) of a `Set-Cookie` value, trimmed.
fn cookie_attrs(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_string())
        .collect()
}

fn has_attr(set_cookie: &str, want: &str) -> bool {
    cookie_attrs(set_cookie)
        .iter()
        .any(|a| a.eq_ignore_ascii_case(want))
}

/// The `x-backend` header of the response.
fn x_backend(text: &str) -> Option<String> {
    header_values(text, "x-backend").into_iter().next()
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the epoch (only the IMF-fixdate form).
fn http_date(s: &str) -> Option<u64> {
    if !s.ends_with(" GMT") || !s.contains(',') {
        return None;
    }
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks `Expires=<HTTP-date now + duration>` (±60 s) and `Path=/` on a `Set-Cookie` value.
fn assert_expires_and_path(set_cookie: &str, duration: u64) {
    assert!(has_attr(set_cookie, "Path=/"), "no Path=/: {set_cookie}");
    let exp = cookie_attrs(set_cookie)
        .into_iter()
        .find_map(|a| {
            a.split_once('=')
                .filter(|(k, _)| k.eq_ignore_ascii_case("expires"))
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_else(|| panic!("no Expires=: {set_cookie}"));
    let at = http_date(&exp).unwrap_or_else(|| panic!("Expires is no HTTP-date: {set_cookie}"));
    let want = now_unix() + duration;
    assert!(
        at + 60 >= want && at <= want + 60,
        "Expires {exp} is not now+{duration}s: {set_cookie}"
    );
}

/// A GET with curl (HTTP/1.1 unless `extra` says otherwise); asserts a 200.
async fn get(url: &str, extra: &[&str]) -> String {
    let mut args: Vec<&str> = extra.to_vec();
    args.push(url);
    let (code, text) = curl(&args).await;
    assert_eq!(code, 200, "GET {url} {extra:?}: {text}");
    text
}

// ---------------------------------------------------------------------------------------------
// A backend that can be stopped: its listener and every accepted connection are closed.

struct LocalBackend {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// HTTP/1.1 (hyper) backend answering `x-backend: <name>`; `/login` also sets
/// `Set-Cookie: SESSIONID=xyz; Path=/`.
///
/// Its port comes from `free_port` and stays reserved after it stops: nothing else can take
/// it, and a connect to it cannot be a TCP self-connect from the same ephemeral port. (The
/// listener has SO_REUSEPORT, as the reservation beside it.)
async fn local_backend(name: &'static str) -> LocalBackend {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let l = TcpListener::from_std(lb_l7::bind_socket(addr, false).unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let cs = conns.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                let mut r = Response::builder()
                    .header("x-backend", name)
                    .header("content-type", "text/plain");
                if req.uri().path() == "/login" {
                    r = r.header("set-cookie", "SESSIONID=xyz; Path=/");
                }
                Ok::<_, std::convert::Infallible>(
                    r.body(Full::new(Bytes::from(format!("backend={name}\n"))))
                        .unwrap(),
                )
            });
            let t = tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
            cs.lock().unwrap().push(t);
        }
    });
    LocalBackend {
        addr,
        accept,
        conns,
    }
}

impl LocalBackend {
    /// Closes the listener and every connection it accepted (weir's pooled ones too).
    async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let conns: Vec<JoinHandle<()>> = std::mem::take(&mut *self.conns.lock().unwrap());
        for c in &conns {
            c.abort();
        }
        for c in conns {
            let _ = c.await;
        }
        assert_nothing_listens(self.addr, "stopped backend").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Configurations.

fn lb_cookie_config(port: u16, ports: &[u16], duration: u64) -> String {
    let targets = local_targets(ports.iter().copied());
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "web" }}

[[target_group]]
name = "web"
load_balancing.algorithm.type = "round_robin"
stickiness.enabled = true
stickiness.type = "lb_cookie"
stickiness.lb_cookie.duration_seconds = {duration}
target = [{targets}]
"#
    )
}

/// Cookie-less requests until every backend in `names` answered; backend → AWSALB token.
/// Asserts each backend always gets the same token.
async fn collect_lb_tokens(url: &str, names: &[&str], max: usize) -> HashMap<String, String> {
    let mut tokens: HashMap<String, String> = HashMap::new();
    for _ in 0..max {
        let text = get(url, &[]).await;
        let be = x_backend(&text).unwrap_or_else(|| panic!("no x-backend: {text}"));
        let tok = cookie_value(&text, "AWSALB").unwrap_or_else(|| panic!("no AWSALB: {text}"));
        assert!(!tok.is_empty(), "{text}");
        if let Some(old) = tokens.insert(be.clone(), tok.clone()) {
            assert_eq!(old, tok, "backend {be} got two different tokens");
        }
        if names.iter().all(|n| tokens.contains_key(*n)) {
            break;
        }
    }
    for n in names {
        assert!(tokens.contains_key(*n), "{n} never answered: {tokens:?}");
    }
    tokens
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_sticks_and_is_stable() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let ports = [a.addr.port(), b.addr.port(), c.addr.port()];
    let port = free_port();
    let cfg = lb_cookie_config(port, &ports, 3600);
    let w = start(&cfg);
    let url = format!("http://127.0.0.1:{port}/");

    // First request: both cookies, same token, the documented attributes.
    let text = get(&url, &[]).await;
    let first = x_backend(&text).expect("x-backend");
    let alb = set_cookie_for(&text, "AWSALB").unwrap_or_else(|| panic!("no AWSALB: {text}"));
    let cors =
        set_cookie_for(&text, "AWSALBCORS").unwrap_or_else(|| panic!("no AWSALBCORS: {text}"));
    let token = cookie_value(&text, "AWSALB").unwrap();
    assert!(!token.is_empty(), "{alb}");
    assert_eq!(cookie_value(&text, "AWSALBCORS").unwrap(), token, "{text}");
    assert_expires_and_path(&alb, 3600);
    assert_expires_and_path(&cors, 3600);
    assert!(has_attr(&cors, "SameSite=None"), "{cors}");
    assert!(has_attr(&cors, "Secure"), "{cors}");

    // 20 requests with the cookie (alone or among others): all on the first backend, and each
    // response carries the same token again.
    for i in 0..20 {
        let cookie = if i % 2 == 0 {
            format!("Cookie: AWSALB={token}")
        } else {
            format!("Cookie: theme=dark; AWSALB={token}; lang=en")
        };
        let text = get(&url, &["-H", &cookie]).await;
        assert_eq!(x_backend(&text).as_deref(), Some(first.as_str()), "{text}");
        assert_eq!(
            cookie_value(&text, "AWSALB").as_deref(),
            Some(token.as_str()),
            "{text}"
        );
    }
    // AWSALBCORS alone works as well.
    for _ in 0..4 {
        let text = get(&url, &["-H", &format!("Cookie: AWSALBCORS={token}")]).await;
        assert_eq!(x_backend(&text).as_deref(), Some(first.as_str()), "{text}");
    }

    // Without a cookie round robin reaches all three; one token per backend, all different.
    let mut tokens: HashMap<String, String> = HashMap::new();
    for _ in 0..9 {
        let text = get(&url, &[]).await;
        let be = x_backend(&text).expect("x-backend");
        let tok = cookie_value(&text, "AWSALB").unwrap_or_else(|| panic!("no AWSALB: {text}"));
        if let Some(old) = tokens.insert(be.clone(), tok.clone()) {
            assert_eq!(old, tok, "backend {be} got two different tokens");
        }
    }
    assert_eq!(tokens.len(), 3, "9 requests reach a, b and c: {tokens:?}");
    assert_eq!(tokens[&first], token, "{tokens:?}");
    let distinct: HashSet<&String> = tokens.values().collect();
    assert_eq!(
        distinct.len(),
        3,
        "tokens differ between targets: {tokens:?}"
    );
    // Each token leads to its own backend.
    for (be, tok) in &tokens {
        for _ in 0..3 {
            let text = get(&url, &["-H", &format!("Cookie: AWSALB={tok}")]).await;
            assert_eq!(x_backend(&text).as_deref(), Some(be.as_str()), "{text}");
        }
    }
    w.stop().await;

    // A new worker (other listener port, same group and targets) honours the old tokens.
    let port2 = free_port();
    let w2 = start(&lb_cookie_config(port2, &ports, 3600));
    let url2 = format!("http://127.0.0.1:{port2}/");
    for (be, tok) in &tokens {
        let text = get(&url2, &["-H", &format!("Cookie: AWSALB={tok}")]).await;
        assert_eq!(
            x_backend(&text).as_deref(),
            Some(be.as_str()),
            "token of {be} after a restart: {text}"
        );
        assert_eq!(
            cookie_value(&text, "AWSALB").as_deref(),
            Some(tok.as_str()),
            "{text}"
        );
    }
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_token_gets_a_fresh_cookie() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let w = start(&lb_cookie_config(
        port,
        &[a.addr.port(), b.addr.port()],
        86_400,
    ));
    let url = format!("http://127.0.0.1:{port}/");
    let tokens = collect_lb_tokens(&url, &["a", "b"], 6).await;

    for bad in [
        "AWSALB=nonsense",
        "AWSALB=",
        "AWSALB=%%%",
        "AWSALBCORS=nonsense",
    ] {
        let mut seen = HashSet::new();
        for _ in 0..4 {
            let text = get(&url, &["-H", &format!("Cookie: {bad}")]).await;
            let be = x_backend(&text).unwrap_or_else(|| panic!("no x-backend: {text}"));
            let tok = cookie_value(&text, "AWSALB")
                .unwrap_or_else(|| panic!("no fresh AWSALB for {bad}: {text}"));
            assert_eq!(
                tokens.get(&be),
                Some(&tok),
                "the fresh cookie names the target that answered ({bad}): {text}"
            );
            assert_eq!(
                cookie_value(&text, "AWSALBCORS").as_deref(),
                Some(tok.as_str()),
                "{text}"
            );
            seen.insert(be);
        }
        // The normal algorithm picks: round robin over 4 requests reaches both.
        assert_eq!(seen.len(), 2, "{bad}: round robin not used: {seen:?}");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_target_down_moves_to_another() {
    let (x, y) = (local_backend("x").await, local_backend("y").await);
    let port = free_port();
    let w = start(&lb_cookie_config(
        port,
        &[x.addr.port(), y.addr.port()],
        86_400,
    ));
    let url = format!("http://127.0.0.1:{port}/");
    let tokens = collect_lb_tokens(&url, &["x", "y"], 6).await;
    assert_ne!(tokens["x"], tokens["y"]);

    // The backend's own Set-Cookie survives beside weir's.
    let text = get(
        &format!("{url}login"),
        &["-H", &format!("Cookie: AWSALB={}", tokens["x"])],
    )
    .await;
    assert_eq!(x_backend(&text).as_deref(), Some("x"), "{text}");
    assert_eq!(
        cookie_value(&text, "SESSIONID").as_deref(),
        Some("xyz"),
        "{text}"
    );
    assert_eq!(
        cookie_value(&text, "AWSALB"),
        Some(tokens["x"].clone()),
        "{text}"
    );

    // Let weir pool some connections to x, then take x away.
    for _ in 0..3 {
        let text = get(&url, &["-H", &format!("Cookie: AWSALB={}", tokens["x"])]).await;
        assert_eq!(x_backend(&text).as_deref(), Some("x"), "{text}");
    }
    x.stop().await;

    for i in 0..5 {
        let (code, text) = curl(&["-H", &format!("Cookie: AWSALB={}", tokens["x"]), &url]).await;
        assert_eq!(
            code, 200,
            "request {i} with the dead target's token: {text}"
        );
        assert_eq!(x_backend(&text).as_deref(), Some("y"), "{text}");
        assert_eq!(
            cookie_value(&text, "AWSALB"),
            Some(tokens["y"].clone()),
            "the cookie now names y: {text}"
        );
    }
    y.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_sticks_after_the_app_sets_its_cookie() {
    let (p, q) = (local_backend("p").await, local_backend("q").await);
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "app" }}

[[target_group]]
name = "app"
stickiness.enabled = true
stickiness.type = "app_cookie"
stickiness.app_cookie.cookie_name = "SESSIONID"
stickiness.app_cookie.duration_seconds = 7200
target = [{{ id = "127.0.0.1", port = {pp} }}, {{ id = "127.0.0.1", port = {pq} }}]
"#,
        pp = p.addr.port(),
        pq = q.addr.port(),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let login = format!("{base}/login");

    // Logins land on both backends (round robin); each gets its own AWSALBAPP-0 token.
    let mut tokens: HashMap<String, String> = HashMap::new();
    for _ in 0..4 {
        let text = get(&login, &[]).await;
        let be = x_backend(&text).expect("x-backend");
        assert_eq!(
            cookie_value(&text, "SESSIONID").as_deref(),
            Some("xyz"),
            "{text}"
        );
        let app = set_cookie_for(&text, "AWSALBAPP-0")
            .unwrap_or_else(|| panic!("no AWSALBAPP-0: {text}"));
        assert_expires_and_path(&app, 7200);
        assert!(set_cookie_for(&text, "AWSALB").is_none(), "{text}");
        assert!(set_cookie_for(&text, "AWSALBCORS").is_none(), "{text}");
        let tok = cookie_value(&text, "AWSALBAPP-0").unwrap();
        assert!(!tok.is_empty(), "{text}");
        if let Some(old) = tokens.insert(be.clone(), tok.clone()) {
            assert_eq!(old, tok, "backend {be} got two different tokens");
        }
    }
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_ne!(tokens["p"], tokens["q"]);

    for (be, tok) in &tokens {
        for _ in 0..10 {
            let text = get(
                &format!("{base}/"),
                &["-H", &format!("Cookie: SESSIONID=xyz; AWSALBAPP-0={tok}")],
            )
            .await;
            assert_eq!(x_backend(&text).as_deref(), Some(be.as_str()), "{text}");
            // `/` does not set the app cookie, so weir sets none either.
            assert!(set_cookie_for(&text, "AWSALBAPP-0").is_none(), "{text}");
            assert!(set_cookie_for(&text, "AWSALB").is_none(), "{text}");
        }
    }

    // No cookie, no app cookie set: no AWSALBAPP-0, no AWSALB.
    for _ in 0..2 {
        let text = get(&format!("{base}/"), &[]).await;
        assert!(set_cookies(&text).is_empty(), "{text}");
    }
    w.stop().await;
    p.stop().await;
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_stickiness_keeps_the_target_group() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_groups = [{{ name = "ga", weight = 50 }}, {{ name = "gb", weight = 50 }}], stickiness = {{ enabled = true, duration_seconds = 3600 }} }}

[[target_group]]
name = "ga"
target = [{{ id = "127.0.0.1", port = {pa} }}]

[[target_group]]
name = "gb"
target = [{{ id = "127.0.0.1", port = {pb} }}]
"#,
        pa = a.addr.port(),
        pb = b.addr.port(),
    ));
    let url = format!("http://127.0.0.1:{port}/");

    // First response: both group cookies with the same token.
    let text = get(&url, &[]).await;
    let first = x_backend(&text).expect("x-backend");
    let tg = set_cookie_for(&text, "AWSALBTG").unwrap_or_else(|| panic!("no AWSALBTG: {text}"));
    let tgc =
        set_cookie_for(&text, "AWSALBTGCORS").unwrap_or_else(|| panic!("no AWSALBTGCORS: {text}"));
    let token = cookie_value(&text, "AWSALBTG").unwrap();
    assert!(!token.is_empty(), "{text}");
    assert_eq!(cookie_value(&text, "AWSALBTGCORS"), Some(token.clone()));
    assert_expires_and_path(&tg, 3600);
    assert_expires_and_path(&tgc, 3600);
    assert!(has_attr(&tgc, "SameSite=None"), "{tgc}");
    assert!(has_attr(&tgc, "Secure"), "{tgc}");

    for _ in 0..20 {
        let text = get(&url, &["-H", &format!("Cookie: AWSALBTG={token}")]).await;
        assert_eq!(x_backend(&text).as_deref(), Some(first.as_str()), "{text}");
        assert_eq!(
            cookie_value(&text, "AWSALBTG"),
            Some(token.clone()),
            "{text}"
        );
    }

    // Without the cookie both groups are used (50/50); each group has its own token, and each
    // token keeps its group.
    let mut tokens: HashMap<String, String> = HashMap::new();
    for _ in 0..40 {
        let text = get(&url, &[]).await;
        let be = x_backend(&text).expect("x-backend");
        let tok = cookie_value(&text, "AWSALBTG").unwrap_or_else(|| panic!("no AWSALBTG: {text}"));
        if let Some(old) = tokens.insert(be.clone(), tok.clone()) {
            assert_eq!(old, tok, "group of {be} got two different tokens");
        }
        if tokens.len() == 2 {
            break;
        }
    }
    assert_eq!(tokens.len(), 2, "both groups used: {tokens:?}");
    assert_ne!(tokens["a"], tokens["b"]);
    for (be, tok) in &tokens {
        for _ in 0..5 {
            let text = get(&url, &["-H", &format!("Cookie: AWSALBTGCORS={tok}")]).await;
            assert_eq!(x_backend(&text).as_deref(), Some(be.as_str()), "{text}");
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_over_http2() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let w = start(&lb_cookie_config(
        port,
        &[a.addr.port(), b.addr.port()],
        86_400,
    ));
    let url = format!("http://127.0.0.1:{port}/");
    let h2 = "--http2-prior-knowledge";

    let text = get(&url, &[h2]).await;
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    let first = x_backend(&text).expect("x-backend");
    let alb = set_cookie_for(&text, "AWSALB").unwrap_or_else(|| panic!("no AWSALB: {text}"));
    let cors =
        set_cookie_for(&text, "AWSALBCORS").unwrap_or_else(|| panic!("no AWSALBCORS: {text}"));
    assert_expires_and_path(&alb, 86_400);
    assert!(
        has_attr(&cors, "SameSite=None") && has_attr(&cors, "Secure"),
        "{cors}"
    );
    let token = cookie_value(&text, "AWSALB").unwrap();

    for _ in 0..10 {
        let text = get(&url, &[h2, "-H", &format!("Cookie: AWSALB={token}")]).await;
        assert!(text.starts_with("HTTP/2 200"), "{text}");
        assert_eq!(x_backend(&text).as_deref(), Some(first.as_str()), "{text}");
        assert_eq!(cookie_value(&text, "AWSALB"), Some(token.clone()), "{text}");
    }
    // The same token works for an HTTP/1.1 client.
    let text = get(&url, &["-H", &format!("Cookie: AWSALB={token}")]).await;
    assert_eq!(x_backend(&text).as_deref(), Some(first.as_str()), "{text}");
    w.stop().await;
}

#[test]
fn stickiness_config_errors() {
    fn errors(toml: &str) -> Vec<lb_l7::FieldError> {
        lb_l7::config::L7Config::from_toml_str(toml)
            .unwrap_or_else(|e| panic!("parse: {e}\n{toml}"))
            .validate()
    }
    fn group(st: &str) -> String {
        format!(
            "[[target_group]]\nname = \"g\"\ntarget = [{{ id = \"127.0.0.1\", port = 8080 }}]\n{st}\n"
        )
    }
    fn action(st: &str) -> String {
        format!(
            r#"
[[listener]]
address = "127.0.0.1"
port = 8080
default_action = {{ type = "forward", target_groups = [{{ name = "g1", weight = 1 }}, {{ name = "g2", weight = 1 }}], stickiness = {st} }}
[[target_group]]
name = "g1"
[[target_group]]
name = "g2"
"#
        )
    }

    // Valid ones.
    for ok in [
        group("stickiness.enabled = true"),
        group("stickiness.enabled = true\nstickiness.lb_cookie.duration_seconds = 1"),
        group("stickiness.enabled = true\nstickiness.lb_cookie.duration_seconds = 604800"),
        group(
            "stickiness.enabled = true\nstickiness.type = \"app_cookie\"\nstickiness.app_cookie.cookie_name = \"SESSIONID\"",
        ),
        group(
            "stickiness.enabled = true\nstickiness.type = \"app_cookie\"\nstickiness.app_cookie.cookie_name = \"S\"\nstickiness.app_cookie.duration_seconds = 604800",
        ),
        action("{ enabled = true, duration_seconds = 3600 }"),
        action("{ enabled = true, duration_seconds = 604800 }"),
    ] {
        assert_eq!(errors(&ok), vec![], "{ok}");
    }

    // Invalid ones: an error about the group's (or action's) stickiness.
    for (bad, prefix) in [
        (
            group("stickiness.enabled = true\nstickiness.type = \"app_cookie\""),
            "target_group[0].stickiness",
        ),
        (
            group("stickiness.enabled = true\nstickiness.lb_cookie.duration_seconds = 0"),
            "target_group[0].stickiness",
        ),
        (
            group("stickiness.enabled = true\nstickiness.lb_cookie.duration_seconds = 604801"),
            "target_group[0].stickiness",
        ),
        (
            group(
                "stickiness.enabled = true\nstickiness.type = \"app_cookie\"\nstickiness.app_cookie.cookie_name = \"S\"\nstickiness.app_cookie.duration_seconds = 0",
            ),
            "target_group[0].stickiness",
        ),
        (
            group(
                "stickiness.enabled = true\nstickiness.type = \"app_cookie\"\nstickiness.app_cookie.cookie_name = \"S\"\nstickiness.app_cookie.duration_seconds = 604801",
            ),
            "target_group[0].stickiness",
        ),
        (
            action("{ enabled = true, duration_seconds = 0 }"),
            "listener[0].default_action.stickiness",
        ),
        (
            action("{ enabled = true, duration_seconds = 604801 }"),
            "listener[0].default_action.stickiness",
        ),
    ] {
        let errs = errors(&bad);
        assert!(
            errs.iter().any(|e| e.path.starts_with(prefix)),
            "no error under {prefix} in {errs:#?}\n{bad}"
        );
    }

    // The missing cookie name is reported at its own key.
    let errs = errors(&group(
        "stickiness.enabled = true\nstickiness.type = \"app_cookie\"",
    ));
    assert!(
        errs.iter()
            .any(|e| e.path == "target_group[0].stickiness.app_cookie.cookie_name"),
        "{errs:#?}"
    );
}
