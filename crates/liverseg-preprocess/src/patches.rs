//! Network inputs cut out of a prepared volume: for one output patch, a
//! full-resolution patch for the fine pathway and average-pooled patches for the
//! coarse pathways.
//!
//! Coarse context is made by *average pooling* the image over `factor^3` cells
//! aligned with the output patch, where DeepMedic slices every `factor`-th
//! voxel: slicing aliases (a 1.4 mm vessel is either in a 21 mm cell's sample or
//! not), pooling gives each cell the mean of the tissue it covers. A summed
//! volume table makes any cell's mean eight lookups, so training can centre a
//! patch on any voxel and inference can tile freely.
//!
//! Layout of every patch: x fastest, then y, then z, so a `[z][y][x]` tensor of
//! shape `[n, n, n]` holds it directly. Outside the volume the image is `pad`
//! (the normalised value of air).

use liverseg_volume::Volume;
use rayon::prelude::*;

/// The input one pathway needs for an output patch of `patch` fine voxels
/// per axis: `input` voxels of the pathway's grid per axis, each `factor` fine
/// voxels wide, centred on the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathwayInput {
    pub factor: usize,
    pub input: usize,
}

impl PathwayInput {
    /// First fine voxel (relative to the patch origin) that the pathway input
    /// covers; the input spans `input * factor` fine voxels from there.
    pub fn offset(&self, patch: usize) -> i64 {
        centred_offset(self.input, self.factor, patch)
    }

    /// The same input as a box (`input` voxels along every axis).
    pub fn as_box(&self) -> PathwayBox {
        PathwayBox { factor: self.factor, input: [self.input; 3] }
    }
}

/// [`PathwayInput`] for an output box that need not be a cube: `input[a]`
/// voxels of the pathway's grid along axis `a` (x, y, z), centred on the box
/// along each axis. Inference covers a volume with such boxes so that it
/// computes the context margin once per box, not once per cubic tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathwayBox {
    pub factor: usize,
    pub input: [usize; 3],
}

impl PathwayBox {
    /// Per axis, the first fine voxel (relative to the box origin) that the
    /// input covers (as [`PathwayInput::offset`]).
    pub fn offset(&self, size: [usize; 3]) -> [i64; 3] {
        std::array::from_fn(|a| centred_offset(self.input[a], self.factor, size[a]))
    }
}

fn centred_offset(input: usize, factor: usize, patch: usize) -> i64 {
    let covered = (input * factor) as i64;
    -((covered - patch as i64) / 2)
}

/// A normalised volume ready to cut patches from.
pub struct PatchSource {
    dims: [usize; 3],
    image: Vec<f32>,
    /// Summed volume table over (nx+1)(ny+1)(nz+1) entries, f64 so sums over
    /// millions of voxels keep full precision.
    table: Vec<f64>,
    pad: f32,
}

impl PatchSource {
    pub fn new(image: &Volume<f32>, pad: f32) -> Self {
        let dims = image.dims();
        let [nx, ny, nz] = dims;
        let (sx, sy) = (nx + 1, ny + 1);
        let mut table = vec![0.0f64; sx * sy * (nz + 1)];
        let data = image.data();
        // Prefix sums along x then y per slice (parallel over z), then along z.
        table.par_chunks_mut(sx * sy).skip(1).enumerate().for_each(|(k, plane)| {
            for j in 0..ny {
                let mut run = 0.0f64;
                for i in 0..nx {
                    run += f64::from(data[(k * ny + j) * nx + i]);
                    plane[(j + 1) * sx + i + 1] = run + plane[j * sx + i + 1];
                }
            }
        });
        for k in 1..=nz {
            let (before, after) = table.split_at_mut(k * sx * sy);
            let prev = &before[(k - 1) * sx * sy..];
            for (t, p) in after[..sx * sy].iter_mut().zip(prev) {
                *t += *p;
            }
        }
        Self { dims, image: data.to_vec(), table, pad }
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Sum of the image over the fine box `lo..hi` (clipped to the volume) and
    /// the number of voxels of the box inside the volume.
    fn box_sum(&self, lo: [i64; 3], hi: [i64; 3]) -> (f64, usize) {
        let [nx, ny, nz] = self.dims.map(|d| d as i64);
        let a = [lo[0].clamp(0, nx), lo[1].clamp(0, ny), lo[2].clamp(0, nz)];
        let b = [hi[0].clamp(0, nx), hi[1].clamp(0, ny), hi[2].clamp(0, nz)];
        if (0..3).any(|d| b[d] <= a[d]) {
            return (0.0, 0);
        }
        let (sx, sy) = (nx as usize + 1, ny as usize + 1);
        let t = |x: i64, y: i64, z: i64| self.table[(z as usize * sy + y as usize) * sx + x as usize];
        let s = t(b[0], b[1], b[2]) - t(a[0], b[1], b[2]) - t(b[0], a[1], b[2]) - t(b[0], b[1], a[2])
            + t(a[0], a[1], b[2])
            + t(a[0], b[1], a[2])
            + t(b[0], a[1], a[2])
            - t(a[0], a[1], a[2]);
        (s, ((b[0] - a[0]) * (b[1] - a[1]) * (b[2] - a[2])) as usize)
    }

    /// Fill `out` (`input^3` values) with the pathway's input for the patch
    /// whose first fine voxel is `origin`.
    pub fn extract(&self, origin: [i64; 3], patch: usize, pathway: PathwayInput, out: &mut [f32]) {
        self.extract_box(origin, [patch; 3], pathway.as_box(), out);
    }

    /// Fill `out` (`input[0] * input[1] * input[2]` values, x fastest) with
    /// the pathway's input for the output box of `size` fine voxels whose
    /// first fine voxel is `origin`.
    pub fn extract_box(&self, origin: [i64; 3], size: [usize; 3], pathway: PathwayBox, out: &mut [f32]) {
        let [n0, n1, _] = pathway.input;
        assert_eq!(out.len(), pathway.input.iter().product::<usize>(), "patch buffer size");
        let f = pathway.factor as i64;
        let offset = pathway.offset(size);
        let start: [i64; 3] = std::array::from_fn(|a| origin[a] + offset[a]);
        if f == 1 {
            let [nx, ny, nz] = self.dims.map(|d| d as i64);
            for (k, plane) in out.chunks_mut(n0 * n1).enumerate() {
                let z = start[2] + k as i64;
                for (j, row) in plane.chunks_mut(n0).enumerate() {
                    let y = start[1] + j as i64;
                    if !(0..nz).contains(&z) || !(0..ny).contains(&y) {
                        row.fill(self.pad);
                        continue;
                    }
                    let base = ((z * ny + y) * nx) as usize;
                    for (i, v) in row.iter_mut().enumerate() {
                        let x = start[0] + i as i64;
                        *v = if (0..nx).contains(&x) { self.image[base + x as usize] } else { self.pad };
                    }
                }
            }
            return;
        }
        let cell = (f * f * f) as f64;
        for (idx, v) in out.iter_mut().enumerate() {
            let c = [(idx % n0) as i64, ((idx / n0) % n1) as i64, (idx / (n0 * n1)) as i64];
            let lo: [i64; 3] = std::array::from_fn(|d| start[d] + c[d] * f);
            let hi = lo.map(|l| l + f);
            let (sum, inside) = self.box_sum(lo, hi);
            *v = ((sum + f64::from(self.pad) * (cell - inside as f64)) / cell) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_volume::{Geometry, IDENTITY};

    fn volume(dims: [usize; 3]) -> Volume<f32> {
        let g = Geometry::new(dims, [1.0; 3], [0.0; 3], IDENTITY).unwrap();
        Volume::from_fn(g, |[i, j, k]| ((i * 7 + j * 13 + k * 31) % 17) as f32 * 0.01 - 0.08)
    }

    /// Brute-force pooled value of a cell, for comparison.
    fn pooled(v: &Volume<f32>, lo: [i64; 3], f: i64, pad: f32) -> f32 {
        let mut s = 0.0f64;
        for z in lo[2]..lo[2] + f {
            for y in lo[1]..lo[1] + f {
                for x in lo[0]..lo[0] + f {
                    s += f64::from(*v.checked_get([x, y, z]).unwrap_or(&pad));
                }
            }
        }
        (s / (f * f * f) as f64) as f32
    }

    #[test]
    fn fine_patch_is_the_voxels_with_padding() {
        let v = volume([9, 8, 7]);
        let src = PatchSource::new(&v, -0.2);
        let p = PathwayInput { factor: 1, input: 7 };
        let mut out = vec![0.0; 343];
        // Patch of 3 at origin (0,0,0): input starts 2 voxels before it.
        src.extract([0, 0, 0], 3, p, &mut out);
        for (idx, &got) in out.iter().enumerate() {
            let (i, j, k) = ((idx % 7) as i64 - 2, ((idx / 7) % 7) as i64 - 2, (idx / 49) as i64 - 2);
            let want = *v.checked_get([i, j, k]).unwrap_or(&-0.2);
            assert_eq!(got, want, "at {i},{j},{k}");
        }
    }

    #[test]
    fn pooled_patch_matches_brute_force_inside_and_outside() {
        let v = volume([23, 19, 17]);
        let src = PatchSource::new(&v, -0.2);
        for (factor, input, patch, origin) in [(5, 5, 15, [3, 2, 1]), (3, 4, 6, [-4, 10, 12]), (5, 3, 5, [20, 17, 15])] {
            let p = PathwayInput { factor, input };
            let mut out = vec![0.0; input.pow(3)];
            src.extract(origin, patch, p, &mut out);
            let off = p.offset(patch);
            for (idx, &got) in out.iter().enumerate() {
                let c = [idx % input, (idx / input) % input, idx / (input * input)];
                let lo = std::array::from_fn(|d| origin[d] + off + (c[d] * factor) as i64);
                let want = pooled(&v, lo, factor as i64, -0.2);
                assert!((got - want).abs() < 1e-5, "factor {factor} cell {c:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn pathway_input_is_centred_on_the_patch() {
        // 21 coarse cells of 15 around a 15-voxel patch: 10 cells each side.
        assert_eq!(PathwayInput { factor: 15, input: 21 }.offset(15), -150);
        // 25 cells of 5 around 15 voxels (3 cells): 11 cells each side.
        assert_eq!(PathwayInput { factor: 5, input: 25 }.offset(15), -55);
        assert_eq!(PathwayInput { factor: 1, input: 35 }.offset(15), -10);
    }
}
