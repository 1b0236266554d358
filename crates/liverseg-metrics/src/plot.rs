//! Box plots and bar charts as PNG and SVG (plotters). Text is drawn with an
//! embedded DejaVu Sans font (plotters' `ab_glyph` feature), so no system font
//! is needed; PNGs are encoded with `png`.

use crate::evaluate::MetricsError;
use crate::stats::percentile_linear;
use liverseg_io::atomic::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::series::LineSeries as LineSeries_;
use std::io::Write;
use std::path::Path;
use liverseg_plot::{colour, encode_png, use_embedded_font, FONT};

const SIZE: (u32, u32) = (900, 600);
/// One box: a label and its values (non-finite values are ignored).
#[derive(Debug, Clone)]
pub struct BoxSeries {
    pub label: String,
    pub values: Vec<f64>,
}

/// Tukey box: quartiles with numpy's linear interpolation, whiskers to the most
/// extreme values within 1.5 IQR of the box, the rest drawn as outliers. When no
/// value lies between a quartile and its fence the whisker has zero length (it
/// never reaches back into the box; matplotlib does the same).
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub whisker_lo: f64,
    pub whisker_hi: f64,
    pub outliers: Vec<f64>,
}

impl BoxStats {
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let q1 = percentile_linear(&mut v, 25.0)?;
        let median = percentile_linear(&mut v, 50.0)?;
        let q3 = percentile_linear(&mut v, 75.0)?;
        let (lo, hi) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
        let inside = v.iter().copied().filter(|&x| x >= lo && x <= hi);
        let whisker_lo = inside.clone().fold(f64::INFINITY, f64::min).min(q1);
        let whisker_hi = inside.fold(f64::NEG_INFINITY, f64::max).max(q3);
        let outliers = v.iter().copied().filter(|&x| x < lo || x > hi).collect();
        Some(BoxStats { q1, median, q3, whisker_lo, whisker_hi, outliers })
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_boxes<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, y_label: &str, series: &[BoxSeries]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let all: Vec<f64> = series.iter().flat_map(|s| s.values.iter().copied()).filter(|x| x.is_finite()).collect();
    let (mut lo, mut hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3 * hi.abs().max(1.0));
    let n = series.len().max(1);
    let labels: Vec<String> = series.iter().map(|s| s.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 1.0 && (i as usize) <= labels.len() {
                labels[i as usize - 1].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .x_label_style((FONT, 16))
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 20))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let x = (i + 1) as f64;
        let color = colour(i);
        let Some(b) = BoxStats::of(&s.values) else { continue };
        let w = 0.25;
        chart.draw_series(std::iter::once(Rectangle::new([(x - w, b.q1), (x + w, b.q3)], color.mix(0.3).filled())))?;
        chart.draw_series(std::iter::once(Rectangle::new([(x - w, b.q1), (x + w, b.q3)], color.stroke_width(2))))?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(x - w, b.median), (x + w, b.median)], BLACK.stroke_width(3))))?;
        for (from, to) in [(b.q1, b.whisker_lo), (b.q3, b.whisker_hi)] {
            chart.draw_series(std::iter::once(PathElement::new(vec![(x, from), (x, to)], color.stroke_width(2))))?;
            chart.draw_series(std::iter::once(PathElement::new(vec![(x - w / 2.0, to), (x + w / 2.0, to)], color.stroke_width(2))))?;
        }
        chart.draw_series(b.outliers.iter().map(|&y| Circle::new((x, y), 4, color.stroke_width(2))))?;
        // Every case as a small dot beside the box, so small cohorts stay readable.
        chart.draw_series(s.values.iter().filter(|v| v.is_finite()).map(|&y| Circle::new((x + w + 0.06, y), 2, BLACK.filled())))?;
    }
    root.present()?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, categories: &[String], groups: &[(String, Vec<f64>)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let max = groups.iter().flat_map(|g| g.1.iter().copied()).fold(0.0, f64::max).max(1.0);
    // Bars are counts of cases: whole-number ticks only (plotters would put
    // ticks at 0.5, 1.5, ... on a short axis). With at most top + 1 labels
    // its 1-2-5 steps are >= 1; the formatter drops any other tick.
    let top = (max * 1.15).ceil();
    let n = categories.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_labels((top as usize + 1).min(11))
        .y_label_formatter(&|y| if (y - y.round()).abs() < 1e-9 { format!("{}", y.round() as i64) } else { String::new() })
        .y_desc("count")
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 20))
        .draw()?;
    let k = groups.len().max(1) as f64;
    let bw = 0.8 / k;
    for (gi, (name, counts)) in groups.iter().enumerate() {
        let color = colour(gi);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = i as f64 - 0.4 + gi as f64 * bw;
                Rectangle::new([(x0, 0.0), (x0 + bw * 0.9, c)], color.filled())
            }))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).label_font((FONT, 18)).draw()?;
    root.present()?;
    Ok(())
}

fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32)) -> Result<(), MetricsError> {
    let bytes = encode_png(rgb, w, h).map_err(|e| MetricsError::Invalid(format!("{}: {e}", path.display())))?;
    write_atomic(path, |w: &mut dyn Write| w.write_all(&bytes))?;
    Ok(())
}

fn render(stem: &Path, size: (u32, u32), draw_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> DrawResult, draw_svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> DrawResult) -> Result<(), MetricsError> {
    use_embedded_font();
    let err = |e: Box<dyn std::error::Error>| MetricsError::Invalid(format!("{}: drawing failed: {e}", stem.display()));
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw_png(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area()).map_err(err)?;
    write_png(&stem.with_extension("png"), &rgb, size)?;
    let mut svg = String::new();
    draw_svg(SVGBackend::with_string(&mut svg, size).into_drawing_area()).map_err(err)?;
    write_atomic(&stem.with_extension("svg"), |w: &mut dyn Write| w.write_all(svg.as_bytes()))?;
    Ok(())
}

/// `<stem>.png` and `<stem>.svg`: one box per series.
pub fn box_plot(stem: &Path, title: &str, y_label: &str, series: &[BoxSeries]) -> Result<(), MetricsError> {
    // Room for each comparison's label under its box.
    let size = (SIZE.0.max(190 * series.len() as u32 + 140), SIZE.1);
    render(stem, size, |r| draw_boxes(r, title, y_label, series), |r| draw_boxes(r, title, y_label, series))
}

/// `<stem>.png` and `<stem>.svg`: grouped bars, one group per category.
pub fn bar_chart(stem: &Path, title: &str, categories: &[String], groups: &[(String, Vec<f64>)]) -> Result<(), MetricsError> {
    render(stem, SIZE, |r| draw_bars(r, title, categories, groups), |r| draw_bars(r, title, categories, groups))
}

/// One line of a [`line_chart`]: a label and its (x, y) points.
#[derive(Debug, Clone)]
pub struct LineSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn draw_lines<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, x_label: &str, y_label: &str, series: &[LineSeries]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let pts = || series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(y), b.max(y)));
    let (x0, x1) = if x0 <= x1 { (x0, if x1 > x0 { x1 } else { x0 + 1.0 }) } else { (0.0, 1.0) };
    let (y0, y1) = if y0 <= y1 { (y0, if y1 > y0 { y1 } else { y0 + 1.0 }) } else { (0.0, 1.0) };
    let pad = (y1 - y0) * 0.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style((FONT, 18)).axis_desc_style((FONT, 20)).draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = colour(i);
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        chart
            .draw_series(LineSeries_::new(points.clone(), color.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        if points.len() < 30 {
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        }
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK).label_font((FONT, 18)).draw()?;
    root.present()?;
    Ok(())
}

/// `<stem>.png` and `<stem>.svg`: one line per series (e.g. training curves).
pub fn line_chart(stem: &Path, title: &str, x_label: &str, y_label: &str, series: &[LineSeries]) -> Result<(), MetricsError> {
    render(stem, SIZE, |r| draw_lines(r, title, x_label, y_label, series), |r| draw_lines(r, title, x_label, y_label, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tukey_box() {
        let b = BoxStats::of(&[1.0, 2.0, 3.0, 4.0, 100.0, f64::NAN]).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (2.0, 3.0, 4.0));
        assert_eq!((b.whisker_lo, b.whisker_hi), (1.0, 4.0));
        assert_eq!(b.outliers, vec![100.0]);
        assert!(BoxStats::of(&[]).is_none());
        // Four cases, the largest an outlier and the next one below q3: the upper
        // whisker must stop at q3, not point back into the box.
        let b = BoxStats::of(&[0.499, 0.614, 0.988, 2.82]).unwrap();
        assert_eq!(b.outliers, vec![2.82]);
        assert_eq!(b.whisker_hi, b.q3);
        assert_eq!(b.whisker_lo, 0.499);
    }

    #[test]
    fn png_has_text_and_boxes() {
        let d = tempfile::tempdir().unwrap();
        let stem = d.path().join("box");
        let s = [BoxSeries { label: "one".into(), values: vec![0.9, 0.92, 0.95, 0.97] }, BoxSeries { label: "two".into(), values: vec![0.8, 0.85, 0.99] }];
        box_plot(&stem, "DSC", "DSC", &s).unwrap();
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), SIZE);
        // Dark pixels exist in the caption band (the title text) and the box colour appears.
        let px = |x: u32, y: u32| &buf[((y * SIZE.0 + x) * 3) as usize..((y * SIZE.0 + x) * 3 + 3) as usize];
        let dark_in_title = (0..SIZE.0).flat_map(|x| (5..45).map(move |y| (x, y))).filter(|&(x, y)| px(x, y).iter().all(|&c| c < 100)).count();
        assert!(dark_in_title > 20, "title text was not rendered ({dark_in_title} dark pixels)");
        let blue = (0..SIZE.0 * SIZE.1).filter(|i| buf[(*i * 3) as usize..(*i * 3 + 3) as usize] == [31, 119, 180]).count();
        assert!(blue > 50);
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.matches("<text").count() > 5 && svg.contains("one") && svg.contains("DSC"));
    }

    #[test]
    fn bar_chart_counts_are_whole_numbers() {
        let d = tempfile::tempdir().unwrap();
        let stem = d.path().join("bars");
        let cats: Vec<String> = ["1.0", "1.5", "2.0"].iter().map(|s| s.to_string()).collect();
        for counts in [vec![1.0, 2.0, 3.0], vec![0.0, 1.0, 0.0], vec![40.0, 7.0, 13.0]] {
            bar_chart(&stem, "Expert scores", &cats, &[("E1".into(), counts.clone())]).unwrap();
            let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
            // The numbers among the SVG's text elements are the axis ticks.
            let ticks: Vec<f64> = svg
                .split("<text")
                .skip(1)
                .filter_map(|t| t.split_once('>').and_then(|(_, r)| r.split_once("</text>")).map(|(x, _)| x.trim().to_string()))
                .filter(|x| !cats.contains(x))
                .filter_map(|x| x.parse::<f64>().ok())
                .collect();
            assert!(ticks.len() >= 2, "{counts:?}: ticks {ticks:?}");
            assert!(ticks.iter().all(|t| t.fract() == 0.0), "{counts:?}: ticks {ticks:?}");
            let top = counts.iter().cloned().fold(0.0, f64::max);
            assert!(ticks.iter().any(|&t| t >= top.min(1.0)), "{counts:?}: ticks {ticks:?}");
        }
    }

    #[test]
    fn line_chart_draws_its_series() {
        let d = tempfile::tempdir().unwrap();
        let stem = d.path().join("curve");
        let s = [LineSeries { label: "loss".into(), points: (0..50).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect() }];
        line_chart(&stem, "Training", "step", "loss", &s).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.contains("loss") && svg.contains("<polyline"), "no line in the SVG");
        assert!(std::fs::metadata(stem.with_extension("png")).unwrap().len() > 1000);
    }
}
