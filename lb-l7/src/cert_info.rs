//! What an operator sees of a listener certificate (HAProxy's `show ssl cert`, Envoy's `/certs`):
//! subject, subjectAltNames, issuer, serial, validity and key type of the chain's first
//! certificate, read with `x509-parser`; and how its validity stands at a given moment
//! ([`Validity`], [`warning`]), which `weir check`, `weir run` and every reload say. Pure: the
//! clock is an argument. `certs` checks that a chain and key can be served; this module only
//! describes one, so neither imports the other.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

/// A certificate expiring within this many days is warned of (Let's Encrypt renews at 30 days
/// left; ACM warns from 45; cert-manager's default `renewBefore` is a third of 90 days).
pub const WARN_DAYS: i64 = 30;

const DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    #[error("no CERTIFICATE block")]
    NoCertificate,
    #[error("PEM: {0}")]
    Pem(String),
    #[error("X.509: {0}")]
    X509(String),
}

/// The facts of one certificate, times as Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// The subject's distinguished name as RFC 4514 writes it (`CN=a.example, O=Example`).
    pub subject: String,
    /// subjectAltName entries, `DNS:name` or `IP:address` (as OpenSSL prints them).
    pub sans: Vec<String>,
    pub issuer: String,
    /// The serial number in hexadecimal, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// `RSA 2048`, `EC P-256`, `Ed25519`, …
    pub key_type: String,
}

/// Describes the first certificate of a PEM chain (the one served to clients).
pub fn describe_pem(pem: &[u8]) -> Result<CertInfo, CertInfoError> {
    let first = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or(CertInfoError::NoCertificate)?
        .map_err(|e| CertInfoError::Pem(e.to_string()))?;
    describe_der(&first)
}

/// Describes one DER certificate.
pub fn describe_der(der: &[u8]) -> Result<CertInfo, CertInfoError> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CertInfoError::X509(e.to_string()))?;
    let sans = match c.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().filter_map(san).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(CertInfoError::X509(e.to_string())),
    };
    Ok(CertInfo {
        subject: c.subject().to_string(),
        sans,
        issuer: c.issuer().to_string(),
        serial: c.raw_serial().iter().map(|b| format!("{b:02X}")).collect(),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        key_type: key_type(&c),
    })
}

fn san(n: &GeneralName<'_>) -> Option<String> {
    match n {
        GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
        GeneralName::IPAddress(b) => {
            let ip: std::net::IpAddr = match b.len() {
                4 => <[u8; 4]>::try_from(*b).ok()?.into(),
                16 => <[u8; 16]>::try_from(*b).ok()?.into(),
                _ => return None,
            };
            Some(format!("IP:{ip}"))
        }
        GeneralName::RFC822Name(m) => Some(format!("email:{m}")),
        GeneralName::URI(u) => Some(format!("URI:{u}")),
        _ => None,
    }
}

fn key_type(c: &X509Certificate<'_>) -> String {
    let spki = c.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(k)) => format!("RSA {}", k.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "EC P-256".into(),
                Some("1.3.132.0.34") => "EC P-384".into(),
                Some("1.3.132.0.35") => "EC P-521".into(),
                Some(other) => format!("EC {other}"),
                None => "EC".into(),
            }
        }
        _ => match alg.as_str() {
            "1.3.101.112" => "Ed25519".into(),
            "1.3.101.113" => "Ed448".into(),
            _ => alg,
        },
    }
}

/// How a certificate's validity stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// notBefore is still ahead.
    NotYetValid,
    /// notAfter has passed.
    Expired,
    /// Valid, with at most [`WARN_DAYS`] left.
    ExpiresSoon,
    Valid,
}

impl CertInfo {
    /// At `now` (Unix seconds). notAfter is the last valid second (RFC 5280 §4.1.2.5).
    pub fn validity(&self, now: i64) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else if self.not_after - now <= WARN_DAYS * DAY {
            Validity::ExpiresSoon
        } else {
            Validity::Valid
        }
    }

    /// Whole days until notAfter, rounded down: 0 on its last day, negative once expired
    /// (Envoy's `days_until_expiration`, which goes negative the same way).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(DAY)
    }
}

/// RFC 3339 in UTC to the second (`2026-12-07T21:13:49Z`).
pub fn rfc3339(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// "3 days", "1 day", "5 hours": how far `secs` (≥ 0) is, for a warning.
fn span(secs: i64) -> String {
    let (n, unit) = if secs >= DAY {
        (secs / DAY, "day")
    } else if secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// What to say of certificate `file` served by `listener` (`address:port`) at `now`: `None`
/// while it is valid for more than [`WARN_DAYS`]. Expired and not yet valid certificates are
/// served anyway (docs/l7.md, "Certificate validity"), so their message says so in capitals.
pub fn warning(listener: &str, file: &str, info: &CertInfo, now: i64) -> Option<String> {
    let what = format!(
        "listener {listener} certificate {file} (subject {:?}, notAfter {})",
        info.subject,
        rfc3339(info.not_after)
    );
    match info.validity(now) {
        Validity::Valid => None,
        Validity::Expired => Some(format!(
            "EXPIRED {} ago: {what}: clients that check it refuse the handshake; weir serves it \
             anyway (as HAProxy and nginx do): renew it and reload",
            span(now - info.not_after)
        )),
        Validity::NotYetValid => Some(format!(
            "NOT YET VALID (notBefore {}, in {}): {what}: clients that check it refuse the \
             handshake until then; weir serves it anyway: check the certificate and this host's \
             clock",
            rfc3339(info.not_before),
            span(info.not_before - now)
        )),
        Validity::ExpiresSoon => Some(format!(
            "expires in {}: {what}: renew it and reload",
            span(info.not_after - now)
        )),
    }
}

#[cfg(test)]
mod tests;
