//! End to end: the real `weir run` attached to a veth in a namespace lab, real TCP clients and a
//! real server, counters read back through `weir stats`. Needs root (CI runs as root).

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};
use common::*;
use weir_tests::lab::{Lab, Ns, wait_until};

const CLIENT: &str = "10.77.0.1";
const DENIED: &str = "10.77.0.3";
const VIP: &str = "10.77.0.2";
const PORT: u16 = 8080;

fn config() -> TempFile {
    TempFile::new(
        "e2e.toml",
        &format!(
            "[[vip]]\naddress = \"{VIP}\"\nport = {PORT}\n\n[deny]\nsources = [\"{DENIED}/32\"]\n"
        ),
    )
}

struct Setup {
    lab: Lab,
    client: Ns,
    server: Ns,
    c0: weir_tests::lab::Iface,
    s0: weir_tests::lab::Iface,
}

fn setup() -> Result<Setup> {
    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let server = lab.add_ns("server")?;
    let (c0, s0) = lab.veth(&client, &server)?;
    c0.addr(&format!("{CLIENT}/24"))?
        .addr(&format!("{DENIED}/24"))?;
    s0.addr(&format!("{VIP}/24"))?;
    Ok(Setup {
        lab,
        client,
        server,
        c0,
        s0,
    })
}

/// `weir run --iface s0 --config CFG --no-l7 EXTRA…` to completion: (succeeded, stderr).
fn run_once(s: &Setup, cfg: &TempFile, extra: &[&str]) -> Result<(bool, String)> {
    let mut args = vec![
        "run",
        "--iface",
        s.s0.name(),
        "--config",
        cfg.path(),
        "--no-l7",
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = weir_once(&s.server, &args)?;
    Ok((ok, err))
}

/// A server that answers every connection with one line, on a thread in the server namespace.
fn echo_server(server: &Ns) -> Result<()> {
    echo_server_on(server, VIP)
}

/// [`echo_server`] on `address` (`0.0.0.0`: every address the namespace has, now or later).
fn echo_server_on(server: &Ns, address: &str) -> Result<()> {
    let listener = server.in_ns(|| TcpListener::bind((address, PORT)))??;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut c = conn;
            let mut buf = [0u8; 64];
            if let Ok(n) = c.read(&mut buf) {
                let _ = c.write_all(&buf[..n]);
            }
        }
    });
    Ok(())
}

/// One request/response from `from` to the VIP; Err when the connection fails.
fn request(client: &Ns, from: &str) -> Result<()> {
    request_to(client, from, VIP)
}

/// One request/response from `from` to `to`; Err when the connection fails.
fn request_to(client: &Ns, from: &str, to: &str) -> Result<()> {
    client.in_ns(|| -> Result<()> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::new(from.parse()?, 0).into())?;
        sock.connect_timeout(
            &SocketAddr::new(to.parse()?, PORT).into(),
            Duration::from_secs(2),
        )?;
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        anyhow::ensure!(&buf == b"ping", "bad echo");
        Ok(())
    })?
}

#[test]
fn vip_traffic_is_counted_and_denied_sources_fail() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    echo_server(&s.server)?;
    let mut weir = start_weir(&s.server, &s.s0, &["--config", cfg.path(), "--no-l7"])?;
    let before_segs = s.server.counters()?.get("TcpInSegs");
    let before = stats(&s.server, &s.s0)?;

    const N: usize = 50;
    for i in 0..N {
        request(&s.client, CLIENT).map_err(|e| anyhow::anyhow!("request {i} failed: {e}"))?;
    }
    let denied = request(&s.client, DENIED);
    assert!(denied.is_err(), "a deny-listed source must not connect");

    // The last ACK/FIN exchanges may still be in flight.
    std::thread::sleep(Duration::from_millis(300));
    let after = stats(&s.server, &s.s0)?;
    let segs = s.server.counters()?.get("TcpInSegs") - before_segs;
    let vip_pkts = packets(&after, "pass_vip") - packets(&before, "pass_vip");
    assert!(
        vip_pkts >= 5 * N as u64,
        "{vip_pkts} VIP packets for {N} connections"
    );
    // Every TCP segment the server's stack received came through weir's VIP path, and only those.
    assert_eq!(
        vip_pkts as i64, segs,
        "XDP VIP counter vs the server's TcpInSegs"
    );
    let vip0 = &after["vips"][0];
    assert_eq!(vip0["address"], VIP);
    assert_eq!(vip0["port"], PORT);
    assert_eq!(
        vip0["packets"].as_u64().unwrap() - before["vips"][0]["packets"].as_u64().unwrap(),
        vip_pkts
    );
    // The denied client's SYN (and its retransmissions) were dropped in XDP.
    let denied_drops = packets(&after, "drop_denied") - packets(&before, "drop_denied");
    assert!(denied_drops >= 1, "denied SYNs: {denied_drops}");
    assert_eq!(packets(&after, "drop_malformed"), 0);

    assert!(interrupt(&mut weir)?, "weir exits 0 on SIGINT");
    assert!(!xdp_attached(&s.s0)?, "XDP detached after SIGINT");
    assert!(!pin_dir(&s.server, s.s0.name())?.exists(), "pins removed");
    // With weir gone the denied source connects: the drop was weir's doing.
    request(&s.client, DENIED)?;
    drop(s.lab);
    Ok(())
}

#[test]
fn sigkill_leaves_the_interface_usable_for_the_next_run() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    let mut weir = start_weir(&s.server, &s.s0, &["--config", cfg.path(), "--no-l7"])?;
    weir.kill()?;
    // The BPF link dies with the process: nothing stays attached.
    wait_until(
        Duration::from_secs(5),
        "XDP to go with the killed process",
        || Ok(!xdp_attached(&s.s0)?),
    )?;
    // What a daemon killed on an interface that is gone since left behind, named as this
    // version names them and as a weir before it did (`<iface>` alone).
    let gone = format!("{}gone", s.s0.name());
    let left = [
        (
            pin_dir(&s.server, &gone)?,
            iface_file(&s.server, &gone, ".lock")?,
        ),
        (
            format!("/sys/fs/bpf/weir/{gone}").into(),
            format!("/run/weir/{gone}.lock").into(),
        ),
    ];
    for (pins, lock) in &left {
        std::fs::create_dir_all(pins)?;
        std::fs::write(lock, "")?;
    }
    // Its pins are stale; the next run replaces them, removes the vanished one's, runs normally.
    let mut again = start_weir(&s.server, &s.s0, &["--config", cfg.path(), "--no-l7"])?;
    for (pins, lock) in &left {
        assert!(!pins.exists(), "{}", pins.display());
        assert!(!lock.exists(), "{}", lock.display());
    }
    let lock = iface_file(&s.server, s.s0.name(), ".lock")?;
    assert!(lock.exists(), "the daemon's lock {}", lock.display());
    stats(&s.server, &s.s0)?;
    assert!(interrupt(&mut again)?);
    assert!(!xdp_attached(&s.s0)?);
    assert!(!lock.exists());
    Ok(())
}

#[test]
fn refuses_an_occupied_interface_a_missing_one_and_a_second_daemon() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();

    let (ok, _, err) = weir_once(
        &s.server,
        &[
            "run",
            "--iface",
            "nosuch0",
            "--config",
            cfg.path(),
            "--no-l7",
        ],
    )?;
    assert!(
        !ok && err.contains("interface `nosuch0` does not exist"),
        "{err}"
    );

    let mut first = start_weir(&s.server, &s.s0, &["--config", cfg.path(), "--no-l7"])?;
    let (ok, err) = run_once(&s, &cfg, &[])?;
    assert!(!ok && err.contains("already running"), "{err}");
    assert!(interrupt(&mut first)?);

    // Someone else's XDP program on the interface.
    s.s0.attach_xdp_pass(weir_tests::lab::XdpMode::Native)?;
    let (ok, err) = run_once(&s, &cfg, &[])?;
    assert!(
        !ok && err.contains("already has an XDP program attached"),
        "{err}"
    );
    assert!(err.contains("--replace"), "{err}");
    Ok(())
}

#[test]
fn native_mode_explains_an_mtu_too_large_and_auto_falls_back() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    // veth checks the peer's MTU against the single-buffer limit.
    s.s0.mtu(9000)?;
    s.c0.mtu(9000)?;
    let (ok, err) = run_once(&s, &cfg, &["--xdp-mode", "native"])?;
    assert!(!ok, "native XDP on a 9000-byte MTU veth must fail");
    assert!(err.contains("MTU is 9000") && err.contains("3498"), "{err}");
    assert!(!xdp_attached(&s.s0)?);

    let mut weir = start_weir(
        &s.server,
        &s.s0,
        &["--config", cfg.path(), "--no-l7", "--xdp-mode", "auto"],
    )?;
    assert!(
        s.s0.show()?.contains("xdpgeneric"),
        "auto fell back to generic"
    );
    assert!(interrupt(&mut weir)?);
    Ok(())
}

#[test]
fn replace_takes_over_a_netlink_program_but_not_a_link_held_one() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    let obj = TempFile::with_bytes("bench.o", lb_userspace::BENCH_OBJECT);
    // Someone attached a program the old way (netlink), as `ip link set … xdp obj` does.
    s.server.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        s.s0.name(),
        "xdpgeneric",
        "obj",
        obj.path(),
        "program",
        "bare_pass",
    ])?;
    assert!(s.s0.show()?.contains("bare_pass"));
    let (ok, err) = run_once(&s, &cfg, &[])?;
    assert!(
        !ok && err.contains("bare_pass"),
        "names the program in the way: {err}"
    );

    let mut weir = start_weir(
        &s.server,
        &s.s0,
        &["--config", cfg.path(), "--no-l7", "--replace"],
    )?;
    wait_until(
        Duration::from_secs(10),
        "weir's program to replace the old one",
        || Ok(s.s0.show()?.contains("weir_xdp")),
    )?;
    let shown = s.s0.show()?;
    assert!(
        shown.contains("weir_xdp") && !shown.contains("bare_pass"),
        "{shown}"
    );
    assert!(interrupt(&mut weir)?);
    assert!(
        !xdp_attached(&s.s0)?,
        "weir detaches and does not restore someone else's program"
    );

    // A program held through a BPF link by a live process cannot be removed: weir says so.
    s.s0.attach_xdp_pass(weir_tests::lab::XdpMode::Native)?;
    let (ok, err) = run_once(&s, &cfg, &["--replace"])?;
    assert!(!ok && err.contains("BPF link"), "{err}");
    Ok(())
}

/// `weir run --no-l7` with `[[vip]] address = "interface"` and the deny-list, an echo server on
/// every address of the server's namespace (one added later too).
fn start_on_interface_addresses(s: &Setup) -> Result<(weir_tests::lab::Proc, TempFile)> {
    let cfg = TempFile::new(
        "e2e.toml",
        &format!(
            "[[vip]]\naddress = \"interface\"\nport = {PORT}\n\n[deny]\nsources = [\"{DENIED}/32\"]\n"
        ),
    );
    echo_server_on(&s.server, "0.0.0.0")?;
    let weir = start_weir(&s.server, &s.s0, &["--config", cfg.path(), "--no-l7"])?;
    Ok((weir, cfg))
}

/// Whether `weir stats --json` lists a VIP on `address`.
fn has_vip(stats: &serde_json::Value, address: &str) -> bool {
    stats["vips"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v["address"] == address))
}

/// The setup's veth made again under the same names (after it was deleted), no address on it.
fn veth_again(s: &Setup) -> Result<(weir_tests::lab::Iface, weir_tests::lab::Iface)> {
    s.lab
        .veth_named(&s.client, s.c0.name(), &s.server, s.s0.name())
}

/// The interface changed under a running weir, as an operator's tools change it: an address
/// added (a secondary address, DHCP, IPv6 autoconfiguration), then the veth deleted and made
/// again under the same names (a container's network made anew; a NIC driver reloaded makes
/// its interface anew the same way). The old weir kept the VIPs of its start, so the added
/// address was served with no deny-list (and no SYN defence) in front of it, and after the
/// device was made again no XDP program was on it at all, while weir ran on as if attached.
#[test]
fn an_added_address_becomes_a_vip_and_an_interface_made_again_gets_the_program_again() -> Result<()>
{
    if !Lab::root_required() {
        return Ok(());
    }
    const ADDED: &str = "10.77.0.9";
    let s = setup()?;
    let (mut weir, _cfg) = start_on_interface_addresses(&s)?;
    request(&s.client, CLIENT)?;
    assert!(request(&s.client, DENIED).is_err(), "denied before");

    // An address added while weir runs: a VIP within a moment, the deny-list in front of it.
    s.s0.addr(&format!("{ADDED}/24"))?;
    wait_until(
        Duration::from_secs(5),
        "the added address to be a VIP",
        || Ok(has_vip(&stats(&s.server, &s.s0)?, ADDED)),
    )?;
    request_to(&s.client, CLIENT, ADDED)?;
    assert!(
        request_to(&s.client, DENIED, ADDED).is_err(),
        "a deny-listed source must not reach an address added after the start"
    );

    // The veth deleted (from the client's side: both ends go), then made again.
    s.client.ip(&["link", "del", "dev", s.c0.name()])?;
    wait_until(
        Duration::from_secs(5),
        "weir to see the interface gone",
        || Ok(stats(&s.server, &s.s0)?["host"]["xdp_attached"] == false),
    )?;
    let (c0, s0) = veth_again(&s)?;
    c0.addr(&format!("{CLIENT}/24"))?
        .addr(&format!("{DENIED}/24"))?;
    s0.addr(&format!("{VIP}/24"))?;
    wait_until(
        Duration::from_secs(10),
        "XDP on the interface made again",
        || xdp_attached(&s0),
    )?;
    // The VIP follows the address made on the new device (the added one went with the old).
    wait_until(Duration::from_secs(5), "the VIPs of the new device", || {
        let st = stats(&s.server, &s0)?;
        Ok(has_vip(&st, VIP) && !has_vip(&st, ADDED))
    })?;
    request(&s.client, CLIENT)?;
    assert!(
        request(&s.client, DENIED).is_err(),
        "a deny-listed source must not connect through the interface made again"
    );
    let after = stats(&s.server, &s0)?;
    assert_eq!(after["host"]["xdp_attached"], true, "{after}");
    assert_eq!(after["host"]["xdp_reattached"], 1, "{after}");

    assert!(interrupt(&mut weir)?, "weir exits 0 on SIGINT");
    assert!(!xdp_attached(&s0)?, "XDP detached after SIGINT");
    Ok(())
}

/// An interface made again in a shape native XDP cannot take (a 9000-byte MTU on a veth) with
/// `--xdp-mode native`: the attach fails, said once, and is tried again; once the MTU is
/// lowered the program is on it.
#[test]
fn an_interface_made_again_that_refuses_native_xdp_gets_it_once_fixed() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    let log = TempFile::new("weir.log", "");
    let mut c = weir_command(&s.server);
    c.args([
        "run",
        "--iface",
        s.s0.name(),
        "--config",
        cfg.path(),
        "--no-l7",
    ])
    .args(["--xdp-mode", "native"])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log.0)?);
    let mut weir = s.server.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to attach XDP", || {
        xdp_attached(&s.s0)
    })?;
    s.client.ip(&["link", "del", "dev", s.c0.name()])?;
    // Made with the large MTU (set after, it races weir's attach, which then refuses it).
    let server_ns = s.server.netns().context("the server's namespace")?;
    s.client.ip(&[
        "link",
        "add",
        s.c0.name(),
        "mtu",
        "9000",
        "type",
        "veth",
        "peer",
        "name",
        s.s0.name(),
        "mtu",
        "9000",
        "netns",
        server_ns,
    ])?;
    let (c0, s0) = (s.client.iface(s.c0.name()), s.server.iface(s.s0.name()));
    c0.up()?;
    s0.up()?;
    let refused = "attaching weir's XDP program to it failed";
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        Ok(std::fs::read_to_string(&log.0)?.contains(refused))
    })?;
    // Tried again every 2 s meanwhile; said once.
    std::thread::sleep(Duration::from_secs(5));
    let said = std::fs::read_to_string(&log.0)?.matches(refused).count();
    assert_eq!(said, 1, "{}", std::fs::read_to_string(&log.0)?);
    assert!(!xdp_attached(&s0)?);
    s0.mtu(1500)?;
    c0.mtu(1500)?;
    wait_until(
        Duration::from_secs(10),
        "XDP on the fixed interface",
        || xdp_attached(&s0),
    )?;
    assert!(
        !s0.show()?.contains("xdpgeneric"),
        "attached natively, as asked"
    );
    assert!(interrupt(&mut weir)?, "weir exits 0 on SIGINT");
    assert!(!xdp_attached(&s0)?);
    Ok(())
}

/// The interface renamed while weir runs (`ip link set name`): the device, and weir's program
/// on it, stay; its addresses are still followed, under the new name — an IPv6 one too (as
/// autoconfiguration adds it).
#[test]
fn a_renamed_interface_keeps_the_program_and_its_addresses_are_followed() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    const ADDED6: &str = "fd77::9";
    let s = setup()?;
    let (mut weir, _cfg) = start_on_interface_addresses(&s)?;
    let renamed = s.server.iface(&format!("{}r", s.s0.name()));
    s.server.ip(&["link", "set", "dev", s.s0.name(), "down"])?;
    s.server
        .ip(&["link", "set", "dev", s.s0.name(), "name", renamed.name()])?;
    renamed.up()?;
    renamed.addr(&format!("{ADDED6}/64"))?;
    wait_until(
        Duration::from_secs(5),
        "the IPv6 address to be a VIP",
        || Ok(has_vip(&stats(&s.server, &s.s0)?, ADDED6)),
    )?;
    assert!(
        xdp_attached(&renamed)?,
        "the program stays on the renamed device"
    );
    wait_until(
        Duration::from_secs(5),
        "the client through the renamed device",
        || Ok(request(&s.client, CLIENT).is_ok()),
    )?;
    assert!(
        request(&s.client, DENIED).is_err(),
        "the deny-list still in front of the renamed device"
    );
    let st = stats(&s.server, &s.s0)?;
    assert_eq!(st["host"]["xdp_attached"], true, "{st}");
    assert_eq!(st["host"]["xdp_reattached"], 0, "{st}");
    assert!(interrupt(&mut weir)?, "weir exits 0 on SIGINT");
    assert!(!xdp_attached(&renamed)?, "detached from the renamed device");
    Ok(())
}

/// [`start_weir`] with [`weir_test_bin`] (`WEIR_TEST_BIN`: another build, the one before a fix).
fn start_test_weir(s: &Setup, cfg: &TempFile) -> Result<weir_tests::lab::Proc> {
    let mut c = weir_test_command(&s.server);
    c.args([
        "run",
        "--iface",
        s.s0.name(),
        "--config",
        cfg.path(),
        "--no-l7",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    let mut p = s.server.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to attach XDP", || {
        anyhow::ensure!(p.is_running(), "weir exited before attaching");
        xdp_attached(&s.s0)
    })?;
    Ok(p)
}

/// After `kill -9` of the daemon its note and pins stay: `weir stats` read them and said, exit
/// 0, `"xdp_attached": true` and the veth peer "with weir's pass program", with no program on
/// either end. Now it sees the daemon's lock free: XDP not attached, the daemon gone, exit 1.
#[test]
fn stats_after_sigkill_says_the_daemon_is_gone() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    // What the killed daemon leaves (the lab removes its lock and note, named after the iface).
    s.lab.track_pin(pin_dir(&s.server, s.s0.name())?);
    let mut weir = start_test_weir(&s, &cfg)?;
    let args = ["stats", "--json", "--interval", "0", "--iface", s.s0.name()];
    // The report of the run that succeeded (a second run raced the daemon's start: once, in
    // suite run 3 of session 29, it printed nothing).
    let mut live = String::new();
    wait_until(
        Duration::from_secs(10),
        "weir stats to read the pins",
        || {
            let (ok, out, _) = command_once(weir_test_command(&s.server), &args)?;
            live = out;
            Ok(ok && !live.trim().is_empty())
        },
    )?;
    let live: serde_json::Value = serde_json::from_str(&live).with_context(|| live.clone())?;
    assert_ne!(live["host"]["xdp_attached"], false, "{live}");
    assert!(live["host"].get("daemon").is_none(), "{live}");

    weir.kill()?;
    wait_until(
        Duration::from_secs(5),
        "XDP to go with the killed process",
        || Ok(!xdp_attached(&s.s0)?),
    )?;
    let (ok, out, err) = command_once(weir_test_command(&s.server), &args)?;
    let gone: serde_json::Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    assert_eq!(gone["host"]["xdp_attached"], false, "{gone}");
    assert_eq!(gone["host"]["daemon"], "gone", "{gone}");
    assert!(gone["host"].get("veth_peer").is_none(), "{gone}");
    assert!(!ok, "exit status 1: monitoring sees the daemon gone");
    assert!(
        err.contains(&format!("the weir daemon on `{}` is gone", s.s0.name())),
        "{err}"
    );
    let (ok, table, _) = command_once(
        weir_test_command(&s.server),
        &["stats", "--interval", "0", "--iface", s.s0.name()],
    )?;
    assert!(!ok);
    assert!(
        table.contains("XDP NOT ATTACHED: the daemon is gone (stale pins since ")
            && !table.contains("veth peer"),
        "{table}"
    );
    Ok(())
}

/// `ip netns exec` mounts a /sys of its own for the command: `weir stats` run that way sees no
/// pins and said "no weir daemon is running" of a daemon that runs (and answers `weir status`).
/// Now it says the daemon runs and its pins are not visible from there, and how to reach them.
#[test]
fn stats_under_ip_netns_exec_says_the_pins_are_not_visible() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = setup()?;
    let cfg = config();
    // Left by the daemon if the test fails (the lab kills it with SIGKILL).
    s.lab.track_pin(pin_dir(&s.server, s.s0.name())?);
    let mut weir = start_test_weir(&s, &cfg)?;
    let ip_netns_exec = || s.server.command(weir_test_bin());
    for args in [
        vec!["stats", "--interval", "0"],
        vec!["stats", "--interval", "0", "--iface", s.s0.name()],
    ] {
        let (ok, _, err) = command_once(ip_netns_exec(), &args)?;
        assert!(!ok, "{args:?}");
        assert!(
            err.contains(&format!(
                "the weir daemon on `{}` runs (pid {}",
                s.s0.name(),
                weir.pid()
            )) && err.contains("not visible from this mount namespace")
                && err.contains(&format!("nsenter -t {} -m -n weir stats", weir.pid())),
            "{args:?}: {err}"
        );
    }
    // `weir top --once` reads the same pins: the same reason, not a BPF_OBJ_GET error.
    let (_, top, top_err) =
        command_once(ip_netns_exec(), &["top", "--once", "--iface", s.s0.name()])?;
    assert!(
        top.contains("not visible from this mount namespace") && !top.contains("BPF_OBJ_GET"),
        "{top}{top_err}"
    );
    // Outside it (nsenter --net: the host's /sys), the counters.
    stats(&s.server, &s.s0)?;
    assert!(interrupt(&mut weir)?);
    Ok(())
}
