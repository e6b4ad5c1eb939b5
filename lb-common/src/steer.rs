//! Steering new connections to worker processes: the contract of the `weir_steer` SK_REUSEPORT
//! program (object `weir-steer`).
//!
//! For every new connection to a listener, the kernel runs the program over the SO_REUSEPORT
//! group. It computes [`crate::hash::flow_hash`] of the 4-tuple, picks the slot
//! [`crate::hash::table_slot`] of the active Maglev table in `STEER_TABLE`, reads the worker
//! there, and selects that worker's socket from `STEER_SOCKETS` at
//! `listener base + worker`. User space computes the same function (`lb_common::maglev`) to
//! build the tables, so both sides name the same owner.
//!
//! Tables are double-buffered: user space fills the inactive half, then flips `STEER_CONFIG.table`
//! (one aligned 32-bit store holding both the half and the size), so no packet sees a half-built
//! table or a size that does not match its table.

/// Array of one [`SteerConfig`].
pub const STEER_CONFIG: &str = "STEER_CONFIG";
/// Array `half * STEER_TABLE_MAX + slot -> worker index`.
pub const STEER_TABLE: &str = "STEER_TABLE";
/// Array `listening port (host order) -> listener index + 1` (0: not a steered port;
/// [`LISTENER_REFUSE`]: a listener a reload removed). An array rather than a hash map: the
/// verifier inlines its lookup.
pub const STEER_LISTENERS: &str = "STEER_LISTENERS";
/// `STEER_LISTENERS` value of a listener a reload removed: its new connections are refused
/// (`SK_DROP`, a RST to the SYN) while the workers take what is queued and close its sockets.
pub const LISTENER_REFUSE: u32 = u32::MAX;
/// ReusePortSockArray `listener index * MAX_WORKERS + worker -> socket`.
pub const STEER_SOCKETS: &str = "STEER_SOCKETS";
/// Per-CPU array of [`SteerStat`] counters.
pub const STEER_STATS: &str = "STEER_STATS";
/// The program's name in the object.
pub const PROGRAM: &str = "weir_steer";

/// Most worker processes per host.
pub const MAX_WORKERS: u32 = 64;
/// Most listeners (ports) steered.
pub const MAX_LISTENERS: u32 = 32;
/// Largest Maglev table (one half of `STEER_TABLE`); a table for `MAX_WORKERS` needs 8191.
pub const STEER_TABLE_MAX: u32 = 16_381;

/// `STEER_CONFIG[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerConfig {
    /// `size << 1 | half`: the active table's size (0 = no live worker: let the kernel choose)
    /// and which half of `STEER_TABLE` holds it. One word so it changes atomically.
    pub table: u32,
    /// The flow-hash seed (from the configuration: every host computes the same owners).
    pub seed: u32,
}

impl SteerConfig {
    /// The `table` word of a host that is shutting down: every new connection to a steered
    /// listener is refused (the program returns `SK_DROP`, the kernel answers the SYN with a RST),
    /// while connections already queued are still accepted and served.
    pub const REFUSE: u32 = u32::MAX;

    pub const fn pack(size: u32, half: u32) -> u32 {
        size << 1 | (half & 1)
    }

    /// (size, half) of a packed `table` word.
    #[inline(always)]
    pub const fn unpack(table: u32) -> (u32, u32) {
        (table >> 1, table & 1)
    }
}

/// Counters of the steering program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerStat {
    /// A socket was chosen by the table.
    Steered = 0,
    /// No live worker or unknown listener: the kernel's own choice stands.
    Fallback = 1,
    /// The header could not be read, or the chosen socket was missing.
    Error = 2,
    /// Refused: weir is shutting down ([`SteerConfig::REFUSE`]), or the listener was removed
    /// ([`LISTENER_REFUSE`]).
    Refused = 3,
}

impl SteerStat {
    pub const COUNT: u32 = 4;
    pub const ALL: [SteerStat; 4] = [
        SteerStat::Steered,
        SteerStat::Fallback,
        SteerStat::Error,
        SteerStat::Refused,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            SteerStat::Steered => "steered",
            SteerStat::Fallback => "fallback",
            SteerStat::Error => "error",
            SteerStat::Refused => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_word_round_trips() {
        for (size, half) in [(509, 0), (509, 1), (STEER_TABLE_MAX, 1), (0, 0)] {
            assert_eq!(
                SteerConfig::unpack(SteerConfig::pack(size, half)),
                (size, half)
            );
        }
    }
}
