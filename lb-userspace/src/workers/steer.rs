//! Loading the steering program and keeping its maps in step with the live workers
//! (contract: `lb_common::steer`).

use std::{net::IpAddr, os::fd::AsFd};

use anyhow::Context;
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray, ReusePortSockArray},
    programs::SkReuseport,
};
use lb_common::{
    hash::{flow_hash, table_slot},
    maglev::{self, Backend},
    proto,
    steer::{self, MAX_LISTENERS, MAX_WORKERS, STEER_TABLE_MAX, SteerConfig, SteerStat},
};

use super::sockets::ListenerGroup;
use crate::xdp::to_addr;

/// The Maglev table over `live` workers (ids = worker indexes, equal weights). `configured` is
/// the number of workers the host runs: it fixes the table size, so a worker's death and return
/// do not resize the table (which would move every flow).
pub fn table(live: &[u32], configured: usize, seed: u32) -> Option<(u32, Vec<u32>)> {
    let size = maglev::table_size_for(configured);
    let backends: Vec<Backend> = live.iter().map(|&w| Backend::new(w, 1)).collect();
    maglev::build(&backends, size, seed).ok().map(|t| (size, t))
}

/// The worker that owns a TCP flow, as the kernel program computes it: the shared function the
/// tests hold the kernel to.
pub fn owner(
    live: &[u32],
    configured: usize,
    seed: u32,
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
) -> Option<u32> {
    let (size, t) = table(live, configured, seed)?;
    let h = flow_hash(
        &to_addr(src),
        &to_addr(dst),
        sport.to_be(),
        dport.to_be(),
        proto::TCP,
        seed,
    );
    t.get(table_slot(h, size) as usize).copied()
}

/// The loaded steering program and its maps.
pub struct Steering {
    ebpf: Ebpf,
    configured: usize,
    seed: u32,
    /// The half of `STEER_TABLE` in use.
    half: u32,
    /// Set by [`Steering::refuse_new`]: the table is not put back when workers come and go.
    refusing: bool,
}

impl Steering {
    /// Loads the program (needs CAP_BPF) and sets the seed; no worker is live yet.
    pub fn load(configured: usize, seed: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            configured as u32 <= MAX_WORKERS,
            "at most {MAX_WORKERS} workers"
        );
        anyhow::ensure!(maglev::table_size_for(configured) <= STEER_TABLE_MAX);
        let mut ebpf = crate::load_object(crate::STEER_OBJECT).context("loading weir-steer")?;
        let prog: &mut SkReuseport = ebpf
            .program_mut(steer::PROGRAM)
            .context("weir_steer missing from the object")?
            .try_into()?;
        prog.load()
            .context("the kernel refused the SK_REUSEPORT program")?;
        let mut s = Steering {
            ebpf,
            configured,
            seed,
            half: 0,
            refusing: false,
        };
        s.write_config(0, 0)?;
        Ok(s)
    }

    fn write_config(&mut self, size: u32, half: u32) -> anyhow::Result<()> {
        self.write_table_word(SteerConfig::pack(size, half))
    }

    /// Shutting down: every new connection to a steered listener is refused from now on (RST to
    /// its SYN); connections already queued stay for the workers to accept.
    pub fn refuse_new(&mut self) -> anyhow::Result<()> {
        self.refusing = true;
        self.write_table_word(SteerConfig::REFUSE)
    }

    fn write_table_word(&mut self, table: u32) -> anyhow::Result<()> {
        let mut cfg: Array<_, SteerConfig> = Array::try_from(
            self.ebpf
                .map_mut(steer::STEER_CONFIG)
                .context("STEER_CONFIG")?,
        )?;
        cfg.set(
            0,
            SteerConfig {
                table,
                seed: self.seed,
            },
            0,
        )?;
        Ok(())
    }

    /// Puts every socket in the array and attaches the program to each listener's group.
    pub fn attach(&mut self, groups: &[ListenerGroup]) -> anyhow::Result<()> {
        {
            let mut listeners: Array<_, u32> = Array::try_from(
                self.ebpf
                    .map_mut(steer::STEER_LISTENERS)
                    .context("STEER_LISTENERS")?,
            )?;
            for g in groups {
                listeners.set(u32::from(g.addr.port()), g.slot as u32 + 1, 0)?;
            }
        }
        {
            let mut sockets = ReusePortSockArray::try_from(
                self.ebpf
                    .map_mut(steer::STEER_SOCKETS)
                    .context("STEER_SOCKETS")?,
            )?;
            for g in groups {
                anyhow::ensure!(
                    (g.slot as u32) < MAX_LISTENERS,
                    "at most {MAX_LISTENERS} listeners are steered"
                );
                for (w, s) in g.sockets.iter().enumerate() {
                    sockets.set(g.slot as u32 * MAX_WORKERS + w as u32, s, 0)?;
                }
            }
        }
        let prog: &SkReuseport = self
            .ebpf
            .program(steer::PROGRAM)
            .context("weir_steer")?
            .try_into()?;
        for g in groups {
            if let Some(first) = g.sockets.first() {
                prog.attach(first.as_fd())
                    .with_context(|| format!("attaching weir_steer to {}", g.addr))?;
            }
        }
        Ok(())
    }

    /// A listener added by a reload: its sockets in the array at its slot, the program on its
    /// group, then its port steered.
    pub fn add_group(&mut self, g: &ListenerGroup) -> anyhow::Result<()> {
        self.attach(std::slice::from_ref(g))
    }

    /// A listener removed by a reload: new connections to its port are refused from now on
    /// (RST to the SYN) while the workers take what is queued on its sockets and close them.
    pub fn refuse_port(&mut self, port: u16) -> anyhow::Result<()> {
        let mut listeners: Array<_, u32> = Array::try_from(
            self.ebpf
                .map_mut(steer::STEER_LISTENERS)
                .context("STEER_LISTENERS")?,
        )?;
        listeners.set(u32::from(port), steer::LISTENER_REFUSE, 0)?;
        Ok(())
    }

    /// Puts `socket` in the array as worker `worker`'s socket of the listener in steering slot
    /// `listener`.
    pub fn set_socket(
        &mut self,
        listener: usize,
        worker: usize,
        socket: &socket2::Socket,
    ) -> anyhow::Result<()> {
        let mut sockets = ReusePortSockArray::try_from(
            self.ebpf
                .map_mut(steer::STEER_SOCKETS)
                .context("STEER_SOCKETS")?,
        )?;
        sockets.set(listener as u32 * MAX_WORKERS + worker as u32, socket, 0)?;
        Ok(())
    }

    /// Rebuilds the table over `live` into the idle half, then flips to it in one store.
    pub fn set_live(&mut self, live: &[u32]) -> anyhow::Result<()> {
        if self.refusing {
            return Ok(());
        }
        let Some((size, t)) = table(live, self.configured, self.seed) else {
            // No live worker: the kernel's own choice, until one comes back.
            return self.write_config(0, self.half);
        };
        let next = self.half ^ 1;
        {
            let mut arr: Array<_, u32> = Array::try_from(
                self.ebpf
                    .map_mut(steer::STEER_TABLE)
                    .context("STEER_TABLE")?,
            )?;
            for (slot, w) in t.iter().enumerate() {
                arr.set(next * STEER_TABLE_MAX + slot as u32, *w, 0)?;
            }
        }
        self.write_config(size, next)?;
        self.half = next;
        Ok(())
    }

    /// The `steer_probe` XDP program (loaded on first use): for tests that hold the kernel's
    /// hash and table lookup to `owner()` through `BPF_PROG_TEST_RUN`.
    pub fn probe(&mut self) -> anyhow::Result<&mut aya::programs::Xdp> {
        let prog: &mut aya::programs::Xdp = self
            .ebpf
            .program_mut("steer_probe")
            .context("steer_probe missing from the object")?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()?;
        }
        Ok(prog)
    }

    /// Counters by `SteerStat`, summed over CPUs.
    pub fn counters(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(steer::STEER_STATS).context("STEER_STATS")?)?;
        SteerStat::ALL
            .iter()
            .map(|s| Ok((s.name(), m.get(&(*s as u32), 0)?.iter().sum())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_size_is_fixed_by_the_configured_count() {
        let (a, _) = table(&[0, 1, 2, 3], 4, 7).unwrap();
        let (b, _) = table(&[0, 2, 3], 4, 7).unwrap();
        assert_eq!(a, b);
        assert!(table(&[], 4, 7).is_none());
    }

    #[test]
    fn owners_are_live_and_move_only_from_the_dead() {
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let s: IpAddr = "10.0.0.2".parse().unwrap();
        let mut moved_from_live = 0;
        for port in 10_000..12_000u16 {
            let all = owner(&[0, 1, 2, 3], 4, 9, (c, port), (s, 80)).unwrap();
            let without_2 = owner(&[0, 1, 3], 4, 9, (c, port), (s, 80)).unwrap();
            assert_ne!(without_2, 2);
            if all != 2 && all != without_2 {
                moved_from_live += 1;
            }
        }
        // Maglev's extra disruption at M = 509, N = 4 is a few % of slots at most.
        assert!(
            moved_from_live < 2_000 * 8 / 100,
            "{moved_from_live} flows of live workers moved"
        );
    }
}
