//! `overview.png`: axial, coronal and sagittal slices through the liver
//! centroid, the CT in a liver window with the mask's contour drawn over it.
//!
//! Each panel samples a plane of patient space (LPS), not a plane of voxel
//! indices, so every CT shows in the radiological convention whatever its
//! stored orientation: axial with the patient's right on the left and anterior
//! up, coronal with the right on the left and head up, sagittal with anterior
//! on the left and head up. Nearest-neighbour sampling: what is shown is what
//! is stored.

use crate::{Error, Result};
use liverseg_imgproc::Scalar;
use liverseg_volume::{Mask, Volume};
use plotters::prelude::*;
use liverseg_plot::{encode_png, use_embedded_font, FONT};

/// Liver window: level 70 HU, width 300 HU.
pub const WINDOW_HU: [f64; 2] = [-80.0, 220.0];
/// Contour colour (orange: visible on grey and on bone).
pub const CONTOUR_RGB: [u8; 3] = [255, 140, 0];
/// Largest panel side in pixels: every CT is shown at the same size (coarse
/// grids are enlarged, fine ones reduced).
const MAX_PANEL_PX: f64 = 400.0;
const CAPTION_PX: u32 = 80;
const TITLE_PX: u32 = 24;
const GAP_PX: u32 = 14;
const BOTTOM_PX: u32 = 10;

/// One panel: which world axes run along its columns and rows, and the sign
/// of each (the row axis runs top to bottom).
struct Plane {
    title: &'static str,
    /// (world axis, increasing along the panel) for columns and rows.
    col: (usize, bool),
    row: (usize, bool),
    /// The fixed world axis.
    fixed: usize,
    /// Letters at left, right, top, bottom.
    letters: [&'static str; 4],
}

const PLANES: [Plane; 3] = [
    Plane {
        title: "Axial",
        col: (0, true),
        row: (1, true),
        fixed: 2,
        letters: ["R", "L", "A", "P"],
    },
    Plane {
        title: "Coronal",
        col: (0, true),
        row: (2, false),
        fixed: 1,
        letters: ["R", "L", "S", "I"],
    },
    Plane {
        title: "Sagittal",
        col: (1, true),
        row: (2, false),
        fixed: 0,
        letters: ["A", "P", "S", "I"],
    },
];

/// Centroid of the mask in LPS mm, `None` when empty.
fn centroid(mask: &Mask) -> Option<[f64; 3]> {
    let g = mask.geometry();
    let (mut s, mut n) = ([0.0f64; 3], 0.0);
    for (o, &v) in mask.data().iter().enumerate() {
        if v != 0 {
            let idx = g.index_of(o);
            for a in 0..3 {
                s[a] += idx[a] as f64;
            }
            n += 1.0;
        }
    }
    (n > 0.0).then(|| g.index_to_world(s.map(|x| x / n)))
}

struct Panel {
    w: u32,
    h: u32,
    /// Per pixel: CT value (None outside the volume) and mask.
    ct: Vec<Option<f64>>,
    mask: Vec<bool>,
}

/// Render the overview as RGB pixels: (width, height, rgb).
pub fn render_rgb<T: Scalar>(
    ct: &Volume<T>,
    liver: &Mask,
    caption: &[String],
) -> Result<(u32, u32, Vec<u8>)> {
    let g = ct.geometry();
    if !liver.geometry().same_grid(g) {
        return Err(Error::param("liver", "the mask is not on the CT grid"));
    }
    let dims = g.dims();
    let (lo, hi) = g.world_bounds();
    let ext = [0, 1, 2].map(|a| hi[a] - lo[a]);
    let px = ext.iter().copied().fold(0.0, f64::max) / MAX_PANEL_PX;
    let centre = centroid(liver).unwrap_or([0, 1, 2].map(|a| (lo[a] + hi[a]) / 2.0));

    let panels: Vec<Panel> = PLANES
        .iter()
        .map(|plane| {
            let w = ((ext[plane.col.0] / px).round() as u32).max(1);
            let h = ((ext[plane.row.0] / px).round() as u32).max(1);
            let mut ct_px = Vec::with_capacity((w * h) as usize);
            let mut mask_px = Vec::with_capacity((w * h) as usize);
            for v in 0..h {
                for u in 0..w {
                    let mut p = centre;
                    let along = |(axis, up): (usize, bool), t: u32| {
                        if up {
                            lo[axis] + (t as f64 + 0.5) * px
                        } else {
                            hi[axis] - (t as f64 + 0.5) * px
                        }
                    };
                    p[plane.col.0] = along(plane.col, u);
                    p[plane.row.0] = along(plane.row, v);
                    let idx = g.world_to_index(p).map(|x| x.round());
                    let inside = (0..3).all(|a| idx[a] >= 0.0 && idx[a] < dims[a] as f64);
                    if inside {
                        let o = g.offset(idx[0] as usize, idx[1] as usize, idx[2] as usize);
                        ct_px.push(Some(ct.data()[o].to_f64()));
                        mask_px.push(liver.data()[o] != 0);
                    } else {
                        ct_px.push(None);
                        mask_px.push(false);
                    }
                }
            }
            Panel {
                w,
                h,
                ct: ct_px,
                mask: mask_px,
            }
        })
        .collect();

    let width = panels.iter().map(|p| p.w).sum::<u32>() + GAP_PX * (panels.len() as u32 + 1);
    let width = width.max(520);
    let panel_h = panels.iter().map(|p| p.h).max().unwrap_or(1);
    let height = CAPTION_PX + TITLE_PX + panel_h + BOTTOM_PX;
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    let mut x0s = Vec::new();
    let mut x0 = GAP_PX;
    let y0 = CAPTION_PX + TITLE_PX;
    for p in &panels {
        x0s.push(x0);
        for v in 0..p.h {
            for u in 0..p.w {
                let i = (v * p.w + u) as usize;
                let colour = match p.ct[i] {
                    None => [40, 40, 60],
                    Some(hu) => {
                        let on_contour = p.mask[i] && {
                            // Two-pixel-wide contour: a mask pixel with background within 1 pixel
                            // (8-neighbourhood) or at 2 pixels along the axes.
                            let at = |du: i64, dv: i64| {
                                let (uu, vv) = (u as i64 + du, v as i64 + dv);
                                uu < 0
                                    || vv < 0
                                    || uu >= p.w as i64
                                    || vv >= p.h as i64
                                    || !p.mask[(vv as u32 * p.w + uu as u32) as usize]
                            };
                            (-1..=1).any(|du| (-1..=1).any(|dv| at(du, dv)))
                                || at(2, 0)
                                || at(-2, 0)
                                || at(0, 2)
                                || at(0, -2)
                        };
                        if on_contour {
                            CONTOUR_RGB
                        } else {
                            let t = ((hu - WINDOW_HU[0]) / (WINDOW_HU[1] - WINDOW_HU[0]))
                                .clamp(0.0, 1.0);
                            let gray = (t * 255.0).round() as u8;
                            [gray; 3]
                        }
                    }
                };
                let at = (((y0 + v) * width + x0 + u) * 3) as usize;
                rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
        x0 += p.w + GAP_PX;
    }

    use_embedded_font();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let draw_err = |e: String| Error::param("overview", format!("drawing failed: {e}"));
        let big = (FONT, 17).into_font().color(&WHITE);
        let small = (FONT, 15)
            .into_font()
            .color(&RGBColor(230, 230, 230));
        let letter = (FONT, 16)
            .into_font()
            .color(&RGBColor(255, 230, 90));
        for (n, line) in caption.iter().take(3).enumerate() {
            root.draw(&Text::new(
                line.clone(),
                (GAP_PX as i32, 6 + 23 * n as i32),
                if n == 0 { big.clone() } else { small.clone() },
            ))
            .map_err(|e| draw_err(e.to_string()))?;
        }
        for ((plane, p), &x0) in PLANES.iter().zip(&panels).zip(&x0s) {
            let title = format!(
                "{} {} = {:.1} mm",
                plane.title,
                ["x", "y", "z"][plane.fixed],
                centre[plane.fixed]
            );
            root.draw(&Text::new(
                title,
                (x0 as i32, (CAPTION_PX + 3) as i32),
                small.clone(),
            ))
            .map_err(|e| draw_err(e.to_string()))?;
            let (x0, y0, w, h) = (x0 as i32, y0 as i32, p.w as i32, p.h as i32);
            let spots = [
                (x0 + 3, y0 + h / 2 - 8),
                (x0 + w - 14, y0 + h / 2 - 8),
                (x0 + w / 2 - 5, y0 + 2),
                (x0 + w / 2 - 5, y0 + h - 19),
            ];
            for (l, at) in plane.letters.iter().zip(spots) {
                root.draw(&Text::new(*l, at, letter.clone()))
                    .map_err(|e| draw_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    Ok((width, height, rgb))
}

/// PNG bytes of the overview.
pub fn render_png<T: Scalar>(ct: &Volume<T>, liver: &Mask, caption: &[String]) -> Result<Vec<u8>> {
    let (w, h, rgb) = render_rgb(ct, liver, caption)?;
    encode_png(&rgb, w, h).map_err(|e| Error::Output { path: "overview.png".into(), message: e.to_string() })
}

