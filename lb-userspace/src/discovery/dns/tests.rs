//! The I/O edge against a DNS server on loopback (hickory-proto's messages over UDP): what each
//! kind of answer becomes.

use super::*;
use hickory_resolver::proto::{
    op::{Message, OpCode, ResponseCode},
    rr::{
        Name, RData, Record,
        rdata::{A, AAAA, SOA, SRV},
    },
};
use std::sync::Arc;
use tokio::task::JoinSet;

/// What the server does with one question (name, type).
#[derive(Clone)]
pub(crate) enum Reply {
    /// Answers and additional records.
    Records(Vec<Record>, Vec<Record>),
    /// NXDOMAIN (`true`) or NOERROR without answers, with an SOA (TTL, minimum).
    Negative(bool, u32),
    Refused,
    /// No answer at all.
    Silent,
    /// The reply, after a while.
    Late(Duration, Box<Reply>),
    /// Over UDP an empty answer with the truncation bit; over TCP the reply.
    TcpOnly(Box<Reply>),
}

pub(crate) type Zone = Arc<dyn Fn(&Name, RecordType) -> Reply + Send + Sync>;

/// The answer to the query `q` (a DNS message) from `zone`, over TCP or not, and how long to
/// wait before sending it; `None`: no answer.
fn respond(zone: &Zone, q: &[u8], tcp: bool) -> Option<(Duration, Vec<u8>)> {
    let q = Message::from_vec(q).ok()?;
    let query = q.queries.first().cloned()?;
    let mut m = Message::response(q.metadata.id, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.authoritative = true;
    m.add_query(query.clone());
    let mut reply = zone(query.name(), query.query_type());
    let mut delay = Duration::ZERO;
    loop {
        match reply {
            Reply::Late(d, r) => {
                delay += d;
                reply = *r;
            }
            Reply::TcpOnly(r) if tcp => reply = *r,
            Reply::TcpOnly(_) => {
                m.metadata.truncation = true;
                break;
            }
            Reply::Records(answers, additionals) => {
                m.add_answers(answers);
                m.add_additionals(additionals);
                break;
            }
            Reply::Negative(nx, minimum) => {
                if nx {
                    m.metadata.response_code = ResponseCode::NXDomain;
                }
                let soa = SOA::new(
                    name("ns.svc.test"),
                    name("admin.svc.test"),
                    1,
                    60,
                    60,
                    600,
                    minimum,
                );
                m.add_authority(Record::from_rdata(name("svc.test"), 300, RData::SOA(soa)));
                break;
            }
            Reply::Refused => {
                m.metadata.response_code = ResponseCode::Refused;
                break;
            }
            Reply::Silent => return None,
        }
    }
    Some((delay, m.to_vec().ok()?))
}

/// A DNS server on 127.0.0.1 answering from `zone`, over UDP and TCP on the same port; returns
/// its address.
pub(crate) async fn server(zone: Zone) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let sock = Arc::new(tokio::net::UdpSocket::bind(addr).await.unwrap());
    let udp_zone = zone.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Some((delay, out)) = respond(&udp_zone, &buf[..n], false) else {
                continue;
            };
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = sock.send_to(&out, from).await;
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let zone = zone.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // RFC 1035 4.2.2: each message after its length (2 bytes).
                loop {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut q = vec![0u8; len as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let Some((delay, out)) = respond(&zone, &q, true) else {
                        continue;
                    };
                    tokio::time::sleep(delay).await;
                    let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                    framed.extend(out);
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

pub(crate) fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap();
    n.set_fqdn(true);
    n
}

pub(crate) fn a(host: &str, ip: &str, ttl: u32) -> Record {
    Record::from_rdata(name(host), ttl, RData::A(A(ip.parse().unwrap())))
}

fn aaaa(host: &str, ip: &str, ttl: u32) -> Record {
    Record::from_rdata(name(host), ttl, RData::AAAA(AAAA(ip.parse().unwrap())))
}

fn srv(port: u16, target: &str, ttl: u32) -> Record {
    srv_pw(port, target, ttl, (10, 5))
}

/// An SRV record with its (priority, weight).
fn srv_pw(port: u16, target: &str, ttl: u32, (priority, weight): (u16, u16)) -> Record {
    Record::from_rdata(
        name("_web._tcp.svc.test"),
        ttl,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

fn discovery(dns: SocketAddr, n: &str, kind: &str) -> Discovery {
    discovery_at(&[dns], n, kind, 1)
}

fn discovery_at(resolvers: &[SocketAddr], n: &str, kind: &str, timeout: u64) -> Discovery {
    let list = resolvers
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "name = \"{n}\"\ntype = \"{kind}\"\nresolvers = [{list}]\ntimeout_seconds = {timeout}"
    );
    toml::from_str(&text).unwrap()
}

fn found(list: &[(&str, u32)]) -> Answer {
    Answer::Records(
        list.iter()
            .map(|&(s, ttl)| Found {
                target: SetTarget::plain(s.parse().unwrap()),
                ttl,
            })
            .collect(),
    )
}

/// SRV targets: (address, TTL, weir's weight, priority).
fn found_srv(list: &[(&str, u32, u32, u16)]) -> Answer {
    Answer::Records(
        list.iter()
            .map(|&(s, ttl, weight, priority)| Found {
                target: SetTarget {
                    addr: s.parse().unwrap(),
                    weight,
                    priority,
                },
                ttl,
            })
            .collect(),
    )
}

fn sorted(a: Answer) -> Answer {
    match a {
        Answer::Records(mut v) => {
            v.sort_by_key(|f| f.target.addr);
            Answer::Records(v)
        }
        other => other,
    }
}

/// A resolver for `_web._tcp.svc.test`'s SRV `records` (with `additionals`) that refuses
/// every other question.
async fn srv_answer(records: Vec<Record>, additionals: Vec<Record>) -> Dns {
    let dns = server(Arc::new(move |n: &Name, t| {
        if *n == name("_web._tcp.svc.test") && t == RecordType::SRV {
            Reply::Records(records.clone(), additionals.clone())
        } else {
            Reply::Refused
        }
    }))
    .await;
    Dns::new(&discovery(dns, "_web._tcp.svc.test", "SRV"), 80)
}

#[tokio::test]
async fn srv_records_with_their_hosts_in_the_additional_section() {
    let d = srv_answer(
        vec![srv(9301, "a.svc.test", 30), srv(9302, "b.svc.test", 20)],
        vec![
            a("a.svc.test", "10.0.0.1", 10),
            a("b.svc.test", "10.0.0.2", 60),
            aaaa("b.svc.test", "fd00::2", 60),
        ],
    )
    .await;
    assert_eq!(
        sorted(d.resolve().await),
        // One priority, equal weights: 999 each host, b's shared by its two addresses.
        found_srv(&[
            ("10.0.0.1:9301", 10, 999, 10),
            ("10.0.0.2:9302", 20, 500, 10),
            ("[fd00::2]:9302", 20, 500, 10)
        ])
    );
}

#[tokio::test]
async fn srv_hosts_without_additionals_are_asked_for() {
    let dns = server(Arc::new(|n: &Name, t| match (n.to_ascii().as_str(), t) {
        ("_web._tcp.svc.test.", RecordType::SRV) => Reply::Records(
            vec![
                srv(9301, "a.svc.test", 30),
                srv(9302, "gone.svc.test", 30),
                srv(9303, ".", 30),
            ],
            vec![],
        ),
        ("a.svc.test.", RecordType::A) => {
            Reply::Records(vec![a("a.svc.test", "10.0.0.1", 40)], vec![])
        }
        ("a.svc.test.", RecordType::AAAA) => Reply::Negative(false, 30),
        ("gone.svc.test.", _) => Reply::Negative(true, 30),
        _ => Reply::Refused,
    }))
    .await;
    let d = Dns::new(&discovery(dns, "_web._tcp.svc.test", "SRV"), 80);
    assert_eq!(
        d.resolve().await,
        found_srv(&[("10.0.0.1:9301", 30, 999, 10)])
    );
}

#[tokio::test]
async fn srv_priorities_and_weights_become_the_targets_priorities_and_weights() {
    let d = srv_answer(
        vec![
            srv_pw(9301, "a.svc.test", 30, (10, 30)),
            srv_pw(9302, "b.svc.test", 30, (10, 10)),
            srv_pw(9303, "c.svc.test", 30, (10, 0)),
            srv_pw(9304, "d.svc.test", 30, (20, 65535)),
            srv_pw(9305, "e.svc.test", 30, (20, 1)),
            srv_pw(9306, "f.svc.test", 30, (30, 0)),
            srv_pw(9307, "g.svc.test", 30, (30, 0)),
        ],
        ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .zip(1..)
            .map(|(h, i)| a(&format!("{h}.svc.test"), &format!("10.0.0.{i}"), 30))
            .collect(),
    )
    .await;
    assert_eq!(
        sorted(d.resolve().await),
        found_srv(&[
            // Priority 10: 30, 10 and 0 are 999, 333 and 1 (weight 0: "a very small chance").
            ("10.0.0.1:9301", 30, 999, 10),
            ("10.0.0.2:9302", 30, 333, 10),
            ("10.0.0.3:9303", 30, 1, 10),
            // Priority 20: shares of its own largest weight (1 of 65535 still gets 1).
            ("10.0.0.4:9304", 30, 999, 20),
            ("10.0.0.5:9305", 30, 1, 20),
            // Priority 30: weights 0 only, equal shares.
            ("10.0.0.6:9306", 30, 1, 30),
            ("10.0.0.7:9307", 30, 1, 30),
        ])
    );
}

#[test]
fn srv_weight_keeps_ratios_on_weirs_scale() {
    assert_eq!(srv_weight(30, 30, 1), 999);
    assert_eq!(srv_weight(10, 30, 1), 333);
    assert_eq!(srv_weight(1, 10, 1), 100);
    assert_eq!(srv_weight(0, 10, 1), 1);
    assert_eq!(srv_weight(0, 0, 1), 1);
    assert_eq!(srv_weight(65535, 65535, 1), 999);
    assert_eq!(srv_weight(32768, 65535, 1), 500);
    // HAProxy's `w / 256 + 1` makes 1 and 255 equal; here they stay 1 : 255 apart.
    assert_eq!(srv_weight(255, 255, 1), 999);
    assert_eq!(srv_weight(1, 255, 1), 4);
    // A host's share split among its addresses, never below 1.
    assert_eq!(srv_weight(30, 30, 2), 500);
    assert_eq!(srv_weight(30, 30, 3), 333);
    assert_eq!(srv_weight(0, 30, 4), 1);
    assert_eq!(srv_weight(30, 30, 0), 999);
}

#[tokio::test]
async fn a_and_aaaa_on_the_groups_port_and_negative_answers() {
    let dns = server(Arc::new(|n: &Name, t| match (n.to_ascii().as_str(), t) {
        ("web.svc.test.", RecordType::A) => Reply::Records(
            vec![
                a("web.svc.test", "10.0.0.2", 5),
                a("web.svc.test", "10.0.0.1", 7),
            ],
            vec![],
        ),
        ("web.svc.test.", RecordType::AAAA) => Reply::Negative(false, 30),
        ("alias.svc.test.", RecordType::A) => Reply::Records(
            vec![
                Record::from_rdata(
                    name("alias.svc.test"),
                    30,
                    RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(name(
                        "web.svc.test",
                    ))),
                ),
                a("web.svc.test", "10.0.0.5", 20),
            ],
            vec![],
        ),
        ("nx.svc.test.", _) => Reply::Negative(true, 45),
        ("nodata.svc.test.", _) => Reply::Negative(false, 45),
        _ => Reply::Refused,
    }))
    .await;
    let both = Dns::new(&discovery(dns, "web.svc.test", "A+AAAA"), 8080);
    assert_eq!(
        sorted(both.resolve().await),
        found(&[("10.0.0.1:8080", 7), ("10.0.0.2:8080", 5)])
    );
    let alias = Dns::new(&discovery(dns, "alias.svc.test", "A"), 8080);
    assert_eq!(
        alias.resolve().await,
        found(&[("10.0.0.5:8080", 20)]),
        "a CNAME is followed"
    );
    let v6 = Dns::new(&discovery(dns, "web.svc.test", "AAAA"), 8080);
    assert!(
        matches!(
            v6.resolve().await,
            Answer::Empty {
                nxdomain: false,
                ..
            }
        ),
        "no AAAA records: an empty answer"
    );
    let nx = Dns::new(&discovery(dns, "nx.svc.test", "A"), 8080);
    assert_eq!(
        nx.resolve().await,
        Answer::Empty {
            nxdomain: true,
            ttl: Some(45)
        }
    );
    let nodata = Dns::new(&discovery(dns, "nodata.svc.test", "SRV"), 8080);
    assert!(matches!(
        nodata.resolve().await,
        Answer::Empty {
            nxdomain: false,
            ..
        }
    ));
}

#[tokio::test]
async fn refusals_timeouts_and_no_server_are_failures() {
    let dns = server(Arc::new(|n: &Name, _| match n.to_ascii().as_str() {
        "silent.svc.test." => Reply::Silent,
        _ => Reply::Refused,
    }))
    .await;
    let refused = Dns::new(&discovery(dns, "web.svc.test", "A"), 80);
    assert!(matches!(refused.resolve().await, Answer::Failed(_)));
    let silent = Dns::new(&discovery(dns, "silent.svc.test", "A"), 80);
    assert_eq!(silent.budget(), Duration::from_secs(2));
    assert_eq!(
        silent.resolve().await,
        Answer::Failed("A silent.svc.test.: no answer within 2 s (2 × timeout_seconds)".into())
    );
    // A port nobody listens on.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = Dns::new(&discovery(closed, "web.svc.test", "A"), 80);
    assert!(matches!(nobody.resolve().await, Answer::Failed(_)));
}

/// A resolver that never answers, on loopback: a UDP socket that reads and drops, and on the
/// same port a TCP listener that accepts and never replies. Kept alive by the returned guard.
pub(crate) async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = tokio::net::UdpSocket::bind(addr).await.unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => if r.is_err() { return },
                r = tcp.accept() => match r {
                    Ok((s, _)) => held.push(s),
                    Err(_) => return,
                },
            }
        }
    });
    (addr, task)
}

/// How long one resolution takes, and what it gives.
async fn timed(d: Discovery) -> (Duration, Answer) {
    let dns = Dns::new(&d, 80);
    let t0 = std::time::Instant::now();
    let r = dns.resolve().await;
    (t0.elapsed(), r)
}

/// The docs' bound: one resolution, whatever its questions and resolvers, takes at most
/// 2 × timeout_seconds (4 s here), then fails saying so. Each case runs at once (about 4 s in
/// all); slack 1.5 s for a loaded machine. Before (hickory's `attempts = 2`, which are
/// retries, and questions in sequence) one unanswered question took 3 × timeout_seconds (6 s)
/// and an SRV's questions added up (7.8 s, 11.2 s below).
#[tokio::test]
async fn a_resolution_takes_at_most_twice_the_timeout() {
    const T: u64 = 2;
    let bound = Duration::from_secs(2 * T);
    let slack = Duration::from_millis(1500);
    let (hole, h1) = black_hole().await;
    let (hole2, h2) = black_hole().await;
    let (hole3, h3) = black_hole().await;
    let d = |r: &[SocketAddr], n: &str, kind: &str| discovery_at(r, n, kind, T);
    // A answered, AAAA never.
    let half = server(Arc::new(|_: &Name, t| match t {
        RecordType::A => Reply::Records(vec![a("web.svc.test", "10.0.0.1", 5)], vec![]),
        _ => Reply::Silent,
    }))
    .await;
    // The SRV answer after 1.8 s, its host's addresses never.
    let srv_then_silent = server(Arc::new(|n: &Name, t| match (n.to_ascii().as_str(), t) {
        ("_web._tcp.svc.test.", RecordType::SRV) => Reply::Late(
            Duration::from_millis(1800),
            Box::new(Reply::Records(vec![srv(9301, "a.svc.test", 30)], vec![])),
        ),
        _ => Reply::Silent,
    }))
    .await;
    // Truncated over UDP, and over TCP no answer.
    let tcp_silent = server(Arc::new(|_: &Name, _| {
        Reply::TcpOnly(Box::new(Reply::Late(
            Duration::from_secs(30),
            Box::new(Reply::Refused),
        )))
    }))
    .await;
    // Every question answered after 1.6 s; three SRV hosts asked for (1 + 6 questions):
    // the hosts' questions at once, so it resolves.
    let slow = server(Arc::new(|n: &Name, t| {
        let r = match (n.to_ascii().as_str(), t) {
            ("_web._tcp.svc.test.", RecordType::SRV) => Reply::Records(
                vec![
                    srv(9301, "a.svc.test", 30),
                    srv(9302, "b.svc.test", 30),
                    srv(9303, "c.svc.test", 30),
                ],
                vec![],
            ),
            (h, RecordType::A) => Reply::Records(vec![a(h, "10.0.0.1", 30)], vec![]),
            _ => Reply::Negative(false, 30),
        };
        Reply::Late(Duration::from_millis(1600), Box::new(r))
    }))
    .await;
    // A port nobody listens on: refused at once.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let web = "web.svc.test";
    let svc = "_web._tcp.svc.test";
    let cases = [
        ("A, black hole", d(&[hole], web, "A")),
        ("AAAA, black hole", d(&[hole], web, "AAAA")),
        ("A+AAAA, black hole", d(&[hole], web, "A+AAAA")),
        ("SRV, black hole", d(&[hole], svc, "SRV")),
        ("A, 3 black holes", d(&[hole, hole2, hole3], web, "A")),
        ("A+AAAA, AAAA silent", d(&[half], web, "A+AAAA")),
        (
            "SRV in 1.8 s, host silent",
            d(&[srv_then_silent], svc, "SRV"),
        ),
        ("A truncated, TCP silent", d(&[tcp_silent], web, "A")),
        ("SRV, 7 questions 1.6 s each", d(&[slow], svc, "SRV")),
        ("A, nobody listening", d(&[closed], web, "A")),
    ];
    let mut runs = JoinSet::new();
    for (what, d) in cases {
        runs.spawn(async move { (what, timed(d).await) });
    }
    let mut results = runs.join_all().await;
    results.sort_by_key(|(what, _)| *what);
    let mut over = Vec::new();
    for (what, (took, answer)) in &results {
        eprintln!("{what}: {took:.2?} {answer:?}");
        if *took > bound + slack {
            over.push(*what);
        }
        match (*what, answer) {
            ("SRV, 7 questions 1.6 s each", a) => assert_eq!(
                sorted(a.clone()),
                found_srv(&[
                    ("10.0.0.1:9301", 30, 999, 10),
                    ("10.0.0.1:9302", 30, 999, 10),
                    ("10.0.0.1:9303", 30, 999, 10)
                ])
            ),
            (_, Answer::Failed(e)) => assert!(
                e.contains("within 4 s (2 × timeout_seconds)")
                    || e.contains("timed out")
                    || what.contains("nobody"),
                "{what}: {e}"
            ),
            (_, a) => panic!("{what}: {a:?}"),
        }
    }
    assert!(over.is_empty(), "over {bound:?} + {slack:?}: {over:?}");
    for t in [h1, h2, h3] {
        t.abort();
    }
}
