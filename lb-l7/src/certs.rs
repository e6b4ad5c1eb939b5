//! A certificate chain and its private key from PEM, checked to belong together: what
//! configuration validation (`config::validate`) reads and TLS termination (`crate::tls`)
//! serves. Its own module so that validation does not import `tls`, which imports `config`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// A certificate's subjectAltName DNS names, lowercase, without a trailing dot (none: no client
/// accepts it for any host name).
pub fn dns_names(key: &CertifiedKey) -> Vec<String> {
    key.end_entity_cert()
        .ok()
        .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
        .map(|ee| {
            ee.valid_dns_names()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Loads a PEM certificate chain and its PEM private key, checking that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| e.to_string());
    let cert_pem = read(cert).map_err(|reason| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    })?;
    let key_pem = read(key).map_err(|reason| TlsError::Key {
        path: key.display().to_string(),
        reason,
    })?;
    certified_key_from_pem(cert, &cert_pem, key, &key_pem)
}

/// [`load_certified_key`] from the files' contents (`cert` and `key` name them in errors).
pub fn certified_key_from_pem(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| cert_err(format!("{e:?}")))?;
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch),
        // Key types whose public key cannot be extracted are accepted as they are.
        Err(_) => Ok(ck),
    }
}
