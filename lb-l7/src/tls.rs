//! TLS termination: rustls with the aws-lc-rs provider, certificates chosen by SNI (an exact
//! name before a wildcard, then a key the client can use; the first one is the default), ALPN by ALB's ALPN policy, TLS 1.2 and 1.3 only, and session tickets whose
//! keys all workers share so a session resumes on whichever worker gets the connection
//! (`crate::tickets`: the keys and their rotation).

use crate::config::{AlpnPolicy, Certificate};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SignatureScheme};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::certs::provider;
pub use crate::certs::{TlsError, certified_key_from_pem, dns_names, load_certified_key};

/// What the certificate resolver decided in one handshake (`accept::handshake` reads it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The certificate served (its index in the listener's list); `None`: none was chosen
    /// (a resumed session, or the handshake ended before).
    pub index: Option<usize>,
    /// Refused: the listener is `HTTP2Only` and the client offered no ALPN (so no h2).
    pub refused_no_alpn: bool,
}

tokio::task_local! {
    static RESOLVED: Cell<Resolved>;
}

/// Runs a handshake future, recording what the resolver decided in it (a task-local: the
/// resolver runs inside rustls, called from the future's polls).
pub async fn recording<F: Future>(f: F) -> (F::Output, Resolved) {
    RESOLVED
        .scope(Cell::new(Resolved::default()), async move {
            let out = f.await;
            (out, RESOLVED.with(Cell::get))
        })
        .await
}

/// What the resolver decided so far in the handshake [`recording`] runs (default outside one).
pub fn resolved() -> Resolved {
    RESOLVED.try_with(Cell::get).unwrap_or_default()
}

fn record(r: Resolved) {
    let _ = RESOLVED.try_with(|c| c.set(r));
}

/// Picks the certificate for a ClientHello: among those whose names cover the SNI name, the
/// ones naming it exactly before wildcards, each group in the listener's order, the first whose
/// key the client can use (a scheme of its `signature_algorithms` for the key and, for a client
/// offering only TLS 1.2 suites, one of them for the key's algorithm: ECDSA or RSA), as ALB
/// serves "the best certificate the client supports"; the best-named one when the client can
/// use none (the handshake then fails as it would). No SNI, or no name covering it: the first
/// certificate (the default). A certificate without subjectAltName DNS names is never chosen
/// by name: clients (rustls/webpki, browsers, curl) ignore the subject CN, and validation warns
/// (`config::validate`). On an `HTTP2Only` listener it refuses a client that offers no ALPN
/// (no certificate: the handshake fails, `accept::start_tls` answers `no_application_protocol`).
#[derive(Debug)]
pub struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    /// Each certificate's subjectAltName DNS names, lowercase, without a trailing dot.
    names: Vec<Vec<String>>,
    /// `HTTP2Only` with HTTP/2 enabled: a client offering no ALPN is refused.
    require_alpn: bool,
    /// A name's candidates, best first (they do not depend on the client).
    cache: Mutex<HashMap<String, Arc<[usize]>>>,
}

impl SniResolver {
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> SniResolver {
        SniResolver::with_alpn(keys, false)
    }

    /// `require_alpn`: refuse a client that offers no ALPN (`HTTP2Only`).
    pub fn with_alpn(keys: Vec<Arc<CertifiedKey>>, require_alpn: bool) -> SniResolver {
        SniResolver {
            names: keys.iter().map(|k| dns_names(k)).collect(),
            keys,
            require_alpn,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The certificates whose names cover `name`, best first: exact names, then wildcards, each
    /// in the listener's order; `[0]` (the default) when none does.
    fn candidates(&self, name: &str) -> Arc<[usize]> {
        if let Some(c) = self.cache.lock().ok().as_ref().and_then(|c| c.get(name)) {
            return c.clone();
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let (mut exact, mut wild) = (Vec::new(), Vec::new());
        if let Ok(sn) = ServerName::try_from(name.to_string()) {
            for (i, k) in self.keys.iter().enumerate() {
                let covers = k
                    .end_entity_cert()
                    .ok()
                    .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
                    .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&sn).is_ok());
                if !covers {
                } else if self.names[i].contains(&lower) {
                    exact.push(i);
                } else {
                    wild.push(i);
                }
            }
        }
        exact.append(&mut wild);
        if exact.is_empty() {
            exact.push(0);
        }
        let c: Arc<[usize]> = exact.into();
        if let Ok(mut m) = self.cache.lock()
            && m.len() < 4096
        {
            m.insert(name.to_string(), c.clone());
        }
        c
    }

    /// Index of the certificate for `sni` and a client offering `client`'s signature schemes
    /// and cipher suites (`None`: not known, as for a resumed session: the best-named one).
    pub fn index_for(
        &self,
        sni: Option<&str>,
        client: Option<(&[SignatureScheme], &[CipherSuite])>,
    ) -> usize {
        // One certificate serves every name: no lookup in the handshake.
        let Some(name) = sni.filter(|_| self.keys.len() > 1) else {
            return 0;
        };
        let candidates = self.candidates(name);
        let Some((schemes, suites)) = client.filter(|_| candidates.len() > 1) else {
            return candidates[0];
        };
        candidates
            .iter()
            .copied()
            .find(|&i| usable(&self.keys[i], schemes, suites))
            .unwrap_or(candidates[0])
    }
}

/// Whether a client offering `schemes` and `suites` can use `key`: one of the schemes signs
/// with it, and one of the suites weir serves goes with it (any TLS 1.3 suite; a TLS 1.2 one of
/// the key's algorithm).
fn usable(key: &CertifiedKey, schemes: &[SignatureScheme], suites: &[CipherSuite]) -> bool {
    let alg = key.key.algorithm();
    key.key.choose_scheme(schemes).is_some()
        && SERVER_CIPHER_SUITES
            .iter()
            .any(|s| suites.contains(&s.suite()) && s.usable_for_signature_algorithm(alg))
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A client offering ALPN without h2 gets rustls's `no_application_protocol` itself.
        if self.require_alpn && hello.alpn().is_none() {
            record(Resolved {
                index: None,
                refused_no_alpn: true,
            });
            return None;
        }
        let i = self.index_for(
            hello.server_name(),
            Some((hello.signature_schemes(), hello.cipher_suites())),
        );
        record(Resolved {
            index: Some(i),
            refused_no_alpn: false,
        });
        self.keys.get(i).cloned()
    }
}

pub use crate::tickets::SharedTicketer;

/// ALPN protocol ids offered for an ALB ALPN policy, in server preference order.
pub fn alpn_protocols(policy: AlpnPolicy, http2_enabled: bool) -> Vec<Vec<u8>> {
    let (h2, h1) = (b"h2".to_vec(), b"http/1.1".to_vec());
    let v = match policy {
        AlpnPolicy::HTTP2Preferred => vec![h2, h1],
        AlpnPolicy::HTTP2Optional => vec![h1, h2],
        AlpnPolicy::HTTP1Only => vec![h1],
        AlpnPolicy::HTTP2Only => vec![h2],
        AlpnPolicy::None => vec![],
    };
    v.into_iter()
        .filter(|p| http2_enabled || p.as_slice() != b"h2")
        .collect()
}

/// The cipher suites a client connection can get, in the server's order of preference, which
/// decides (`ignore_client_order`), as ALB's security policies do and in their order: AES-128-GCM
/// first. The suites are the provider's; only the order is weir's. Most clients (OpenSSL,
/// browsers on AES hardware) list AES-256-GCM-SHA384 first, whose SHA-384 key schedule and
/// transcript have no hardware help where SHA-256 has (SHA-NI): this order took ~2 % off a
/// full RSA-2048 handshake's CPU here (docs/l7.md, "TLS").
const SERVER_CIPHER_SUITES: &[rustls::SupportedCipherSuite] = {
    use rustls::crypto::aws_lc_rs::cipher_suite::*;
    &[
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// Every suite weir's server can negotiate ([`SERVER_CIPHER_SUITES`]): its IANA (RFC) name, as
/// `openssl ciphers -stdname` prints it, and its OpenSSL name, which ALB's access log
/// `ssl_cipher` uses (TLS 1.3 suites keep their IANA names in OpenSSL).
const SUITE_NAMES: &[(CipherSuite, &str, &str)] = &[
    (
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// A negotiated suite's OpenSSL name (the access log's `ssl_cipher`, as ALB writes it); `-`
/// for one weir does not serve (none can be negotiated).
pub fn openssl_cipher_name(suite: CipherSuite) -> &'static str {
    SUITE_NAMES
        .iter()
        .find(|(s, _, _)| *s == suite)
        .map_or("-", |(_, _, name)| name)
}

/// A protocol version as OpenSSL and ALB's `ssl_protocol` write it (`TLSv1.2`, `TLSv1.3`).
pub fn openssl_protocol_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1",
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "-",
    }
}

/// The rustls server configuration of one HTTPS listener.
/// The listener's TLS configuration, and its certificate resolver (to tell which certificate
/// a connection got, for the access log). The certificates are read from disk.
pub fn server_config(
    certs: &[Certificate],
    alpn: AlpnPolicy,
    http2_enabled: bool,
    ticketer: Arc<SharedTicketer>,
) -> Result<(Arc<ServerConfig>, Arc<SniResolver>), TlsError> {
    let keys = certs
        .iter()
        .map(|c| load_certified_key(&c.certificate_file, &c.private_key_file).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    server_config_with(keys, alpn, http2_enabled, ticketer)
}

/// [`server_config`] over certificates already loaded.
pub fn server_config_with(
    keys: Vec<Arc<CertifiedKey>>,
    alpn: AlpnPolicy,
    http2_enabled: bool,
    ticketer: Arc<SharedTicketer>,
) -> Result<(Arc<ServerConfig>, Arc<SniResolver>), TlsError> {
    let require_alpn = alpn == AlpnPolicy::HTTP2Only && http2_enabled;
    let resolver = Arc::new(SniResolver::with_alpn(keys, require_alpn));
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: SERVER_CIPHER_SUITES.to_vec(),
        ..provider()
    };
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = alpn_protocols(alpn, http2_enabled);
    cfg.ignore_client_order = true;
    cfg.ticketer = ticketer;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(10_000);
    Ok((Arc::new(cfg), resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's order holds the provider's suites, no more and no fewer.
    #[test]
    fn server_cipher_order_is_a_reordering_of_the_providers_suites() {
        let mut ours: Vec<_> = SERVER_CIPHER_SUITES.iter().map(|s| s.suite()).collect();
        let mut theirs: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(ours[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        ours.sort_by_key(|s| u16::from(*s));
        theirs.sort_by_key(|s| u16::from(*s));
        assert_eq!(ours, theirs);
    }

    /// A certificate with a CN and no subjectAltName has no name SNI can choose it by (what
    /// validation warns about); SAN names come lowercase.
    #[test]
    fn dns_names_are_the_san_names_only() {
        let key = |names: Vec<String>, cn: &str| {
            let mut p = rcgen::CertificateParams::new(names).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let k = rcgen::KeyPair::generate().unwrap();
            let c = p.self_signed(&k).unwrap();
            certified_key_from_pem(
                std::path::Path::new("c"),
                c.pem().as_bytes(),
                std::path::Path::new("k"),
                k.serialize_pem().as_bytes(),
            )
            .unwrap()
        };
        assert!(dns_names(&key(vec![], "cnonly.test")).is_empty());
        assert_eq!(
            dns_names(&key(vec!["A.Test".into(), "*.b.test".into()], "x")),
            ["a.test", "*.b.test"]
        );
    }

    /// Every suite the server can negotiate has an entry, whose IANA and OpenSSL names are a
    /// pair `openssl ciphers -stdname` prints.
    #[test]
    fn suite_names_are_openssls() {
        let out = std::process::Command::new("openssl")
            .args(["ciphers", "-stdname", "ALL:TLSv1.3"])
            .output()
            .expect("openssl");
        let listed = String::from_utf8_lossy(&out.stdout).to_string();
        let pairs: Vec<(&str, &str)> = listed
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (std, dash, ossl) = (w.next()?, w.next()?, w.next()?);
                (dash == "-").then_some((std, ossl))
            })
            .collect();
        for s in SERVER_CIPHER_SUITES {
            let (_, std, ossl) = SUITE_NAMES
                .iter()
                .find(|(x, _, _)| *x == s.suite())
                .unwrap_or_else(|| panic!("{:?} has no name", s.suite()));
            assert!(
                pairs.contains(&(*std, *ossl)),
                "{std} - {ossl} not in:\n{listed}"
            );
            assert_eq!(openssl_cipher_name(s.suite()), *ossl);
        }
        assert_eq!(SUITE_NAMES.len(), SERVER_CIPHER_SUITES.len());
        assert_eq!(
            openssl_protocol_name(rustls::ProtocolVersion::TLSv1_3),
            "TLSv1.3"
        );
        assert_eq!(
            openssl_protocol_name(rustls::ProtocolVersion::TLSv1_2),
            "TLSv1.2"
        );
    }

    #[test]
    fn alpn_policies() {
        assert_eq!(
            alpn_protocols(AlpnPolicy::HTTP2Preferred, true),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(
            alpn_protocols(AlpnPolicy::HTTP2Preferred, false),
            vec![b"http/1.1".to_vec()]
        );
        assert!(alpn_protocols(AlpnPolicy::None, true).is_empty());
    }
}
