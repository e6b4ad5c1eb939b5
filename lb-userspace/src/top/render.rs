//! Drawing a [`Snapshot`]: pure, onto a ratatui buffer of any size. Laid out for 80×24 (every
//! line fits 80 columns); on a smaller screen the long lists (SYN VIPs, listeners, targets,
//! workers) give up rows first, each ending in "… N more", then the bottom is cut. `--once`
//! renders the whole frame at 80 columns and prints it as text ([`text`]).

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::snapshot::{Latency, Rate, Snapshot, XdpView};

/// The width every line is laid out for.
pub const WIDTH: u16 = 80;

/// A snapshot as a widget.
pub struct View<'a>(pub &'a Snapshot);

impl Widget for View<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = fit(sections(self.0), area.height as usize);
        Paragraph::new(lines).render(area, buf);
    }
}

/// The whole frame (nothing cut) as plain text: one line per row, trailing blanks trimmed, no
/// escape codes.
pub fn text(s: &Snapshot) -> String {
    let height = sections(s).iter().map(Section::len).sum::<usize>();
    let area = Rect::new(0, 0, WIDTH, height.min(u16::MAX as usize) as u16);
    let mut buf = Buffer::empty(area);
    View(s).render(area, &mut buf);
    buffer_text(&buf)
}

/// A buffer's symbols, line by line, trailing blanks trimmed.
pub fn buffer_text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut out = String::new();
    for y in a.top()..a.bottom() {
        let mut line = String::new();
        for x in a.left()..a.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A part of the screen: fixed lines, then rows that may be cut.
struct Section {
    head: Vec<Line<'static>>,
    rows: Vec<Line<'static>>,
    /// Rows shown (the rest summarised in one "… N more" line).
    shown: usize,
}

impl Section {
    fn new(head: Vec<Line<'static>>, rows: Vec<Line<'static>>) -> Section {
        let shown = rows.len();
        Section { head, rows, shown }
    }
    fn len(&self) -> usize {
        self.head.len() + self.shown + usize::from(self.shown < self.rows.len())
    }
}

/// The sections' lines within `height`: the section showing most rows gives one up (to a
/// "… N more" line) until they fit or no list has a row left to give; the bottom is cut then.
fn fit(mut sections: Vec<Section>, height: usize) -> Vec<Line<'static>> {
    while sections.iter().map(Section::len).sum::<usize>() > height {
        let Some(s) = sections
            .iter_mut()
            .filter(|s| s.shown > 0)
            .max_by_key(|s| s.shown)
        else {
            break;
        };
        // Cutting the first row costs a "more" line: worth it only with two or more.
        if s.shown == s.rows.len() && s.shown == 1 {
            s.shown = 0;
            s.rows.truncate(0);
            continue;
        }
        s.shown -= 1;
    }
    let mut out = Vec::new();
    for s in sections {
        let more = s.rows.len() - s.shown;
        out.extend(s.head);
        out.extend(s.rows.into_iter().take(s.shown));
        if more > 0 {
            out.push(Line::styled(
                format!("  … {more} more"),
                Style::default().add_modifier(Modifier::DIM),
            ));
        }
    }
    out.truncate(height);
    out
}

fn title() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn heading(text: String) -> Line<'static> {
    Line::styled(text, title().add_modifier(Modifier::REVERSED))
}

/// A rate in 6 characters: `812`, `12.5`, `12.3k`, `4.56M`, `n/a`.
pub fn per_second(r: Option<f64>) -> String {
    match r {
        None => "n/a".into(),
        Some(v) if v < 10.0 => format!("{v:.1}"),
        Some(v) if v < 10_000.0 => format!("{v:.0}"),
        Some(v) if v < 999_950.0 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{:.2}M", v / 1e6),
    }
}

/// A count: exact up to 9 digits, then `1.23G`.
pub fn count(n: Option<u64>) -> String {
    match n {
        None => "n/a".into(),
        Some(n) if n < 1_000_000_000 => n.to_string(),
        Some(n) => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// A rate with its unit, `n/a` alone.
fn with_unit(r: Option<f64>, unit: &str) -> String {
    match r {
        Some(_) => format!("{}{unit}", per_second(r)),
        None => "n/a".into(),
    }
}

fn duration(s: u64) -> String {
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m{sec:02}s"),
        (0, h, m, _) => format!("{h}h{m:02}m"),
        (d, h, _, _) => format!("{d}d{h:02}h"),
    }
    .replace("m00s", "m")
}

fn seconds(v: f64) -> String {
    if v < 1.0 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{v:.2} s")
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

/// Cuts `s` to `n` characters (the last one `…` when cut).
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
    c.push('…');
    c
}

fn sections(s: &Snapshot) -> Vec<Section> {
    vec![
        header(s),
        xdp(s),
        syn(s),
        listeners(s),
        latency(s.latency),
        targets(s),
        workers(s),
    ]
}

fn header(s: &Snapshot) -> Section {
    let h = &s.header;
    let mut left = format!(
        "weir top  pid {}  gen {}  up {}  workers {}",
        opt(h.pid),
        opt(h.generation),
        h.uptime_seconds.map_or("n/a".into(), duration),
        h.workers.map_or("n/a".into(), |(r, c)| format!("{r}/{c}")),
    );
    let right = match h.interval {
        Some(i) => format!("rates over {i:.1}s"),
        None => "rates: next refresh".into(),
    };
    let pad = (WIDTH as usize).saturating_sub(left.chars().count() + right.chars().count());
    left.push_str(&" ".repeat(pad.max(1)));
    left.push_str(&right);
    let mut head = vec![heading(cut(&left, WIDTH as usize))];
    if let Some(e) = &h.error {
        head.push(Line::styled(
            cut(&format!("admin API: {e}"), WIDTH as usize),
            Style::default().fg(Color::Red),
        ));
    }
    Section::new(head, Vec::new())
}

fn xdp(s: &Snapshot) -> Section {
    match &s.xdp {
        XdpView::Absent(why) => Section::new(
            vec![Line::from(vec![
                Span::styled("XDP ", title()),
                Span::raw(cut(why, WIDTH as usize - 4)),
            ])],
            Vec::new(),
        ),
        XdpView::Attached {
            iface,
            mode,
            total,
            actions,
            drops,
        } => {
            let mut spans = vec![
                Span::styled("XDP ", title()),
                Span::raw(format!(
                    "{} {}  {}",
                    cut(iface, 15),
                    mode.as_deref().unwrap_or(""),
                    with_unit(total.per_second, " pkt/s")
                )),
            ];
            for (name, r) in actions {
                let style = match (*name, r.per_second) {
                    ("DROP", Some(v)) if v > 0.0 => Style::default().fg(Color::Red),
                    _ => Style::default(),
                };
                spans.push(Span::raw("   "));
                spans.push(Span::styled(
                    format!("{name} {}", with_unit(r.per_second, "/s")),
                    style,
                ));
            }
            let drop_text = if drops.is_empty() {
                "none".to_string()
            } else {
                drops
                    .iter()
                    .map(|(n, r)| format!("{n} {} ({})", with_unit(r.per_second, "/s"), r.total))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            Section::new(
                vec![
                    Line::from(spans),
                    Line::raw(cut(&format!("  drops: {drop_text}"), WIDTH as usize)),
                ],
                Vec::new(),
            )
        }
    }
}

fn syn(s: &Snapshot) -> Section {
    if s.syn.is_empty() {
        return Section::new(Vec::new(), Vec::new());
    }
    let head = vec![heading(format!(
        "{:<22} {:<6} {:<7} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "SYN FLOOD VIP", "MODE", "COOKIES", "SYN/s", "COOKIE/s", "ACK OK", "ACK BAD", "LIMITED"
    ))];
    let rows = s
        .syn
        .iter()
        .map(|r| {
            let cookies = if r.cookies_on {
                Span::styled(
                    format!("{:<7}", "ON"),
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                )
            } else {
                Span::raw(format!("{:<7}", "off"))
            };
            Line::from(vec![
                Span::raw(format!("{:<22} {:<6} ", cut(&r.vip, 22), r.mode)),
                cookies,
                Span::raw(format!(
                    " {:>7} {:>8} {:>8} {:>8} {:>7}",
                    per_second(r.syn.per_second),
                    per_second(r.cookies_sent.per_second),
                    r.acks_valid,
                    r.acks_invalid,
                    r.rate_limited
                )),
            ])
        })
        .collect();
    Section::new(head, rows)
}

fn listeners(s: &Snapshot) -> Section {
    // Status codes are not counted per listener (docs/metrics.md): one line for them all,
    // from the sum (the last row: "all listeners", or the only listener, which has the sum's).
    let mut head = Vec::new();
    if let Some(sum) = s.listeners.last() {
        let [t2, t3, t4, t5] = sum.target_codes.map(count);
        let errors = sum.elb_5xx.unwrap_or(0) + sum.target_codes[3].unwrap_or(0);
        let style = if errors > 0 {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        let text = format!(
            "CODES (all listeners)  T2XX {t2}  T3XX {t3}  T4XX {t4}  T5XX {t5}  ELB4XX {}  ELB5XX {}",
            count(sum.elb_4xx),
            count(sum.elb_5xx),
        );
        head.push(Line::styled(cut(&text, WIDTH as usize), style));
    }
    head.push(heading(format!(
        "{:<57} {:>6} {:>8} {:>5}",
        "LISTENER", "REQ/s", "REQUESTS", "CONNS"
    )));
    let rows = s
        .listeners
        .iter()
        .map(|l| {
            Line::raw(format!(
                "{:<57} {:>6} {:>8} {:>5}",
                cut(&l.name, 57),
                per_second(l.requests.and_then(|r| r.per_second)),
                count(l.requests.map(|r| r.total)),
                count(l.active_connections),
            ))
        })
        .collect();
    Section::new(head, rows)
}

fn latency(l: Option<Latency>) -> Section {
    let text = match l {
        Some(l) => format!(
            "p50 {}  p90 {}  p99 {}  ({} responses{})",
            seconds(l.p50),
            seconds(l.p90),
            seconds(l.p99),
            l.responses,
            if l.since_start { " since start" } else { "" }
        ),
        None => "n/a".into(),
    };
    Section::new(
        vec![Line::from(vec![
            Span::styled("RESPONSE TIME ", title()),
            Span::raw(text),
        ])],
        Vec::new(),
    )
}

fn targets(s: &Snapshot) -> Section {
    let head = vec![heading(format!(
        "{:<28} {:<9} {:<15} {:>6} {:>8} {:>4} {:>4}",
        "TARGET GROUP / TARGET", "STATE", "REASON", "REQ/s", "REQUESTS", "OUT", "CERR"
    ))];
    let rows = s
        .targets
        .iter()
        .map(|t| {
            let color = match t.state.as_str() {
                "healthy" => Color::Green,
                "unhealthy" => Color::Red,
                _ => Color::Yellow,
            };
            let reason = t
                .reason
                .as_deref()
                .map(|r| r.trim_start_matches("Target.").trim_start_matches("Elb."))
                .unwrap_or("");
            Line::from(vec![
                Span::raw(format!(
                    "{:<28} ",
                    cut(&format!("{} {}", t.group, t.target), 28)
                )),
                Span::styled(
                    format!("{:<9}", cut(&t.state, 9)),
                    Style::default().fg(color),
                ),
                Span::raw(format!(
                    " {:<15} {:>6} {:>8} {:>4} {:>4}",
                    cut(reason, 15),
                    per_second(t.requests.and_then(|r| r.per_second)),
                    count(t.requests.map(|r: Rate| r.total)),
                    count(t.outstanding),
                    count(t.connection_errors),
                )),
            ])
        })
        .collect();
    Section::new(head, rows)
}

fn workers(s: &Snapshot) -> Section {
    let head = vec![heading(format!(
        "{:<80}",
        "WORKERS  (index pid: CPU % of a core, share of requests)"
    ))];
    let cells: Vec<String> = s
        .workers
        .iter()
        .map(|w| match w.silent_ms {
            Some(ms) => format!("#{} {}: SILENT {:.0}s", w.index, w.pid, ms as f64 / 1e3),
            None => format!(
                "#{} {}: cpu {} req {}",
                w.index,
                w.pid,
                w.cpu_percent.map_or("n/a".into(), |c| format!("{c:.0}%")),
                w.request_share.map_or("n/a".into(), |c| format!("{c:.0}%")),
            ),
        })
        .collect();
    // Columns of 26 characters: three a line.
    let rows = cells
        .chunks(3)
        .map(|c| {
            Line::raw(
                c.iter()
                    .map(|x| format!("{:<26}", cut(x, 25)))
                    .collect::<String>()
                    .trim_end()
                    .to_string(),
            )
        })
        .collect();
    Section::new(head, rows)
}
