//! weir's one configuration file (TOML): the L4 part (`[xdp]`, `[[vip]]`, `[deny]`) defined here,
//! the L7 part (`[load_balancer]`, `[[listener]]`, `[[target_group]]`) defined by `lb_l7::config`.
//!
//! Every error names the file, line, column and field (`weir check` prints them all at once).

pub mod admin;
pub mod l4;
pub mod locate;
pub mod metrics;
pub mod syn;
pub mod workers;

use std::{fmt, path::Path};

use serde::Deserialize;
use toml_edit::ImDocument;

pub use l4::{DenyList, FieldProblem, Protocol, VipSpec, XdpModeSetting, XdpSettings};
pub use workers::{Steering, WorkerSettings};

/// The embedded default, used when `weir run` gets no `--config` (shown in the README).
pub const DEFAULT_TOML: &str = include_str!("default.toml");
/// The name errors in the embedded default are reported under.
pub const DEFAULT_NAME: &str = "<embedded default>";

/// The L7 sections, parsed and validated by the L7 worker's own types.
pub type L7Config = lb_l7::config::L7Config;

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (or [`DEFAULT_NAME`]).
    pub source: String,
    pub xdp: XdpSettings,
    /// `None` when the file has no `[[vip]]`: the VIPs are then the L7 listeners' ports on the
    /// attached interface's addresses (see [`Config::vip_specs`]).
    pub vip: Option<Vec<VipSpec>>,
    pub deny: DenyList,
    /// `[syn]`: the SYN-flood defence.
    pub syn: syn::SynConfig,
    pub workers: WorkerSettings,
    /// `[admin]`: the admin API's socket.
    pub admin: admin::AdminSettings,
    /// `[metrics]`: the Prometheus page.
    pub metrics: metrics::MetricsSettings,
    pub l7: L7Config,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    xdp: XdpSettings,
    #[serde(default)]
    vip: Option<Vec<VipSpec>>,
    #[serde(default)]
    deny: DenyList,
    #[serde(default)]
    syn: syn::SynConfig,
    #[serde(default)]
    workers: WorkerSettings,
    #[serde(default)]
    admin: admin::AdminSettings,
    #[serde(default)]
    metrics: metrics::MetricsSettings,
    #[serde(default)]
    load_balancer: lb_l7::config::LoadBalancerAttributes,
    #[serde(default)]
    listener: Vec<lb_l7::config::Listener>,
    #[serde(default)]
    target_group: Vec<lb_l7::config::TargetGroup>,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The key path (`vip[1].port`), empty for a syntax error outside any key.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems of one file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            writeln!(f, "  {issue}")?;
        }
        Ok(())
    }
}

/// One type error: where (a byte range of the file), the key path, the message.
type TypeError = (Option<std::ops::Range<usize>>, String, String);

/// At most this many type errors are reported from one file.
const MAX_TYPE_ERRORS: usize = 20;

/// Deserializes `text`, or returns every type error it can find (span, key path, message).
///
/// serde stops at its first error. To find the next, the lines of the offending key are blanked
/// (spaces; line breaks kept, so later positions still point at the file's own lines) and the
/// text deserialized again. A blanked key that was required then reads as "missing field" in
/// its table, which already has an error: such echoes are not reported. Blanking stops at the
/// first change that makes the text unparsable, and after [`MAX_TYPE_ERRORS`].
fn every_type_error(text: &str, doc: &ImDocument<&str>) -> Result<File, Vec<TypeError>> {
    let mut found: Vec<TypeError> = Vec::new();
    let mut current = text.to_string();
    loop {
        let e = match toml::from_str::<File>(&current) {
            Ok(file) if found.is_empty() => return Ok(file),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        let message = e.message().trim().to_string();
        let (span, field) = located_type_error(doc, e.span(), &message);
        let echo = message.starts_with("missing field")
            && found.iter().any(|(_, f, _)| f.starts_with(&field));
        let first = found.is_empty();
        if !echo {
            found.push((span.clone(), field, message));
        }
        let blanked = e.span().map(|s| blank_lines(&current, s));
        match blanked {
            Some(b) if found.len() < MAX_TYPE_ERRORS && b != current && (first || !echo) => {
                if ImDocument::parse(b.as_str()).is_err() {
                    return Err(found);
                }
                current = b;
            }
            _ => return Err(found),
        }
    }
}

/// Where a type error is (`span`, as toml gives it) and its key path. toml places an error in
/// an internally tagged enum (an action, a condition) on the whole table: the field is then
/// the one the message is about ([`locate::field_named_by`]), and the place its value.
fn located_type_error(
    doc: &ImDocument<&str>,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> (Option<std::ops::Range<usize>>, String) {
    let Some(path) = span.clone().and_then(|s| locate::path_at(doc, s.start)) else {
        return (span, String::new());
    };
    match locate::field_named_by(doc, &path, message) {
        // Placed on the table: moved to the field's value. Placed on a key (an unknown
        // field of a plain table): kept there.
        Some(field) if span == locate::span_of(doc, &path) => {
            (locate::span_of(doc, &field).or(span), field)
        }
        Some(field) => (span, field),
        None => (span, path),
    }
}

/// The field of a TOML syntax error and a message for it: an integer beyond TOML's 64 bits
/// ("number too large to fit in target type") is a syntax error to the parser, with no field;
/// the field is found in the text with the number written as `0`, and the message says what
/// the limit is. Any other syntax error keeps its message, with no field.
fn syntax_error_field(text: &str, span: std::ops::Range<usize>, message: &str) -> (String, String) {
    let numeric = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    let at = span.start.min(text.len());
    let start = text[..at].rfind(|c: char| !numeric(c)).map_or(0, |i| i + 1);
    let end = text[at..]
        .find(|c: char| !numeric(c))
        .map_or(text.len(), |i| at + i);
    let number = &text[start..end];
    let too_large = message.contains("too large") || message.contains("too small");
    if !too_large
        || number.is_empty()
        || !number
            .trim_start_matches(['+', '-'])
            .starts_with(|c: char| c.is_ascii_digit())
    {
        return (String::new(), message.to_string());
    }
    let zeroed = format!(
        "{}0{}{}",
        &text[..start],
        " ".repeat(number.len() - 1),
        &text[end..]
    );
    let field = ImDocument::parse(zeroed.as_str())
        .ok()
        .and_then(|doc| locate::path_at(&doc, start))
        .unwrap_or_default();
    (
        field,
        format!(
            "`{number}` is out of range: a TOML integer is at most {} (and at least {}); the \
             field's own range is smaller",
            i64::MAX,
            i64::MIN
        ),
    )
}

/// `text` with the whole lines that `span` touches turned into spaces (line breaks kept). A
/// span on a table header (`[worker]`, a misspelled `[workers]`) blanks the whole table, to
/// the next header: its keys left behind would belong to the table before it, and be reported
/// as that table's unknown fields.
fn blank_lines(text: &str, span: std::ops::Range<usize>) -> String {
    let start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut end = text[span.end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    if text[start..].trim_start().starts_with('[') {
        let mut at = end;
        while at < text.len() {
            let next = text[at + 1..].find('\n').map_or(text.len(), |i| at + 1 + i);
            if text[at + 1..next].trim_start().starts_with('[') {
                break;
            }
            at = next;
        }
        end = at.min(text.len());
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.extend(
        text[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' }),
    );
    out.push_str(&text[end..]);
    out
}

impl Config {
    /// Reads and validates `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        match path {
            None => Ok(Config::parse(DEFAULT_NAME, DEFAULT_TOML)?),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?;
                Ok(Config::parse(&p.display().to_string(), &text)?)
            }
        }
    }

    /// Parses and validates `text`; `name` is what errors call the file.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        let issue = |span: Option<std::ops::Range<usize>>, field: String, message: String| {
            let (line, column) = locate::line_col(text, span.map_or(0, |s| s.start));
            ConfigIssue {
                file: name.to_string(),
                line,
                column,
                field,
                message,
            }
        };
        let doc = ImDocument::parse(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let (field, message) = match e.span() {
                Some(span) => syntax_error_field(text, span, &message),
                None => (String::new(), message),
            };
            ConfigError {
                issues: vec![issue(e.span(), field, message)],
            }
        })?;
        let file: File = every_type_error(text, &doc).map_err(|found| ConfigError {
            issues: found
                .into_iter()
                .map(|(span, field, message)| issue(span, field, message))
                .collect(),
        })?;
        let config = Config {
            source: name.to_string(),
            xdp: file.xdp,
            vip: file.vip,
            deny: file.deny,
            syn: file.syn,
            workers: file.workers,
            admin: file.admin,
            metrics: file.metrics,
            l7: L7Config {
                load_balancer: file.load_balancer,
                listener: file.listener,
                target_group: file.target_group,
            },
        };
        let problems = config.validate();
        if problems.is_empty() {
            return Ok(config);
        }
        Err(ConfigError {
            issues: problems
                .into_iter()
                .map(|p| issue(locate::span_of(&doc, &p.path), p.path, p.message))
                .collect(),
        })
    }

    /// Every field-level problem, L4 and L7.
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if let Some(vips) = &self.vip {
            l4::validate_vips(vips, &mut problems);
        }
        l4::validate_deny(&self.deny, &mut problems);
        self.syn.validate(&mut problems);
        self.syn_overrides_name_vips(&mut problems);
        self.workers.validate(self.l7.listener.len(), &mut problems);
        self.admin.validate(&mut problems);
        self.metrics
            .validate(&self.l7.listener, self.vip.as_deref(), &mut problems);
        problems.extend(
            self.l7
                .validate()
                .into_iter()
                .map(|e| FieldProblem::new(e.path, e.message)),
        );
        problems
    }

    /// The VIPs to program: the `[[vip]]` list, or, without one, one TCP VIP per L7 listener port
    /// on the attached interface's addresses.
    /// A `[[syn.vip]]` override must name a VIP: when every VIP is known from the file (each
    /// `[[vip]]` an address, none `"interface"`), one that names none is refused here; else the
    /// daemon warns of it at start and reload, once the interface's addresses are known
    /// (`XdpTier::warn_uncovered`).
    fn syn_overrides_name_vips(&self, problems: &mut Vec<FieldProblem>) {
        let specs = self.vip_specs();
        if specs.is_empty() || specs.iter().any(|v| v.address == l4::INTERFACE_ADDRESS) {
            // The VIPs are the interface's addresses: a port that no VIP has is known now.
            for (i, o) in self.syn.vip.iter().enumerate() {
                if !specs.is_empty() && !specs.iter().any(|v| v.port == o.port) {
                    problems.push(FieldProblem::new(
                        format!("syn.vip[{i}].port"),
                        format!(
                            "no VIP has port {} (the VIPs' ports: {})",
                            o.port,
                            ports(&specs)
                        ),
                    ));
                }
            }
            return;
        }
        for (i, o) in self.syn.vip.iter().enumerate() {
            let Ok(address) = o
                .address
                .parse::<std::net::IpAddr>()
                .map(|a| a.to_canonical())
            else {
                // "interface", or not an address: `SynConfig::validate` judges it.
                if o.address == l4::INTERFACE_ADDRESS && !specs.iter().any(|v| v.port == o.port) {
                    problems.push(FieldProblem::new(
                        format!("syn.vip[{i}].port"),
                        format!(
                            "no VIP has port {} (the VIPs' ports: {})",
                            o.port,
                            ports(&specs)
                        ),
                    ));
                }
                continue;
            };
            let named = specs.iter().any(|v| {
                v.port == o.port
                    && v.address
                        .parse()
                        .ok()
                        .map(|a: std::net::IpAddr| a.to_canonical())
                        == Some(address)
            });
            if !named {
                problems.push(FieldProblem::new(
                    format!("syn.vip[{i}]"),
                    format!(
                        "{} port {} is not a VIP: the override would change nothing (the VIPs: {})",
                        o.address,
                        o.port,
                        specs
                            .iter()
                            .map(|v| format!("{}:{}/{}", v.address, v.port, v.protocol.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }

    pub fn vip_specs(&self) -> Vec<VipSpec> {
        if let Some(v) = &self.vip {
            return v.clone();
        }
        let mut ports: Vec<u16> = self.l7.listener.iter().map(|l| l.port).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
            .into_iter()
            .map(|port| VipSpec {
                name: None,
                address: l4::INTERFACE_ADDRESS.to_string(),
                port,
                protocol: Protocol::Tcp,
            })
            .collect()
    }
}

/// The VIPs' ports, for a message: `80, 443`.
fn ports(specs: &[VipSpec]) -> String {
    let mut p: Vec<u16> = specs.iter().map(|v| v.port).collect();
    p.sort_unstable();
    p.dedup();
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
