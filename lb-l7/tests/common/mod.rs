//! Shared test helpers: a running worker, real backends, raw clients, test certificates.
//! Everything listens on 127.0.0.1 with ephemeral ports (`free_port` for a worker's).
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lb_l7::{L7Config, MetricsHandle, Worker, WorkerOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A port for a worker's listener (or a target where nothing listens) that no other socket of
/// any process can take while this test uses it.
///
/// The kernel picks it (`bind` to port 0 on every address, dual-stack) for a socket with
/// SO_REUSEPORT that never listens, kept in [`RESERVED`]: while it is held a bind without
/// SO_REUSEPORT fails, a port-0 bind in any process (another test's `free_port` or backend)
/// never gets this port, an outgoing connection never takes it as its source port (so a
/// connect to it is no TCP self-connect), and a connection to it is refused while nothing
/// listens; the worker's listener (SO_REUSEPORT, same user) binds beside it. A worker started
/// on it ([`start_with`]) takes the reservation over and gives it up when it stops; a port no
/// worker took stays reserved for the process's life.
///
/// It used to be a port that was free a moment ago, dropped and bound again by the worker: two
/// test processes (or two sessions) that picked the same port both bound it, the workers'
/// SO_REUSEPORT let them, and the kernel split one test's connections between both workers
/// (a response from the other test's worker).
pub fn free_port() -> u16 {
    let s = reserve().expect("reserve a port (bind to port 0)");
    let port = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address")
        .port();
    RESERVED.lock().unwrap().insert(port, s);
    port
}

/// Reservations of [`free_port`] not taken over by a worker, by port.
static RESERVED: std::sync::Mutex<std::collections::BTreeMap<u16, socket2::Socket>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A socket with SO_REUSEPORT bound to a port the kernel picks, not listening: on `[::]`
/// (dual-stack, every IPv4 and IPv6 address), or on `0.0.0.0` where IPv6 is off.
fn reserve() -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    use std::net::{Ipv4Addr, Ipv6Addr};
    let on = |domain: Domain, addr: SocketAddr| -> std::io::Result<Socket> {
        let s = Socket::new(domain, Type::STREAM, None)?;
        if domain == Domain::IPV6 {
            s.set_only_v6(false)?;
        }
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        Ok(s)
    };
    on(Domain::IPV6, (Ipv6Addr::UNSPECIFIED, 0).into())
        .or_else(|_| on(Domain::IPV4, (Ipv4Addr::UNSPECIFIED, 0).into()))
}

/// Takes `port`'s reservation out of [`RESERVED`], if it is there.
fn take_reservation(port: u16) -> Option<socket2::Socket> {
    RESERVED.lock().unwrap().remove(&port)
}

/// Asserts that nothing listens on `addr` any more, once fork windows have passed.
///
/// A closed listener can still take connections for a moment: a child process that another
/// test thread is spawning (curl) holds a copy of every fd from its clone until its exec closes
/// the CLOEXEC ones. Such windows get 2 s to pass; a listener that stays open fails.
#[allow(dead_code)] // not every test binary uses it
pub async fn assert_nothing_listens(addr: SocketAddr, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: something still accepts on {addr} after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The access log at `path` once it has `lines` lines or more, or what it has after 10 s.
/// A worker writes a connection's line after its response, on a writer thread; the drain at
/// `Running::stop` waits up to 2 s for the queued lines, which a loaded machine can outlast.
#[allow(dead_code)] // not every test binary uses it
pub async fn log_lines(path: &std::path::Path, lines: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `f` holds (polled every 20 ms); fails naming `what` once `limit` has passed.
/// For what a worker does after the client already has its answer (a count, a close), where
/// a fixed sleep is too short on a loaded machine.
#[allow(dead_code)] // not every test binary uses it
pub async fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A target group's `target = [...]` list for targets on 127.0.0.1 at `ports`.
#[allow(dead_code)] // not every test binary uses it
pub fn local_targets(ports: impl IntoIterator<Item = u16>) -> String {
    ports
        .into_iter()
        .map(|p| format!("{{ id = \"127.0.0.1\", port = {p} }}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rule that answers `/admin*` itself (403): what a smuggled request would try to get past.
#[allow(dead_code)] // not every test binary uses it
pub const ADMIN_403_RULE: &str = r#"[[listener.rule]]
priority = 10
condition = [{ field = "path-pattern", values = ["/admin*"] }]
action = { type = "fixed-response", status_code = 403, content_type = "text/plain", message_body = "no" }"#;

/// One HTTP listener on 127.0.0.1:`port` forwarding to group `t`, whose one target is
/// 127.0.0.1:`target`. `lb_extra` goes under `[load_balancer]`, `rules` after the listener,
/// `tg_extra` into the group.
#[allow(dead_code)] // not every test binary uses it
pub fn one_target_config(
    port: u16,
    target: u16,
    lb_extra: &str,
    rules: &str,
    tg_extra: &str,
) -> String {
    format!(
        r#"
[load_balancer]
{lb_extra}
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "t" }}
{rules}
[[target_group]]
name = "t"
{tg_extra}
target = [{{ id = "127.0.0.1", port = {target} }}]
"#
    )
}

/// A plain HTTP listener on 127.0.0.1:`port` and an HTTPS one on 127.0.0.1:`tls_port` with
/// `cert` (certificate and key paths, as `TestPki::leaf` gives them), both forwarding to group
/// `t`, whose one target is 127.0.0.1:`target`. `lb_extra` goes under `[load_balancer]`.
#[allow(dead_code)] // not every test binary uses it
pub fn plain_and_tls_config(
    port: u16,
    tls_port: u16,
    cert: &(String, String),
    target: u16,
    lb_extra: &str,
) -> String {
    format!(
        "\n[load_balancer]\n{lb_extra}\n{}{}{}",
        http_listener(port),
        https_listener(tls_port, cert),
        group_t(target)
    )
}

/// A worker from `plain_and_tls_config` on two free ports, its certificate for `names` issued
/// by `pki`; the worker, the plain port and the HTTPS port.
#[allow(dead_code)] // not every test binary uses it
pub fn start_plain_and_tls(
    pki: &TestPki,
    names: &[&str],
    target: u16,
    lb_extra: &str,
) -> (Running, u16, u16) {
    let cert = pki.leaf("srv", names);
    let (port, tls_port) = (free_port(), free_port());
    let w = start(&plain_and_tls_config(
        port, tls_port, &cert, target, lb_extra,
    ));
    (w, port, tls_port)
}

/// As `plain_and_tls_config`, with the HTTPS listener only.
#[allow(dead_code)] // not every test binary uses it
pub fn tls_config(tls_port: u16, cert: &(String, String), target: u16, lb_extra: &str) -> String {
    format!(
        "\n[load_balancer]\n{lb_extra}\n{}{}",
        https_listener(tls_port, cert),
        group_t(target)
    )
}

/// A plain HTTP listener on 127.0.0.1:`port` forwarding to group `t`.
fn http_listener(port: u16) -> String {
    format!(
        r#"[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "t" }}
"#
    )
}

/// An HTTPS listener on 127.0.0.1:`port` with one certificate, forwarding to group `t`.
fn https_listener(port: u16, (cert, key): &(String, String)) -> String {
    format!(
        r#"[[listener]]
address = "127.0.0.1"
port = {port}
protocol = "HTTPS"
certificate = [{{ certificate_file = "{cert}", private_key_file = "{key}" }}]
default_action = {{ type = "forward", target_group = "t" }}
"#
    )
}

/// Target group `t` with one target, 127.0.0.1:`target`.
fn group_t(target: u16) -> String {
    format!(
        r#"[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {target} }}]
"#
    )
}

pub struct Running {
    pub port: u16,
    pub ports: Vec<u16>,
    pub metrics: MetricsHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The [`free_port`] reservations of its listeners' ports, given up when it is dropped.
    _reserved: Vec<socket2::Socket>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("worker drained in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a worker on the current runtime from a TOML text.
pub fn start(toml: &str) -> Running {
    start_with(toml, WorkerOptions::default())
}

/// `toml` with `[load_balancer] http2_engine = "<engine>"` (added to its `[load_balancer]`
/// table, or as one).
pub fn with_h2_engine(toml: &str, engine: &str) -> String {
    let line = format!("http2_engine = \"{engine}\"\n");
    match toml.find("[load_balancer]\n") {
        Some(at) => {
            let end = at + "[load_balancer]\n".len();
            format!("{}{line}{}", &toml[..end], &toml[end..])
        }
        None => format!("[load_balancer]\n{line}{toml}"),
    }
}

pub fn start_with(toml: &str, opts: WorkerOptions) -> Running {
    init_tracing();
    // `WEIR_TEST_H2_ENGINE=weir|hyper` runs every test's HTTP/2 clients on that engine (a test
    // that names one keeps it).
    let engine = std::env::var("WEIR_TEST_H2_ENGINE").ok();
    let toml = match engine {
        Some(e) if !toml.contains("http2_engine") => with_h2_engine(toml, &e),
        _ => toml.to_string(),
    };
    let toml = toml.as_str();
    let cfg =
        L7Config::from_toml_str(toml).unwrap_or_else(|e| panic!("bad test config: {e}\n{toml}"));
    let w = Worker::bind(Arc::new(cfg), opts).expect("bind");
    let ports: Vec<u16> = w.local_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(w.listener_fds().len(), ports.len());
    let metrics = w.metrics_handle();
    let reserved = ports.iter().filter_map(|p| take_reservation(*p)).collect();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(w.serve(async move {
        let _ = rx.await;
    }));
    Running {
        port: ports[0],
        ports,
        metrics,
        stop: Some(tx),
        task: Some(task),
        _reserved: reserved,
    }
}

/// A real HTTP/1.1 backend (hyper). Answers with its name, the method, the URI and the request
/// headers; `/slow?ms=N` waits first; a WebSocket upgrade is accepted and echoed.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub hits: Arc<AtomicUsize>,
    pub conns: Arc<AtomicUsize>,
}

pub async fn backend(name: &'static str) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hits.clone(), conns.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c.fetch_add(1, SeqCst);
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let h = h.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(name, h, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend {
        addr,
        name,
        hits,
        conns,
    }
}

async fn answer(
    name: &'static str,
    hits: Arc<AtomicUsize>,
    mut req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, SeqCst);
    if req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        return Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if req.uri().path() == "/slow" {
        let ms: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut text = format!(
        "backend={name}\n{} {} {:?}\n",
        req.method(),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("body-bytes={}\n", body.len()));
    Response::builder()
        .header("x-backend", name)
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

/// The seed's backend: HTTP/1.1 keep-alive that closes a connection idle for `idle`.
pub struct IdleClosingBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub conns: Arc<AtomicUsize>,
    pub idle_closes: Arc<AtomicUsize>,
}

pub async fn idle_closing_backend(idle: Duration) -> IdleClosingBackend {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let idle_closes = Arc::new(AtomicUsize::new(0));
    let (h, c, ic) = (hits.clone(), conns.clone(), idle_closes.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, SeqCst);
            let (h, ic) = (h.clone(), ic.clone());
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut tmp = [0u8; 4096];
                loop {
                    // Wait for a complete request head; close when idle too long.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(idle, s.read(&mut tmp)).await {
                            Err(_) if buf.is_empty() => {
                                ic.fetch_add(1, SeqCst);
                                return; // drop: FIN to the proxy
                            }
                            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    h.fetch_add(1, SeqCst);
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    IdleClosingBackend {
        addr,
        hits,
        conns,
        idle_closes,
    }
}

/// Sends raw bytes, reads until the peer closes (or `limit`), returns what came back and
/// whether the connection was closed by the peer.
pub async fn raw(port: u16, bytes: &[u8], limit: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    read_all(&mut s, limit).await
}

pub async fn read_all(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response framed by its Content-Length (each read within `limit`):
/// (head, body, the bytes read past its end).
pub async fn content_length_response<R: tokio::io::AsyncRead + Unpin + ?Sized>(
    c: &mut R,
    limit: Duration,
) -> (String, String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            let stop = end + 4 + len;
            if got.len() >= stop {
                let body = String::from_utf8_lossy(&got[end + 4..stop]).to_string();
                return (head, body, got.split_off(stop));
            }
        }
        let n = tokio::time::timeout(limit, c.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before the response ended: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Runs a command with a time limit; returns (status ok, stdout, stderr).
pub async fn run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    run_stdin(cmd, args, None).await
}

pub async fn run_stdin(cmd: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut c = tokio::process::Command::new(cmd);
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    if let Some(data) = stdin {
        let mut i = child.stdin.take().unwrap();
        let data = data.to_vec();
        tokio::spawn(async move {
            let _ = i.write_all(&data).await;
            // keep stdin open briefly so TLS tools read the response before EOF
            tokio::time::sleep(Duration::from_millis(500)).await;
        });
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("command finished in time")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl with a 10 s limit; returns (status code, headers+body text).
pub async fn curl(args: &[&str]) -> (u16, String) {
    let mut a = vec!["-s", "-i", "--max-time", "10", "-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    let (_, out, _) = run("curl", &a).await;
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A test CA and leaf certificates for the given names, written as PEM into `dir`.
pub struct TestPki {
    pub dir: std::path::PathBuf,
    pub ca: std::path::PathBuf,
}

impl TestPki {
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("weir-l7-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "weir test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(p, key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("ca.key"), ca.key().serialize_pem()).unwrap();
        TestPki {
            ca: dir.join("ca.pem"),
            dir,
        }
    }

    /// Issues a certificate for `names` signed by the CA; returns (cert path, key path).
    pub fn leaf(&self, file: &str, names: &[&str]) -> (String, String) {
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(self.dir.join("ca.key")).unwrap())
                .unwrap();
        let mut cap = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        cap.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        cap.distinguished_name
            .push(rcgen::DnType::CommonName, "weir test CA");
        // Re-deriving the issuer from the same name and key signs leaves the CA file verifies.
        let issuer = rcgen::Issuer::new(cap, ca_key);
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }
}

impl TestPki {
    /// As [`TestPki::leaf`] with an RSA-2048 key (`rsa`, made by `openssl genpkey`) instead of
    /// ECDSA P-256, and without subjectAltName when `names` is empty (`cn` then is the subject
    /// CN alone).
    pub fn leaf_with(&self, file: &str, cn: &str, names: &[&str], rsa: bool) -> (String, String) {
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(self.dir.join("ca.key")).unwrap())
                .unwrap();
        let mut cap = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        cap.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        cap.distinguished_name
            .push(rcgen::DnType::CommonName, "weir test CA");
        let issuer = rcgen::Issuer::new(cap, ca_key);
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = if rsa {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
            rcgen::KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap()
        } else {
            rcgen::KeyPair::generate().unwrap()
        };
        let cert = p.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The control plane's end of a worker's control channel, as `weir run` gives it: ticket keys
/// and `Started` already sent.
pub struct Control(pub std::os::unix::net::UnixStream);

impl Control {
    /// A channel, and `opts` carrying the worker's end of it.
    pub fn new(opts: WorkerOptions) -> (Control, WorkerOptions) {
        use lb_l7::control::{self, ControlMsg};
        use std::io::Write as _;
        use std::os::fd::IntoRawFd as _;
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        for m in [
            ControlMsg::TicketKeys(lb_l7::tickets::TicketKeys::random(3600)),
            ControlMsg::Started,
        ] {
            ours.write_all(&control::encode(&m)).unwrap();
        }
        let opts = WorkerOptions {
            control_channel: Some(theirs.into_raw_fd()),
            ..opts
        };
        (Control(ours), opts)
    }

    /// A reload: `toml` becomes configuration generation `generation`.
    pub fn reload(&mut self, generation: u64, source: &str, toml: String) {
        use lb_l7::control::{self, ConfigGeneration, ControlMsg};
        use std::io::Write as _;
        let g = ConfigGeneration {
            generation,
            source: source.into(),
            toml,
            files: Default::default(),
            target_sets: Default::default(),
        };
        self.0
            .write_all(&control::encode(&ControlMsg::Config(g)))
            .unwrap();
    }
}

/// A TLS client configuration trusting the test CA in `ca` (PEM), no client certificate, no
/// ALPN.
pub fn tls_client_config(ca: &std::path::Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for c in
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &pem,
        )
    {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// A TLS client trusting the test CA in `ca` (PEM).
pub fn tls_connector(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(ca)))
}
