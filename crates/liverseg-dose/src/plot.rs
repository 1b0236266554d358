//! Cumulative DVH plot as PNG and SVG.
//!
//! Font, colours and PNG encoding are liverseg-plot's, shared with every plot.

use crate::voxel::RegionDose;
use plotters::prelude::*;
use liverseg_plot::{colour, encode_png, use_embedded_font, FONT};

pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 600;

fn draw<DB: DrawingBackend>(backend: DB, title: &str, regions: &[&RegionDose]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    use_embedded_font();
    let root = backend.into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_dose = regions
        .iter()
        .map(|r| r.dvh.bin_width_gy.0 * r.dvh.volume_fraction.len() as f64)
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_dose, 0.0..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("Dose (Gy)")
        .y_desc("Volume (%)")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, r) in regions.iter().enumerate() {
        let c = colour(i);
        let w = r.dvh.bin_width_gy.0;
        let points: Vec<(f64, f64)> = r.dvh.volume_fraction.iter().enumerate().map(|(k, &f)| (k as f64 * w, f * 100.0)).collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("{} (mean {:.1} Gy)", r.region, r.mean_gy.0))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// The DVH plot as an SVG document.
pub fn dvh_svg(title: &str, regions: &[&RegionDose]) -> Result<String, String> {
    let mut svg = String::new();
    draw(SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)), title, regions)?;
    Ok(svg)
}

/// The DVH plot as PNG bytes.
pub fn dvh_png(title: &str, regions: &[&RegionDose]) -> Result<Vec<u8>, String> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)), title, regions)?;
    encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::*;
    use crate::voxel::{Dvh, RegionDose};

    fn region(name: &str, dose: f64) -> RegionDose {
        RegionDose {
            region: name.into(),
            voxels: 10,
            volume_ml: Millilitres(1.0),
            activity_gbq: Gbq(0.1),
            mean_gy: Gray(dose),
            min_gy: Gray(dose),
            max_gy: Gray(dose),
            d: vec![],
            v: vec![],
            dvh: Dvh { bin_width_gy: Gray(1.0), volume_fraction: (0..(dose as usize + 2)).map(|i| if (i as f64) <= dose { 1.0 } else { 0.0 }).collect() },
        }
    }

    #[test]
    fn svg_holds_the_labels_as_text() {
        let (a, b) = (region("liver", 50.0), region("tumour", 120.0));
        let svg = dvh_svg("DVH test", &[&a, &b]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in ["DVH test", "Dose (Gy)", "Volume (%)", "liver (mean 50.0 Gy)", "tumour (mean 120.0 Gy)"] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
        assert!(svg.contains("<polyline"), "no curve drawn");
    }

    #[test]
    fn png_is_valid_and_has_text_pixels() {
        let a = region("liver", 50.0);
        let png_bytes = dvh_png("DVH", &[&a]).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        // The title is drawn in black-ish glyph pixels in the top band, which is
        // otherwise white: text rendering works without system fonts.
        let top_band = &buf[..(WIDTH * 40 * 3) as usize];
        let dark = top_band.chunks(3).filter(|p| p.iter().all(|&c| c < 128)).count();
        assert!(dark > 20, "no text pixels in the title band ({dark})");
        // The liver curve colour appears.
        assert!(buf.chunks(3).any(|p| p == [31, 119, 180]));
    }
}
