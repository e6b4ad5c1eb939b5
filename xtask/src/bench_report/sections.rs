//! One section of REPORT.md per benchmark, from its parsed JSON: markdown tables, and the
//! charts to draw (as data; [`super::charts`] draws them). Pure: no files, no clock.

use serde_json::Value;

use super::{charts::Bars, machine};

/// A section's markdown and the charts it links to (file name, chart).
pub struct Section {
    pub markdown: String,
    pub charts: Vec<(String, Bars)>,
}

impl Section {
    fn new() -> Self {
        Self {
            markdown: String::new(),
            charts: Vec::new(),
        }
    }
    fn line(&mut self, s: impl AsRef<str>) {
        self.markdown.push_str(s.as_ref());
        self.markdown.push('\n');
    }
    /// Adds a chart and its figure line: the image and a caption naming machine and date.
    fn chart(&mut self, file: &str, b: Bars) {
        self.line(format!("![{}]({file})", b.title));
        self.line(format!("*{} — {}*", b.title, b.source));
        self.line("");
        self.charts.push((file.to_string(), b));
    }
}

/// A number for a table: `–` when absent or not finite; thousands without decimals.
pub fn num(v: &Value) -> String {
    if let Some(n) = v.as_i64() {
        return group(n);
    }
    match v.as_f64() {
        Some(x) if x.is_finite() => {
            let a = x.abs();
            if a >= 1000.0 {
                group(x.round() as i64)
            } else if a >= 10.0 {
                format!("{x:.1}")
            } else if a >= 0.01 || a == 0.0 {
                format!("{x:.2}")
            } else {
                format!("{x:.4}")
            }
        }
        _ => "–".to_string(),
    }
}

fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A share as a percentage: `99.5 %`.
fn pct(v: &Value) -> String {
    v.as_f64()
        .filter(|x| x.is_finite())
        .map_or_else(|| "–".to_string(), |x| format!("{:.1} %", x * 100.0))
}

fn yes(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "–",
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A markdown table.
/// Columns of numbers are right-aligned, others left-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|", header.join(" | "));
    let numeric = |i: usize| {
        rows.iter().filter_map(|r| r.get(i)).all(|c| {
            c == "–"
                || c.starts_with("≤ ")
                || c.starts_with("≥ ")
                || c.starts_with(|ch: char| ch.is_ascii_digit() || ch == '-')
        })
    };
    for i in 0..header.len() {
        s.push_str(if i > 0 && numeric(i) {
            " ---: |"
        } else {
            " --- |"
        });
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// "Measured on … at …, commit …": the provenance line of a result.
pub fn provenance(v: &Value) -> String {
    let m = &v["machine"];
    if !m.is_object() {
        return "Measured on an unrecorded machine (this JSON predates the machine block).".into();
    }
    let commit = m["git_commit"]
        .as_str()
        .map(|c| {
            let dirty = if m["git_dirty"] == true {
                " + local changes"
            } else {
                ""
            };
            format!(", commit `{}`{dirty}", &c[..c.len().min(10)])
        })
        .unwrap_or_default();
    format!(
        "Measured on {}, {}{commit}.",
        machine::describe(m),
        machine::date(m)
    )
}

/// The chart subtitle: machine and date.
fn source(v: &Value) -> String {
    let m = &v["machine"];
    format!("{}, {}", machine::describe(m), machine::date(m))
}

pub fn xdp(v: &Value) -> Section {
    let mut s = Section::new();
    s.line(format!(
        "`BPF_PROG_TEST_RUN`, {} repetitions per timing, median of {} alternating rounds; \
         deny-list of {} prefixes. Baseline: a bare `XDP_PASS` program timed the same way.",
        num(&v["repeat"]),
        num(&v["rounds"]),
        num(&v["deny_prefixes"])
    ));
    s.line("");
    let paths = v["paths"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            vec![
                format!("`{}`", p["path"].as_str().unwrap_or("?")),
                num(&p["weir_ns"]),
                num(&p["bare_pass_ns"]),
                num(&p["ratio"]),
                p["target"].as_str().unwrap_or("–").replace("<=", "≤"),
                yes(&p["met"]).to_string(),
            ]
        })
        .collect();
    s.line(table(
        &[
            "path",
            "weir ns/packet",
            "bare XDP_PASS ns",
            "ratio",
            "target",
            "",
        ],
        &rows,
    ));
    let series = |k: &str| paths.iter().map(|p| f(&p[k])).collect::<Vec<_>>();
    s.chart(
        "xdp-ns-per-packet.png",
        Bars {
            title: "XDP ns/packet per path: weir vs a bare XDP_PASS".into(),
            source: source(v),
            y_label: "ns per packet (BPF_PROG_TEST_RUN)".into(),
            categories: paths
                .iter()
                .map(|p| p["path"].as_str().unwrap_or("?").to_string())
                .collect(),
            series: vec![
                ("weir".into(), series("weir_ns")),
                ("bare XDP_PASS".into(), series("bare_pass_ns")),
            ],
        },
    );
    s
}

pub fn pps(v: &Value) -> Section {
    let mut s = Section::new();
    s.line(format!(
        "{} SYNs from a deny-listed prefix per round through a veth (native XDP), median of {} \
         alternating rounds. Baselines: a bare `XDP_DROP`, and a drop that only reads the headers.",
        num(&v["packets_per_round"]),
        num(&v["rounds"])
    ));
    s.line("");
    s.line(table(
        &[
            "",
            "weir pps",
            "bare XDP_DROP pps",
            "header-reading drop pps",
            "weir / bare",
            "target",
            "",
        ],
        &[vec![
            "SYN flood, denied".into(),
            num(&v["weir_pps"]),
            num(&v["bare_drop_pps"]),
            num(&v["header_reading_drop_pps"]),
            num(&v["ratio"]),
            "≥ 0.9".into(),
            yes(&v["met"]).into(),
        ]],
    ));
    s
}

pub fn steer(v: &Value) -> Section {
    let mut s = Section::new();
    s.line(format!(
        "`weir run` with {} workers, wrk with `Connection: close` (a new connection per request), \
         {} s per run, median of {} alternating rounds. Baseline: the kernel's SO_REUSEPORT hash.",
        num(&v["workers"]),
        num(&v["seconds"]),
        num(&v["rounds"])
    ));
    s.line("");
    let ratio = f(&v["ratio"]);
    let decision = f(&v["decision_ns"]);
    s.line(table(
        &["", "Maglev steering", "kernel hash", "ratio", "target", ""],
        &[
            vec![
                "new connections/s".into(),
                num(&v["maglev_conn_per_s"]),
                num(&v["kernel_conn_per_s"]),
                num(&v["ratio"]),
                "≥ 1.0".into(),
                yes(&Value::from(ratio.is_finite().then_some(ratio >= 1.0))).into(),
            ],
            vec![
                "steering decision ns".into(),
                num(&v["decision_ns"]),
                "–".into(),
                "–".into(),
                "≤ 15".into(),
                yes(&Value::from(
                    decision.is_finite().then_some(decision <= 15.0),
                ))
                .into(),
            ],
        ],
    ));
    s
}

/// (JSON key, row label, as a percentage) of a flood's table.
const FLOOD_ROWS: [(&str, &str, bool); 10] = [
    ("offered_syn_per_s", "offered SYN/s", false),
    ("handled_syn_per_s", "SYN-ACKs sent/s", false),
    (
        "legit_success",
        "legitimate connections that succeeded",
        true,
    ),
    ("connect_p50_ms", "legitimate connect p50 ms", false),
    ("connect_p99_ms", "legitimate connect p99 ms", false),
    ("xdp_answered_share", "SYNs answered in XDP", true),
    (
        "kernel_syncookies_sent_per_round",
        "kernel SyncookiesSent per round",
        false,
    ),
    (
        "flood_cpu_busy_s_per_million_syn",
        "CPU µs per SYN (flood CPU busy)",
        false,
    ),
    ("softirq_s_per_million_syn", "softirq µs per SYN", false),
    ("legit_tried", "legitimate connections tried", false),
];

pub fn synflood(v: &Value) -> Section {
    let mut s = Section::new();
    s.line(format!(
        "A spoofed SYN flood against the kernel alone (`tcp_syncookies = 1`) and against weir \
         answering with SYN cookies from XDP, while a legitimate client connects in a loop; {} \
         alternating rounds per flood. CPU per SYN: busy time of the flood's CPU (generator, veth \
         and receiver together) per SYN received; s per million SYNs = µs per SYN.",
        num(&v["rounds"])
    ));
    s.line("");
    let floods: Vec<(String, Value)> = v["floods"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for (name, fl) in &floods {
        s.line(format!(
            "**{name}** (targets: {})",
            targets(&fl["targets_met"])
        ));
        s.line("");
        let rows: Vec<Vec<String>> = FLOOD_ROWS
            .iter()
            .map(|(k, label, as_pct)| {
                let (a, b) = (&fl["kernel_only"][*k], &fl["weir"][*k]);
                let cell = |x: &Value| if *as_pct { pct(x) } else { num(x) };
                vec![
                    (*label).to_string(),
                    cell(a),
                    cell(b),
                    num(&Value::from(f(b) / f(a))),
                ]
            })
            .collect();
        s.line(table(
            &["", "kernel only", "weir (XDP cookies)", "weir / kernel"],
            &rows,
        ));
        let negative = ["kernel_only", "weir"].iter().any(|case| {
            [
                "flood_cpu_busy_s_per_million_syn",
                "softirq_s_per_million_syn",
            ]
            .iter()
            .any(|k| f(&fl[*case][*k]) < 0.0)
        });
        if negative {
            s.line(
                "A negative CPU figure above is a fault of that round's measurement (a \
                 `/proc/stat` delta of the flood's CPU), not a cost; it is not drawn.",
            );
            s.line("");
        }
    }
    if let Some(paths) = v["testrun"].as_array() {
        s.line("The SYN path alone, ns/packet through `BPF_PROG_TEST_RUN` (one call per packet):");
        s.line("");
        let rows: Vec<Vec<String>> = paths
            .iter()
            .map(|p| {
                vec![
                    format!("`{}`", p["path"].as_str().unwrap_or("?")),
                    num(&p["weir_ns"]),
                    num(&p["bare_pass_ns"]),
                    p["target_ns"]
                        .as_f64()
                        .map_or("–".into(), |t| format!("≤ {t} ns")),
                    yes(&p["met"]).into(),
                ]
            })
            .collect();
        s.line(table(
            &["path", "weir ns", "bare XDP_PASS ns", "target", ""],
            &rows,
        ));
    }
    if !floods.is_empty() {
        let cats: Vec<String> = floods.iter().map(|(n, _)| n.clone()).collect();
        let series = |case: &str, k: &str, scale: f64| -> Vec<f64> {
            floods
                .iter()
                .map(|(_, fl)| f(&fl[case][k]) * scale)
                .collect()
        };
        s.chart(
            "synflood-legit-success.png",
            Bars {
                title: "SYN flood: legitimate connections that succeeded".into(),
                source: source(v),
                y_label: "% of legitimate connects".into(),
                categories: cats.clone(),
                series: vec![
                    (
                        "weir (XDP cookies)".into(),
                        series("weir", "legit_success", 100.0),
                    ),
                    (
                        "kernel only".into(),
                        series("kernel_only", "legit_success", 100.0),
                    ),
                ],
            },
        );
        s.chart(
            "synflood-cpu-per-syn.png",
            Bars {
                title: "SYN flood: CPU per SYN, weir vs kernel only".into(),
                source: source(v),
                y_label: "µs of the flood's CPU per SYN".into(),
                categories: cats,
                series: vec![
                    (
                        "weir (XDP cookies)".into(),
                        series("weir", "flood_cpu_busy_s_per_million_syn", 1.0),
                    ),
                    (
                        "kernel only".into(),
                        series("kernel_only", "flood_cpu_busy_s_per_million_syn", 1.0),
                    ),
                ],
            },
        );
    }
    s
}

/// `name met, name **missed**` for an object of booleans.
fn targets(t: &Value) -> String {
    t.as_object().map_or_else(
        || "–".into(),
        |o| {
            o.iter()
                .map(|(k, v)| format!("{k} {}", yes(v)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    )
}

/// (JSON key, row label) of the HTTP table.
const HTTP_ROWS: [(&str, &str); 10] = [
    ("h1_rps", "HTTP/1.1 keep-alive req/s"),
    ("h1_cpu_us_per_req", "HTTP/1.1 proxy CPU µs/request"),
    ("h1_p50_us", "HTTP/1.1 p50 µs"),
    ("h1_p99_us", "HTTP/1.1 p99 µs"),
    ("h2tls_rps", "HTTPS + HTTP/2 req/s"),
    (
        "h2tls_cpu_us_per_req",
        "HTTPS + HTTP/2 proxy CPU µs/request",
    ),
    ("h2tls_p50_us", "HTTPS + HTTP/2 p50 µs"),
    ("h2tls_p99_us", "HTTPS + HTTP/2 p99 µs"),
    ("tls_handshakes_per_s", "full TLS handshakes/s"),
    ("idle_conn_bytes", "memory per idle connection, bytes"),
];

const PROXIES: [(&str, &str); 3] = [("weir", "weir"), ("haproxy", "HAProxy"), ("nginx", "nginx")];

pub fn http(v: &Value) -> Section {
    let mut s = Section::new();
    let setup = &v["setup"];
    s.line(format!(
        "One worker per proxy pinned to core {}, origin and load generators on core {}; median \
         of {} round(s) of {} s. HAProxy: {}; nginx: {}. The TCP relay (HAProxy `mode tcp`, no \
         HTTP work) is this machine's ceiling for req/s and floor for CPU per request.",
        setup["proxy_core"].as_str().unwrap_or("?"),
        setup["load_core"].as_str().unwrap_or("?"),
        num(&setup["rounds"]),
        num(&setup["duration_s"]),
        setup["haproxy"].as_str().unwrap_or("?"),
        setup["nginx"].as_str().unwrap_or("?"),
    ));
    if let Some(w) = setup["weir"].as_str() {
        s.line("");
        s.line(format!("weir binary: `{w}`."));
    }
    s.line("");
    let med = &v["median"];
    let rows: Vec<Vec<String>> = HTTP_ROWS
        .iter()
        .map(|(k, label)| {
            let w = f(&med["weir"][*k]);
            vec![
                (*label).to_string(),
                num(&med["weir"][*k]),
                num(&med["haproxy"][*k]),
                num(&med["nginx"][*k]),
                num(&med["relay"][*k]),
                num(&Value::from(w / f(&med["haproxy"][*k]))),
                num(&Value::from(w / f(&med["nginx"][*k]))),
            ]
        })
        .collect();
    s.line(table(
        &[
            "",
            "weir",
            "HAProxy",
            "nginx",
            "TCP relay",
            "weir / HAProxy",
            "weir / nginx",
        ],
        &rows,
    ));
    s.line(format!("Targets: {}.", targets(&v["targets"])));
    if let Some(e) = v["errors"].as_object() {
        let errs: Vec<String> = e.iter().map(|(k, v)| format!("{k} {}", num(v))).collect();
        s.line(format!("Client-visible errors: {}.", errs.join(", ")));
    }
    s.line("");
    let by_proxy = |keys: [&str; 2]| -> Vec<(String, Vec<f64>)> {
        PROXIES
            .iter()
            .map(|(k, label)| {
                (
                    (*label).to_string(),
                    keys.iter().map(|m| f(&med[*k][*m])).collect(),
                )
            })
            .collect()
    };
    let cats = vec![
        "HTTP/1.1 keep-alive".to_string(),
        "HTTPS + HTTP/2".to_string(),
    ];
    s.chart(
        "http-req-per-s.png",
        Bars {
            title: "L7 requests/s, one worker on one core: weir vs HAProxy and nginx".into(),
            source: source(v),
            y_label: "requests per second".into(),
            categories: cats.clone(),
            series: by_proxy(["h1_rps", "h2tls_rps"]),
        },
    );
    s.chart(
        "http-cpu-per-request.png",
        Bars {
            title: "L7 CPU per request: weir vs HAProxy and nginx".into(),
            source: source(v),
            y_label: "proxy CPU µs per request".into(),
            categories: cats,
            series: by_proxy(["h1_cpu_us_per_req", "h2tls_cpu_us_per_req"]),
        },
    );
    s
}

/// The section of benchmark `name`.
pub fn of(name: &str, v: &Value) -> Section {
    match name {
        "xdp" => xdp(v),
        "pps" => pps(v),
        "steer" => steer(v),
        "synflood" => synflood(v),
        _ => http(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_tables() {
        assert_eq!(num(&Value::from(1_234_567.8)), "1,234,568");
        assert_eq!(num(&Value::from(-1234.0)), "-1,234");
        assert_eq!(num(&Value::from(12.345)), "12.3");
        assert_eq!(num(&Value::from(0.5)), "0.50");
        assert_eq!(num(&Value::from(5)), "5");
        assert_eq!(num(&Value::from(1_000_000)), "1,000,000");
        assert_eq!(num(&Value::Null), "–");
        assert_eq!(num(&Value::from(f64::NAN)), "–");
        assert_eq!(pct(&Value::from(0.995)), "99.5 %");
    }

    #[test]
    fn table_layout() {
        let t = table(
            &["a", "b", "c"],
            &[vec!["x".into(), "1".into(), "met".into()]],
        );
        assert_eq!(t, "| a | b | c |\n| --- | ---: | --- |\n| x | 1 | met |\n");
    }
}
