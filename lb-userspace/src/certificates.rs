//! The listeners' certificates as an operator sees them: described once per validated file
//! (`crate::reload::validate`, from the very PEM text the workers are sent, so what is shown is
//! what is served even when the file on disk was renewed and not reloaded yet), warned of by
//! `weir check`, `weir run` and every reload when expired, not yet valid or expiring within
//! [`lb_l7::cert_info::WARN_DAYS`], and shown by `GET /v1/certificates` (`weir certificates`)
//! and the `weir_certificate_*` metrics. See docs/l7.md, "Certificate validity".

use std::collections::BTreeMap;

use lb_l7::cert_info::{self, CertInfo, Validity};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// One certificate a listener serves (the chain's first certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCertificate {
    /// `address:port`, the metrics' `listener` label.
    pub listener: String,
    pub port: u16,
    /// `certificate_file` as configured.
    pub file: String,
    pub info: CertInfo,
}

/// Every HTTPS listener's certificates, in the file's order, from `files` (path → PEM text, as
/// `reload::validate` read them). `Err((field, reason))`: one that cannot be described.
pub fn describe(
    cfg: &Config,
    files: &BTreeMap<String, String>,
) -> Result<Vec<ServedCertificate>, Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, l) in cfg.l7.listener.iter().enumerate() {
        for (j, c) in l.certificate.iter().enumerate() {
            let file = c.certificate_file.display().to_string();
            let Some(pem) = files.get(&file) else {
                continue;
            };
            match cert_info::describe_pem(pem.as_bytes()) {
                Ok(info) => out.push(ServedCertificate {
                    listener: l.socket_addr().to_string(),
                    port: l.port,
                    file,
                    info,
                }),
                Err(e) => problems.push((
                    format!("listener[{i}].certificate[{j}].certificate_file"),
                    format!("{file}: cannot read its subject and validity dates: {e}"),
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A warning of one certificate: `loud` for one clients refuse now (expired, not yet valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub loud: bool,
    pub message: String,
}

/// What to say of `certs` at `now`: nothing of those valid for more than `WARN_DAYS`.
pub fn warnings(certs: &[ServedCertificate], now: i64) -> Vec<Warning> {
    certs
        .iter()
        .filter_map(|c| {
            let message = cert_info::warning(&c.listener, &c.file, &c.info, now)?;
            let loud = matches!(
                c.info.validity(now),
                Validity::Expired | Validity::NotYetValid
            );
            Some(Warning { loud, message })
        })
        .collect()
}

/// Logs [`warnings`] for `weir run` and reloads: at ERROR for a certificate clients refuse (an
/// outage for every client that checks, so not a level a WARN filter hides), WARN for one
/// expiring soon.
pub fn log_warnings(certs: &[ServedCertificate], config: &str, generation: u64) {
    for w in warnings(certs, now_unix()) {
        if w.loud {
            tracing::error!(config, generation, "certificate {}", w.message);
        } else {
            tracing::warn!(config, generation, "certificate {}", w.message);
        }
    }
}

/// A few words for the service manager's status line (`systemctl status weir`), `None` while
/// every certificate is valid for more than `WARN_DAYS`: `certificates: 1 EXPIRED, 2 expire
/// within 30 days`.
pub fn summary(certs: &[ServedCertificate], now: i64) -> Option<String> {
    let count = |v: Validity| certs.iter().filter(|c| c.info.validity(now) == v).count();
    let parts: Vec<String> = [
        (count(Validity::Expired), "EXPIRED", "EXPIRED"),
        (
            count(Validity::NotYetValid),
            "NOT YET VALID",
            "NOT YET VALID",
        ),
        (
            count(Validity::ExpiresSoon),
            "expires within 30 days",
            "expire within 30 days",
        ),
    ]
    .into_iter()
    .filter(|(n, ..)| *n > 0)
    .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
    .collect();
    (!parts.is_empty()).then(|| format!("certificates: {}", parts.join(", ")))
}

/// `status` with [`summary`] of the generation's certificates now, for `notify`.
pub fn with_summary(status: String, certs: &[ServedCertificate]) -> String {
    match summary(certs, now_unix()) {
        Some(s) => format!("{status}; {s}"),
        None => status,
    }
}

/// `GET /v1/certificates`: per listener with certificates, each described at the moment of the
/// request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateList {
    pub listeners: Vec<ListenerCertificates>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerCertificates {
    /// `address:port`.
    pub listener: String,
    pub port: u16,
    /// The default certificate first (the one served without SNI or to an unknown name).
    pub certificates: Vec<CertificateView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateView {
    pub file: String,
    pub subject: String,
    pub subject_alt_names: Vec<String>,
    pub issuer: String,
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Whole days until notAfter, rounded down: negative once expired.
    pub days_left: i64,
    /// `valid`, `expires_soon` (within 30 days), `expired`, `not_yet_valid`.
    pub status: String,
    pub key_type: String,
}

fn status(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::ExpiresSoon => "expires_soon",
        Validity::Expired => "expired",
        Validity::NotYetValid => "not_yet_valid",
    }
}

/// The list at `now`, of the listener on `port` only when given.
pub fn list(certs: &[ServedCertificate], port: Option<u16>, now: i64) -> CertificateList {
    let mut listeners: Vec<ListenerCertificates> = Vec::new();
    for c in certs.iter().filter(|c| port.is_none_or(|p| c.port == p)) {
        let i = &c.info;
        let view = CertificateView {
            file: c.file.clone(),
            subject: i.subject.clone(),
            subject_alt_names: i.sans.clone(),
            issuer: i.issuer.clone(),
            serial: i.serial.clone(),
            not_before: cert_info::rfc3339(i.not_before),
            not_after: cert_info::rfc3339(i.not_after),
            not_before_unix: i.not_before,
            not_after_unix: i.not_after,
            days_left: i.days_left(now),
            status: status(i.validity(now)).into(),
            key_type: i.key_type.clone(),
        };
        match listeners.iter_mut().find(|l| l.port == c.port) {
            Some(l) => l.certificates.push(view),
            None => listeners.push(ListenerCertificates {
                listener: c.listener.clone(),
                port: c.port,
                certificates: vec![view],
            }),
        }
    }
    CertificateList { listeners }
}

#[cfg(test)]
mod tests;
