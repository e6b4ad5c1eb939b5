//! The worker's side: every [`super::PERIOD`] its counters (`lb_l7::MetricsHandle`) as one line
//! ([`Figures::to_line`]) on the pipe the control plane gave it ([`super::FD_ENV`]). Nothing on
//! the request path: the atomics are read here, on the worker's own runtime, twice a second.
//! A control plane that stops reading only stalls this task (the pipe fills), never a request.
//! Each report also names the targets the worker is still draining
//! (`lb_l7::generation::drain_report`): the health view ends a target's `draining` once every
//! worker is done with it. So that it need not wait for the period, a change of that list (or
//! of the generation) is reported at once, at most one extra report per [`PROMPT_GAP`].

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::time::Duration;

use lb_l7::{MetricsHandle, generation::DrainReport};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt as _},
    net::unix::pipe,
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};

use super::{FD_ENV, PERIOD, series::Figures};

/// The least time between a report and one sent early for a changed drain report: however
/// often the worker's draining list changes, at most one extra report per this.
pub const PROMPT_GAP: Duration = Duration::from_millis(100);

/// The report fd this worker process was given, if any.
pub fn fd_from_env() -> anyhow::Result<Option<RawFd>> {
    match std::env::var(FD_ENV) {
        Err(_) => Ok(None),
        Ok(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("{FD_ENV}: `{v}` is not a file descriptor")
        })?)),
    }
}

/// The running reporter.
pub struct Pusher {
    task: JoinHandle<()>,
    last: oneshot::Sender<()>,
}

impl Pusher {
    /// Takes `fd` (the write end of a pipe) and starts reporting. Call inside the worker's
    /// runtime and before its sandbox (the pipe is checked with `fstat`).
    pub fn start(fd: RawFd, metrics: MetricsHandle) -> anyhow::Result<Pusher> {
        // SAFETY: the control plane passed this fd to this process for the reports alone.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let tx = pipe::Sender::from_owned_fd(owned)
            .map_err(|e| anyhow::anyhow!("{FD_ENV}={fd}: not a pipe to write: {e}"))?;
        let (last, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(report(tx, metrics, stop));
        Ok(Pusher { task, last })
    }

    /// Sends the final report (after the drain: every request counted), waiting at most one
    /// period for a pipe the control plane does not read.
    pub async fn finish(self) {
        let _ = self.last.send(());
        let _ = tokio::time::timeout(PERIOD, self.task).await;
    }
}

/// What a worker reports, and when its drain report changes.
trait Source: Send + 'static {
    /// The whole report, its drain report included.
    fn figures(&self) -> Figures;
    fn drain(&self) -> DrainReport;
    /// Resolves once [`Source::drain`] may have changed.
    fn drain_changed(&self) -> impl Future<Output = ()> + Send;
}

impl Source for MetricsHandle {
    fn figures(&self) -> Figures {
        let mut figures = Figures::from_snapshot(&self.snapshot());
        figures.drain = Some(self.drain_report());
        figures
    }
    fn drain(&self) -> DrainReport {
        self.drain_report()
    }
    fn drain_changed(&self) -> impl Future<Output = ()> + Send {
        MetricsHandle::drain_changed(self)
    }
}

/// Writes `src`'s reports to `tx` every [`PERIOD`], and early when its drain report changed
/// (not before [`PROMPT_GAP`] after the last report), until `stop` (one more, the last, at once
/// even while an early one waits for its gap) or a write fails.
async fn report(
    mut tx: impl AsyncWrite + Unpin,
    src: impl Source,
    mut stop: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last report went, and its drain report.
    let mut sent: Option<(Instant, DrainReport)> = None;
    loop {
        let done = tokio::select! {
            _ = tick.tick() => false,
            _ = src.drain_changed() => {
                let Some((at, drain)) = &sent else { continue };
                if *drain == src.drain() {
                    continue;
                }
                // The gap since the last report, unless the stop comes first: the last
                // report goes at once then (it carries this change too).
                tokio::select! {
                    _ = tokio::time::sleep_until(*at + PROMPT_GAP) => false,
                    _ = &mut stop => true,
                }
            }
            _ = &mut stop => true,
        };
        let figures = src.figures();
        let drain = figures.drain.clone().unwrap_or_default();
        if tx.write_all(figures.to_line().as_bytes()).await.is_err() || done {
            return;
        }
        sent = Some((Instant::now(), drain));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncBufReadExt as _;
    use tokio::sync::Notify;

    /// A worker whose draining list the test sets.
    #[derive(Clone, Default)]
    struct Fake(Arc<(Mutex<DrainReport>, Notify)>);

    impl Fake {
        fn set(&self, generation: u64) {
            self.0.0.lock().unwrap().generation = generation;
            self.0.1.notify_one();
        }
    }

    impl Source for Fake {
        fn figures(&self) -> Figures {
            Figures {
                drain: Some(self.drain()),
                ..Figures::default()
            }
        }
        fn drain(&self) -> DrainReport {
            self.0.0.lock().unwrap().clone()
        }
        fn drain_changed(&self) -> impl Future<Output = ()> + Send {
            self.0.1.notified()
        }
    }

    /// The reports seen: when, and their drain report's generation.
    type Lines = Arc<Mutex<Vec<(Instant, u64)>>>;

    /// Runs the reporter on `src`: its lines as they come.
    fn start(src: Fake) -> (Lines, oneshot::Sender<()>) {
        let (tx, rx) = tokio::io::duplex(1 << 16);
        let (stop_tx, stop) = oneshot::channel();
        tokio::spawn(report(tx, src, stop));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(rx).lines();
            while let Ok(Some(l)) = r.next_line().await {
                let f = Figures::from_line(l.as_bytes()).unwrap();
                seen.lock()
                    .unwrap()
                    .push((Instant::now(), f.drain.unwrap().generation));
            }
        });
        (lines, stop_tx)
    }

    #[tokio::test]
    async fn a_changed_drain_report_goes_at_once_an_unchanged_one_waits_for_the_period() {
        let src = Fake::default();
        let (lines, _stop) = start(src.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(lines.lock().unwrap().len(), 1, "the first report at once");
        // A wake-up without a change sends nothing early.
        src.0.1.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(lines.lock().unwrap().len(), 1);
        let t = Instant::now();
        src.set(7);
        let got = loop {
            if let Some(&(at, 7)) = lines.lock().unwrap().last() {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let took = got - t;
        // The period would be 500 ms after the first report, ~200 ms from here.
        assert!(took < Duration::from_millis(150), "{took:?}");
        assert_eq!(lines.lock().unwrap().len(), 2, "one report");
    }

    /// A stop while an early report waits for its gap: the last report goes at once (it waited
    /// out the gap, ~95 ms here, before).
    #[tokio::test]
    async fn the_stop_does_not_wait_for_the_gap() {
        let src = Fake::default();
        let (lines, stop) = start(src.clone());
        while lines.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A change right after the first report: its early report waits ~100 ms.
        src.set(3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t = Instant::now();
        let _ = stop.send(());
        let got = loop {
            if let Some(&(at, 3)) = lines.lock().unwrap().last() {
                break at;
            }
            assert!(t.elapsed() < Duration::from_secs(1), "no last report");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let took = got - t;
        assert!(
            took < Duration::from_millis(40),
            "the last report {took:?} after the stop"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(lines.lock().unwrap().len(), 2, "the first and the last");
    }

    #[tokio::test]
    async fn at_most_one_extra_report_per_gap() {
        let src = Fake::default();
        let (lines, stop) = start(src.clone());
        let t = Instant::now();
        let mut generation = 0;
        while t.elapsed() < Duration::from_secs(1) {
            generation += 1;
            src.set(generation);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let _ = stop.send(());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lines = lines.lock().unwrap();
        // Over ~1 s: the first, ≤ 2 periodic, ≤ 10 early, the last on stop (and one more of
        // each for the timer's slack).
        assert!(lines.len() <= 16, "{} reports", lines.len());
        assert!(lines.len() >= 6, "early reports: {}", lines.len());
        // Early ones are spaced by the gap (a periodic one may fall between).
        let early_gaps = lines
            .windows(2)
            .filter(|w| w[1].0 - w[0].0 < PROMPT_GAP - Duration::from_millis(5))
            .count();
        assert!(early_gaps <= 3, "{early_gaps} reports closer than the gap");
        assert_eq!(
            lines.last().unwrap().1,
            generation,
            "the last is the latest"
        );
    }
}
