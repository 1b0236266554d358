//! Putting SEG frames onto a voxel grid: the reference CT's, or one built from the
//! frames themselves.
use super::parse::FramePlane;
use liverseg_volume::vec3::{cross, dot, sub};
use liverseg_volume::Geometry;

/// A frame may sit this far (in slices) from a grid slice and still count as on it.
pub const SLICE_TOLERANCE: f64 = 0.25;
/// In-plane offsets within this fraction of a pixel are treated as the same grid.
const PIXEL_TOLERANCE: f64 = 1e-2;
/// Direction cosines that differ by less than this are the same direction.
const DIRECTION_TOLERANCE: f64 = 1e-4;
/// Frames whose normal is within ~0.8 degree of the grid's slice normal are parallel.
const PARALLEL_COS: f64 = 0.9999;
/// Largest own grid built without a reference (slices; voxels).
const MAX_SLICES: usize = 16384;
const MAX_VOXELS: usize = 1 << 30;

#[derive(Debug)]
pub(crate) enum PlaceError {
    Invalid(String),
    Unsupported(String),
}

fn normalize(v: [f64; 3]) -> [f64; 3] {
    let n = dot(v, v).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}
fn same_dir(a: [f64; 3], b: [f64; 3]) -> bool {
    (0..3).all(|i| (a[i] - b[i]).abs() <= DIRECTION_TOLERANCE)
}
fn fmt3(v: [f64; 3]) -> String {
    format!("[{:.3}, {:.3}, {:.3}]", v[0], v[1], v[2])
}

/// Accumulates frames into a mask on `grid` (OR where frames overlap).
pub(crate) struct Placer<'g> {
    grid: &'g Geometry,
    slice_normal: [f64; 3],
    pub mask: Vec<u8>,
    /// Frames copied pixel for pixel / resampled by nearest neighbour.
    pub copied: usize,
    pub resampled: usize,
    /// Frames without foreground that lie off the grid (ignored).
    pub empty_off_grid: usize,
}

impl<'g> Placer<'g> {
    pub fn new(grid: &'g Geometry) -> Self {
        let d = grid.direction();
        let n = cross([d[0][0], d[1][0], d[2][0]], [d[0][1], d[1][1], d[2][1]]);
        Placer { grid, slice_normal: normalize(n), mask: vec![0; grid.len()], copied: 0, resampled: 0, empty_off_grid: 0 }
    }

    /// Place one frame. `fg[r * cols + c]` is true where the segment is present.
    /// `what` names the frame in messages ("frame 3 (segment 1)").
    pub fn place(&mut self, plane: &FramePlane, rows: usize, cols: usize, fg: &[bool], what: &str) -> Result<(), PlaceError> {
        let has_fg = fg.iter().any(|&v| v);
        let n_frame = normalize(cross(plane.row_dir, plane.col_dir));
        let cos = dot(n_frame, self.slice_normal).abs();
        if cos < PARALLEL_COS {
            if !has_fg {
                self.empty_off_grid += 1;
                return Ok(());
            }
            return Err(PlaceError::Unsupported(format!(
                "{what} is not parallel to the reference slices ({:.2} degrees apart); oblique resampling across slices is not supported",
                cos.min(1.0).acos().to_degrees()
            )));
        }
        let dims = self.grid.dims();
        let idx = self.grid.world_to_index(plane.position);
        let k = idx[2].round();
        let on_slice = (idx[2] - k).abs() <= SLICE_TOLERANCE;
        let inside = k >= 0.0 && k < dims[2] as f64;
        if !(on_slice && inside) {
            if !has_fg {
                self.empty_off_grid += 1;
                return Ok(());
            }
            let why = if !inside {
                format!("lies outside the reference volume (slice index {:.2}, the grid has slices 0..{})", idx[2], dims[2] - 1)
            } else {
                format!("lies between reference slices (slice index {:.2}, tolerance {SLICE_TOLERANCE} slice)", idx[2])
            };
            return Err(PlaceError::Invalid(format!("{what} at {} mm {why}", fmt3(plane.position))));
        }
        let k = k as usize;
        if !has_fg {
            self.copied += 1;
            return Ok(());
        }
        let d = self.grid.direction();
        let sp = self.grid.spacing();
        let axis = |c: usize| [d[0][c], d[1][c], d[2][c]];
        let i0 = idx[0].round();
        let j0 = idx[1].round();
        let direct = same_dir(plane.row_dir, axis(0))
            && same_dir(plane.col_dir, axis(1))
            && (plane.spacing[0] - sp[0]).abs() <= 1e-4 * sp[0]
            && (plane.spacing[1] - sp[1]).abs() <= 1e-4 * sp[1]
            && (idx[0] - i0).abs() <= PIXEL_TOLERANCE
            && (idx[1] - j0).abs() <= PIXEL_TOLERANCE;
        let mut outside = 0usize;
        if direct {
            for r in 0..rows {
                for c in 0..cols {
                    if !fg[r * cols + c] {
                        continue;
                    }
                    let (i, j) = (i0 + c as f64, j0 + r as f64);
                    if i < 0.0 || j < 0.0 || i >= dims[0] as f64 || j >= dims[1] as f64 {
                        outside += 1;
                    } else {
                        let o = self.grid.offset(i as usize, j as usize, k);
                        self.mask[o] = 1;
                    }
                }
            }
            self.copied += 1;
        } else {
            // Nearest neighbour, pulled from the frame for every voxel of slice k.
            let m = self.grid.index_to_world_matrix();
            let w00 = self.grid.index_to_world([0.0, 0.0, k as f64]);
            let base = sub(w00, plane.position);
            let step_i = [m[0][0], m[1][0], m[2][0]];
            let step_j = [m[0][1], m[1][1], m[2][1]];
            let (cu, cv) = (dot(base, plane.row_dir) / plane.spacing[0], dot(base, plane.col_dir) / plane.spacing[1]);
            let (du_i, dv_i) = (dot(step_i, plane.row_dir) / plane.spacing[0], dot(step_i, plane.col_dir) / plane.spacing[1]);
            let (du_j, dv_j) = (dot(step_j, plane.row_dir) / plane.spacing[0], dot(step_j, plane.col_dir) / plane.spacing[1]);
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let c = (cu + du_i * i as f64 + du_j * j as f64).round();
                    let r = (cv + dv_i * i as f64 + dv_j * j as f64).round();
                    if c >= 0.0 && r >= 0.0 && (c as usize) < cols && (r as usize) < rows && fg[r as usize * cols + c as usize] {
                        let o = self.grid.offset(i, j, k);
                        self.mask[o] = 1;
                    }
                }
            }
            // Foreground the pull above cannot reach: frame pixels whose nearest
            // grid voxel is off the grid.
            for r in 0..rows {
                for c in 0..cols {
                    if fg[r * cols + c] {
                        let w: [f64; 3] = std::array::from_fn(|a| {
                            plane.position[a] + plane.row_dir[a] * plane.spacing[0] * c as f64 + plane.col_dir[a] * plane.spacing[1] * r as f64
                        });
                        let gi = self.grid.world_to_index(w);
                        let (i, j) = (gi[0].round(), gi[1].round());
                        if i < 0.0 || j < 0.0 || i >= dims[0] as f64 || j >= dims[1] as f64 {
                            outside += 1;
                        }
                    }
                }
            }
            self.resampled += 1;
        }
        if outside > 0 {
            return Err(PlaceError::Invalid(format!(
                "{what}: {outside} foreground pixel(s) lie outside the reference grid in-plane ({}x{} voxels)",
                dims[0], dims[1]
            )));
        }
        Ok(())
    }
}

/// The SEG's own grid: frames stacked along their normal, sorted, with regular
/// spacing (whole missing slices, as in sparse SEGs, are allowed and stay empty).
/// Returns the grid and warnings.
pub(crate) fn own_geometry(planes: &[FramePlane], rows: usize, cols: usize, spacing_hint: Option<f64>) -> Result<(Geometry, Vec<String>), PlaceError> {
    let mut warnings = Vec::new();
    let Some(first) = planes.first() else {
        return Err(PlaceError::Invalid("the SEG has no frames".into()));
    };
    for (f, p) in planes.iter().enumerate() {
        if !same_dir(p.row_dir, first.row_dir) || !same_dir(p.col_dir, first.col_dir) {
            return Err(PlaceError::Unsupported(format!(
                "frame {} has another orientation than frame 1; give a reference grid to read this SEG",
                f + 1
            )));
        }
        if (0..2).any(|a| (p.spacing[a] - first.spacing[a]).abs() > 1e-4 * first.spacing[a]) {
            return Err(PlaceError::Unsupported(format!(
                "frame {} has another pixel spacing than frame 1; give a reference grid to read this SEG",
                f + 1
            )));
        }
        let off = sub(p.position, first.position);
        let (u, v) = (dot(off, first.row_dir) / first.spacing[0], dot(off, first.col_dir) / first.spacing[1]);
        if u.abs() > PIXEL_TOLERANCE || v.abs() > PIXEL_TOLERANCE {
            return Err(PlaceError::Unsupported(format!(
                "frame {} is shifted in-plane by ({u:.2}, {v:.2}) pixels against frame 1; give a reference grid to read this SEG",
                f + 1
            )));
        }
    }
    let normal = normalize(cross(first.row_dir, first.col_dir));
    let mut heights: Vec<f64> = planes.iter().map(|p| dot(p.position, normal)).collect();
    heights.sort_by(f64::total_cmp);
    heights.dedup_by(|b, a| (*b - *a).abs() <= 1e-2);
    let gaps: Vec<f64> = heights.windows(2).map(|w| w[1] - w[0]).collect();
    let is_multiple = |g: f64, base: f64| {
        let q = g / base;
        q.round() >= 1.0 && (q - q.round()).abs() <= 0.02
    };
    let step = if gaps.is_empty() {
        spacing_hint.unwrap_or_else(|| {
            warnings.push("single-slice SEG without SpacingBetweenSlices or SliceThickness: slice spacing set to 1 mm".into());
            1.0
        })
    } else {
        let min_gap = gaps.iter().cloned().fold(f64::INFINITY, f64::min);
        match spacing_hint {
            Some(h) if gaps.iter().all(|&g| is_multiple(g, h)) => h,
            _ => min_gap,
        }
    };
    if let Some(g) = gaps.iter().find(|&&g| !is_multiple(g, step)) {
        return Err(PlaceError::Invalid(format!(
            "irregular slice spacing: frames are {g:.4} mm apart where the slice step is {step:.4} mm"
        )));
    }
    let span = heights.last().unwrap() - heights[0];
    let n_slices_f = (span / step).round() + 1.0;
    if n_slices_f.is_nan() || n_slices_f > MAX_SLICES as f64 || (n_slices_f as usize).saturating_mul(rows).saturating_mul(cols) > MAX_VOXELS {
        return Err(PlaceError::Invalid(format!(
            "frames span {span:.1} mm at {step:.4} mm steps ({n_slices_f} slices): too large a grid"
        )));
    }
    let n_slices = n_slices_f as usize;
    if n_slices > heights.len() {
        warnings.push(format!(
            "{} slice(s) between SEG frames have no frame and are empty",
            n_slices - heights.len()
        ));
    }
    let h0 = dot(first.position, normal);
    let origin: [f64; 3] = std::array::from_fn(|a| first.position[a] + (heights[0] - h0) * normal[a]);
    let direction = [
        [first.row_dir[0], first.col_dir[0], normal[0]],
        [first.row_dir[1], first.col_dir[1], normal[1]],
        [first.row_dir[2], first.col_dir[2], normal[2]],
    ];
    let g = Geometry::new([cols, rows, n_slices], [first.spacing[0], first.spacing[1], step], origin, direction)
        .map_err(|e| PlaceError::Invalid(format!("SEG geometry: {e}")))?;
    Ok((g, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    fn axial(z: f64) -> FramePlane {
        FramePlane { position: [-10.0, -20.0, z], row_dir: [1.0, 0.0, 0.0], col_dir: [0.0, 1.0, 0.0], spacing: [0.5, 0.75] }
    }

    #[test]
    fn own_geometry_sorts_and_fills_gaps() {
        let planes = [axial(5.0), axial(-1.0), axial(2.0), axial(2.0)];
        let (g, w) = own_geometry(&planes, 4, 3, None).unwrap();
        assert_eq!(g.dims(), [3, 4, 3]);
        assert_eq!(g.spacing(), [0.5, 0.75, 3.0]);
        assert_eq!(g.origin(), [-10.0, -20.0, -1.0]);
        assert!(w.is_empty());
        // A hint of 1.5 mm divides every gap: slices in between stay empty.
        let (g, w) = own_geometry(&planes, 4, 3, Some(1.5)).unwrap();
        assert_eq!(g.dims()[2], 5);
        assert_eq!(w.len(), 1);
        // Irregular gaps are refused.
        assert!(matches!(own_geometry(&[axial(0.0), axial(1.0), axial(2.5)], 4, 3, None), Err(PlaceError::Invalid(_))));
        // Allocation bomb: two frames a kilometre apart with 1 mm steps.
        assert!(matches!(own_geometry(&[axial(0.0), axial(1.0), axial(1e6)], 512, 512, None), Err(PlaceError::Invalid(_))));
    }

    #[test]
    fn own_geometry_of_a_descending_sagittal_stack() {
        // Sagittal frames: columns run posterior, rows inferior; normal = row x col.
        let p = |x: f64| FramePlane { position: [x, 0.0, 0.0], row_dir: [0.0, 1.0, 0.0], col_dir: [0.0, 0.0, -1.0], spacing: [1.0, 1.0] };
        let (g, _) = own_geometry(&[p(3.0), p(1.0), p(2.0)], 2, 2, None).unwrap();
        // normal = (0,1,0) x (0,0,-1) = (-1, 0, 0): the slice axis points right, so
        // the first slice is the one at x = 3.
        assert_eq!(g.origin(), [3.0, 0.0, 0.0]);
        assert_eq!(g.index_to_world([0.0, 0.0, 2.0]), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn placement_direct_offset_resampled_and_off_grid() {
        let grid = Geometry::new([6, 5, 3], [0.5, 0.75, 2.0], [-10.0, -20.0, 0.0], IDENTITY).unwrap();
        // 2x2 frame starting at grid voxel (2, 1), on slice 1 (z = 2.1: within 1/4 slice).
        let plane = FramePlane { position: [-9.0, -19.25, 2.1], ..axial(0.0) };
        let fg = [true, false, false, true];
        let mut p = Placer::new(&grid);
        p.place(&plane, 2, 2, &fg, "frame 1").unwrap();
        assert_eq!(p.copied, 1);
        let ones: Vec<[usize; 3]> = p.mask.iter().enumerate().filter(|(_, &v)| v == 1).map(|(o, _)| grid.index_of(o)).collect();
        assert_eq!(ones, vec![[2, 1, 1], [3, 2, 1]]);

        // Same frame described with rows/columns flipped in world (row_dir = -x):
        // resampled by nearest neighbour onto the same voxels.
        let flipped = FramePlane { position: [-8.5, -19.25, 2.0], row_dir: [-1.0, 0.0, 0.0], ..plane };
        let mut q = Placer::new(&grid);
        q.place(&flipped, 2, 2, &[false, true, true, false], "frame 1").unwrap();
        assert_eq!(q.resampled, 1);
        assert_eq!(q.mask, p.mask);

        // Between slices, outside the volume, or foreground off-grid in-plane: errors.
        let mut r = Placer::new(&grid);
        let between = FramePlane { position: [-9.0, -19.25, 3.0], ..plane };
        assert!(matches!(r.place(&between, 2, 2, &fg, "frame 2"), Err(PlaceError::Invalid(m)) if m.contains("between")));
        let below = FramePlane { position: [-9.0, -19.25, -2.0], ..plane };
        assert!(matches!(r.place(&below, 2, 2, &fg, "frame 3"), Err(PlaceError::Invalid(m)) if m.contains("outside")));
        let right = FramePlane { position: [-7.5, -19.25, 2.0], ..plane };
        assert!(matches!(r.place(&right, 2, 2, &fg, "frame 4"), Err(PlaceError::Invalid(m)) if m.contains("in-plane")));
        // An empty frame off the grid is only counted.
        r.place(&below, 2, 2, &[false; 4], "frame 5").unwrap();
        assert_eq!(r.empty_off_grid, 1);
        // A frame perpendicular to the slices is refused.
        let sag = FramePlane { position: [-9.0, -19.25, 2.0], row_dir: [0.0, 1.0, 0.0], col_dir: [0.0, 0.0, 1.0], spacing: [0.5, 0.5] };
        assert!(matches!(r.place(&sag, 2, 2, &fg, "frame 6"), Err(PlaceError::Unsupported(_))));
    }

    #[test]
    fn resampling_halves_resolution() {
        // Frame at twice the grid's pixel size: each frame pixel covers 2x2 voxels
        // (nearest neighbour, ties at exact half-pixels rounding away from zero).
        let grid = Geometry::new([4, 4, 1], [1.0, 1.0, 1.0], [0.0; 3], IDENTITY).unwrap();
        let plane = FramePlane { position: [0.5, 0.5, 0.0], row_dir: [1.0, 0.0, 0.0], col_dir: [0.0, 1.0, 0.0], spacing: [2.0, 2.0] };
        let mut p = Placer::new(&grid);
        p.place(&plane, 2, 2, &[true, false, false, false], "frame 1").unwrap();
        let ones: Vec<[usize; 3]> = p.mask.iter().enumerate().filter(|(_, &v)| v == 1).map(|(o, _)| grid.index_of(o)).collect();
        assert_eq!(ones, vec![[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]);
    }
}
