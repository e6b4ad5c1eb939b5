//! `weir top`: a live view of the running daemon, like `top` and HAProxy's stats page.
//!
//! - [`snapshot`]: the [`Snapshot`] model built from two samples (rates = changes between
//!   refreshes). Pure.
//! - [`render`]: drawing a snapshot (ratatui), laid out for 80×24; `--once`'s plain text. Pure.
//! - [`sample`]: reading a sample: pinned XDP counters, the admin API, `/proc`.
//! - [`term`]: the terminal (raw mode, alternate screen), restored on every exit, panics included.

pub mod render;
pub mod sample;
pub mod snapshot;
pub mod term;

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub use snapshot::{Sample, Snapshot};

use crate::cli::TopArgs;

/// Runs `weir top`.
pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    let source = sample::Source::new(args)?;
    let interval = Duration::from_secs_f64(args.interval);
    if args.once {
        return once(&source, interval);
    }
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("weir top draws on a terminal: use `weir top --once` for scripts and pipes");
    }
    interactive(source, interval)
}

/// One frame, rates over `interval`, printed as plain text. Fails when the daemon could be
/// reached neither through its admin API nor through its pins.
fn once(source: &sample::Source, interval: Duration) -> anyhow::Result<()> {
    let before = source.sample();
    std::thread::sleep(interval);
    let now = source.sample();
    if let (Err(api), Err(xdp)) = (&now.status, &now.xdp) {
        anyhow::bail!("no weir daemon to show: admin API: {api}; XDP: {xdp}");
    }
    crate::cli::out(format_args!(
        "{}",
        render::text(&Snapshot::new(Some(&before), &now))
    ));
    Ok(())
}

/// Whether a key quits: `q`, `Q`, Esc, Ctrl-C (raw mode delivers Ctrl-C as a key).
fn quits(k: &KeyEvent) -> bool {
    k.kind == KeyEventKind::Press
        && match k.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// The live view: samples come from a thread every `interval` (a slow daemon never delays a
/// key), each redraws the screen with rates against the previous one.
fn interactive(source: sample::Source, interval: Duration) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Sample>(1);
    std::thread::Builder::new()
        .name("weir-top-sampler".into())
        .spawn(move || {
            loop {
                let next = Instant::now() + interval;
                if tx.send(source.sample()).is_err() {
                    return;
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })?;
    let mut terminal = term::Guard::enter()?;
    let mut now: Option<Sample> = None;
    let mut snap: Option<Snapshot> = None;
    loop {
        if term::stop_requested() {
            return Ok(());
        }
        match rx.try_recv() {
            Ok(s) => {
                let shown = Snapshot::new(now.as_ref(), &s);
                now = Some(s);
                terminal.draw(&shown)?;
                snap = Some(shown);
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                anyhow::bail!("the sampling thread stopped")
            }
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                Event::Key(k) if quits(&k) => return Ok(()),
                Event::Resize(..) => {
                    if let Some(s) = &snap {
                        terminal.draw(s)?;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
