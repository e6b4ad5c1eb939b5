//! PNG bar charts for the report (plotters' bitmap backend; text drawn with plotters' own
//! renderer from the DejaVu Sans font the `dejavu` crate ships, so no system font is needed).

use std::{path::Path, sync::OnceLock};

use anyhow::{Context, anyhow};
use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 540);
/// weir first, then the baselines.
const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// A grouped bar chart: one group per category, one bar per series.
pub struct Bars {
    /// What is measured (first title line).
    pub title: String,
    /// Which machine and date it came from (second title line).
    pub source: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// (series name, one value per category; NaN or a negative value draws no bar).
    pub series: Vec<(String, Vec<f64>)>,
}

fn fonts() -> anyhow::Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the DejaVu Sans font shipped with the `dejavu` crate does not parse"
        ))
    }
}

/// Short value labels: 123456 → 123k, 12.34 → 12.3, 0.5 → 0.50.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `b` into the PNG file `path`.
pub fn draw(path: &Path, b: &Bars) -> anyhow::Result<()> {
    fonts()?;
    draw_inner(path, b)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("drawing {}", path.display()))
}

fn draw_inner(path: &Path, b: &Bars) -> Result<(), Box<dyn std::error::Error>> {
    let full = BitMapBackend::new(path, SIZE).into_drawing_area();
    full.fill(&WHITE)?;
    let area = full.titled(&b.title, (FONT, 24))?;
    let area = area.titled(
        &b.source,
        (FONT, 14).into_font().color(&RGBColor(80, 80, 80)),
    )?;
    let n = b.categories.len().max(1);
    let k = b.series.len().max(1);
    let top = b
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.18 } else { 1.0 };
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(b.y_label.as_str())
        .y_label_formatter(&|v| short(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    // Each group spans 80 % of its category's width; its bars share that equally.
    let width = 0.8 / k as f64;
    for (s, (name, values)) in b.series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let bars: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && **v >= 0.0)
            .map(|(c, v)| (c as f64 + 0.1 + width * s as f64, *v))
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, v)| {
                Rectangle::new([(*x, 0.0), (*x + width * 0.92, *v)], color.filled())
            }))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
        let label = (FONT, 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(
            bars.iter()
                .map(|(x, v)| Text::new(short(*v), (*x + width * 0.46, *v), label.clone())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    // Category names under their groups, in pixels on the whole image.
    let style = (FONT, 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (c, name) in b.categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
        full.draw(&Text::new(name.as_str(), (x, y + 8), style.clone()))?;
    }
    full.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_labels() {
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(45_678.0), "46k");
        assert_eq!(short(456.7), "457");
        assert_eq!(short(12.34), "12.3");
        assert_eq!(short(0.5), "0.50");
        assert_eq!(short(0.0), "0");
    }
}
