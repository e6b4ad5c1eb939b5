//! TLS termination: rustls with the aws-lc-rs provider, certificates chosen by SNI (first one
//! is the default), ALPN by ALB's ALPN policy, TLS 1.2 and 1.3 only, and session tickets whose
//! keys all workers share so a session resumes on whichever worker gets the connection
//! (`crate::tickets`: the keys and their rotation).

use crate::config::{AlpnPolicy, Certificate};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::certs::provider;
pub use crate::certs::{TlsError, certified_key_from_pem, load_certified_key};

/// Picks the certificate whose names cover the SNI name; the first certificate otherwise.
#[derive(Debug)]
pub struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    cache: Mutex<HashMap<String, usize>>,
}

impl SniResolver {
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> SniResolver {
        SniResolver {
            keys,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Index of the certificate used for `sni`.
    pub fn index_for(&self, sni: Option<&str>) -> usize {
        let Some(name) = sni else { return 0 };
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
    let resolver = Arc::new(SniResolver::new(keys));
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = alpn_protocols(alpn, http2_enabled);
    cfg.ticketer = ticketer;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(10_000);
    Ok((Arc::new(cfg), resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

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
