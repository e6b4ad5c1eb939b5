//! The demo's lab: three namespaces wired by two veths, three python3 backends, and weir in the
//! middle — all of it removed when dropped ([`weir_tests::lab::Lab`]), weir first and cleanly.
//!
//! ```text
//!  <lab>-client            <lab>-weir                                  <lab>-backends
//!  10.90.0.2/24 ──veth── 10.90.0.1/24 (XDP, :8080)  10.91.0.1/24 ──veth── 10.91.0.11, .12, .13 :8000
//! ```

use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use weir_tests::lab::{Iface, Lab, Ns, Proc, wait_until};

pub const VIP: &str = "10.90.0.1";
pub const PORT: u16 = 8080;
pub const BACKENDS: [&str; 3] = ["10.91.0.11", "10.91.0.12", "10.91.0.13"];
pub const BACKEND_PORT: u16 = 8000;

/// The namespaces, links and backends. Dropping it removes them (processes, XDP, veths,
/// namespaces, pins).
pub struct World {
    /// Backend processes (`None` while killed). Declared before the lab: dropped first.
    backends: Vec<Option<Proc>>,
    dir: PathBuf,
    pub client: Ns,
    pub lb: Ns,
    pub servers: Ns,
    /// weir's interface (its end of the client veth).
    pub iface: Iface,
    pub lab: Lab,
}

impl World {
    pub fn build() -> anyhow::Result<World> {
        let lab = Lab::new()?;
        let client = lab.add_ns("client")?;
        let lb = lab.add_ns("weir")?;
        let servers = lab.add_ns("backends")?;
        let (c0, w0) = lab.veth(&client, &lb)?;
        c0.addr("10.90.0.2/24")?;
        w0.addr(&format!("{VIP}/24"))?;
        let (w1, b0) = lab.veth(&lb, &servers)?;
        w1.addr("10.91.0.1/24")?;
        for b in BACKENDS {
            b0.addr(&format!("{b}/24"))?;
        }
        // weir detaches its program itself; the lab makes sure of it.
        w0.track_xdp();
        let dir = std::env::temp_dir().join(format!("weir-demo-{}", lab.id()));
        let mut w = World {
            backends: Vec::new(),
            dir,
            client,
            lb,
            servers,
            iface: w0,
            lab,
        };
        for i in 0..BACKENDS.len() {
            let d = w.dir.join(format!("backend{}", i + 1));
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("index.html"), format!("backend {}\n", i + 1))?;
            w.backends.push(None);
            w.start_backend(i)?;
        }
        Ok(w)
    }

    /// `python3 -m http.server` on backend `i`'s address, answering `backend N`.
    pub fn start_backend(&mut self, i: usize) -> anyhow::Result<()> {
        let d = self.dir.join(format!("backend{}", i + 1));
        let mut c = self.servers.command("python3");
        c.args(["-m", "http.server", "--bind", BACKENDS[i], "--directory"])
            .arg(&d)
            .arg(BACKEND_PORT.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut p = self.servers.spawn_command(c)?;
        let addr = format!("{}:{BACKEND_PORT}", BACKENDS[i]);
        wait_until(Duration::from_secs(10), "a backend to listen", || {
            if !p.is_running() {
                bail!("python3 -m http.server on {addr} exited");
            }
            let ss = self.servers.exec(&["ss", "-Hltn", "src", &addr])?;
            Ok(!ss.trim().is_empty())
        })?;
        self.backends[i] = Some(p);
        Ok(())
    }

    /// Kills backend `i` (SIGKILL: the way a crashed host disappears).
    pub fn kill_backend(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut p) = self.backends[i].take() {
            p.kill()?;
        }
        Ok(())
    }

    /// `ip netns` names of the lab's namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        [&self.client, &self.lb, &self.servers]
            .iter()
            .filter_map(|n| n.netns().map(str::to_string))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `weir ARGS` in weir's namespace but the host's mount namespace (`nsenter --net`, not
/// `ip netns exec`, which remounts /sys): its pins and admin socket are where `weir top` looks.
pub fn weir_command(bin: &Path, lb: &Ns) -> Command {
    let mut c = Command::new("nsenter");
    if let Some(n) = lb.netns() {
        c.arg(format!("--net=/run/netns/{n}"));
    }
    c.arg("--").arg(bin);
    c
}

/// `weir run` in the lab. Dropping it stops weir with SIGINT (drain, detach, pins removed) and
/// waits; SIGKILL only if it has not exited after 20 s.
pub struct Weir {
    proc: Proc,
    log: Arc<Mutex<Vec<String>>>,
    pub bin: PathBuf,
    pub iface: String,
    /// The interface as weir names its files (pins, lock, socket).
    pub id: lb_userspace::iface_id::IfaceId,
    lb: Ns,
}

impl Weir {
    pub fn start(bin: &Path, w: &World, config: &Path) -> anyhow::Result<Weir> {
        let iface = w.iface.name().to_string();
        // weir names its files by the interface and its network namespace (the lab's `lb`).
        let netns = w.lb.netns().context("weir's namespace")?;
        let ino = std::fs::metadata(format!("/run/netns/{netns}"))?.ino();
        let id = lb_userspace::iface_id::IfaceId::in_netns(&iface, ino);
        // Should weir die without cleaning up, the lab removes its pins, lock and socket.
        let run_dir = Path::new(lb_userspace::xdp::pins::LOCK_ROOT);
        w.lab.track_pin(lb_userspace::xdp::pins::dir_for(&id));
        w.lab.track_pin(run_dir.join(format!("{}.lock", id.stem())));
        w.lab.track_pin(run_dir.join(format!("{}.sock", id.stem())));
        let mut c = weir_command(bin, &w.lb);
        c.args(["run", "--iface", &iface, "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = w.lb.spawn_command(c)?;
        let err = proc.child_mut().stderr.take().context("weir's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Ok(Weir {
            proc,
            log,
            bin: bin.to_path_buf(),
            iface,
            id,
            lb: w.lb.clone(),
        })
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// weir's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `weir ARGS` (a CLI verb on this daemon), bounded; its stdout, or why it failed.
    pub fn cli(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let mut c = weir_command(&self.bin, &self.lb);
        c.args(args);
        let out = weir_tests::lab::output(&mut c, timeout)?;
        if !out.status.success() {
            bail!(
                "weir {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `weir … --json --iface IF`, parsed.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["--json", "--iface", &self.iface]);
        let out = self.cli(&a, Duration::from_secs(10))?;
        serde_json::from_str(&out).with_context(|| format!("weir {args:?}: not JSON: {out}"))
    }

    /// SIGINT and the exit status (≤ 20 s).
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.proc.wait_timeout(Duration::ZERO)? {
            return Ok(s);
        }
        let pid = nix::unistd::Pid::from_raw(self.proc.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
        let t0 = std::time::Instant::now();
        match self.proc.wait_timeout(Duration::from_secs(40))? {
            Some(s) => {
                println!(
                    "weir exited {:.1} s after SIGINT",
                    t0.elapsed().as_secs_f64()
                );
                Ok(s)
            }
            None => {
                let log = self.log();
                let tail = log[log.len().saturating_sub(20)..].join("\n");
                bail!("weir did not exit within 40 s of SIGINT; its last lines:\n{tail}")
            }
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("demo: {e}; killing it");
        }
    }
}
