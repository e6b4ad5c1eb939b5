//! A plain HTTP/1.1 client load on a listener, recording which target answered each request.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use weir_tests::lab::Ns;

/// One `GET path` on `r` (with `Connection: close` when `close`): the body of a 200, else an
/// error naming the status and the body.
pub fn get(r: &mut BufReader<TcpStream>, path: &str, close: bool) -> Result<String> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    write!(
        r.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: weir.test\r\n{conn}\r\n"
    )?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("closed in the head");
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    if status != "200" {
        bail!("status {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What a [`Load`] saw: each answer's time and body (the target's name), each failure.
#[derive(Default)]
pub struct Seen {
    pub ok: Vec<(Instant, String)>,
    pub errors: Vec<(Instant, String)>,
}

impl Seen {
    /// How many answers each name gave from `t` until now.
    pub fn names_since(&self, t: Instant) -> BTreeMap<String, usize> {
        self.names_between(t, Instant::now())
    }

    /// How many answers each name gave in `[from, to)`.
    pub fn names_between(&self, from: Instant, to: Instant) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, n) in self.ok.iter().filter(|(at, _)| *at >= from && *at < to) {
            *m.entry(n.clone()).or_default() += 1;
        }
        m
    }

    /// When `name` last answered.
    pub fn last(&self, name: &str) -> Option<Instant> {
        self.ok
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(t, _)| *t)
            .max()
    }

    /// When `name` first answered at or after `t`.
    pub fn first_after(&self, name: &str, t: Instant) -> Option<Instant> {
        self.ok
            .iter()
            .filter(|(at, n)| n == name && *at >= t)
            .map(|(t, _)| *t)
            .min()
    }
}

/// [`Load::CLIENTS`] client threads in `ns` sending `GET /` to `127.0.0.1:port` until stopped:
/// in turn, 5 requests on one keep-alive connection, then one on a new connection that closes;
/// 20 ms between requests, and 20 ms after a failure before reconnecting.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// How many client threads run.
    pub const CLIENTS: usize = 2;

    pub fn start(ns: &Ns, port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let threads = (0..Self::CLIENTS)
            .map(|_| {
                let (ns, stop, seen) = (ns.clone(), stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _in = ns.enter().expect("enter the lab namespace");
                    while !stop.load(Ordering::Relaxed) {
                        for (n, close) in [(5, false), (1, true)] {
                            let r = round(port, n, close, &stop);
                            let mut s = seen.lock().unwrap();
                            for x in r {
                                match x {
                                    Ok(name) => s.ok.push((Instant::now(), name)),
                                    Err(e) => s.errors.push((Instant::now(), format!("{e:#}"))),
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// `f` of what the load has seen so far (the load keeps running).
    pub fn snapshot<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Stops the clients; all they saw.
    pub fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// `n` requests on one connection to `127.0.0.1:port` (the last with `Connection: close` when
/// `close`), up to the first failure.
fn round(port: u16, n: usize, close: bool, stop: &AtomicBool) -> Vec<Result<String>> {
    let mut out = Vec::new();
    let conn = TcpStream::connect(("127.0.0.1", port)).and_then(|s| {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(s)
    });
    let mut r = match conn {
        Ok(s) => BufReader::new(s),
        Err(e) => return vec![Err(e.into())],
    };
    for i in 0..n {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let res = get(&mut r, "/", close && i + 1 == n);
        let failed = res.is_err();
        out.push(res);
        if failed {
            // Not a flood when the group has no target (503s come fast).
            std::thread::sleep(Duration::from_millis(20));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}
