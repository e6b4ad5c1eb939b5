//! Reload (SIGHUP; the admin API calls [`Generations::reload`] too): the new file is read and
//! validated completely first — syntax, every field, the certificate files (read, parsed, and
//! kept: the workers get their contents, a sandboxed worker opens no file), and what a running
//! weir cannot change ([`unchangeable`]) — so a bad file changes nothing and its reason, located
//! (`file:line:column: field …`), goes back to the caller and to the log. Then it is applied:
//! the XDP maps (deny-list, SYN settings) and the L7 generation, which every worker switches to
//! (`lb_l7::generation`). The generation number is logged and written to the status file.
//!
//! Run-time target changes (`crate::overlay`: registrations, deregistrations, discovery) make
//! generations the same way ([`Generations::change_targets`], asked for through
//! [`ReloadHandle::change_targets`]): the configuration in force is the file with the overlay
//! applied, and the workers get the overlay's target sets with the file's text.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use lb_l7::control::{ConfigGeneration, ControlMsg};

use crate::config::{Config, ConfigError, ConfigIssue, DEFAULT_NAME, DEFAULT_TOML, locate};
use crate::overlay::{Overlay, OverlayError, TargetChange};

/// The sticky key the configuration is sent under (`workers::control`).
pub const STICKY_KEY: &str = "config";

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    /// Transparent: the issues are said once (`{0}` with the error as its source too printed
    /// them twice in `weir run`'s and `weir check`'s `{:#}`).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("applying generation {generation} to the XDP maps: {reason}")]
    Apply { generation: u64, reason: String },
}

/// A configuration validated completely, ready to send.
#[derive(Debug, Clone)]
pub struct Validated {
    pub config: Config,
    pub text: String,
    /// The certificate and key files it names: path → PEM text.
    pub files: BTreeMap<String, String>,
    /// The listeners' certificates described (subject, validity: `crate::certificates`), from
    /// `files`.
    pub certificates: Vec<crate::certificates::ServedCertificate>,
}

impl Validated {
    /// Its control-channel message as generation `generation`, with the run-time target sets.
    pub fn message(
        &self,
        generation: u64,
        target_sets: lb_l7::target_sets::TargetSets,
    ) -> ControlMsg {
        ControlMsg::Config(ConfigGeneration {
            generation,
            source: self.config.source.clone(),
            toml: self.text.clone(),
            files: self.files.clone(),
            target_sets,
        })
    }
}

/// Reads and validates `path` (the embedded default when `None`): the file, its fields, its
/// certificate files.
pub fn validate(path: Option<&Path>) -> Result<Validated, ReloadError> {
    let (name, text) = match path {
        None => (DEFAULT_NAME.to_string(), DEFAULT_TOML.to_string()),
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| ReloadError::Read {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?,
        ),
    };
    let config = Config::parse(&name, &text)?;
    let files = certificate_files(&config, &text)?;
    let certificates = crate::certificates::describe(&config, &files).map_err(|problems| {
        let issues = problems
            .into_iter()
            .map(|(field, message)| located(&config, &text, field, message))
            .collect();
        ConfigError { issues }
    })?;
    Ok(Validated {
        config,
        text,
        files,
        certificates,
    })
}

/// The access-log file opened for appending, created when missing, as every worker opens it at
/// its start (as root, before it gives up its privileges: `workers::child`), so a path no
/// worker could open — a directory that does not exist, a read-only file system, a FIFO no
/// process reads — stops `weir run` with the reason rather than each worker finding it (a
/// worker that cannot open it serves without it: `lb_l7::access_log`). A reload cannot change
/// the path ([`unchangeable`]), so only the start opens it.
pub fn open_access_log(cfg: &Config, text: &str) -> Result<(), ConfigError> {
    access_log_with(cfg, text, |p| lb_l7::access_log::open_file(p).map(drop))
}

/// What [`open_access_log`] would find, for `weir check`, which creates nothing: a missing file
/// needs a directory it could be created in.
pub fn check_access_log(cfg: &Config, text: &str) -> Result<(), ConfigError> {
    access_log_with(cfg, text, lb_l7::access_log::check_file)
}

fn access_log_with(
    cfg: &Config,
    text: &str,
    open: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> Result<(), ConfigError> {
    use lb_l7::access_log::AccessLogTarget;
    let AccessLogTarget::File(path) = AccessLogTarget::of(&cfg.l7.load_balancer.access_logs) else {
        return Ok(());
    };
    open(&path).map_err(|e| ConfigError {
        issues: vec![located(
            cfg,
            text,
            "load_balancer.access_logs.path".into(),
            format!("cannot open it for appending: {e:#}"),
        )],
    })
}

/// Every certificate and key file of the HTTPS listeners, read and checked as the workers will
/// load them (the file's own validation read them too; they are read once more here, and what
/// is sent is what was checked).
fn certificate_files(cfg: &Config, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut files = BTreeMap::new();
    let mut issues = Vec::new();
    for (i, l) in cfg.l7.listener.iter().enumerate() {
        for (j, c) in l.certificate.iter().enumerate() {
            let field = format!("listener[{i}].certificate[{j}]");
            let read = |p: &Path, key: &str| {
                std::fs::read_to_string(p)
                    .map_err(|e| (format!("{field}.{key}"), format!("{}: {e}", p.display())))
            };
            let checked = read(&c.certificate_file, "certificate_file")
                .and_then(|cert| Ok((cert, read(&c.private_key_file, "private_key_file")?)))
                .and_then(|(cert, key)| {
                    lb_l7::tls::certified_key_from_pem(
                        &c.certificate_file,
                        cert.as_bytes(),
                        &c.private_key_file,
                        key.as_bytes(),
                    )
                    .map_err(|e| (format!("{field}.certificate_file"), e.to_string()))?;
                    Ok((cert, key))
                });
            match checked {
                Ok((cert, key)) => {
                    files.insert(c.certificate_file.display().to_string(), cert);
                    files.insert(c.private_key_file.display().to_string(), key);
                }
                Err((field, message)) => issues.push(located(cfg, text, field, message)),
            }
        }
    }
    if issues.is_empty() {
        Ok(files)
    } else {
        Err(ConfigError { issues })
    }
}

/// A problem with `field` of the file `text`, located.
fn located(cfg: &Config, text: &str, field: String, message: String) -> ConfigIssue {
    let doc = toml_edit::ImDocument::parse(text).ok();
    let span = doc.as_ref().and_then(|d| locate::span_of(d, &field));
    let (line, column) = locate::line_col(text, span.map_or(0, |s| s.start));
    ConfigIssue {
        file: cfg.source.clone(),
        line,
        column,
        field,
        message,
    }
}

/// What a running weir cannot change, as a located error; `None` when `new` keeps it.
pub fn unchangeable(old: &Config, new: &Validated) -> Option<ConfigError> {
    let n = &new.config;
    let problem = if format!("{:?}", old.workers) != format!("{:?}", n.workers) {
        Some((
            "workers".to_string(),
            "[workers] (count, user, sandbox, steering) is set up once: changing it needs a restart"
                .to_string(),
        ))
    } else if old.admin != n.admin {
        Some((
            "admin".into(),
            "the admin socket is bound once at start: changing [admin] needs a restart".into(),
        ))
    } else if old.metrics != n.metrics {
        Some((
            "metrics".into(),
            "the metrics page is bound once at start: changing [metrics] needs a restart".into(),
        ))
    } else if old.xdp.mode != n.xdp.mode {
        Some((
            "xdp.mode".into(),
            "changing the XDP attach mode needs a re-attach: restart weir".into(),
        ))
    } else if old.l7.load_balancer.max_connections_per_worker
        != n.l7.load_balancer.max_connections_per_worker
    {
        Some((
            "load_balancer.max_connections_per_worker".into(),
            "the open-file limit is sized for it at start: changing it needs a restart".into(),
        ))
    } else {
        lb_l7::generation::unchangeable(&old.l7, &n.l7)
    };
    let (field, message) = problem?;
    Some(ConfigError {
        issues: vec![located(n, &new.text, field, message)],
    })
}

/// The configuration in force (the file with the run-time overlay applied) and its generation
/// number.
pub struct Generations {
    path: Option<PathBuf>,
    file: Validated,
    overlay: Overlay,
    in_force: Config,
    generation: u64,
    /// Why the last reload of the file was refused, until one is applied.
    refused: Option<String>,
}

impl Generations {
    /// Generation 1: the configuration weir started with.
    pub fn new(path: Option<PathBuf>, first: Validated) -> Generations {
        Generations {
            path,
            in_force: first.config.clone(),
            file: first,
            overlay: Overlay::default(),
            generation: 1,
            refused: None,
        }
    }

    /// The last reload of the file was refused (`Some(why)`), or one was applied (`None`).
    pub fn set_refused(&mut self, why: Option<String>) {
        self.refused = why;
    }

    /// Why the last reload of the file was refused, while no later one was applied.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration in force: the file with the run-time overlay applied.
    pub fn config(&self) -> &Config {
        &self.in_force
    }

    /// The file's configuration (what a reload read last).
    pub fn file(&self) -> &Config {
        &self.file.config
    }

    /// The listeners' certificates the generation in force serves (the file's: run-time
    /// changes touch targets only).
    pub fn certificates(&self) -> &[crate::certificates::ServedCertificate] {
        &self.file.certificates
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The message every worker gets at start (sticky) and at each new generation.
    pub fn message(&self) -> ControlMsg {
        let sets = self.overlay.target_sets(&self.file.config);
        self.file.message(self.generation, sets)
    }

    /// Validates the file again; on success it becomes the next generation (returned with its
    /// number) for the caller to apply: the file is applied, run-time registrations and
    /// deregistrations are forgotten, discovered targets stay (`Overlay::after_reload`). On
    /// failure nothing changes.
    pub fn reload_file(&mut self) -> Result<(u64, &Config), ReloadError> {
        self.next_with(|_, _| Ok(()))
    }

    /// As [`Self::reload_file`], with `prepare(running file, new file)` run after the validation and
    /// before the new file becomes the generation: its refusal `(field, reason)` is located and
    /// changes nothing (the listeners a reload adds are bound there: `workers::relisten`).
    pub fn next_with(
        &mut self,
        prepare: impl FnOnce(&Config, &Config) -> Result<(), (String, String)>,
    ) -> Result<(u64, &Config), ReloadError> {
        let new = validate(self.path.as_deref())?;
        if let Some(e) = unchangeable(&self.file.config, &new) {
            return Err(e.into());
        }
        if let Err((field, message)) = prepare(&self.file.config, &new.config) {
            let issues = vec![located(&new.config, &new.text, field, message)];
            return Err(ConfigError { issues }.into());
        }
        self.overlay = self.overlay.after_reload(&new.config);
        self.in_force = self.overlay.apply(&new.config);
        self.file = new;
        self.generation += 1;
        Ok((self.generation, &self.in_force))
    }

    /// The targets of a deregistration's group that are draining in `health` (the checker's
    /// view) or leaving in the generation in force, for [`Self::change_targets`]: a retried
    /// deregistration names them, and ALB answers it as a success that changes nothing. None
    /// for other changes, or without a checker (no workers: nothing drains).
    pub fn draining(
        &self,
        health: Option<&crate::health::HealthTable>,
        change: &TargetChange,
    ) -> BTreeSet<SocketAddr> {
        match (change, health) {
            (TargetChange::Deregister { group, .. }, Some(h)) => {
                h.draining(group, &self.in_force.l7)
            }
            _ => BTreeSet::new(),
        }
    }

    /// Applies a run-time target change: `Ok(Some(n))` when it made generation `n` (for the
    /// caller to send), `Ok(None)` when the targets in force did not change (no new
    /// generation: a registered target registered again, a draining one deregistered again).
    /// `draining`: the group's targets draining now ([`Self::draining`]).
    /// The configuration it makes is validated as the file's L7 sections are; on any error
    /// nothing changes.
    pub fn change_targets(
        &mut self,
        change: &TargetChange,
        draining: &BTreeSet<SocketAddr>,
    ) -> Result<Option<u64>, OverlayError> {
        let mut overlay = self.overlay.clone();
        if !overlay.change(&self.file.config, change, draining)? {
            return Ok(None);
        }
        let in_force = overlay.apply(&self.file.config);
        let problems = in_force.l7.validate();
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(OverlayError::InvalidTarget(list.join("; ")));
        }
        self.overlay = overlay;
        self.in_force = in_force;
        self.generation += 1;
        Ok(Some(self.generation))
    }
}

/// Asks the running control plane for a new generation: a reload (SIGHUP does the same; the
/// answer is the generation now in force, or why the file was refused, located) or a run-time
/// target change (`crate::overlay`).
#[derive(Clone)]
pub struct ReloadHandle(tokio::sync::mpsc::Sender<Request>);

/// A reload's outcome: the generation in force, or the reason nothing changed.
pub type ReloadResult = Result<u64, String>;

/// A target change's outcome: the generation in force (the same one when nothing changed).
pub type TargetsResult = Result<u64, TargetsError>;

/// Why a target change changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    #[error(transparent)]
    Refused(#[from] OverlayError),
    #[error("weir is stopping")]
    Stopping,
}

/// What the control plane's main loop is asked for.
pub enum Request {
    Reload(tokio::sync::oneshot::Sender<ReloadResult>),
    Targets(TargetChange, tokio::sync::oneshot::Sender<TargetsResult>),
}

/// The other end of [`ReloadHandle`]: the control plane's main loop takes requests from it.
pub type ReloadRequests = tokio::sync::mpsc::Receiver<Request>;

impl ReloadHandle {
    pub fn new() -> (ReloadHandle, ReloadRequests) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        (ReloadHandle(tx), rx)
    }

    /// Reloads the file and waits for the outcome.
    pub async fn reload(&self) -> ReloadResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(Request::Reload(tx))
            .await
            .map_err(|_| "weir is stopping".to_string())?;
        rx.await.map_err(|_| "weir is stopping".to_string())?
    }

    /// Applies a run-time target change (`crate::overlay`) and waits until its generation has
    /// been sent to every worker and to the health checker.
    pub async fn change_targets(&self, change: TargetChange) -> TargetsResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(Request::Targets(change, tx))
            .await
            .map_err(|_| TargetsError::Stopping)?;
        rx.await.map_err(|_| TargetsError::Stopping)?
    }
}

/// The generation in force as the rest of the control plane reads it (the admin API): the
/// main loop records each generation once it has applied it.
#[derive(Clone)]
pub struct InForce(std::sync::Arc<std::sync::Mutex<InForceNow>>);

/// One generation: its number, its configuration (the file with the overlay applied), the
/// file's and the overlay.
#[derive(Clone)]
pub struct InForceNow {
    pub generation: u64,
    pub config: std::sync::Arc<Config>,
    pub file: std::sync::Arc<Config>,
    pub overlay: Overlay,
    /// Why the last reload of the file was refused (the generation in force stayed).
    pub refused: Option<String>,
    /// The listeners' certificates it serves.
    pub certificates: std::sync::Arc<Vec<crate::certificates::ServedCertificate>>,
}

impl InForceNow {
    fn of(g: &Generations) -> InForceNow {
        InForceNow {
            generation: g.generation(),
            config: std::sync::Arc::new(g.config().clone()),
            file: std::sync::Arc::new(g.file().clone()),
            overlay: g.overlay().clone(),
            refused: g.refused().map(str::to_string),
            certificates: std::sync::Arc::new(g.certificates().to_vec()),
        }
    }
}

impl InForce {
    pub fn new(g: &Generations) -> InForce {
        InForce(std::sync::Arc::new(std::sync::Mutex::new(InForceNow::of(
            g,
        ))))
    }

    /// `g`'s generation is in force now.
    pub fn record(&self, g: &Generations) {
        let now = InForceNow::of(g);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    pub fn now(&self) -> InForceNow {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The status file (`/run/weir/status-<pid>.json`) says which generation is in force.
pub fn status_path() -> PathBuf {
    Path::new(crate::run_dir::DIR).join(format!("status-{}.json", std::process::id()))
}

/// Writes the status file: the generation in force and where it came from.
pub fn write_status(generation: u64, source: &str) {
    let path = status_path();
    let body = serde_json::json!({
        "pid": std::process::id(),
        "generation": generation,
        "config": source,
    });
    let res = std::fs::create_dir_all(crate::run_dir::DIR)
        .and_then(|()| std::fs::write(&path, format!("{body}\n")));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the status file");
    }
}

/// Removes the status files of weirs that are gone (SIGKILLed: no exit ran).
pub fn remove_stale_status() {
    let Ok(dir) = std::fs::read_dir(crate::run_dir::DIR) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("status-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the status file at exit.
pub fn remove_status() {
    let _ = std::fs::remove_file(status_path());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile_like::Temp {
        tempfile_like::Temp::new(text)
    }

    /// A file under the system temp directory, removed on drop.
    mod tempfile_like {
        pub struct Temp(pub std::path::PathBuf);
        impl Temp {
            pub fn new(text: &str) -> Temp {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir()
                    .join(format!("weir-reload-{}-{n}.toml", std::process::id()));
                std::fs::write(&p, text).unwrap();
                Temp(p)
            }
        }
        impl Drop for Temp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const BASE: &str = "[[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
        default_action = { type = \"fixed-response\", status_code = 200, message_body = \"one\" }\n";

    #[test]
    fn a_refused_file_says_its_issues_once() {
        let f = file("[[listener]]\nport = 8080\nbogus = 1\n");
        let e = anyhow::Error::from(validate(Some(&f.0)).unwrap_err());
        let text = format!("{e:#}");
        assert_eq!(text.matches("unknown field `bogus`").count(), 1, "{text}");
    }

    #[test]
    fn an_access_log_no_worker_could_open_is_refused_with_its_key() {
        let with = |path: &str| {
            format!(
                "[load_balancer]\naccess_logs.enabled = true\naccess_logs.path = {path:?}\n{BASE}"
            )
        };
        let f = file(&with("/nonexistent/dir/a.log"));
        let v = validate(Some(&f.0)).unwrap();
        let e = open_access_log(&v.config, &v.text).unwrap_err();
        let issue = &e.issues[0];
        assert_eq!(issue.field, "load_balancer.access_logs.path");
        assert_eq!(issue.line, 3);
        assert!(issue.message.contains("/nonexistent/dir/a.log"), "{e}");
        assert!(issue.message.contains("No such file or directory"), "{e}");
        // A path that can be opened is created, as a worker would create it; stdout and a log
        // turned off open nothing.
        let log = std::env::temp_dir().join(format!("weir-reload-{}-log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let f = file(&with(log.to_str().unwrap()));
        let v = validate(Some(&f.0)).unwrap();
        open_access_log(&v.config, &v.text).unwrap();
        assert!(log.exists());
        std::fs::remove_file(&log).unwrap();
        for ok in [with("-"), BASE.to_string()] {
            let f = file(&ok);
            let v = validate(Some(&f.0)).unwrap();
            open_access_log(&v.config, &v.text).unwrap();
        }
    }

    /// `weir check` created the access-log file it checked (`open_access_log`); it finds the
    /// same problems and creates nothing.
    #[test]
    fn checking_the_access_log_creates_nothing() {
        let with = |path: &std::path::Path| {
            format!(
                "[load_balancer]\naccess_logs.enabled = true\naccess_logs.path = {:?}\n{BASE}",
                path.display().to_string()
            )
        };
        let check = |path: &std::path::Path| {
            let f = file(&with(path));
            let v = validate(Some(&f.0)).unwrap();
            check_access_log(&v.config, &v.text)
        };
        let log = std::env::temp_dir().join(format!("weir-check-{}-log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        check(&log).unwrap();
        assert!(!log.exists(), "checking created {}", log.display());
        std::fs::write(&log, "kept\n").unwrap();
        check(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "kept\n");
        // A path below a file, or in a directory that does not exist: refused, with its key.
        let e = check(&log.join("a.log")).unwrap_err();
        assert_eq!(e.issues[0].field, "load_balancer.access_logs.path");
        assert!(e.issues[0].message.contains("not a directory"), "{e}");
        std::fs::remove_file(&log).unwrap();
        let e = check(std::path::Path::new("/nonexistent/dir/a.log")).unwrap_err();
        assert!(e.issues[0].message.contains("/nonexistent/dir"), "{e}");
        assert!(
            e.issues[0].message.contains("No such file or directory"),
            "{e}"
        );
    }

    #[test]
    fn a_good_reload_numbers_the_next_generation() {
        let f = file(BASE);
        let mut g = Generations::new(Some(f.0.clone()), validate(Some(&f.0)).unwrap());
        std::fs::write(&f.0, BASE.replace("one", "two")).unwrap();
        let (n, cfg) = g.reload_file().unwrap();
        assert_eq!(n, 2);
        assert_eq!(cfg.l7.listener.len(), 1);
        assert!(
            matches!(g.message(), ControlMsg::Config(c) if c.generation == 2 && c.toml.contains("two"))
        );
    }

    #[test]
    fn target_changes_make_generations_and_a_reload_applies_the_file() {
        let text = BASE.replace(
            "default_action = { type = \"fixed-response\", status_code = 200, message_body = \"one\" }",
            "default_action = { type = \"forward\", target_group = \"web\" }\n\
             [[target_group]]\nname = \"web\"\ntarget = [{ id = \"10.0.0.1\" }]",
        );
        let f = file(&text);
        let mut g = Generations::new(Some(f.0.clone()), validate(Some(&f.0)).unwrap());
        let add = TargetChange::Register {
            group: "web".into(),
            targets: vec!["10.0.0.2:80".parse().unwrap()],
        };
        assert_eq!(g.change_targets(&add, &BTreeSet::new()), Ok(Some(2)));
        assert_eq!(
            g.change_targets(&add, &BTreeSet::new()),
            Ok(None),
            "already registered: no generation"
        );
        assert_eq!(g.config().l7.target_group("web").unwrap().target.len(), 2);
        assert_eq!(g.file().l7.target_group("web").unwrap().target.len(), 1);
        let ControlMsg::Config(c) = g.message() else {
            panic!("not a configuration")
        };
        assert_eq!(c.generation, 2);
        assert_eq!(c.l7().unwrap().target_group("web").unwrap().target.len(), 2);
        let bad = TargetChange::Deregister {
            group: "web".into(),
            targets: vec!["10.0.0.3:80".parse().unwrap()],
        };
        assert!(matches!(
            g.change_targets(&bad, &BTreeSet::new()),
            Err(OverlayError::InvalidTarget(_))
        ));
        assert_eq!(g.generation(), 2);
        // Deregistered, then deregistered again while it drains: no second generation.
        let out = TargetChange::Deregister {
            group: "web".into(),
            targets: vec!["10.0.0.2:80".parse().unwrap()],
        };
        assert_eq!(g.change_targets(&out, &BTreeSet::new()), Ok(Some(3)));
        let draining = BTreeSet::from(["10.0.0.2:80".parse().unwrap()]);
        assert_eq!(
            g.change_targets(&out, &draining),
            Ok(None),
            "draining: no generation"
        );
        assert!(matches!(
            g.change_targets(&out, &BTreeSet::new()),
            Err(OverlayError::InvalidTarget(_))
        ));
        assert_eq!(g.generation(), 3);
        assert_eq!(g.config().l7.target_group("web").unwrap().target.len(), 1);
        // A reload applies the file: the registration is gone.
        let (n, cfg) = g.reload_file().unwrap();
        assert_eq!(
            (n, cfg.l7.target_group("web").unwrap().target.len()),
            (4, 1)
        );
        assert!(matches!(g.message(), ControlMsg::Config(c) if c.target_sets.is_empty()));
    }

    #[test]
    fn a_bad_reload_changes_nothing_and_says_where() {
        let f = file(BASE);
        let mut g = Generations::new(Some(f.0.clone()), validate(Some(&f.0)).unwrap());
        for (bad, want) in [
            (BASE.replace("port = 8080", "port = 8080\nport ="), ":4:"),
            (
                BASE.replace("fixed-response\", status_code = 200, message_body = \"one\"", "forward\", target_group = \"nope\""),
                "listener[0].default_action",
            ),
            (BASE.replace("127.0.0.1", "127.0.0.2"), "listener[0].address"),
            (
                format!("{BASE}[workers]\ncount = 3\n"),
                "field `workers`",
            ),
            (
                BASE.replace("port = 8080", "port = 8080\nprotocol = \"HTTPS\"\ncertificate = [{ certificate_file = \"/nonexistent/c.pem\", private_key_file = \"/nonexistent/k.pem\" }]"),
                "certificate_file",
            ),
        ] {
            std::fs::write(&f.0, &bad).unwrap();
            let e = g.reload_file().unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e}");
            assert!(e.contains(&f.0.display().to_string()), "{e}");
            assert_eq!(g.generation(), 1);
        }
        assert!(
            matches!(g.message(), ControlMsg::Config(c) if c.generation == 1 && c.toml.contains("one"))
        );
    }
}
