//! `--plot FILE.svg`: the latency distributions, one panel per scenario, one line per store
//! and operation. The x axis is the percentile on a log scale (the distance to 100%: 90%,
//! 99%, 99.9%, ... are evenly spaced), the y axis the latency on a log scale, as HdrHistogram
//! plots are usually drawn. Drawn with plotters' SVG backend only: text is left to the SVG
//! viewer's fonts, so no font (and no system library) is needed here.

use std::fs;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::measure::{Hist, ns};
use super::report::Report;
use crate::failure::{CmdResult, Failure};

/// Size of one panel, in pixels.
const PANEL: (u32, u32) = (1000, 500);
/// Width of the legend, on the right of each panel.
const LEGEND: u32 = 250;

/// Writes the plot of `reports` to `path`.
pub fn write(path: &Path, reports: &[Report]) -> CmdResult {
    let svg = draw(reports).map_err(|e| Failure::usage(format!("drawing the plot: {e}")))?;
    fs::write(path, svg)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

/// The SVG document.
fn draw(reports: &[Report]) -> Result<String, Box<dyn std::error::Error>> {
    let cols = if reports.len() > 1 { 2 } else { 1 };
    let rows = reports.len().div_ceil(cols).max(1);
    let mut svg = String::new();
    {
        let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, report) in root.split_evenly((rows, cols)).iter().zip(reports) {
            panel(area, report)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// One scenario's panel.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &Report,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let lines: Vec<(String, Vec<(f64, f64)>)> = report
        .metrics
        .iter()
        .filter(|m| !m.hist.is_empty())
        .map(|m| (format!("{} {}", m.store, m.op), points(&m.hist)))
        .collect();
    let x_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
        .fold(10.0f64, f64::max);
    let (y_min, y_max) = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold((f64::MAX, 1.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let y_min = if y_min == f64::MAX {
        1.0
    } else {
        (y_min / 1.5).max(1.0)
    };
    let y_max = (y_max * 1.5).max(y_min * 10.0);
    let (plot_area, legend_area) = area.split_horizontally(PANEL.0 - LEGEND);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            format!("{}: {}", report.key, report.title),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| ns(y.round() as u64))
        .label_style(("sans-serif", 11))
        .draw()?;
    // The legend goes beside the chart, where it hides no line.
    let text =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, pts)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        let y = 40 + 18 * i as i32;
        legend_area.draw(&PathElement::new(
            vec![(4, y), (28, y)],
            color.stroke_width(2),
        ))?;
        legend_area.draw(&Text::new(label, (34, y), text.clone()))?;
    }
    Ok(())
}

/// The line of one histogram: (1 / (1 - quantile), latency) at ten points a decade, up to
/// the largest latency at x = the number of samples.
fn points(h: &Hist) -> Vec<(f64, f64)> {
    let n = h.len() as f64;
    let mut pts = Vec::new();
    let mut j = 0;
    loop {
        let x = 10f64.powf(f64::from(j) / 10.0);
        if x >= n {
            break;
        }
        let q = 1.0 - 1.0 / x;
        pts.push((x, h.value_at_quantile(q).max(1) as f64));
        j += 1;
    }
    pts.push((n.max(1.0), h.max().max(1) as f64));
    pts
}

/// `x` = 1 / (1 - quantile) as a percentile: 10 is `90%`, 1000 is `99.9%`.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = ((x.log10() + 1e-9).floor() as i32 - 2).clamp(0, 6) as usize;
    format!("{p:.digits$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
    }
}
