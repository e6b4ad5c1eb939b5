//! The I/O edge of discovery: one resolution of a group's name with hickory-resolver, turned
//! into a [`plan::Answer`]. Nothing is cached between resolutions (each asks the servers, so a
//! TTL ceiling below the records' TTL is honoured); `/etc/hosts` is not read; the name is
//! absolute (no search domains).
//!
//! Time: each question goes over UDP and waits `timeout_seconds` for an answer, and is sent
//! [`SENDS`] times in all (to the next resolvers, at most 2 at once: hickory's pool); a truncated
//! UDP answer is asked again over TCP (hickory does it by itself). A+AAAA asks its two
//! questions at once, SRV its hosts' address questions at once after the SRV answer. The whole
//! resolution is cut at [`SENDS`] × `timeout_seconds` ([`Dns::budget`]): past it, it fails
//! ("no answer within N s"), whatever number of questions or resolvers.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    net::{NetError, runtime::TokioRuntimeProvider},
    proto::rr::{Name, RData, Record, RecordType},
};
use lb_l7::{
    config::{Discovery, DiscoveryType},
    target_sets::SetTarget,
};
use tokio::task::JoinSet;

use super::plan::{Answer, Found};
use super::view::type_name;

/// Times each question is sent before it fails (the docs' "each question is sent twice").
pub const SENDS: u32 = 2;

/// SRV hosts whose addresses are asked for at once.
const HOSTS_AT_ONCE: usize = 16;

/// A group's name and how to resolve it.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
    name: Result<Name, String>,
    kind: DiscoveryType,
    /// The group's port (A/AAAA).
    port: u16,
    /// How long one resolution may take: [`SENDS`] × `timeout_seconds`.
    budget: Duration,
}

/// How long one send of a question waits for its answer.
fn query_timeout(d: &Discovery) -> Duration {
    Duration::from_secs(d.timeout_seconds.max(1))
}

/// The resolvers' configuration: the configured ones, or the system's.
fn resolver(d: &Discovery) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = query_timeout(d);
    // hickory's `attempts` are the sends after the first (RetryDnsHandle): 2 made 3.
    opts.attempts = SENDS as usize - 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    let builder = match d.resolver_addrs() {
        Some(addrs) if !addrs.is_empty() => {
            let servers = addrs
                .iter()
                .map(|a| {
                    let conn = |mut c: ConnectionConfig| {
                        c.port = a.port();
                        c
                    };
                    // UDP; TCP only for an answer truncated over UDP (hickory's pool
                    // chooses UDP first and TCP after the truncation bit).
                    NameServerConfig::new(
                        a.ip(),
                        true,
                        vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        }
        Some(_) => TokioResolver::builder_tokio()
            .map_err(|e| format!("reading the system's resolvers (/etc/resolv.conf): {e}"))?,
        None => return Err("invalid resolver address".into()),
    };
    builder
        .with_options(opts)
        .build()
        .map_err(|e| format!("building the resolver: {e}"))
}

impl Dns {
    /// The resolver for a group's discovery; `port` is the group's. A resolver that cannot be
    /// built (no `/etc/resolv.conf`) makes every resolution fail with the reason.
    pub fn new(d: &Discovery, port: u16) -> Dns {
        let mut name = Name::from_ascii(&d.name).map_err(|e| format!("{:?}: {e}", d.name));
        if let Ok(n) = &mut name {
            n.set_fqdn(true);
        }
        Dns {
            resolver: resolver(d),
            name,
            kind: d.kind,
            port,
            budget: query_timeout(d) * SENDS,
        }
    }

    /// The longest one resolution takes: [`SENDS`] × `timeout_seconds`.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// One resolution, failing past [`Dns::budget`].
    pub async fn resolve(&self) -> Answer {
        let (resolver, name) = match (&self.resolver, &self.name) {
            (Ok(r), Ok(n)) => (r, n),
            (Err(e), _) | (_, Err(e)) => return Answer::Failed(e.clone()),
        };
        resolver.clear_cache();
        // The deadline first: hickory's own timeout of the last send may fall due in the same
        // millisecond (its sends started a little later); the deadline's message is the one
        // that says what the bound is.
        let deadline = tokio::time::sleep(self.budget);
        tokio::select! {
            biased;
            () = deadline => Answer::Failed(format!(
                "{} {name}: no answer within {} s ({SENDS} × timeout_seconds)",
                type_name(self.kind),
                self.budget.as_secs()
            )),
            answer = self.ask(resolver, name) => answer,
        }
    }

    async fn ask(&self, resolver: &TokioResolver, name: &Name) -> Answer {
        match self.kind {
            DiscoveryType::A => addresses(resolver, name, (RecordType::A, None), self.port).await,
            DiscoveryType::Aaaa => {
                addresses(resolver, name, (RecordType::AAAA, None), self.port).await
            }
            DiscoveryType::AAndAaaa => {
                let both = (RecordType::A, Some(RecordType::AAAA));
                addresses(resolver, name, both, self.port).await
            }
            DiscoveryType::Srv => srv(resolver, name).await,
        }
    }
}

/// What one query gave: records, no records (with NXDOMAIN and the negative TTL), or a failure.
enum Query {
    Records(Vec<Record>),
    Empty { nxdomain: bool, ttl: Option<u32> },
    Failed(String),
}

async fn query(r: &TokioResolver, name: &Name, t: RecordType) -> Query {
    match r.lookup(name.clone(), t).await {
        Ok(l) => Query::Records(l.answers().iter().chain(l.additionals()).cloned().collect()),
        Err(e) if e.is_no_records_found() => Query::Empty {
            nxdomain: e.is_nx_domain(),
            ttl: negative_ttl(&e),
        },
        Err(e) => Query::Failed(format!("{t} {name}: {e}")),
    }
}

fn negative_ttl(e: &NetError) -> Option<u32> {
    match e {
        NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(n)) => n.negative_ttl,
        _ => None,
    }
}

/// The address records of `name` among `records` (CNAMEs followed by the resolver): IP → TTL.
fn ips_of(records: &[Record], name: &Name) -> BTreeMap<IpAddr, u32> {
    let mut out = BTreeMap::new();
    // The resolver follows CNAME chains; the addresses of the chain's end count for `name`.
    let mut names = vec![name.clone()];
    for r in records {
        if let RData::CNAME(c) = &r.data
            && names.contains(&r.name)
        {
            names.push(c.0.clone());
        }
    }
    for r in records {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        if names.contains(&r.name) {
            let ttl = out.entry(ip).or_insert(r.ttl);
            *ttl = (*ttl).min(r.ttl);
        }
    }
    out
}

/// The `t` (and `also`) records of `name` as targets on `port`. Any query failing fails the
/// whole resolution (a family missing for a moment must not remove its targets); all empty
/// is an empty answer.
async fn addresses(
    r: &TokioResolver,
    name: &Name,
    (t, also): (RecordType, Option<RecordType>),
    port: u16,
) -> Answer {
    let mut found = Vec::new();
    let mut empty = (false, None::<u32>);
    // A+AAAA: both questions at once.
    let (first, second) = match also {
        None => (query(r, name, t).await, None),
        Some(u) => {
            let (a, b) = tokio::join!(query(r, name, t), query(r, name, u));
            (a, Some(b))
        }
    };
    for q in std::iter::once(first).chain(second) {
        match q {
            Query::Records(rs) => {
                found.extend(ips_of(&rs, name).into_iter().map(|(ip, ttl)| Found {
                    target: SetTarget::plain(SocketAddr::new(ip, port)),
                    ttl,
                }))
            }
            Query::Empty { nxdomain, ttl } => {
                empty.0 |= nxdomain;
                empty.1 = match (empty.1, ttl) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Query::Failed(e) => return Answer::Failed(e),
        }
    }
    if found.is_empty() {
        Answer::Empty {
            nxdomain: empty.0,
            ttl: empty.1,
        }
    } else {
        Answer::Records(found)
    }
}

/// The SRV records of `name`: each record's target host's A and AAAA addresses (from the
/// answer's additional section, else asked for) on the record's port, with the record's
/// priority and its weight on weir's scale ([`srv_weight`]). A target of `.` ("service not
/// available here", RFC 2782) gives none.
async fn srv(r: &TokioResolver, name: &Name) -> Answer {
    let records = match query(r, name, RecordType::SRV).await {
        Query::Records(rs) => rs,
        Query::Empty { nxdomain, ttl } => return Answer::Empty { nxdomain, ttl },
        Query::Failed(e) => return Answer::Failed(e),
    };
    // The hosts without addresses in the answer: asked for, HOSTS_AT_ONCE at a time.
    let mut ips: BTreeMap<Name, BTreeMap<IpAddr, u32>> = BTreeMap::new();
    let mut missing = Vec::new();
    for rec in &records {
        let RData::SRV(s) = &rec.data else { continue };
        if s.target.is_root() || ips.contains_key(&s.target) {
            continue;
        }
        let known = ips_of(&records, &s.target);
        if known.is_empty() {
            missing.push(s.target.clone());
        }
        ips.insert(s.target.clone(), known);
    }
    let mut asking = JoinSet::new();
    let mut missing = missing.into_iter();
    loop {
        while asking.len() < HOSTS_AT_ONCE
            && let Some(host) = missing.next()
        {
            let r = r.clone();
            asking.spawn(async move {
                let (a, aaaa) = tokio::join!(
                    query(&r, &host, RecordType::A),
                    query(&r, &host, RecordType::AAAA)
                );
                (host, [a, aaaa])
            });
        }
        let Some(done) = asking.join_next().await else {
            break;
        };
        let (host, answers) = match done {
            Ok(d) => d,
            Err(e) => return Answer::Failed(format!("asking for SRV hosts' addresses: {e}")),
        };
        for q in answers {
            match q {
                Query::Records(rs) => {
                    let found = ips_of(&rs, &host);
                    ips.entry(host.clone()).or_default().extend(found);
                }
                Query::Empty { .. } => {}
                Query::Failed(e) => return Answer::Failed(e),
            }
        }
    }
    let srvs = records.iter().filter_map(|r| match &r.data {
        RData::SRV(s) if !s.target.is_root() => Some((r, s)),
        _ => None,
    });
    // Each priority's largest weight: the others are shares of it.
    let mut largest: BTreeMap<u16, u16> = BTreeMap::new();
    for (_, s) in srvs.clone() {
        let l = largest.entry(s.priority).or_default();
        *l = (*l).max(s.weight);
    }
    let mut found = Vec::new();
    for (rec, s) in srvs {
        let Some(host) = ips.get(&s.target) else {
            continue;
        };
        let weight = srv_weight(s.weight, largest[&s.priority], host.len());
        found.extend(host.iter().map(|(ip, ttl)| Found {
            target: SetTarget {
                addr: SocketAddr::new(*ip, s.port),
                weight,
                priority: s.priority,
            },
            ttl: (*ttl).min(rec.ttl),
        }));
    }
    if found.is_empty() {
        // SRV records whose hosts have no address: nothing to send traffic to.
        return Answer::Empty {
            nxdomain: false,
            ttl: records.iter().map(|r| r.ttl).min(),
        };
    }
    Answer::Records(found)
}

/// An SRV record's weight on weir's scale (1–999, `[[target_group.target]]`'s): a share of
/// its priority's `largest` weight, which becomes 999 (so 30 and 10 become 999 and 333, and the
/// ratio of two weights stays within rounding); weight 0 beside larger ones gets 1 (RFC 2782:
/// "a very small chance"), a priority of weights 0 only gets 1 each (equal shares). A host with
/// several addresses (A and AAAA) shares its record's weight among them, so the host as a whole
/// gets its record's share. HAProxy maps a weight to `weight / 256 + 1`, which makes every
/// weight under 256 equal.
fn srv_weight(weight: u16, largest: u16, addresses: usize) -> u32 {
    if largest == 0 {
        return 1;
    }
    let (w, l) = (u64::from(weight), u64::from(largest));
    let scaled = (w * 999 + l / 2) / l;
    let n = addresses.max(1) as u64;
    ((scaled + n / 2) / n).max(1) as u32
}

#[cfg(test)]
pub(crate) mod tests;
