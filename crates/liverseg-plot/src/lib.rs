//! What every liverseg plot shares, so the metrics plots, the DVH and
//! `segment`'s overview look alike and render the same everywhere:
//!
//! - [`use_embedded_font`]: text is laid out with ab_glyph from DejaVu Sans
//!   compiled into the binary, so a plot renders the same on a machine without
//!   fontconfig or system fonts (plotters' default `ttf` feature needs both);
//! - [`PALETTE`]: series colours, in one order for every plot;
//! - [`encode_png`]: plotters' RGB buffer as PNG bytes (plotters' own encoder
//!   would pull in `image` 0.24).

use plotters::style::{FontStyle, RGBColor};
use std::sync::Once;

/// The font family name plots use for text.
pub const FONT: &str = "sans-serif";

/// Register the embedded DejaVu Sans as [`FONT`]; call before drawing text.
/// Cheap after the first call.
pub fn use_embedded_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate; a failure would
        // be a build defect, and drawing text would then fail with an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Series colours (matplotlib's tab10 order: blue, orange, green, red,
/// purple, brown), readable on white and by most colour-blind readers in
/// their first four.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of series `i` (the palette repeats).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Why a buffer could not be encoded.
#[derive(Debug)]
pub enum PngError {
    /// The buffer is not `width * height * 3` bytes.
    Size { expected: usize, got: usize },
    Encoding(png::EncodingError),
}

impl std::fmt::Display for PngError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PngError::Size { expected, got } => write!(f, "PNG: {got} bytes of pixels, expected {expected}"),
            PngError::Encoding(e) => write!(f, "PNG encoding: {e}"),
        }
    }
}

impl std::error::Error for PngError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PngError::Encoding(e) => Some(e),
            PngError::Size { .. } => None,
        }
    }
}

/// An 8-bit RGB buffer (row-major, `width * height * 3` bytes, plotters'
/// `BitMapBackend::with_buffer` layout) as PNG bytes.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PngError> {
    let expected = width as usize * height as usize * 3;
    if rgb.len() != expected {
        return Err(PngError::Size { expected, got: rgb.len() });
    }
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(PngError::Encoding)?;
    wr.write_image_data(rgb).map_err(PngError::Encoding)?;
    wr.finish().map_err(PngError::Encoding)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_and_wrong_sizes_are_refused() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let bytes = encode_png(&rgb, 4, 3).unwrap();
        let mut r = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(&buf[..info.buffer_size()], &rgb[..]);
        assert!(matches!(encode_png(&rgb, 5, 3), Err(PngError::Size { expected: 45, got: 36 })));
    }

    #[test]
    fn the_embedded_font_draws_text() {
        use plotters::prelude::*;
        use_embedded_font();
        let (w, h) = (120u32, 40u32);
        let mut rgb = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            root.draw(&Text::new("Liver 1.4 l", (5, 10), (FONT, 18).into_font().color(&BLACK))).unwrap();
            root.present().unwrap();
        }
        assert!(rgb.iter().filter(|&&v| v < 128).count() > 50, "no dark text pixels");
        assert_eq!(colour(7), PALETTE[1]);
    }
}
