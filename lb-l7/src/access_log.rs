//! Access log: one line per request, ALB's field order. Formatting is pure; the writer is a
//! thread fed through a bounded queue so request tasks never block on the file, and it writes
//! whole lines only. A request's record is held by a guard ([`Pending`]) that writes the line
//! itself when the request is cut before its normal end wrote it ([`Record::cut`]).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime};

/// The fields of one line. Times are seconds; `None` prints as ALB's `-1` (not dispatched).
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// http, https, h2, ws, wss.
    pub kind: &'static str,
    /// RFC 3339 UTC time the response was finished.
    pub time: String,
    pub elb: String,
    pub client: Option<SocketAddr>,
    pub target: Option<SocketAddr>,
    pub request_processing_time: Option<f64>,
    pub target_processing_time: Option<f64>,
    pub response_processing_time: Option<f64>,
    /// 0 (printed `-`): no response begun.
    pub elb_status_code: u16,
    pub target_status_code: Option<u16>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    /// `METHOD URL VERSION`.
    pub request: String,
    pub user_agent: String,
    pub ssl_cipher: Option<&'static str>,
    pub ssl_protocol: Option<&'static str>,
    pub target_group: Option<String>,
    pub trace_id: String,
    pub domain_name: Option<String>,
    pub chosen_cert: Option<String>,
    /// 0 default rule, -1 not evaluated.
    pub matched_rule_priority: i64,
    pub request_creation_time: String,
    pub actions_executed: Vec<&'static str>,
    pub redirect_url: Option<String>,
    pub error_reason: Option<&'static str>,
    /// One per attempt, as `target_list`: the status of the attempt's answer, `None` for an
    /// attempt that got none (a refused or lost connection weir retried, or the last one
    /// failing), logged `-` so each code sits under its target.
    pub target_status_code_list: Vec<Option<u16>>,
    pub target_list: Vec<SocketAddr>,
    pub classification: Option<&'static str>,
    pub classification_reason: Option<&'static str>,
}

fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// 0 is no status: weir had begun no response (a request [`Record::cut`] before one).
fn status(code: u16) -> String {
    if code == 0 {
        "-".to_string()
    } else {
        code.to_string()
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-1".to_string(), |s| format!("{s:.3}"))
}

fn quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Record {
    /// An attempt at `target` begins (`target:port_list` and `target_status_code_list`).
    pub fn attempt(&mut self, target: SocketAddr) {
        self.target = Some(target);
        self.target_list.push(target);
        self.target_status_code_list.push(None);
    }

    /// The current attempt's target answered `status`.
    pub fn answered(&mut self, status: u16) {
        self.target_status_code = Some(status);
        match self.target_status_code_list.last_mut() {
            Some(last) => *last = Some(status),
            None => self.target_status_code_list.push(Some(status)),
        }
    }

    /// The line, without a newline.
    pub fn format(&self) -> String {
        let join = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(" ")
            }
        };
        let fields = [
            self.kind.to_string(),
            self.time.clone(),
            self.elb.clone(),
            dash(&self.client),
            dash(&self.target),
            secs(self.request_processing_time),
            secs(self.target_processing_time),
            secs(self.response_processing_time),
            status(self.elb_status_code),
            dash(&self.target_status_code),
            self.received_bytes.to_string(),
            self.sent_bytes.to_string(),
            quoted(&self.request),
            quoted(&self.user_agent),
            dash(&self.ssl_cipher),
            dash(&self.ssl_protocol),
            dash(&self.target_group),
            quoted(&self.trace_id),
            quoted(self.domain_name.as_deref().unwrap_or("-")),
            quoted(self.chosen_cert.as_deref().unwrap_or("-")),
            self.matched_rule_priority.to_string(),
            self.request_creation_time.clone(),
            quoted(&if self.actions_executed.is_empty() {
                "-".into()
            } else {
                self.actions_executed.join(",")
            }),
            quoted(self.redirect_url.as_deref().unwrap_or("-")),
            quoted(self.error_reason.unwrap_or("-")),
            quoted(&join(
                self.target_list.iter().map(|t| t.to_string()).collect(),
            )),
            quoted(&join(
                self.target_status_code_list
                    .iter()
                    .map(|c| c.map_or_else(|| "-".to_string(), |c| c.to_string()))
                    .collect(),
            )),
            quoted(self.classification.unwrap_or("-")),
            quoted(self.classification_reason.unwrap_or("-")),
        ];
        fields.join(" ")
    }
}

/// `error_reason` of a request cut at a drain deadline: the worker's (`drain_timeout_seconds`
/// after its stop) or an HTTP/2 connection's (after its GOAWAY) passed with the request still
/// in flight, and weir dropped it.
pub const CUT_AT_DRAIN_DEADLINE: &str = "CutAtDrainDeadline";
/// `error_reason` of an HTTP/2 response weir reset (RST_STREAM(CANCEL)) because the client's
/// flow-control window held it back with no byte moving for the idle timeout
/// (`h2conn::Connection::handle_stalls`); its target connection is not reused mid-response.
pub const CLIENT_WINDOW_STALLED: &str = "ClientWindowStalled";
/// `error_reason` of a request whose work weir dropped for another reason before its line was
/// written (its task ended: a panic).
pub const CUT: &str = "RequestCut";

impl Record {
    /// Completes the record of a request cut `elapsed` seconds after it started, before its
    /// line was written, with what was known then. HAProxy logs a stream it ends itself with a
    /// termination state (`K`, killed, and the phase: `KH` waiting for the server's headers,
    /// `KD` in the data phase) and -1 for a status and timers that never happened; this is the
    /// same in ALB's fields: `error_reason` says why (weir's own reasons, as ALB's are
    /// CamelCase), `elb_status_code` is the status weir had begun to send (its own, or the
    /// target's response being relayed) or `-` when none had begun, `target_status_code` and
    /// `target_processing_time` are the target's answer when it came (`-`, -1 otherwise),
    /// `response_processing_time` runs to the cut when a response had begun (-1 otherwise).
    /// The byte counts are what the engine had counted (HTTP/1.1 counts a body it relays when
    /// the body ends: a cut one is not in `sent_bytes`).
    pub fn cut(&mut self, reason: &'static str, elapsed: f64) {
        self.error_reason = Some(reason);
        if self.elb_status_code == 0
            && let Some(s) = self.target_status_code
        {
            self.elb_status_code = s;
        }
        if self.elb_status_code != 0 {
            let before = self.request_processing_time.unwrap_or(0.0)
                + self.target_processing_time.unwrap_or(0.0);
            self.response_processing_time = Some((elapsed - before).max(0.0));
        }
        self.time = rfc3339(SystemTime::now());
    }
}

/// A request's record from its head to its line, in place in the request's future (no
/// allocation of its own): the normal path takes it back with [`Pending::finish`] and writes
/// the line; dropped before that — the request's future dropped at a drain deadline or when
/// its task ended — the guard writes the line itself ([`Record::cut`]), so a request weir
/// received gets exactly one line however it ended. With the access log off it holds nothing
/// and costs a branch.
pub struct Pending<'a> {
    log: &'a AccessLog,
    /// The record and when the request started; `None`: the log is off, or the line is the
    /// normal path's. Boxed: the guard lives in the request's future, moved and taken back
    /// whole (an inline record was ~180 instructions of `memcpy` per request, log off too).
    open: Option<Box<(Record, Instant)>>,
}

impl<'a> Pending<'a> {
    /// `make` runs only with the access log on.
    #[inline]
    pub fn new(log: &'a AccessLog, make: impl FnOnce() -> Record) -> Pending<'a> {
        Pending {
            log,
            open: log.enabled().then(|| Box::new((make(), Instant::now()))),
        }
    }

    /// The record, while the request runs (`None` with the log off).
    #[inline]
    pub fn record(&mut self) -> Option<&mut Record> {
        self.open.as_deref_mut().map(|(r, _)| r)
    }

    /// When the request started (`None` with the log off).
    #[inline]
    pub fn started(&self) -> Option<Instant> {
        self.open.as_deref().map(|(_, t)| *t)
    }

    /// The record and its start for the normal path's line: the guard writes nothing more.
    #[inline]
    pub fn finish(mut self) -> Option<(Record, Instant)> {
        self.open.take().map(|b| *b)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.open.take() {
            let (mut r, started) = *b;
            let reason = if self.log.past_drain_deadline() {
                CUT_AT_DRAIN_DEADLINE
            } else {
                CUT
            };
            r.cut(reason, started.elapsed().as_secs_f64());
            self.log.write(&r);
        }
    }
}

/// RFC 3339 with microseconds, UTC, from a `SystemTime`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(std::path::PathBuf),
}

impl AccessLogTarget {
    /// What `[load_balancer] access_logs` names.
    pub fn of(a: &crate::config::AccessLogs) -> AccessLogTarget {
        match (a.enabled, a.path.as_str()) {
            (false, _) => AccessLogTarget::Off,
            (true, "-") => AccessLogTarget::Stdout,
            (true, p) => AccessLogTarget::File(p.into()),
        }
    }
}

/// Lines that may wait for the writer; past it a line is dropped and counted.
pub const QUEUE_LINES: usize = 8192;
/// Bytes of lines that may wait for the writer (the memory bound of the queue).
pub const QUEUE_BYTES: usize = 4 << 20;
/// The writer hands the kernel at most this much per `write` (whole lines only, so lines of
/// several workers appending to one file or pipe never interleave; a longer line goes alone).
const BATCH_BYTES: usize = 64 << 10;
/// How long a batch waits for more lines before it is written.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// What the writer thread writes to.
type Output = Box<dyn Write + Send>;

/// The queue between request tasks and the writer thread. `None` in the channel is no line: it
/// wakes the writer to take [`Queue::next_out`].
struct Queue {
    tx: mpsc::SyncSender<Option<String>>,
    /// A file the writer switches to after its current batch (a log reopened after rotation).
    next_out: std::sync::Mutex<Option<Output>>,
    max_bytes: usize,
    /// Bytes queued (line + newline), not yet taken by the writer.
    bytes: AtomicUsize,
    /// Lines queued or being written.
    pending: AtomicUsize,
    dropped: AtomicU64,
    /// Lines whose write failed.
    write_failed: AtomicU64,
    /// The worker's drain deadline passed ([`AccessLog::pass_drain_deadline`]).
    past_drain_deadline: AtomicBool,
}

impl Queue {
    fn push(&self, line: String) {
        let n = line.len() + 1;
        if self.bytes.fetch_add(n, Relaxed) + n > self.max_bytes {
            self.bytes.fetch_sub(n, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        self.pending.fetch_add(1, Relaxed);
        if self.tx.try_send(Some(line)).is_err() {
            self.bytes.fetch_sub(n, Relaxed);
            self.pending.fetch_sub(1, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("bytes", &self.bytes)
            .field("pending", &self.pending)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// Opens the access-log file for appending. Without a reader, opening a FIFO (a log shipper
/// reading a named pipe) would block the worker's start for as long as the shipper is away:
/// it is opened without blocking, which fails at once (ENXIO) and says so, then made blocking
/// again for the writer thread (a reader that goes away later blocks that thread only, and the
/// queue drops lines).
pub fn open_file(p: &std::path::Path) -> anyhow::Result<std::fs::File> {
    open_file_as(p, true)
}

/// [`open_file`], creating a missing file when `create`.
fn open_file_as(p: &std::path::Path, create: bool) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .create(create)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => anyhow::anyhow!(
                "{}: a FIFO no process reads (start its reader first)",
                p.display()
            ),
            _ => anyhow::anyhow!("{}: {e}", p.display()),
        })?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: fcntl on a descriptor `f` owns and keeps open across both calls.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        anyhow::bail!("{}: {}", p.display(), std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Whether [`open_file`] could open `p`, without creating it (`weir check` changes nothing):
/// an existing file is opened for appending as a worker opens it (a FIFO without a reader
/// fails the same way); a missing one needs a directory the caller may write in (its
/// effective ids, as the worker that will create it).
pub fn check_file(p: &std::path::Path) -> anyhow::Result<()> {
    use nix::unistd::{AccessFlags, faccessat};
    if std::fs::symlink_metadata(p).is_ok() {
        return open_file_as(p, false).map(drop);
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let meta = std::fs::metadata(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    faccessat(
        None,
        dir,
        AccessFlags::W_OK | AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot be created: {}: {}",
            p.display(),
            dir.display(),
            std::io::Error::from(e)
        )
    })
}

/// The writer of a file that could not be opened: every write fails with the reason.
struct Unopened(String);

impl Write for Unopened {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other(format!("not open: {}", self.0)))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A handle request tasks send lines to. Sending never blocks and never grows memory past
/// [`QUEUE_LINES`] / [`QUEUE_BYTES`]: when the writer cannot keep up (a slow disk, a full
/// pipe), lines are dropped and counted ([`AccessLog::dropped`]).
#[derive(Debug, Clone)]
pub struct AccessLog {
    queue: Option<Arc<Queue>>,
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog { queue: None }
    }

    /// Opens the target (a file is opened here, by the caller's privileges, in append mode) and
    /// starts the writer thread.
    pub fn start(target: &AccessLogTarget) -> anyhow::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog::off()),
            AccessLogTarget::Stdout => Box::new(StdoutLines),
            AccessLogTarget::File(p) => Box::new(open_file(p)?),
        };
        Self::with_writer(out, QUEUE_LINES, QUEUE_BYTES)
    }

    /// [`AccessLog::start`] for a worker: a file it cannot open (its directory removed since
    /// weir started, say) does not stop it. It serves, and its lines are lost as failed writes
    /// (`weir_access_log_write_failed_total`; the writer says so once per run of failures)
    /// until a reopen (SIGUSR1) brings the file. The error comes back to be logged.
    pub fn start_or_unopened(target: &AccessLogTarget) -> (AccessLog, Option<anyhow::Error>) {
        match (Self::start(target), target) {
            (Ok(log), _) => (log, None),
            (Err(e), AccessLogTarget::File(_)) => {
                let why = format!("{e:#}");
                match Self::with_writer(Box::new(Unopened(why)), QUEUE_LINES, QUEUE_BYTES) {
                    Ok(log) => (log, Some(e)),
                    Err(e2) => (AccessLog::off(), Some(e.context(e2))),
                }
            }
            (Err(e), _) => (AccessLog::off(), Some(e)),
        }
    }

    /// The writer thread over `out`, with a queue of `lines` lines and `bytes` bytes.
    fn with_writer(
        out: Box<dyn Write + Send>,
        lines: usize,
        bytes: usize,
    ) -> anyhow::Result<AccessLog> {
        let (tx, rx) = mpsc::sync_channel::<Option<String>>(lines);
        let queue = Arc::new(Queue {
            tx,
            next_out: std::sync::Mutex::new(None),
            max_bytes: bytes,
            bytes: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            write_failed: AtomicU64::new(0),
            past_drain_deadline: AtomicBool::new(false),
        });
        let q = Arc::downgrade(&queue);
        std::thread::Builder::new()
            .name("weir-access-log".into())
            .spawn(move || write_lines(out, rx, q))?;
        Ok(AccessLog { queue: Some(queue) })
    }

    /// Writes to `file` from now on (the same path opened again after a log rotation moved the
    /// old file away; the control plane opens it, `crate::socket_channel`): the lines queued
    /// before go to the old file, then it is closed. Never blocks: a writer stuck in a write
    /// switches when that write returns.
    pub fn reopen(&self, file: std::fs::File) {
        if let Some(q) = &self.queue {
            *q.next_out.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(file));
            // Wakes an idle writer; a full queue means a busy one, which looks after its batch.
            let _ = q.tx.try_send(None);
        }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// The worker's drain deadline passed with requests in flight: those dropped from now on
    /// (with the worker's tasks) were cut at it, and their lines say so (a line per request is
    /// the access log's concern, so the fact is kept here, shared by every generation).
    pub fn pass_drain_deadline(&self) {
        if let Some(q) = &self.queue {
            q.past_drain_deadline.store(true, Relaxed);
        }
    }

    /// Whether [`AccessLog::pass_drain_deadline`] was called.
    pub fn past_drain_deadline(&self) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|q| q.past_drain_deadline.load(Relaxed))
    }

    pub fn write(&self, r: &Record) {
        if let Some(q) = &self.queue {
            q.push(r.format());
        }
    }

    /// Lines lost to a failed write (`ENOSPC`, `EIO`, `EPIPE` from a FIFO whose reader left).
    pub fn write_failed(&self) -> u64 {
        self.queue
            .as_ref()
            .map_or(0, |q| q.write_failed.load(Relaxed))
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.dropped.load(Relaxed))
    }

    /// Waits up to `timeout` for the queued lines to be written (at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) {
        let Some(q) = &self.queue else { return };
        let deadline = std::time::Instant::now() + timeout;
        while q.pending.load(Relaxed) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// The process's stdout, written a batch of whole lines at a time under its lock (under
/// `weir run` a pipe the control plane relays line by line).
struct StdoutLines;

impl Write for StdoutLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(buf)?;
        out.flush()
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// The writer thread: batches of whole lines, one `write_all` each. A batch waits up to
/// [`LINGER`] for more lines (or until it is [`BATCH_BYTES`]): under load, one write (and one
/// wake-up of the control plane's relay) carries many lines instead of one.
fn write_lines(mut out: Output, rx: mpsc::Receiver<Option<String>>, queue: std::sync::Weak<Queue>) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut failing = Failing::default();
    while let Ok(first) = rx.recv() {
        let deadline = std::time::Instant::now() + LINGER;
        let (mut lines, mut taken) = (0, 0);
        // `None` (a wake-up) only ends the batch early.
        let mut next = first;
        while let Some(line) = next.take() {
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
            lines += 1;
            taken += line.len() + 1;
            if batch.len() >= BATCH_BYTES {
                break;
            }
            next = rx
                .try_recv()
                .ok()
                .or_else(|| {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    (!left.is_zero())
                        .then(|| rx.recv_timeout(left).ok())
                        .flatten()
                })
                .flatten();
        }
        let q = queue.upgrade();
        if let Some(q) = &q {
            q.bytes.fetch_sub(taken, Relaxed);
        }
        // A failed write loses these lines: counted, and said once per run of failures.
        let written = if batch.is_empty() {
            Ok(())
        } else {
            out.write_all(&batch)
        };
        let lost = failing.after(written, lines);
        if let Some(q) = &q {
            q.write_failed.fetch_add(lost, Relaxed);
        }
        batch.clear();
        if batch.capacity() > 4 * BATCH_BYTES {
            batch.shrink_to(BATCH_BYTES);
        }
        if let Some(q) = &q {
            if let Some(new) = q.next_out.lock().unwrap_or_else(|p| p.into_inner()).take() {
                out = new;
            }
            q.pending.fetch_sub(lines, Relaxed);
        }
    }
}

/// The writer's run of failed writes: the first failure and the recovery are logged (with the
/// lines lost in between), not every batch.
#[derive(Debug, Default)]
struct Failing {
    /// Lines lost since the run began; `None`: the last write worked.
    lost: Option<u64>,
}

impl Failing {
    /// Accounts one batch of `lines` written with `result`; returns the lines it lost.
    fn after(&mut self, result: std::io::Result<()>, lines: usize) -> u64 {
        let lines = lines as u64;
        match (result, self.lost) {
            (Ok(()), None) => 0,
            (Ok(()), Some(lost)) => {
                tracing::info!(lost, "access log: writing works again");
                self.lost = None;
                0
            }
            (Err(e), None) => {
                tracing::warn!(error = %e, "access log: a write failed; its lines are lost (weir_access_log_write_failed_total) until writing works again");
                self.lost = Some(lines);
                lines
            }
            (Err(_), Some(lost)) => {
                self.lost = Some(lost + lines);
                lines
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_placeholders() {
        let r = Record {
            kind: "http",
            time: "2026-01-01T00:00:00.000000Z".into(),
            elb: "weir/0".into(),
            client: Some("192.0.2.1:5000".parse().unwrap()),
            elb_status_code: 503,
            request: "GET http://a/ HTTP/1.1".into(),
            user_agent: "curl \"x\"".into(),
            trace_id: "Root=1-0-0".into(),
            matched_rule_priority: 0,
            request_creation_time: "2026-01-01T00:00:00.000000Z".into(),
            actions_executed: vec!["forward"],
            error_reason: Some("NoRegisteredTargets"),
            ..Record::default()
        };
        let line = r.format();
        assert!(line.starts_with("http 2026-01-01T00:00:00.000000Z weir/0 192.0.2.1:5000 - -1 -1 -1 503 - 0 0 \"GET http://a/ HTTP/1.1\" \"curl \\\"x\\\"\" - - - \"Root=1-0-0\""), "{line}");
        assert!(line.ends_with("0 2026-01-01T00:00:00.000000Z \"forward\" \"-\" \"NoRegisteredTargets\" \"-\" \"-\" \"-\" \"-\""), "{line}");
    }

    #[test]
    fn each_attempt_has_its_code_under_its_target() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        let mut r = Record::default();
        r.attempt(a);
        r.attempt(b);
        r.answered(200);
        assert!(
            r.format()
                .contains(" \"10.0.0.1:80 10.0.0.2:80\" \"- 200\" ")
        );
        assert_eq!(r.target, Some(b));
        let mut r = Record::default();
        r.attempt(a);
        assert!(r.format().contains(" \"10.0.0.1:80\" \"-\" "), "no answer");
        assert!(
            Record::default()
                .format()
                .contains(" \"-\" \"-\" \"-\" \"-\"")
        );
    }

    fn memory_log() -> (AccessLog, Arc<std::sync::Mutex<Vec<u8>>>) {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = AccessLog::with_writer(Box::new(Stuck(out.clone())), 100, 1 << 20).unwrap();
        (log, out)
    }

    /// `(elb_status_code, target_status_code, response_processing_time, error_reason)` of a
    /// line (`error_reason` is the eighth quoted field).
    fn status_and_reason(line: &str) -> (String, String, String, String) {
        let f: Vec<&str> = line.split(' ').collect();
        let reason = line.split('"').nth(15).unwrap_or("?");
        (f[8].into(), f[9].into(), f[7].into(), reason.into())
    }

    /// The normal path's line is the only one: a finished guard writes nothing when dropped.
    #[test]
    fn a_finished_guard_writes_no_second_line() {
        let (log, out) = memory_log();
        let mut p = Pending::new(&log, || line(1, 3));
        p.record().unwrap().elb_status_code = 200;
        let (r, _) = p.finish().expect("the log is on");
        log.write(&r);
        log.flush(std::time::Duration::from_secs(5));
        let lines = written(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(status_and_reason(&lines[0]).0, "200");
    }

    /// A guard dropped with its record (the request's future dropped) writes it once, marked
    /// cut: at the drain deadline once the worker passed it, `RequestCut` before.
    #[test]
    fn a_dropped_guard_writes_its_line_marked_cut() {
        let (log, out) = memory_log();
        drop(Pending::new(&log, || line(1, 3)));
        log.pass_drain_deadline();
        let mut relaying = Pending::new(&log, || line(2, 3));
        if let Some(r) = relaying.record() {
            r.request_processing_time = Some(0.0);
            r.target_processing_time = Some(0.0);
            r.target_status_code = Some(206);
        }
        drop(relaying);
        log.flush(std::time::Duration::from_secs(5));
        let lines = written(&out);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let never: (String, String, String, String) =
            ("-".into(), "-".into(), "-1".into(), CUT.into());
        assert_eq!(status_and_reason(&lines[0]), never);
        let (elb, target, response_time, reason) = status_and_reason(&lines[1]);
        assert_eq!((elb, target), ("206".into(), "206".into()));
        assert_ne!(response_time, "-1", "the response had begun");
        assert_eq!(reason, CUT_AT_DRAIN_DEADLINE);
        assert!(!AccessLog::off().past_drain_deadline());
    }

    /// With the log off the record is never made and nothing is written.
    #[test]
    fn a_guard_of_a_log_that_is_off_holds_nothing() {
        let log = AccessLog::off();
        let mut p = Pending::new(&log, || unreachable!("no record with the log off"));
        assert!(p.record().is_none() && p.started().is_none());
        drop(p);
        assert!(Pending::new(&log, Record::default).finish().is_none());
    }

    #[test]
    fn dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000000Z");
    }

    /// A writer that blocks while the test holds its lock (a stuck disk or pipe).
    struct Stuck(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(n: usize, len: usize) -> Record {
        Record {
            kind: "http",
            request: format!("{n:06} {}", "x".repeat(len)),
            ..Record::default()
        }
    }

    fn written(out: &std::sync::Mutex<Vec<u8>>) -> Vec<String> {
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "whole lines only");
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_stuck_writer_bounds_the_queue_and_counts_drops() {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = AccessLog::with_writer(Box::new(Stuck(out.clone())), 10, 1 << 20).unwrap();
        let held = out.lock().unwrap();
        // Lines longer than a batch: the writer takes one, then blocks in its write.
        for n in 0..100 {
            log.write(&line(n, BATCH_BYTES));
        }
        // 10 queued, at most one more taken by the stuck writer; the rest dropped at once.
        let dropped = log.dropped();
        assert!((89..=90).contains(&dropped), "dropped {dropped}");
        drop(held);
        log.flush(std::time::Duration::from_secs(5));
        let lines = written(&out);
        assert_eq!(lines.len() as u64 + dropped, 100);
        assert!(lines.iter().all(|l| l.starts_with("http ")));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let size = BATCH_BYTES + 100;
        let log = AccessLog::with_writer(Box::new(Stuck(out.clone())), 1000, 7 * size / 2).unwrap();
        let held = out.lock().unwrap();
        for n in 0..100 {
            log.write(&line(n, BATCH_BYTES));
        }
        // 3.5 lines' worth of bytes hold three; one more may sit in the stuck writer's batch.
        let dropped = log.dropped();
        assert!((96..=97).contains(&dropped), "dropped {dropped}");
        drop(held);
        log.flush(std::time::Duration::from_secs(5));
        assert_eq!(written(&out).len() as u64 + dropped, 100);
        // Once drained, the budget is free again.
        log.write(&line(1, BATCH_BYTES));
        log.flush(std::time::Duration::from_secs(5));
        assert_eq!(log.dropped(), dropped);
    }

    /// A FIFO nobody reads (a log shipper not started yet): the worker's start fails at once and
    /// says why, instead of blocking in `open` for as long as the shipper is away; with a reader,
    /// the lines reach it.
    #[test]
    fn a_fifo_without_a_reader_is_refused_at_once_and_one_with_a_reader_gets_the_lines() {
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = std::env::temp_dir().join(format!("weir-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("access.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let target = AccessLogTarget::File(fifo.clone());
        let (tx, rx) = mpsc::channel();
        let t = target.clone();
        std::thread::spawn(move || tx.send(AccessLog::start(&t).map(|_| ())));
        let refused = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening the FIFO blocked");
        let e = refused.expect_err("no reader");
        assert!(e.to_string().contains("a FIFO no process reads"), "{e:#}");
        // A reader first: opened, and a line comes through.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let log = AccessLog::start(&target).unwrap();
        log.write(&line(7, 10));
        log.flush(std::time::Duration::from_secs(5));
        let mut got = String::new();
        let _ = reader.read_to_string(&mut got);
        assert!(got.starts_with("http ") && got.ends_with('\n'), "{got:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// After `reopen`, lines go to the new file; those written before went to the old one,
    /// none lost, none in both.
    #[test]
    fn lines_after_a_reopen_go_to_the_new_file() {
        let dir = std::env::temp_dir().join(format!("weir-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.log"), dir.join("new.log"));
        let log = AccessLog::start(&AccessLogTarget::File(old.clone())).unwrap();
        for n in 0..3 {
            log.write(&line(n, 10));
        }
        log.flush(std::time::Duration::from_secs(5));
        log.reopen(open_file(&new).unwrap());
        for n in 3..6 {
            log.write(&line(n, 10));
        }
        log.flush(std::time::Duration::from_secs(5));
        let ids = |p: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| l.split('"').nth(1).unwrap()[..6].to_string())
                .collect()
        };
        assert_eq!(ids(&old), ["000000", "000001", "000002"]);
        assert_eq!(ids(&new), ["000003", "000004", "000005"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer that fails while `broken` is set (a full disk; a FIFO whose reader left).
    struct Flaky {
        broken: Arc<std::sync::atomic::AtomicBool>,
        out: Arc<std::sync::Mutex<Vec<u8>>>,
    }
    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.broken.load(Relaxed) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines a failed write loses are counted (never silently), and writing goes on when it
    /// works again.
    #[test]
    fn lines_lost_to_failed_writes_are_counted_and_writing_resumes() {
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = Flaky {
            broken: broken.clone(),
            out: out.clone(),
        };
        let log = AccessLog::with_writer(Box::new(w), 100, 1 << 20).unwrap();
        let five = |from: usize| {
            for n in from..from + 5 {
                log.write(&line(n, 10));
            }
            log.flush(std::time::Duration::from_secs(5));
        };
        five(0);
        broken.store(true, Relaxed);
        five(5);
        assert_eq!(log.write_failed(), 5);
        assert_eq!(log.dropped(), 0, "not the queue's drops");
        broken.store(false, Relaxed);
        five(10);
        assert_eq!(log.write_failed(), 5);
        let ids: Vec<String> = written(&out)
            .iter()
            .map(|l| l.split('"').nth(1).unwrap()[..6].to_string())
            .collect();
        let want: Vec<String> = (0..5).chain(10..15).map(|n| format!("{n:06}")).collect();
        assert_eq!(ids, want);
        let mut f = Failing::default();
        let e = || Err(std::io::Error::from_raw_os_error(libc::EPIPE));
        assert_eq!(f.after(e(), 3), 3);
        assert_eq!(f.after(e(), 2), 2);
        assert_eq!(f.lost, Some(5), "one run of failures");
        assert_eq!(f.after(Ok(()), 4), 0);
        assert_eq!(f.lost, None);
    }
}
