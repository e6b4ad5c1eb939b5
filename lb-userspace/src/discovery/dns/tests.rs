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
}

pub(crate) type Zone = Arc<dyn Fn(&Name, RecordType) -> Reply + Send + Sync>;

/// A DNS server on 127.0.0.1 answering from `zone`; returns its address.
pub(crate) async fn server(zone: Zone) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.metadata.recursion_desired = q.metadata.recursion_desired;
            m.metadata.authoritative = true;
            m.add_query(query.clone());
            match zone(query.name(), query.query_type()) {
                Reply::Records(answers, additionals) => {
                    m.add_answers(answers);
                    m.add_additionals(additionals);
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
                }
                Reply::Refused => m.metadata.response_code = ResponseCode::Refused,
                Reply::Silent => continue,
            }
            let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
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
    Record::from_rdata(
        name("_web._tcp.svc.test"),
        ttl,
        RData::SRV(SRV::new(10, 5, port, name(target))),
    )
}

fn discovery(dns: SocketAddr, n: &str, kind: &str) -> Discovery {
    let text =
        format!("name = \"{n}\"\ntype = \"{kind}\"\nresolvers = [\"{dns}\"]\ntimeout_seconds = 1");
    toml::from_str(&text).unwrap()
}

fn found(list: &[(&str, u32)]) -> Answer {
    Answer::Records(
        list.iter()
            .map(|&(s, ttl)| Found {
                addr: s.parse().unwrap(),
                ttl,
            })
            .collect(),
    )
}

fn sorted(a: Answer) -> Answer {
    match a {
        Answer::Records(mut v) => {
            v.sort_by_key(|f| f.addr);
            Answer::Records(v)
        }
        other => other,
    }
}

#[tokio::test]
async fn srv_records_with_their_hosts_in_the_additional_section() {
    let dns = server(Arc::new(|n: &Name, t| {
        if *n == name("_web._tcp.svc.test") && t == RecordType::SRV {
            Reply::Records(
                vec![srv(9301, "a.svc.test", 30), srv(9302, "b.svc.test", 20)],
                vec![
                    a("a.svc.test", "10.0.0.1", 10),
                    a("b.svc.test", "10.0.0.2", 60),
                    aaaa("b.svc.test", "fd00::2", 60),
                ],
            )
        } else {
            Reply::Refused
        }
    }))
    .await;
    let d = Dns::new(&discovery(dns, "_web._tcp.svc.test", "SRV"), 80);
    assert_eq!(
        sorted(d.resolve().await),
        found(&[
            ("10.0.0.1:9301", 10),
            ("10.0.0.2:9302", 20),
            ("[fd00::2]:9302", 20)
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
    assert_eq!(d.resolve().await, found(&[("10.0.0.1:9301", 30)]));
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
    let t0 = std::time::Instant::now();
    let silent = Dns::new(&discovery(dns, "silent.svc.test", "A"), 80);
    let r = silent.resolve().await;
    assert!(
        matches!(&r, Answer::Failed(e) if e.contains("timed out")),
        "{r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // A port nobody listens on.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = Dns::new(&discovery(closed, "web.svc.test", "A"), 80);
    assert!(matches!(nobody.resolve().await, Answer::Failed(_)));
}
