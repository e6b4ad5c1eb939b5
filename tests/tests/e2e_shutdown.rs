//! Graceful shutdown of `weir run` (issue #13): SIGTERM with requests in flight to a slow
//! target, idle keep-alive connections open and new connections arriving throughout. Every
//! in-flight request completes; every new connection is either served or refused (RST to its
//! SYN), none hangs or is reset after its handshake; idle keep-alive connections are closed with
//! a FIN; weir exits within its drain bound. Real `weir`, real sockets, in a namespace. Needs root.

mod common;
mod e2e_reload_support;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use common::TempFile;
use e2e_reload_support::{Backend, Outcome, Weir, read_response, request_new_conn};
use weir_tests::lab::{Lab, wait_until};

const PORT: u16 = 8080;
const SLOW: Duration = Duration::from_secs(3);
const IN_FLIGHT: usize = 8;
const IDLE: usize = 4;

fn config(target: SocketAddr) -> String {
    format!(
        "[workers]\ncount = 2\n\n[load_balancer]\ndrain_timeout_seconds = 10\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"app\" }}\n\n\
         [[target_group]]\nname = \"app\"\nport = {}\ntarget = [{{ id = \"{}\" }}]\n",
        target.port(),
        target.ip()
    )
}

#[test]
fn sigterm_finishes_in_flight_and_refuses_or_serves_every_new_connection() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("shut")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let backend = Backend::start(&ns, "127.0.0.1:0", "a", SLOW)?;
    let cfg = TempFile::new("shutdown.toml", &config(backend.addr));
    let mut weir = Weir::start(&ns, &cfg, 2)?;
    let to: SocketAddr = ([127, 0, 0, 1], PORT).into();
    assert_eq!(
        request_new_conn(&ns, to, "/fast", Duration::from_secs(5)),
        Outcome::Answered(200, "target a\n".into())
    );

    // Idle keep-alive connections: one request each, then they wait.
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..IDLE {
        let mut s = ns.in_ns(|| TcpStream::connect(to))??;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(b"GET /fast HTTP/1.1\r\nhost: weir.test\r\n\r\n")?;
        let (status, _, _) = read_response(&mut s).map_err(anyhow::Error::msg)?;
        assert_eq!(status, 200);
        idle.push(s);
    }

    // Requests in flight: the target holds each for SLOW.
    let seen_before = backend.seen.load(std::sync::atomic::Ordering::Relaxed);
    let in_flight: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let ns = ns.clone();
            std::thread::spawn(move || request_new_conn(&ns, to, "/slow", Duration::from_secs(20)))
        })
        .collect();
    wait_until(
        Duration::from_secs(5),
        "every slow request at the target",
        || {
            Ok(backend.seen.load(std::sync::atomic::Ordering::Relaxed)
                >= seen_before + IN_FLIGHT as u64)
        },
    )?;

    weir.signal(libc::SIGTERM);
    let signalled = Instant::now();

    // New connections keep arriving, one every 10 ms, from before the workers exit to after.
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let arrivers: Vec<_> = (0..4)
        .map(|_| {
            let (ns, arrivals) = (ns.clone(), arrivals.clone());
            std::thread::spawn(move || {
                while signalled.elapsed() < SLOW + Duration::from_secs(1) {
                    let o = request_new_conn(&ns, to, "/fast", Duration::from_secs(5));
                    arrivals.lock().unwrap().push((signalled.elapsed(), o));
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    // Idle keep-alive connections are closed politely (FIN), soon.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut b = [0u8; 64];
        let r = std::io::Read::read(s, &mut b);
        assert!(
            matches!(r, Ok(0)),
            "an idle keep-alive connection got {r:?} instead of a FIN"
        );
    }
    for h in in_flight {
        let o = h.join().unwrap();
        assert_eq!(
            o,
            Outcome::Answered(200, "target a\n".into()),
            "an in-flight request"
        );
    }
    for h in arrivers {
        h.join().unwrap();
    }
    let took = weir.wait_exit(Duration::from_secs(15))?;
    let arrivals = arrivals.lock().unwrap();
    let bad: Vec<_> = arrivals
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Answered(200, _) | Outcome::Refused))
        .collect();
    let refused = arrivals
        .iter()
        .filter(|(_, o)| *o == Outcome::Refused)
        .count();
    eprintln!(
        "{} new connections after SIGTERM: {refused} refused, {} bad; weir exited {:?} after the last check",
        arrivals.len(),
        bad.len(),
        took
    );
    assert!(
        bad.is_empty(),
        "new connections neither served nor refused: {:?}\n{}",
        &bad[..bad.len().min(10)],
        weir.log_text()
    );
    assert!(
        refused > 0,
        "the test never saw weir refuse: it proves nothing"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10 + 2 + 5),
        "weir exited within its drain bound"
    );
    Ok(())
}
