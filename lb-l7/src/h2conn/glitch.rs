//! Glitch accounting: what a client makes the server do for nothing. A glitch is a client
//! reset of a stream whose response had not finished (rapid reset, CVE-2023-44487), a stream
//! error we had to answer (MadeYouReset, CVE-2025-8671: the client provoked it), a refused
//! stream, an empty DATA frame without END_STREAM or an empty CONTINUATION without
//! END_HEADERS, a SETTINGS frame that moves open streams' windows after the first that did
//! (a walk over every stream), and every control frame past `CHATTER_FREE` in a row without
//! progress (PING, SETTINGS, PRIORITY, WINDOW_UPDATE that frees nothing, unknown frame types).
//! Progress — a new stream, request body bytes, response body bytes written — ends a row.
//! Completed streams pay glitches back, one per `REFUND_EVERY`, so a long-lived connection
//! with a few cancellations now and then is not closed. Past the limit: GOAWAY
//! ENHANCE_YOUR_CALM.

/// Control frames in a row before each one counts as a glitch.
pub(super) const CHATTER_FREE: u32 = 100;
/// Completed streams per glitch forgiven.
pub(super) const REFUND_EVERY: u32 = 16;

#[derive(Debug)]
pub(super) struct Glitches {
    count: u32,
    max: u32,
    chatter: u32,
    completed: u32,
}

impl Glitches {
    pub fn new(max: u32) -> Self {
        Glitches {
            count: 0,
            max,
            chatter: 0,
            completed: 0,
        }
    }

    /// One glitch; true once over the limit.
    #[must_use]
    pub fn add(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        self.count > self.max
    }

    /// One control frame without progress; true once over the limit.
    #[must_use]
    pub fn chatter(&mut self) -> bool {
        self.chatter = self.chatter.saturating_add(1);
        self.chatter > CHATTER_FREE && self.add()
    }

    /// Useful work happened: the row of control frames ends.
    pub fn progress(&mut self) {
        self.chatter = 0;
    }

    /// A stream finished normally.
    pub fn completed(&mut self) {
        self.completed = self.completed.wrapping_add(1);
        if self.completed.is_multiple_of(REFUND_EVERY) {
            self.count = self.count.saturating_sub(1);
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_trips_after_max_and_completions_refund() {
        let mut g = Glitches::new(3);
        assert!(!g.add() && !g.add() && !g.add());
        for _ in 0..REFUND_EVERY {
            g.completed();
        }
        assert_eq!(g.count(), 2);
        assert!(!g.add());
        assert!(g.add());
    }

    #[test]
    fn chatter_counts_only_past_the_free_row_and_progress_resets_it() {
        let mut g = Glitches::new(2);
        for _ in 0..CHATTER_FREE {
            assert!(!g.chatter());
        }
        g.progress();
        for _ in 0..CHATTER_FREE {
            assert!(!g.chatter());
        }
        assert!(!g.chatter() && !g.chatter());
        assert!(g.chatter());
    }
}
