//! The tour's steps, in order. Each prints what it does and what it saw; `weir top --once`
//! shows the daemon's own view after each.

use std::{
    collections::BTreeMap,
    io::Read as _,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use weir_tests::lab::{Ns, output};

use super::{
    Options, check, pause,
    world::{BACKEND_PORT, BACKENDS, PORT, VIP, Weir, World},
};

fn step(n: u32, title: &str) -> anyhow::Result<()> {
    check()?;
    println!("\n== {n}/7  {title}");
    Ok(())
}

/// `weir top --once` (rates over 1 s), printed as it is.
fn frame(weir: &Weir) -> anyhow::Result<()> {
    check()?;
    let out = weir.cli(
        &["top", "--once", "--interval", "1", "--iface", &weir.iface],
        Duration::from_secs(20),
    )?;
    println!("---- weir top --once --iface {}\n{out}----", weir.iface);
    Ok(())
}

/// What `curl` got for a batch of requests.
#[derive(Default, Debug)]
struct Answers {
    /// Status code → count (`000`: no answer).
    codes: BTreeMap<String, usize>,
    /// `backend N` → count.
    backends: BTreeMap<String, usize>,
}

impl Answers {
    fn ok(&self) -> usize {
        self.codes.get("200").copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.codes.values().sum()
    }
    fn add(&mut self, o: Answers) {
        for (k, v) in o.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in o.backends {
            *self.backends.entry(k).or_default() += v;
        }
    }
    fn show(&self) -> String {
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(c, n)| format!("{n} × {c}"))
            .collect();
        let by: Vec<String> = self
            .backends
            .iter()
            .map(|(b, n)| format!("{b}: {n}"))
            .collect();
        format!("{} (answered by {})", codes.join(", "), by.join(", "))
    }
}

/// `n` requests from the client with one curl (URL globbing), each answer's status and body.
fn curl(client: &Ns, n: usize) -> anyhow::Result<Answers> {
    check()?;
    let url = format!("http://{VIP}:{PORT}/?n=[1-{n}]");
    let mut c = client.command("curl");
    c.args(["-s", "-m", "5", "-w", "%{http_code}\\n", &url]);
    let out = output(&mut c, Duration::from_secs(120))?;
    let mut a = Answers::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.len() == 3 && line.bytes().all(|b| b.is_ascii_digit()) {
            *a.codes.entry(line.to_string()).or_default() += 1;
        } else if line.starts_with("backend ") {
            *a.backends.entry(line.to_string()).or_default() += 1;
        }
    }
    ensure!(a.total() == n, "curl: {} answers of {n}: {a:?}", a.total());
    Ok(a)
}

/// A target's (state, reason) in `weir targets health`.
fn target_state(weir: &Weir, ip: &str) -> anyhow::Result<(String, String)> {
    let h = weir.json(&["targets", "health"])?;
    let t = h["target_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["targets"].as_array().into_iter().flatten())
        .find(|t| t["id"] == ip)
        .with_context(|| format!("no target {ip} in {h}"))?;
    Ok((
        t["state"].as_str().unwrap_or("?").into(),
        t["reason"].as_str().unwrap_or("").into(),
    ))
}

/// Polls `ip`'s health until it is `want` (≤ `timeout`), sending `per_poll` requests each
/// poll; returns the time it took and what the requests got.
fn until_state(
    weir: &Weir,
    client: &Ns,
    ip: &str,
    want: &str,
    per_poll: usize,
    timeout: Duration,
) -> anyhow::Result<(Duration, String, Answers)> {
    let t0 = Instant::now();
    let mut answers = Answers::default();
    loop {
        let (state, reason) = target_state(weir, ip)?;
        if state == want {
            return Ok((t0.elapsed(), reason, answers));
        }
        if t0.elapsed() > timeout {
            bail!("{ip} still {state} ({reason}) after {timeout:?}, not {want}");
        }
        answers.add(curl(client, per_poll)?);
        pause(Duration::from_millis(500))?;
    }
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    step(1, "the configuration: examples/demo.toml")?;
    let check_out = {
        let mut c = std::process::Command::new(&o.weir);
        c.arg("check").arg("--config").arg(&o.config);
        output(&mut c, Duration::from_secs(20))?
    };
    ensure!(
        check_out.status.success(),
        "weir check: {}",
        String::from_utf8_lossy(&check_out.stderr)
    );
    print!("weir check: {}", String::from_utf8_lossy(&check_out.stdout));

    step(
        2,
        "the lab: network namespaces, veths, three python3 backends",
    )?;
    let mut world = World::build()?;
    println!(
        "lab {}: namespaces {}",
        world.lab.id(),
        world.namespaces().join(", ")
    );
    println!(
        "  client 10.90.0.2 --veth-- weir {VIP} on {} (XDP)  10.91.0.1 --veth-- backends {} :{BACKEND_PORT}",
        world.iface.name(),
        BACKENDS.join(", ")
    );

    step(3, "weir run --iface … --config examples/demo.toml")?;
    let mut weir = Weir::start(&o.weir, &world, &o.config)?;
    let t0 = Instant::now();
    weir_tests::lab::wait_until(Duration::from_secs(30), "weir to run", || {
        if !weir.is_running() {
            bail!("weir exited:\n{}", weir.log().join("\n"));
        }
        let Ok(s) = weir.json(&["status"]) else {
            return Ok(false);
        };
        Ok(s["workers"]["running"] == 2 && s["xdp"][0]["iface"] == weir.iface.as_str())
    })?;
    let s = weir.json(&["status"])?;
    println!(
        "weir pid {}: XDP {} on {}, {} workers, generation {} ({:.1} s)",
        s["pid"],
        s["xdp"][0]["mode"].as_str().unwrap_or("?"),
        weir.iface,
        s["workers"]["running"],
        s["generation"],
        t0.elapsed().as_secs_f64()
    );
    for ip in BACKENDS {
        until_state(
            &weir,
            &world.client,
            ip,
            "healthy",
            0,
            Duration::from_secs(30),
        )?;
    }
    println!(
        "targets {} healthy {:.1} s after the start (2 checks 5 s apart)",
        BACKENDS.join(", "),
        t0.elapsed().as_secs_f64()
    );
    frame(&weir)?;

    step(4, "traffic: curl, then wrk")?;
    let n = if o.quick { 100 } else { 300 };
    let a = curl(&world.client, n)?;
    println!("curl: {n} requests: {}", a.show());
    ensure!(a.ok() == n, "not every request was answered 200: {a:?}");
    let secs = if o.quick { 2 } else { 5 };
    let mut c = world.client.command("wrk");
    c.args(["-t1", "-c8", &format!("-d{secs}s")])
        .arg(format!("http://{VIP}:{PORT}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut wrk = world.client.spawn_command(c)?;
    pause(Duration::from_millis(500))?;
    frame(&weir)?;
    let status = wrk
        .wait_timeout(Duration::from_secs(secs + 10))?
        .context("wrk did not finish")?;
    let mut text = String::new();
    if let Some(mut out) = wrk.child_mut().stdout.take() {
        out.read_to_string(&mut text)?;
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(str::trim)
        .unwrap_or("?");
    println!("wrk -t1 -c8 -d{secs}s: {rps} requests/s ({status})");

    step(5, "a SYN flood: hping3 with spoofed sources, bounded")?;
    flood(o, &weir, &world)?;

    step(6, "a backend dies and comes back")?;
    world.kill_backend(1)?;
    println!("backend 2 ({}) killed (SIGKILL)", BACKENDS[1]);
    let (took, reason, during) = until_state(
        &weir,
        &world.client,
        BACKENDS[1],
        "unhealthy",
        10,
        Duration::from_secs(40),
    )?;
    println!(
        "{} unhealthy after {:.1} s ({reason}); requests meanwhile: {}",
        BACKENDS[1],
        took.as_secs_f64(),
        during.show()
    );
    let a = curl(&world.client, 30)?;
    println!("30 requests now: {}", a.show());
    ensure!(
        !a.backends.contains_key("backend 2"),
        "an unhealthy target got requests: {a:?}"
    );
    frame(&weir)?;
    world.start_backend(1)?;
    println!("backend 2 restarted");
    let (took, _, _) = until_state(
        &weir,
        &world.client,
        BACKENDS[1],
        "healthy",
        0,
        Duration::from_secs(40),
    )?;
    println!(
        "{} healthy again after {:.1} s",
        BACKENDS[1],
        took.as_secs_f64()
    );
    let a = curl(&world.client, 30)?;
    println!("30 requests now: {}", a.show());
    frame(&weir)?;

    step(7, "teardown")?;
    let st = weir.stop()?;
    let shown = world.iface.show()?;
    ensure!(
        !shown.contains("prog/xdp"),
        "XDP still attached after weir exited: {shown}"
    );
    let pins = lb_userspace::xdp::pins::dir_for(&weir.id);
    ensure!(!pins.exists(), "{} left after weir exited", pins.display());
    println!("weir stopped by SIGINT ({st}): workers drained, XDP detached, pins removed");
    ensure!(
        st.success(),
        "weir exited with {st}:\n{}",
        weir.log().join("\n")
    );
    let names = world.namespaces();
    drop(weir);
    drop(world);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()?;
    let left = String::from_utf8_lossy(&left.stdout);
    ensure!(
        names.iter().all(|n| !left.contains(n.as_str())),
        "namespaces left: {left}"
    );
    println!(
        "removed: namespaces {}, their veths and processes",
        names.join(", ")
    );
    Ok(())
}

/// hping3 SYNs from random sources at the VIP while weir's auto mode turns cookies on; a few
/// real requests during it; cookies off again after it.
fn flood(o: &Options, weir: &Weir, world: &World) -> anyhow::Result<()> {
    let have = std::process::Command::new("hping3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        println!("skipped: hping3 is not installed (apt-get install hping3)");
        return Ok(());
    }
    let count = if o.quick { 30_000 } else { 60_000 };
    let mut c = world.client.command("hping3");
    c.args(["-q", "-S", "-p", &PORT.to_string(), "--rand-source"])
        .args(["-c", &count.to_string(), "-i", "u50", VIP]);
    println!("hping3 -S --rand-source -c {count} -i u50 {VIP} -p {PORT}");
    let t0 = Instant::now();
    let hping = std::thread::spawn(move || output(&mut c, Duration::from_secs(60)));
    pause(Duration::from_millis(500))?;
    let shown = frame(weir);
    let during = curl(&world.client, 20);
    let out = hping
        .join()
        .map_err(|_| anyhow::anyhow!("the hping3 thread panicked"))??;
    shown?;
    let during = during?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let sent = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .trim()
        .to_string();
    println!(
        "hping3 done in {:.1} s: {sent} (the SYN-ACKs go to the spoofed sources: hping3 hears few)",
        t0.elapsed().as_secs_f64()
    );
    println!("20 real requests during the flood: {}", during.show());
    ensure!(
        during.ok() == 20,
        "requests failed under the flood: {during:?}"
    );
    let stats = weir.cli(
        &["stats", "--json", "--interval", "0", "--iface", &weir.iface],
        Duration::from_secs(10),
    )?;
    let v: Value = serde_json::from_str(&stats)?;
    let syn = &v["vips"][0]["syn"];
    println!(
        "SYN defence on {VIP}:{PORT}: {} SYNs seen, {} answered from XDP with a cookie (the \
         others came before auto mode turned cookies on, or were left to the kernel), {} cookie \
         ACKs valid",
        syn["syn_seen"], syn["cookies_sent"], syn["cookie_acks_valid"]
    );
    let t1 = Instant::now();
    weir_tests::lab::wait_until(Duration::from_secs(15), "cookies to go off", || {
        check()?;
        let s = weir.cli(
            &["stats", "--json", "--interval", "0", "--iface", &weir.iface],
            Duration::from_secs(10),
        )?;
        let v: Value = serde_json::from_str(&s)?;
        Ok(v["vips"][0]["syn"]["cookies"] == false)
    })?;
    println!(
        "cookies off again {:.1} s after the flood (below 500 SYN/s for 2 s)",
        t1.elapsed().as_secs_f64()
    );
    frame(weir)
}
