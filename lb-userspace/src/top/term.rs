//! The terminal while `weir top` runs: raw mode, the alternate screen, no cursor. Every way
//! out restores it: the guard's drop (return, error), a panic hook (before the message is
//! printed), and SIGTERM/SIGHUP/SIGINT, which only set a flag the event loop polls.

use std::{
    io::{Stdout, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};

use super::{Snapshot, render::View};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// A termination signal arrived: the loop returns and the guard restores the terminal.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Puts the terminal back as it was; safe to call more than once.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = ratatui::crossterm::execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

pub struct Guard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Guard {
    pub fn enter() -> anyhow::Result<Guard> {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
            // SAFETY: the handler only stores to an atomic (async-signal-safe).
            unsafe { sigaction(sig, &action) }?;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        if let Err(e) = ratatui::crossterm::execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e.into());
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(terminal) => Ok(Guard { terminal }),
            Err(e) => {
                restore();
                Err(e.into())
            }
        }
    }

    pub fn draw(&mut self, s: &Snapshot) -> anyhow::Result<()> {
        self.terminal.draw(|f| f.render_widget(View(s), f.area()))?;
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}
