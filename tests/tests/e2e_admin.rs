//! The admin API and its CLI verbs against a real `weir run` (L7 only, two workers, a python3
//! http.server target on loopback in a lab namespace): every verb in text and `--json`, the
//! socket's permissions (a `nobody` client is refused), a stale socket of a SIGKILLed daemon
//! does not stop the next start while a live one does, bad requests get the JSON error, and
//! `status` names a worker whose reports stopped.
//! Needs root.

mod common;

use std::{
    io::{Read as _, Write as _},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use common::{logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
const TARGET_PORT: u16 = 9301;

/// A directory any user may enter (so only the socket's own mode decides who connects),
/// removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("weir-admin-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_text(socket: Option<&Path>, rule_body: &str) -> String {
    let admin = socket.map_or(String::new(), |s| {
        format!("[admin]\nsocket = \"{}\"\n\n", s.display())
    });
    format!(
        "{admin}[workers]\ncount = 2\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[listener.rule]]\npriority = 20\n\
         condition = [{{ field = \"path-pattern\", values = [\"/api/*\"] }}]\n\
         action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[listener.rule]]\npriority = 10\n\
         condition = [{{ field = \"http-header\", http_header_name = \"x-env\", values = [\"beta\"] }}]\n\
         action = {{ type = \"fixed-response\", status_code = 503, message_body = \"{rule_body}\" }}\n\n\
         [[target_group]]\nname = \"web\"\n\
         target = [{{ id = \"127.0.0.1\", port = {TARGET_PORT} }}]\n"
    )
}

/// `weir run` serving, with both workers running and the admin API up.
fn start(ns: &Ns, cfg: &TempFile, socket: &Path) -> Result<Weir> {
    let mut w = Weir::spawn(ns, cfg, None)?;
    wait_until(Duration::from_secs(30), "weir to serve", || {
        if !w.proc.is_running() {
            bail!("weir exited:\n{}", w.log_at_exit());
        }
        Ok(ns.tcp_listening(PORT)?
            && socket.exists()
            && w.log().matches("worker ready").count() >= 2)
    })?;
    Ok(w)
}

/// `weir ARGS` in `ns`: (success, stdout, stderr).
fn weir_cli(ns: &Ns, args: &[&str]) -> Result<(bool, String, String)> {
    weir_once(ns, args)
}

/// `weir ARGS --json --socket S`, which must succeed, parsed.
fn json(ns: &Ns, socket: &Path, args: &[&str]) -> Result<Value> {
    let mut a = args.to_vec();
    a.extend(["--json", "--socket", socket.to_str().unwrap()]);
    let (ok, out, err) = weir_cli(ns, &a)?;
    if !ok {
        bail!("weir {args:?} failed: {err}");
    }
    serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
}

/// `weir ARGS --socket S` in text, which must succeed.
fn text(ns: &Ns, socket: &Path, args: &[&str]) -> Result<String> {
    let mut a = args.to_vec();
    a.extend(["--socket", socket.to_str().unwrap()]);
    let (ok, out, err) = weir_cli(ns, &a)?;
    if !ok {
        bail!("weir {args:?} failed: {err}");
    }
    Ok(out)
}

/// `weir ARGS --socket S` that must fail: (stdout, stderr).
fn fails(ns: &Ns, socket: &Path, args: &[&str]) -> Result<(String, String)> {
    let mut a = args.to_vec();
    a.extend(["--socket", socket.to_str().unwrap()]);
    let (ok, out, err) = weir_cli(ns, &a)?;
    if ok {
        bail!("weir {args:?} succeeded: {out}");
    }
    Ok((out, err))
}

fn backend(ns: &Ns) -> Result<Proc> {
    let p = ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        &TARGET_PORT.to_string(),
    ])?;
    ns.wait_tcp_listen(TARGET_PORT, Duration::from_secs(10))?;
    Ok(p)
}

/// Sends SIGCONT on drop: a worker the test stopped runs again, so that weir can stop it,
/// also when the test fails.
struct Resumes(nix::unistd::Pid);

impl Drop for Resumes {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// A worker whose reports stop (SIGSTOP: hung, as far as the control plane can tell) is named
/// by `weir status`, in text and JSON, with how long it has been silent; the count of running
/// workers alone used to call it running until the watchdog killed it. Once it runs again
/// (SIGCONT) it is shown reporting. The watchdog is set long here, so the worker stays the
/// same process throughout.
#[test]
fn status_names_a_worker_that_stopped_reporting() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("silent")?;
    let _target = backend(&ns)?;
    let dir = Dir::new("silent");
    let socket = dir.0.join("admin.sock");
    let text_cfg = config_text(Some(&socket), "beta").replace(
        "[workers]\ncount = 2\n",
        "[workers]\ncount = 2\nwatchdog_seconds = 120\n",
    );
    assert!(text_cfg.contains("watchdog_seconds = 120"));
    let cfg = TempFile::new("admin-silent.toml", &text_cfg);
    let _weir = start(&ns, &cfg, &socket)?;

    let ages = |st: &Value| -> Vec<Option<u64>> {
        st["workers"]["processes"]
            .as_array()
            .map(|ps| ps.iter().map(|p| p["report_age_ms"].as_u64()).collect())
            .unwrap_or_default()
    };
    let mut st = Value::Null;
    wait_until(Duration::from_secs(10), "both workers reporting", || {
        st = json(&ns, &socket, &["status"])?;
        Ok(ages(&st).len() == 2 && ages(&st).iter().all(|a| a.is_some_and(|a| a < 2_000)))
    })?;
    assert_eq!(st["workers"]["not_reporting"], 0, "{st}");
    let t = text(&ns, &socket, &["status"])?;
    assert!(t.contains("2 running of 2 configured\n"), "{t}");
    assert!(t.contains("s ago") && !t.contains("NOT REPORTING"), "{t}");

    let victim = st["workers"]["processes"][1]["pid"]
        .as_i64()
        .context("worker 1's pid")? as i32;
    let victim = nix::unistd::Pid::from_raw(victim);
    let _resumes = Resumes(victim);
    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGSTOP)?;
    wait_until(
        Duration::from_secs(10),
        "worker 1 shown as not reporting",
        || {
            st = json(&ns, &socket, &["status"])?;
            Ok(st["workers"]["not_reporting"] == 1)
        },
    )?;
    assert_eq!(st["workers"]["running"], 2, "still a process: {st}");
    let a = ages(&st);
    assert!(a[0].is_some_and(|a| a < 2_000), "worker 0 reports: {st}");
    assert!(a[1].is_some_and(|a| a >= 2_000), "worker 1 does not: {st}");
    let t = text(&ns, &socket, &["status"])?;
    assert!(
        t.contains("2 running of 2 configured, 1 NOT REPORTING\n"),
        "{t}"
    );
    assert!(
        t.contains(&format!("worker 1   pid {victim}, NOT REPORTING for ")),
        "{t}"
    );

    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGCONT)?;
    wait_until(Duration::from_secs(10), "worker 1 reporting again", || {
        st = json(&ns, &socket, &["status"])?;
        Ok(st["workers"]["not_reporting"] == 0
            && st["workers"]["processes"][1]["pid"] == victim.as_raw()
            && ages(&st)[1].is_some_and(|a| a < 2_000))
    })?;
    Ok(())
}

#[test]
fn each_verb_in_text_and_json() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("adm")?;
    let _target = backend(&ns)?;
    let dir = Dir::new("verbs");
    let socket = dir.0.join("admin.sock");
    let cfg = TempFile::new("admin.toml", &config_text(Some(&socket), "beta"));
    let mut weir = start(&ns, &cfg, &socket)?;

    // status: generation, the workers and their pids, no XDP.
    let st = json(&ns, &socket, &["status"])?;
    assert_eq!(st["pid"], weir.proc.pid(), "{st}");
    assert_eq!(st["generation"], 1, "{st}");
    assert_eq!(st["config"], cfg.path());
    assert_eq!(st["workers"]["configured"], 2);
    assert_eq!(st["workers"]["running"], 2, "{st}");
    for w in st["workers"]["processes"].as_array().unwrap() {
        let cmd = std::fs::read(format!("/proc/{}/cmdline", w["pid"]))?;
        let want = format!("worker\0--index\0{}\0", w["index"]);
        assert!(
            String::from_utf8_lossy(&cmd).contains(&want),
            "pid {} is worker {}",
            w["pid"],
            w["index"]
        );
    }
    assert_eq!(st["xdp"], serde_json::json!([]));
    let t = text(&ns, &socket, &["status"])?;
    assert!(t.contains("configuration generation 1"), "{t}");
    assert!(t.contains("2 running of 2 configured"), "{t}");
    assert!(t.contains("not attached (L7 only)"), "{t}");

    // listeners and rules.
    let l = json(&ns, &socket, &["listeners"])?;
    assert_eq!(l["listeners"][0]["port"], PORT);
    assert_eq!(l["listeners"][0]["rule_count"], 2);
    assert_eq!(
        l["listeners"][0]["default_action"]["target_groups"][0]["name"],
        "web"
    );
    let t = text(&ns, &socket, &["listeners"])?;
    assert!(t.contains("127.0.0.1") && t.contains("forward web"), "{t}");
    let r = json(&ns, &socket, &["rules", "--listener", "8080"])?;
    let prios: Vec<&str> = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["priority"].as_str().unwrap())
        .collect();
    assert_eq!(prios, ["10", "20", "default"]);
    let t = text(&ns, &socket, &["rules", "--listener", "8080"])?;
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[2].starts_with("10 ") && lines[2].contains("http-header x-env=beta"),
        "{t}"
    );
    assert!(lines[2].contains("fixed-response 503"), "{t}");
    assert!(lines[4].starts_with("default"), "{t}");
    let (out, err) = fails(&ns, &socket, &["rules", "--listener", "9999", "--json"])?;
    assert!(err.contains("ListenerNotFound"), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out)?["error"]["code"],
        "ListenerNotFound"
    );

    // targets: the registered ones, unknown groups.
    let tl = json(&ns, &socket, &["targets", "list", "--target-group", "web"])?;
    assert_eq!(tl["targets"][0]["id"], "127.0.0.1");
    assert_eq!(tl["targets"][0]["port"], TARGET_PORT);
    let t = text(&ns, &socket, &["targets", "list", "--target-group", "web"])?;
    assert!(t.contains("127.0.0.1") && t.contains("config"), "{t}");
    for args in [
        &["targets", "list", "--target-group", "nope"][..],
        &["targets", "health", "--target-group", "nope"],
        &[
            "targets",
            "register",
            "--target-group",
            "nope",
            "--target",
            "127.0.0.1",
        ],
        &[
            "targets",
            "deregister",
            "--target-group",
            "nope",
            "--target",
            "127.0.0.1:80",
        ],
    ] {
        let (_, err) = fails(&ns, &socket, args)?;
        assert!(
            err.contains("TargetGroupNotFound") && err.contains("`nope`"),
            "{args:?}: {err}"
        );
    }
    let (_, err) = fails(
        &ns,
        &socket,
        &[
            "targets",
            "register",
            "--target-group",
            "web",
            "--target",
            "web-1",
        ],
    )?;
    assert!(
        err.contains("expected IP"),
        "the CLI refuses a target that is not an address: {err}"
    );

    changes(&ns, &socket, &cfg)?;
    assert!(interrupt(&mut weir.proc)?);
    assert!(!socket.exists(), "the socket is removed at exit");
    Ok(())
}

/// The verbs that change something, and target health. A registration makes generation 2; a
/// reload applies the file (the registration is gone) as generation 3.
fn changes(ns: &Ns, socket: &Path, cfg: &TempFile) -> Result<()> {
    let h = json(ns, socket, &["targets", "health"])?;
    let web = &h["target_groups"][0];
    assert_eq!(web["name"], "web", "{h}");
    assert_eq!(web["targets"][0]["port"], TARGET_PORT, "{h}");
    let t = text(ns, socket, &["targets", "health", "--target-group", "web"])?;
    assert!(t.contains("target group web: HealthyHostCount"), "{t}");
    let out = text(
        ns,
        socket,
        &[
            "targets",
            "register",
            "--target-group",
            "web",
            "--target",
            "127.0.0.1:9302",
        ],
    )?;
    assert!(
        out.contains("registered 127.0.0.1:9302 in target group web"),
        "{out}"
    );
    assert!(out.contains("configuration generation 2 in force"), "{out}");
    assert!(
        out.contains("a reload keeps these targets only if they are in"),
        "{out}"
    );
    let tl = json(ns, socket, &["targets", "list", "--target-group", "web"])?;
    assert_eq!(tl["targets"][1]["port"], 9302, "{tl}");
    assert_eq!(tl["targets"][1]["source"], "runtime", "{tl}");
    let t = text(ns, socket, &["targets", "list", "--target-group", "web"])?;
    assert!(t.contains("9302") && t.contains("runtime"), "{t}");
    // Reload: a new rule body (the registration is not in the file: gone), then a bad file
    // that changes nothing.
    std::fs::write(&cfg.0, config_text(Some(socket), "gamma"))?;
    let out = text(ns, socket, &["reload"])?;
    assert!(out.contains("configuration generation 3"), "{out}");
    let tl = json(ns, socket, &["targets", "list", "--target-group", "web"])?;
    assert_eq!(tl["targets"].as_array().unwrap().len(), 1, "{tl}");
    assert_eq!(
        json(ns, socket, &["reload"])?["generation"],
        4,
        "the same file again"
    );
    let t = text(ns, socket, &["status"])?;
    assert!(t.contains("configuration generation 4"), "{t}");
    let r = json(ns, socket, &["rules", "--listener", "8080"])?;
    assert_eq!(r["rules"][0]["action"]["message_body"], "gamma", "{r}");
    std::fs::write(
        &cfg.0,
        config_text(Some(socket), "delta").replace("port = 8080", "port = 8080\nport ="),
    )?;
    let (out, err) = fails(ns, socket, &["reload", "--json"])?;
    assert!(
        err.contains("InvalidConfiguration") && err.contains(cfg.path()),
        "{err}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out)?["error"]["code"],
        "InvalidConfiguration"
    );
    assert_eq!(
        json(ns, socket, &["status"])?["generation"],
        4,
        "a bad reload changes nothing"
    );
    // The socket cannot move on reload: said, not ignored.
    let moved = socket.with_file_name("moved.sock");
    std::fs::write(&cfg.0, config_text(Some(&moved), "delta"))?;
    let (_, err) = fails(ns, socket, &["reload"])?;
    assert!(
        err.contains("InvalidConfiguration") && err.contains("field `admin`"),
        "{err}"
    );
    assert_eq!(json(ns, socket, &["status"])?["generation"], 4);
    assert!(!moved.exists());
    Ok(())
}

/// The default socket of an L7-only daemon in a namespace: found by the CLI run there.
#[test]
fn the_cli_finds_the_default_socket_of_its_namespace() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("admdef")?;
    let inode = ns.in_ns(|| std::fs::metadata("/proc/thread-self/ns/net"))??;
    let socket = PathBuf::from(format!(
        "/run/weir/admin-{}.sock",
        std::os::unix::fs::MetadataExt::ino(&inode)
    ));
    let cfg = TempFile::new("admin-default.toml", &config_text(None, "beta"));
    let mut weir = start(&ns, &cfg, &socket)?;
    let (ok, out, err) = weir_cli(&ns, &["status", "--json"])?;
    assert!(ok, "{err}");
    let st: Value = serde_json::from_str(&out)?;
    assert_eq!(st["admin_socket"], socket.to_str().unwrap());
    assert_eq!(st["pid"], weir.proc.pid());
    assert!(interrupt(&mut weir.proc)?);
    let (ok, _, err) = weir_cli(&ns, &["status"])?;
    assert!(!ok && err.contains("is `weir run` running?"), "{err}");
    Ok(())
}

/// `weir ARGS` run as `nobody` (outside any lab namespace: the socket is a path).
fn as_nobody(args: &[&str]) -> Result<(bool, String, String)> {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(weir_bin())
        .args(args);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn only_root_gets_through_the_socket() -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("admperm")?;
    let dir = Dir::new("perm");
    let socket = dir.0.join("admin.sock");
    let cfg = TempFile::new("admin-perm.toml", &config_text(Some(&socket), "beta"));
    let mut weir = start(&ns, &cfg, &socket)?;
    let m = std::fs::metadata(&socket)?;
    assert_eq!(
        (m.mode() & 0o777, m.uid()),
        (0o600, 0),
        "mode 0600, owned by root"
    );
    let s = socket.to_str().unwrap();
    let (ok, _, err) = as_nobody(&["status", "--socket", s])?;
    assert!(
        !ok && err.contains("permission denied"),
        "nobody cannot connect: {err}"
    );
    assert!(
        text(&ns, &socket, &["status"])?.contains("generation 1"),
        "root can"
    );
    // Loosened by hand, the mode no longer stops nobody: the peer's credentials still do.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let (ok, out, err) = as_nobody(&["status", "--json", "--socket", s])?;
    assert!(!ok, "{out}");
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out)?["error"]["code"],
        "AccessDenied"
    );
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

#[test]
fn a_stale_socket_is_replaced_a_live_one_stops_the_start() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("admstale")?;
    let dir = Dir::new("stale");
    let socket = dir.0.join("admin.sock");
    let cfg = TempFile::new("admin-stale.toml", &config_text(Some(&socket), "beta"));
    let mut first = start(&ns, &cfg, &socket)?;
    let pid = first.proc.pid();
    first.proc.kill()?;
    assert!(socket.exists(), "SIGKILL leaves the socket behind");
    let (_, err) = fails(&ns, &socket, &["status"])?;
    assert!(err.contains("stale"), "{err}");
    // Its workers leave with it (PDEATHSIG) and let go of the port.
    wait_until(Duration::from_secs(15), "the old workers to exit", || {
        Ok(!ns.tcp_listening(PORT)?)
    })?;

    let mut second = start(&ns, &cfg, &socket)?;
    assert!(
        second.log().contains("removing the stale admin socket"),
        "{}",
        second.log()
    );
    let st = json(&ns, &socket, &["status"])?;
    assert_eq!(st["pid"], second.proc.pid());
    assert_ne!(second.proc.pid(), pid);

    // A third daemon on the same socket: refused before it starts anything; the second goes on.
    let mut third = Weir::spawn(&ns, &cfg, None)?;
    let (st3, log3) = third.exited(Duration::from_secs(20))?;
    assert!(!st3.success());
    assert!(log3.contains("another process answers on it"), "{log3}");
    assert_eq!(json(&ns, &socket, &["status"])?["pid"], second.proc.pid());

    // A path that is not a socket is not removed.
    let file_cfg_path = dir.0.join("not-a-socket");
    std::fs::write(&file_cfg_path, "keep me")?;
    let cfg2 = TempFile::new(
        "admin-file.toml",
        &config_text(Some(&file_cfg_path), "beta")
            .replace(&format!("port = {PORT}"), "port = 8081"),
    );
    let mut fourth = Weir::spawn(&ns, &cfg2, None)?;
    let (st4, log4) = fourth.exited(Duration::from_secs(20))?;
    assert!(!st4.success());
    assert!(log4.contains("is not a socket"), "{log4}");
    assert_eq!(std::fs::read_to_string(&file_cfg_path)?, "keep me");
    assert!(interrupt(&mut second.proc)?);
    Ok(())
}

/// One raw HTTP/1.1 exchange on the socket: (status, JSON body).
fn raw(socket: &Path, request: &[u8]) -> Result<(u16, Value)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line: {text}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v = serde_json::from_str(body).with_context(|| format!("body not JSON: {text}"))?;
    Ok((status, v))
}

fn req(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn bad_requests_get_the_json_error() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("admbad")?;
    let dir = Dir::new("bad");
    let socket = dir.0.join("admin.sock");
    let cfg = TempFile::new("admin-bad.toml", &config_text(Some(&socket), "beta"));
    let mut weir = start(&ns, &cfg, &socket)?;
    let groups = "/v1/target-groups/web/targets";
    let big = format!(r#"{{"targets":[{{"id":"{}"}}]}}"#, "1".repeat(70 * 1024));
    for (method, path, body, status, code) in [
        ("GET", "/v2/status", "", 404, "NotFound"),
        ("GET", "/", "", 404, "NotFound"),
        ("POST", "/v1/status", "", 405, "MethodNotAllowed"),
        ("PUT", groups, "", 405, "MethodNotAllowed"),
        ("GET", "/v1/listeners/http/rules", "", 400, "InvalidRequest"),
        (
            "GET",
            "/v1/target-health?target=web",
            "",
            400,
            "InvalidRequest",
        ),
        ("POST", groups, "{not json", 400, "InvalidRequest"),
        ("POST", groups, r#"{"targets":[]}"#, 400, "InvalidRequest"),
        (
            "POST",
            groups,
            r#"{"targets":[{"id":"web-1"}]}"#,
            400,
            "InvalidTarget",
        ),
        (
            "DELETE",
            groups,
            r#"{"targets":[{"id":"10.0.0.1","port":0}]}"#,
            400,
            "InvalidTarget",
        ),
        (
            "POST",
            "/v1/target-groups/nope/targets",
            r#"{"targets":[{"id":"10.0.0.1"}]}"#,
            404,
            "TargetGroupNotFound",
        ),
        ("POST", groups, &big, 413, "PayloadTooLarge"),
        ("GET", "/v1/status", "{}", 400, "InvalidRequest"),
    ] {
        let (s, v) = raw(&socket, &req(method, path, body))?;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{v}"
        );
    }
    let (s, v) = raw(&socket, &req("GET", "/v1/status", ""))?;
    assert_eq!(
        (s, &v["generation"]),
        (200, &serde_json::json!(1)),
        "still serving"
    );
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

/// An interface daemon: its default socket `/run/weir/<iface>:<netns inode>.sock`, found by the CLI without
/// options in its namespace; status names the XDP mode as the kernel shows it.
#[test]
fn status_names_the_xdp_mode_of_an_interface_daemon() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("admxc")?;
    let server = lab.add_ns("admxs")?;
    let (_c0, s0) = lab.veth(&client, &server)?;
    s0.addr("10.78.0.2/24")?;
    let cfg = TempFile::new(
        "admin-xdp.toml",
        "[[vip]]\naddress = \"10.78.0.2\"\nport = 8080\n",
    );
    let socket = iface_file(&server, s0.name(), ".sock")?;
    let mut weir = start_weir(&server, &s0, &["--config", cfg.path(), "--no-l7"])?;
    wait_until(Duration::from_secs(10), "the admin socket", || {
        Ok(socket.exists())
    })?;
    let (ok, out, err) = weir_cli(&server, &["status", "--json"])?;
    assert!(ok, "{err}");
    let st: Value = serde_json::from_str(&out)?;
    assert_eq!(st["admin_socket"], socket.to_str().unwrap());
    assert_eq!(st["xdp"][0]["iface"], s0.name(), "{st}");
    let shown = s0.show()?;
    let want = if shown.contains("xdpgeneric") {
        "generic"
    } else {
        "native"
    };
    assert_eq!(st["xdp"][0]["mode"], want, "{st}\n{shown}");
    assert_eq!(st["workers"]["configured"], 0, "--no-l7: {st}");
    let (ok, out, _) = weir_cli(&server, &["status", "--iface", s0.name()])?;
    assert!(
        ok && out.contains(&format!("xdp:          {} {want}", s0.name())),
        "{out}"
    );
    assert!(interrupt(&mut weir)?);
    assert!(!socket.exists());
    Ok(())
}
