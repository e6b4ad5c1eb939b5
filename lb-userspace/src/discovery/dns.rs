//! The I/O edge of discovery: one resolution of a group's name with hickory-resolver, turned
//! into a [`plan::Answer`]. Nothing is cached between resolutions (each asks the servers, so a
//! TTL ceiling below the records' TTL is honoured); `/etc/hosts` is not read; the name is
//! absolute (no search domains).

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
use lb_l7::config::{Discovery, DiscoveryType};

use super::plan::{Answer, Found};

/// A group's name and how to resolve it.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
    name: Result<Name, String>,
    kind: DiscoveryType,
    /// The group's port (A/AAAA).
    port: u16,
}

/// The resolvers' configuration: the configured ones, or the system's.
fn resolver(d: &Discovery) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(d.timeout_seconds.max(1));
    opts.attempts = 2;
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
        }
    }

    /// One resolution.
    pub async fn resolve(&self) -> Answer {
        let (resolver, name) = match (&self.resolver, &self.name) {
            (Ok(r), Ok(n)) => (r, n),
            (Err(e), _) | (_, Err(e)) => return Answer::Failed(e.clone()),
        };
        resolver.clear_cache();
        match self.kind {
            DiscoveryType::A => addresses(resolver, name, &[RecordType::A], self.port).await,
            DiscoveryType::Aaaa => addresses(resolver, name, &[RecordType::AAAA], self.port).await,
            DiscoveryType::AAndAaaa => {
                addresses(
                    resolver,
                    name,
                    &[RecordType::A, RecordType::AAAA],
                    self.port,
                )
                .await
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

/// The A and/or AAAA records of `name` as targets on `port`. Any query failing fails the
/// whole resolution (a family missing for a moment must not remove its targets); all empty
/// is an empty answer.
async fn addresses(r: &TokioResolver, name: &Name, types: &[RecordType], port: u16) -> Answer {
    let mut found = Vec::new();
    let mut empty = (false, None::<u32>);
    for &t in types {
        match query(r, name, t).await {
            Query::Records(rs) => {
                found.extend(ips_of(&rs, name).into_iter().map(|(ip, ttl)| Found {
                    addr: SocketAddr::new(ip, port),
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
/// answer's additional section, else asked for) on the record's port. A target of `.`
/// ("service not available here", RFC 2782) gives none. Priority and weight are not used.
async fn srv(r: &TokioResolver, name: &Name) -> Answer {
    let records = match query(r, name, RecordType::SRV).await {
        Query::Records(rs) => rs,
        Query::Empty { nxdomain, ttl } => return Answer::Empty { nxdomain, ttl },
        Query::Failed(e) => return Answer::Failed(e),
    };
    let mut found = Vec::new();
    for rec in &records {
        let RData::SRV(s) = &rec.data else { continue };
        if s.target.is_root() {
            continue;
        }
        let mut ips = ips_of(&records, &s.target);
        if ips.is_empty() {
            for t in [RecordType::A, RecordType::AAAA] {
                match query(r, &s.target, t).await {
                    Query::Records(rs) => ips.extend(ips_of(&rs, &s.target)),
                    Query::Empty { .. } => {}
                    Query::Failed(e) => return Answer::Failed(e),
                }
            }
        }
        found.extend(ips.into_iter().map(|(ip, ttl)| Found {
            addr: SocketAddr::new(ip, s.port),
            ttl: ttl.min(rec.ttl),
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

#[cfg(test)]
pub(crate) mod tests;
