//! The control plane's worker processes as `/proc` shows them: its children whose command line is
//! `weir worker --index N`. Read from the kernel rather than the supervisor's table so that
//! `weir status` reports what runs, whatever the supervisor believes.

use std::path::Path;

use super::model::WorkerProcess;

/// The parent pid in a `/proc/PID/stat` line (field 4).
pub fn ppid_of(stat: &str) -> Option<u32> {
    crate::proc_stat::field(stat, 4)?.parse().ok()
}

/// `N` of a NUL-separated command line `… worker --index N …`.
pub fn worker_index(cmdline: &[u8]) -> Option<usize> {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let w = args.iter().position(|a| *a == b"worker")?;
    let i = args[w..].iter().position(|a| *a == b"--index")? + w;
    std::str::from_utf8(args.get(i + 1)?).ok()?.parse().ok()
}

/// The worker processes whose parent is `parent`, by index.
pub fn workers_of(parent: u32) -> Vec<WorkerProcess> {
    workers_in(Path::new("/proc"), parent)
}

fn workers_in(proc: &Path, parent: u32) -> Vec<WorkerProcess> {
    let mut out: Vec<WorkerProcess> = live_processes(proc)
        .filter(|p| ppid_of(&p.stat) == Some(parent))
        .filter_map(|p| {
            Some(WorkerProcess {
                index: worker_index(&p.cmdline()?)?,
                pid: p.pid,
                report_age_ms: None,
            })
        })
        .collect();
    out.sort_by_key(|w| (w.index, w.pid));
    out
}

/// A process `/proc` lists, with its `stat` line.
struct Process {
    pid: u32,
    stat: String,
    dir: std::path::PathBuf,
}

impl Process {
    fn cmdline(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("cmdline")).ok()
    }
}

/// The processes under `proc` that have not exited (zombies left out).
fn live_processes(proc: &Path) -> impl Iterator<Item = Process> {
    std::fs::read_dir(proc)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            (stat_state(&stat)? != 'Z').then(|| Process {
                pid,
                stat,
                dir: e.path(),
            })
        })
}

/// Whether a NUL-separated command line is a weir daemon's: a program named `weir…` (the
/// binary may be renamed `weir-1.2` and so on) whose subcommand is `run`.
pub fn is_daemon(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|b| *b == 0);
    let Some(prog) = args.next() else {
        return false;
    };
    let name = prog.rsplit(|b| *b == b'/').next().unwrap_or(prog);
    name.starts_with(b"weir") && args.next() == Some(b"run".as_slice())
}

/// The pids of the weir daemons (`weir run`) running on the host, whatever their admin
/// socket: `weir stats` tells an L7-only daemon (no pinned maps) from none at all.
pub fn daemons() -> Vec<u32> {
    daemons_in(Path::new("/proc"))
}

fn daemons_in(proc: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = live_processes(proc)
        .filter(|p| p.cmdline().is_some_and(|c| is_daemon(&c)))
        .map(|p| p.pid)
        .collect();
    out.sort_unstable();
    out
}

/// The state letter (`R`, `S`, `Z`, …): a zombie has exited.
fn stat_state(stat: &str) -> Option<char> {
    crate::proc_stat::field(stat, 3)?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "4242 (we ir) (x)) S 17 4242 4242 0 -1";
        assert_eq!(ppid_of(stat), Some(17));
        assert_eq!(stat_state(stat), Some('S'));
        assert_eq!(ppid_of("garbage"), None);
    }

    #[test]
    fn the_index_comes_from_the_worker_command_line() {
        assert_eq!(
            worker_index(b"/usr/bin/weir\0worker\0--index\x003\0--config\0/etc/w.toml\0"),
            Some(3)
        );
        assert_eq!(worker_index(b"/usr/bin/weir\0run\0--index\x003\0"), None);
        assert_eq!(worker_index(b"/usr/bin/weir\0worker\0--index\0"), None);
    }

    #[test]
    fn a_daemon_is_a_weir_program_running_run() {
        assert!(is_daemon(b"/usr/bin/weir\0run\0--config\0/etc/weir.toml\0"));
        assert!(is_daemon(b"/work/notes/weir-s29base\0run\0"));
        assert!(!is_daemon(b"/usr/bin/weir\0worker\0--index\x000\0"));
        assert!(!is_daemon(b"/usr/bin/weir\0stats\0"));
        assert!(!is_daemon(b"/usr/bin/python3\0run\0"));
        assert!(!is_daemon(b""));
        let dir = std::env::temp_dir().join(format!("weir-daemons-{}", std::process::id()));
        for (pid, stat, cmd) in [
            (
                "20",
                "20 (weir) S 1 1",
                &b"weir\0run\0--config\0w.toml\0"[..],
            ),
            (
                "21",
                "21 (weir) S 20 1",
                &b"weir\0worker\0--index\x000\0"[..],
            ),
            ("22", "22 (weir) Z 1 1", &b"weir\0run\0"[..]),
            ("23", "23 (weir) S 1 1", &b"weir\0stats\0"[..]),
        ] {
            let d = dir.join(pid);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("cmdline"), cmd).unwrap();
        }
        assert_eq!(daemons_in(&dir), [20]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_live_children_running_a_worker_are_listed() {
        let dir = std::env::temp_dir().join(format!("weir-procs-{}", std::process::id()));
        let mk = |pid: &str, stat: &str, cmd: &[u8]| {
            let d = dir.join(pid);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("cmdline"), cmd).unwrap();
        };
        mk("11", "11 (weir) S 10 1", b"weir\0worker\0--index\x001\0");
        mk("12", "12 (weir) S 10 1", b"weir\0worker\0--index\x000\0");
        mk("13", "13 (weir) Z 10 1", b"weir\0worker\0--index\x002\0");
        mk("14", "14 (weir) S 99 1", b"weir\0worker\0--index\x003\0");
        mk("15", "15 (sh) S 10 1", b"sh\0-c\0true\0");
        let got = workers_in(&dir, 10);
        assert_eq!(
            got,
            [
                WorkerProcess {
                    index: 0,
                    pid: 12,
                    report_age_ms: None
                },
                WorkerProcess {
                    index: 1,
                    pid: 11,
                    report_age_ms: None
                }
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
