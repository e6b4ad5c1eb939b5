//! A sandboxed worker whose heap grows (thousands of idle TLS connections) keeps running: its
//! allocator (mimalloc) names every region it maps with `prctl(PR_SET_VMA, …)`, and the
//! worker's seccomp filter must let that through. Before it did, the worker died by SIGSYS
//! a few hundred connections in, resetting every connection it held (found by `cargo xtask
//! bench http`'s idle TLS connections). Real `weir run`, real sandboxed worker, a Python
//! asyncio + ssl client in the same namespace. Needs root.

mod common;

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use common::*;
use weir_tests::lab::{Lab, wait_until};

/// Connections held at once: well past the point where the worker died (a few hundred).
const CONNS: usize = 3_000;

/// Opens `n` TLS connections, one request on each, holds them all, then one more request on
/// each: prints how many answered 200 both times.
const CLIENT: &str = r#"
import asyncio, ssl, sys, resource
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
REQ = b"GET / HTTP/1.1\r\nHost: weir.test\r\n\r\n"
async def once(r, w):
    w.write(REQ)
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    await asyncio.wait_for(r.readexactly(2), 10)
    return head.startswith(b"HTTP/1.1 200")
async def main():
    conns = []
    sem = asyncio.Semaphore(64)
    async def open_one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 8443, ssl=ctx, server_hostname="weir.test"), 20)
                if await once(r, w):
                    conns.append((r, w))
            except Exception:
                pass
    await asyncio.gather(*(open_one() for _ in range(n)))
    first = len(conns)
    await asyncio.sleep(1)
    async def again(c):
        async with sem:
            try:
                return await once(*c)
            except Exception:
                return False
    second = sum(await asyncio.gather(*(again(c) for c in conns)))
    print(first, second)
asyncio.run(main())
"#;

#[test]
fn a_sandboxed_workers_heap_grows_without_seccomp_killing_it() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("heap")?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-heap-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let (cert, key) = self_signed_cert(&dir.0)?;
    let cfg = TempFile::new(
        "heap.toml",
        &format!(
            "[workers]\ncount = 1\n\n[load_balancer]\nmax_connections_per_worker = {}\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = 8443\nprotocol = \"HTTPS\"\n\
             certificate = [{{ certificate_file = \"{}\", private_key_file = \"{}\" }}]\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
            CONNS + 100,
            cert.display(),
            key.display()
        ),
    );
    let mut c = weir_command(&ns);
    c.args(["run", "--config", cfg.path()]);
    let mut weir = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !weir.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(8443)
    })?;
    // The control plane listens first; its worker follows.
    wait_until(Duration::from_secs(20), "the worker to start", || {
        Ok(worker_pids(cfg.path()).len() == 1)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let before = worker_pids(cfg.path());

    let mut py = ns.command("/usr/bin/python3");
    py.args(["-c", CLIENT, &CONNS.to_string()]);
    let out = weir_tests::lab::output(&mut py, Duration::from_secs(240))?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut n = said
        .split_whitespace()
        .map(|v| v.parse::<usize>().unwrap_or(0));
    let (first, second) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
    let after = worker_pids(cfg.path());
    assert!(interrupt(&mut weir)?);
    ensure!(
        after == before,
        "the worker was replaced (it died): {before:?} → {after:?}; client: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        first == CONNS && second == CONNS,
        "{CONNS} TLS connections answered once ({first}) and again after being held ({second})"
    );
    Ok(())
}
