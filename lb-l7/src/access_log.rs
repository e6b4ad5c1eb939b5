//! Access log: one line per request, ALB's field order. Formatting is pure; the writer is a
//! thread fed through a channel so request tasks never block on the file.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;

/// The fields of one line. Times are seconds; `None` prints as ALB's `-1` (not dispatched).
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// http, https, h2, ws, wss.
    pub kind: &'static str,
    /// RFC 3339 UTC time the response was finished.
    pub time: String,
    pub elb: String,
    pub client: Option<SocketAddr>,
    pub target: Option<SocketAddr>,
    pub request_processing_time: Option<f64>,
    pub target_processing_time: Option<f64>,
    pub response_processing_time: Option<f64>,
    pub elb_status_code: u16,
    pub target_status_code: Option<u16>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    /// `METHOD URL VERSION`.
    pub request: String,
    pub user_agent: String,
    pub ssl_cipher: Option<String>,
    pub ssl_protocol: Option<String>,
    pub target_group: Option<String>,
    pub trace_id: String,
    pub domain_name: Option<String>,
    pub chosen_cert: Option<String>,
    /// 0 default rule, -1 not evaluated.
    pub matched_rule_priority: i64,
    pub request_creation_time: String,
    pub actions_executed: Vec<&'static str>,
    pub redirect_url: Option<String>,
    pub error_reason: Option<&'static str>,
    pub target_status_code_list: Vec<u16>,
    pub target_list: Vec<SocketAddr>,
    pub classification: Option<&'static str>,
    pub classification_reason: Option<&'static str>,
}

fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-1".to_string(), |s| format!("{s:.3}"))
}

fn quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Record {
    /// The line, without a newline.
    pub fn format(&self) -> String {
        let join = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(" ")
            }
        };
        let fields = [
            self.kind.to_string(),
            self.time.clone(),
            self.elb.clone(),
            dash(&self.client),
            dash(&self.target),
            secs(self.request_processing_time),
            secs(self.target_processing_time),
            secs(self.response_processing_time),
            self.elb_status_code.to_string(),
            dash(&self.target_status_code),
            self.received_bytes.to_string(),
            self.sent_bytes.to_string(),
            quoted(&self.request),
            quoted(&self.user_agent),
            dash(&self.ssl_cipher),
            dash(&self.ssl_protocol),
            dash(&self.target_group),
            quoted(&self.trace_id),
            quoted(self.domain_name.as_deref().unwrap_or("-")),
            quoted(self.chosen_cert.as_deref().unwrap_or("-")),
            self.matched_rule_priority.to_string(),
            self.request_creation_time.clone(),
            quoted(&if self.actions_executed.is_empty() {
                "-".into()
            } else {
                self.actions_executed.join(",")
            }),
            quoted(self.redirect_url.as_deref().unwrap_or("-")),
            quoted(self.error_reason.unwrap_or("-")),
            quoted(&join(
                self.target_list.iter().map(|t| t.to_string()).collect(),
            )),
            quoted(&join(
                self.target_status_code_list
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            )),
            quoted(self.classification.unwrap_or("-")),
            quoted(self.classification_reason.unwrap_or("-")),
        ];
        fields.join(" ")
    }
}

/// RFC 3339 with microseconds, UTC, from a `SystemTime`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(std::path::PathBuf),
}

/// A handle request tasks send lines to.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog { tx: None }
    }

    pub fn start(target: &AccessLogTarget) -> anyhow::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog::off()),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("weir-access-log".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(&mut out);
                while let Ok(line) = rx.recv() {
                    let _ = writeln!(w, "{line}");
                    while let Ok(line) = rx.try_recv() {
                        let _ = writeln!(w, "{line}");
                    }
                    let _ = w.flush();
                }
            })?;
        Ok(AccessLog { tx: Some(tx) })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, r: &Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(r.format());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_placeholders() {
        let r = Record {
            kind: "http",
            time: "2026-01-01T00:00:00.000000Z".into(),
            elb: "weir/0".into(),
            client: Some("192.0.2.1:5000".parse().unwrap()),
            elb_status_code: 503,
            request: "GET http://a/ HTTP/1.1".into(),
            user_agent: "curl \"x\"".into(),
            trace_id: "Root=1-0-0".into(),
            matched_rule_priority: 0,
            request_creation_time: "2026-01-01T00:00:00.000000Z".into(),
            actions_executed: vec!["forward"],
            error_reason: Some("NoRegisteredTargets"),
            ..Record::default()
        };
        let line = r.format();
        assert!(line.starts_with("http 2026-01-01T00:00:00.000000Z weir/0 192.0.2.1:5000 - -1 -1 -1 503 - 0 0 \"GET http://a/ HTTP/1.1\" \"curl \\\"x\\\"\" - - - \"Root=1-0-0\""), "{line}");
        assert!(line.ends_with("0 2026-01-01T00:00:00.000000Z \"forward\" \"-\" \"NoRegisteredTargets\" \"-\" \"-\" \"-\" \"-\""), "{line}");
    }

    #[test]
    fn dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000000Z");
    }
}
