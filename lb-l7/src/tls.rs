//! TLS termination: rustls with the aws-lc-rs provider, certificates chosen by SNI (first one
//! is the default), ALPN by ALB's ALPN policy, TLS 1.2 and 1.3 only, and session tickets whose
//! keys all workers share so a session resumes on whichever worker gets the connection
//! (`crate::tickets`: the keys and their rotation).

use crate::config::{AlpnPolicy, Certificate};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::certs::provider;
pub use crate::certs::{TlsError, certified_key_from_pem, load_certified_key};

/// What the certificate resolver decided in one handshake (`accept::handshake` reads it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolved {
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

/// Picks the certificate whose names cover the SNI name; the first certificate otherwise.
/// On an `HTTP2Only` listener it refuses a client that offers no ALPN (no certificate: the
/// handshake fails, `accept::handshake` answers the alert `no_application_protocol`).
#[derive(Debug)]
pub struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    /// `HTTP2Only` with HTTP/2 enabled: a client offering no ALPN is refused.
    require_alpn: bool,
    cache: Mutex<HashMap<String, usize>>,
}

impl SniResolver {
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> SniResolver {
        SniResolver::with_alpn(keys, false)
    }

    /// `require_alpn`: refuse a client that offers no ALPN (`HTTP2Only`).
    pub fn with_alpn(keys: Vec<Arc<CertifiedKey>>, require_alpn: bool) -> SniResolver {
        SniResolver {
            keys,
            require_alpn,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Index of the certificate used for `sni`.
    pub fn index_for(&self, sni: Option<&str>) -> usize {
        // One certificate serves every name: no lookup in the handshake.
        let Some(name) = sni.filter(|_| self.keys.len() > 1) else {
            return 0;
        };
        if let Some(&i) = self.cache.lock().ok().as_ref().and_then(|c| c.get(name)) {
            return i;
        }
        let i = ServerName::try_from(name.to_string())
            .ok()
            .and_then(|sn| {
                self.keys.iter().position(|k| {
                    k.end_entity_cert()
                        .ok()
                        .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
                        .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&sn).is_ok())
                })
            })
            .unwrap_or(0);
        if let Ok(mut c) = self.cache.lock()
            && c.len() < 4096
        {
            c.insert(name.to_string(), i);
        }
        i
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A client offering ALPN without h2 gets rustls's `no_application_protocol` itself.
        if self.require_alpn && hello.alpn().is_none() {
            record(Resolved {
                refused_no_alpn: true,
            });
            return None;
        }
        self.keys.get(self.index_for(hello.server_name())).cloned()
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
