//! The method's abdomen crop: a box that holds the whole body cross-section on
//! every kept axial slice (cropping tightly around the liver made results
//! worse in the paper), and the exact way back to the original grid.

use crate::morphology::{bounding_box, connected_components, largest_component, opening, Connectivity};
use crate::{Error, Result, Scalar};
use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;

/// A box of voxels: `start` (first voxel) and `size` (voxel count) per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub start: [usize; 3],
    pub size: [usize; 3],
}

impl CropBox {
    /// The box covering a whole grid.
    pub fn whole(dims: [usize; 3]) -> Self {
        CropBox { start: [0; 3], size: dims }
    }

    /// One past the last voxel, per axis.
    pub fn end(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.start[a] + self.size[a])
    }

    fn check(&self, dims: [usize; 3]) -> Result<()> {
        for a in 0..3 {
            if self.size[a] == 0 || self.start[a].checked_add(self.size[a]).is_none_or(|e| e > dims[a]) {
                return Err(Error::GridMismatch(format!(
                    "crop box start {:?} size {:?} does not fit in a grid of {:?}",
                    self.start, self.size, dims
                )));
            }
        }
        Ok(())
    }

    /// The cropped grid: same spacing and direction, origin at the box's first voxel.
    pub fn geometry(&self, original: &Geometry) -> Result<Geometry> {
        self.check(original.dims())?;
        Ok(original.sub_grid(self.start, self.size)?)
    }

    /// The voxels inside the box, with their geometry (world positions unchanged).
    pub fn apply<T: Copy + Send + Sync>(&self, volume: &Volume<T>) -> Result<Volume<T>> {
        let geometry = self.geometry(volume.geometry())?;
        let [nx, ny, _] = volume.dims();
        let [sx, sy, sz] = self.size;
        let src = volume.data();
        let mut data: Vec<T> = Vec::with_capacity(sx * sy * sz);
        // Slices are copied in parallel; each output slice is `sy` contiguous row copies.
        let slices: Vec<Vec<T>> = (0..sz)
            .into_par_iter()
            .map(|k| {
                let mut out = Vec::with_capacity(sx * sy);
                let z = (self.start[2] + k) * nx * ny;
                for j in 0..sy {
                    let row = z + (self.start[1] + j) * nx + self.start[0];
                    out.extend_from_slice(&src[row..row + sx]);
                }
                out
            })
            .collect();
        for s in slices {
            data.extend(s);
        }
        Ok(Volume::new(geometry, data)?)
    }

    /// Put a cropped volume back onto the original grid, `fill` outside the box.
    /// The cropped volume must be on exactly the grid [`CropBox::apply`] gives.
    pub fn paste<T: Copy + Send + Sync>(&self, cropped: &Volume<T>, original: &Geometry, fill: T) -> Result<Volume<T>> {
        let expected = self.geometry(original)?;
        if !cropped.geometry().same_grid(&expected) {
            return Err(Error::GridMismatch(format!(
                "volume to paste has dims {:?}, origin {:?}; the crop box expects dims {:?}, origin {:?}",
                cropped.dims(),
                cropped.geometry().origin(),
                expected.dims(),
                expected.origin()
            )));
        }
        let [nx, ny, _] = original.dims();
        let [sx, sy, _] = self.size;
        let src = cropped.data();
        let mut out = vec![fill; original.len()];
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            if k < self.start[2] || k >= self.start[2] + self.size[2] {
                return;
            }
            let kk = k - self.start[2];
            for j in 0..sy {
                let dst = (self.start[1] + j) * nx + self.start[0];
                let from = (kk * sy + j) * sx;
                slice[dst..dst + sx].copy_from_slice(&src[from..from + sx]);
            }
        });
        Ok(Volume::new(original.clone(), out)?)
    }
}

/// Which axial slices the crop keeps.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SliceRange {
    /// Every slice (the default: at inference the liver is not known yet).
    #[default]
    Whole,
    /// Slice indices `start..end` (end exclusive) along voxel axis 2.
    Index { start: usize, end: usize },
    /// Slices whose centre lies between two LPS z positions (mm, inclusive;
    /// +z is superior).
    WorldZ { min_mm: f64, max_mm: f64 },
}

/// Parameters of the abdomen crop.
#[derive(Debug, Clone, PartialEq)]
pub struct AbdomenCropOptions {
    /// Voxels at or above this value (HU) are body. Default -150 (soft tissue and
    /// fat are above, air and lung below).
    pub body_threshold_hu: f64,
    /// Extra room around the body outline in x and y, mm. Default 10.
    pub margin_mm: f64,
    /// Which slices to keep. Default: all.
    pub slices: SliceRange,
    /// Per slice, keep body parts whose area is at least this fraction of the
    /// largest part on that slice. Arms and the table that separate from the
    /// trunk on a slice are small and dropped; both legs (pelvic slices) are kept.
    /// Default 0.2.
    pub min_part_fraction: f64,
    /// Optional 3-D opening of the thresholded body (ball radius in mm) to cut
    /// thin bridges (table, touching arms) before taking the largest component.
    /// Default 0 (off): costs two distance transforms of the whole CT.
    pub opening_mm: f64,
}

impl Default for AbdomenCropOptions {
    fn default() -> Self {
        Self { body_threshold_hu: -150.0, margin_mm: 10.0, slices: SliceRange::Whole, min_part_fraction: 0.2, opening_mm: 0.0 }
    }
}

/// Axis 2 must run head-feet for a per-slice (axial) crop.
fn check_axial(g: &Geometry) -> Result<()> {
    let d = g.direction();
    let col = [d[0][2].abs(), d[1][2].abs(), d[2][2].abs()];
    if col[2] >= col[0] && col[2] >= col[1] {
        Ok(())
    } else {
        Err(Error::Orientation(format!(
            "voxel axis 2 points {} (orientation {}), not head-feet; reorient the volume to an axial stack first",
            g.orientation_code().chars().nth(2).unwrap_or('?'),
            g.orientation_code()
        )))
    }
}

/// The slice indices `[start, end)` a [`SliceRange`] selects.
pub fn slice_indices(g: &Geometry, range: SliceRange) -> Result<(usize, usize)> {
    let nz = g.dims()[2];
    match range {
        SliceRange::Whole => Ok((0, nz)),
        SliceRange::Index { start, end } => {
            if start >= end || end > nz {
                return Err(Error::param("slices", format!("index range {start}..{end} is empty or outside 0..{nz}")));
            }
            Ok((start, end))
        }
        SliceRange::WorldZ { min_mm, max_mm } => {
            if !(min_mm.is_finite() && max_mm.is_finite() && min_mm <= max_mm) {
                return Err(Error::param("slices", format!("world z range {min_mm}..{max_mm} mm is not an interval")));
            }
            let [nx, ny, _] = g.dims();
            let c = [(nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0];
            let kept: Vec<usize> = (0..nz)
                .filter(|&k| {
                    let z = g.index_to_world([c[0], c[1], k as f64])[2];
                    z >= min_mm - 1e-6 && z <= max_mm + 1e-6
                })
                .collect();
            match (kept.first(), kept.last()) {
                (Some(&a), Some(&b)) => Ok((a, b + 1)),
                _ => Err(Error::Empty(format!("no slice centre lies between z = {min_mm} and {max_mm} mm"))),
            }
        }
    }
}

/// A slice range covering `mask`'s foreground plus `margin_mm` above and below
/// (e.g. a reference liver mask when cropping training data).
pub fn slices_around(mask: &Mask, margin_mm: f64) -> Result<SliceRange> {
    let (lo, hi) = bounding_box(mask).ok_or_else(|| Error::Empty("the mask has no foreground voxel".into()))?;
    if !(margin_mm.is_finite() && margin_mm >= 0.0) {
        return Err(Error::param("margin_mm", format!("{margin_mm} is not a non-negative number of mm")));
    }
    let m = (margin_mm / mask.geometry().spacing()[2]).ceil() as usize;
    Ok(SliceRange::Index { start: lo[2].saturating_sub(m), end: (hi[2] + m).min(mask.dims()[2]) })
}

/// The body outline: threshold, optional opening, largest 3-D component
/// (6-connected), then per slice the parts of it that are not small side
/// pieces (see [`AbdomenCropOptions::min_part_fraction`]). Output is 0/1.
pub fn body_mask<T: Scalar>(ct: &Volume<T>, options: &AbdomenCropOptions) -> Result<Mask> {
    let t = options.body_threshold_hu;
    if !t.is_finite() {
        return Err(Error::param("body_threshold_hu", format!("{t} is not a number")));
    }
    if !(0.0..=1.0).contains(&options.min_part_fraction) {
        return Err(Error::param("min_part_fraction", format!("{} is not in [0, 1]", options.min_part_fraction)));
    }
    let mut body = ct.map(|&v| u8::from(v.to_f64() >= t));
    if options.opening_mm > 0.0 {
        body = opening(&body, options.opening_mm)?;
    }
    let body = largest_component(&body, Connectivity::Six)?;
    let [nx, ny, nz] = body.dims();
    let frac = options.min_part_fraction;
    let slices: Vec<Vec<u8>> = (0..nz)
        .into_par_iter()
        .map(|k| -> Result<Vec<u8>> {
            let slice = CropBox { start: [0, 0, k], size: [nx, ny, 1] }.apply(&body)?;
            let cc = connected_components(&slice, Connectivity::TwentySix)?;
            let biggest = cc.sizes.iter().copied().max().unwrap_or(0);
            let keep: Vec<bool> = cc.sizes.iter().map(|&s| s as f64 >= frac * biggest as f64).collect();
            Ok(cc.mask_where(|l| keep[l as usize - 1]).into_data())
        })
        .collect::<Result<_>>()?;
    Ok(Volume::new(body.geometry().clone(), slices.concat())?)
}

/// The abdomen crop box: the slices of `options.slices`, and in x and y the
/// bounding box of the body outline over those slices plus the margin, clipped
/// to the grid. Errors when the volume is not an axial stack or no voxel of the
/// kept slices reaches the body threshold.
pub fn abdomen_crop<T: Scalar>(ct: &Volume<T>, options: &AbdomenCropOptions) -> Result<CropBox> {
    let g = ct.geometry();
    check_axial(g)?;
    if !(options.margin_mm.is_finite() && options.margin_mm >= 0.0) {
        return Err(Error::param("margin_mm", format!("{} is not a non-negative number of mm", options.margin_mm)));
    }
    let (z0, z1) = slice_indices(g, options.slices)?;
    let body = body_mask(ct, options)?;
    let kept = CropBox { start: [0, 0, z0], size: [g.dims()[0], g.dims()[1], z1 - z0] }.apply(&body)?;
    let (lo, hi) = bounding_box(&kept).ok_or_else(|| {
        Error::Empty(format!("no body voxel at or above {} HU on slices {z0}..{z1}", options.body_threshold_hu))
    })?;
    let s = g.spacing();
    let dims = g.dims();
    let mut start = [0, 0, z0];
    let mut size = [0, 0, z1 - z0];
    for a in 0..2 {
        let m = (options.margin_mm / s[a]).ceil().min(1e9) as usize;
        start[a] = lo[a].saturating_sub(m);
        size[a] = (hi[a] + m).min(dims[a]) - start[a];
    }
    Ok(CropBox { start, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rot_z;

    /// An axial CT-like phantom: air, an elliptic trunk (fat ring, soft tissue,
    /// lungs at the top), a detached arm, a table plate under the back, and two
    /// legs on the lowest slices joined by the pelvis above.
    fn phantom() -> Volume<i16> {
        let g = Geometry::new([120, 100, 30], [1.5, 1.5, 4.0], [-90.0, -75.0, -60.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            .unwrap();
        Volume::from_fn(g.clone(), |[i, j, k]| {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            let (x, y) = (w[0], w[1]);
            let trunk = (x / 60.0).powi(2) + (y / 40.0).powi(2) <= 1.0;
            let arm = (x - 78.0).hypot(y) <= 8.0;
            let table = y > 50.0 && y < 54.0 && x.abs() < 80.0;
            let legs = k < 5 && ((x + 25.0).hypot(y) <= 22.0 || (x - 25.0).hypot(y) <= 22.0);
            if (k >= 5 && trunk) || legs {
                if k > 24 && (x.abs() - 25.0).hypot(y) < 12.0 {
                    -800
                } else if (x / 60.0).powi(2) + (y / 40.0).powi(2) > 0.85 {
                    -100
                } else {
                    40
                }
            } else if arm || table {
                30
            } else {
                -1000
            }
        })
    }

    #[test]
    fn crop_holds_the_trunk_and_drops_arm_and_table() {
        let ct = phantom();
        let g = ct.geometry().clone();
        let b = abdomen_crop(&ct, &AbdomenCropOptions::default()).unwrap();
        assert_eq!((b.start[2], b.size[2]), (0, 30));
        let lo = g.index_to_world([b.start[0] as f64, b.start[1] as f64, 0.0]);
        let hi = g.index_to_world([(b.end()[0] - 1) as f64, (b.end()[1] - 1) as f64, 0.0]);
        // Trunk x in [-60, 60], y in [-40, 40]; margin 10 mm; the arm starts at x = 70
        // and the table at y = 50.
        assert!(lo[0] <= -69.0 && lo[0] > -72.0, "x lo {}", lo[0]);
        assert!(hi[0] >= 69.0 && hi[0] < 72.0, "x hi {}", hi[0]);
        assert!(lo[1] <= -49.0 && hi[1] >= 49.0 && hi[1] < 52.0, "y {} {}", lo[1], hi[1]);
        let body = body_mask(&ct, &AbdomenCropOptions::default()).unwrap();
        // Both legs kept on the lowest slice.
        let on = |x: f64, y: f64, k: usize| {
            let s = g.world_to_index([x, y, g.index_to_world([0.0, 0.0, k as f64])[2]]);
            *body.get(s[0].round() as usize, s[1].round() as usize, k)
        };
        assert_eq!((on(-25.0, 0.0, 1), on(25.0, 0.0, 1), on(78.0, 0.0, 1), on(0.0, 52.0, 10)), (1, 1, 0, 0));
        // Slice ranges.
        let opts = AbdomenCropOptions { slices: SliceRange::Index { start: 10, end: 20 }, ..Default::default() };
        let b2 = abdomen_crop(&ct, &opts).unwrap();
        assert_eq!((b2.start[2], b2.size[2]), (10, 10));
        let z = |k: f64| g.index_to_world([0.0, 0.0, k])[2];
        let opts = AbdomenCropOptions { slices: SliceRange::WorldZ { min_mm: z(3.0) - 0.1, max_mm: z(7.5) }, ..Default::default() };
        let b3 = abdomen_crop(&ct, &opts).unwrap();
        assert_eq!((b3.start[2], b3.size[2]), (3, 5));
        for bad in [SliceRange::Index { start: 5, end: 5 }, SliceRange::Index { start: 0, end: 31 }, SliceRange::WorldZ { min_mm: 1e4, max_mm: 2e4 }] {
            assert!(abdomen_crop(&ct, &AbdomenCropOptions { slices: bad, ..Default::default() }).is_err());
        }
    }

    #[test]
    fn crop_refuses_air_and_non_axial_stacks() {
        let g = Geometry::identity([10, 10, 3], [1.0; 3]).unwrap();
        let air = Volume::filled(g, -1000i16);
        assert!(matches!(abdomen_crop(&air, &AbdomenCropOptions::default()), Err(Error::Empty(_))));
        // Axis 2 along x (a sagittal stack).
        let sag = Geometry::new([10, 10, 3], [1.0; 3], [0.0; 3], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).unwrap();
        let v = Volume::filled(sag, 40i16);
        assert!(matches!(abdomen_crop(&v, &AbdomenCropOptions::default()), Err(Error::Orientation(_))));
        // A single slice is a valid axial stack.
        let one = Volume::filled(Geometry::identity([8, 8, 1], [1.0; 3]).unwrap(), 40i16);
        assert_eq!(abdomen_crop(&one, &AbdomenCropOptions::default()).unwrap(), CropBox::whole([8, 8, 1]));
    }

    #[test]
    fn apply_then_paste_is_exact() {
        let g = Geometry::new([9, 7, 5], [0.5, 0.6, 2.0], [3.0, 4.0, 5.0], rot_z(25.0)).unwrap();
        let v = Volume::from_fn(g.clone(), |[i, j, k]| (i + 10 * j + 100 * k) as i32);
        let b = CropBox { start: [2, 1, 1], size: [5, 4, 3] };
        let c = b.apply(&v).unwrap();
        assert_eq!(c.dims(), [5, 4, 3]);
        // Same world position, same value.
        let w = c.geometry().index_to_world([1.0, 2.0, 1.0]);
        let s = g.world_to_index(w).map(|x| x.round() as usize);
        assert_eq!(*c.get(1, 2, 1), *v.get(s[0], s[1], s[2]));
        let back = b.paste(&c, &g, -1).unwrap();
        assert_eq!(back.geometry(), &g);
        for o in 0..v.len() {
            let [i, j, k] = g.index_of(o);
            let inside = (2..7).contains(&i) && (1..5).contains(&j) && (1..4).contains(&k);
            assert_eq!(back.data()[o], if inside { v.data()[o] } else { -1 });
        }
        assert_eq!(CropBox::whole(g.dims()).apply(&v).unwrap(), v);
        // Wrong sizes and foreign grids are refused.
        assert!(CropBox { start: [5, 0, 0], size: [5, 1, 1] }.apply(&v).is_err());
        assert!(CropBox { start: [0, 0, 0], size: [0, 1, 1] }.apply(&v).is_err());
        assert!(CropBox { start: [usize::MAX, 0, 0], size: [2, 1, 1] }.apply(&v).is_err());
        let other = CropBox { start: [1, 1, 1], size: [5, 4, 3] };
        assert!(matches!(other.paste(&c, &g, 0), Err(Error::GridMismatch(_))));
    }

    #[test]
    fn slices_around_a_mask() {
        let g = Geometry::identity([4, 4, 20], [1.0, 1.0, 2.5]).unwrap();
        let m = Volume::from_fn(g.clone(), |[_, _, k]| u8::from((8..12).contains(&k)));
        assert_eq!(slices_around(&m, 5.0).unwrap(), SliceRange::Index { start: 6, end: 14 });
        assert_eq!(slices_around(&m, 100.0).unwrap(), SliceRange::Index { start: 0, end: 20 });
        assert!(slices_around(&Volume::filled(g, 0u8), 5.0).is_err());
    }
}
