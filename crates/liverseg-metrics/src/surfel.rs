//! DeepMind surface-distance's surfel convention (`--surface surfel`).
//!
//! The surface lives on the dual grid: at every voxel corner the 2x2x2
//! neighbourhood of voxels gives an 8-bit code (DeepMind's kernel: bit value
//! `2^(7 - (4 kz + 2 ky + kx))` for the voxel at corner offset `(kx, ky, kz) - 1`,
//! outside the image = background). A corner whose code is neither 0 nor 255 is a
//! surface element ("surfel"); it carries the area in mm² of the marching-cubes
//! triangles of its code. Distances are exact EDTs, with the voxel spacing,
//! between surfel corners of the two masks.
//!
//! Areas: DeepMind's table equals, code by code, the triangle areas of Bourke's
//! classic marching-cubes table (edge midpoints, cube axes (x, y, z) = DeepMind's
//! array axes (k0, k1, k2) = our (z, y, x)), taken for the code itself when at
//! most 4 corners are set and for its complement otherwise, so that code `c`
//! and `255 - c` have the same area. We generate the table from the
//! `marching-cubes` crate's copy of Bourke's table instead of carrying 256
//! hand-typed entries; the reference values in `../shared/metrics` check it.
//!
//! Statistics, as in `surface_distance.metrics`:
//! - directed average a→b = Σ d·area / Σ area over the surfels of a;
//! - HD = the larger of the two directed maxima;
//! - HD95 = the larger of the two directed area-weighted nearest-rank 95th
//!   percentiles (first sorted distance whose cumulative area fraction ≥ 0.95);
//! - surface Dice at τ = (area of a within τ of b + area of b within τ of a) /
//!   (area of a + area of b).

use crate::grid::{crop, union_bbox};
use crate::voxel_surface::directed;
use liverseg_volume::vec3::{cross, dot, sub};
use liverseg_volume::Mask;
use marching_cubes::tables::TRI_TABLE;
use rayon::prelude::*;

/// Bourke's cube corners (x, y, z) and edges.
const CORNERS: [[u8; 3]; 8] = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]];
const EDGES: [[usize; 2]; 12] = [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]];

/// Surfel area (mm²) of every neighbourhood code for a voxel spacing given in
/// our axis order (x, y, z).
pub fn area_table(spacing_xyz: [f64; 3]) -> [f64; 256] {
    // Cube axis 0 is DeepMind's array axis 0, which is our z.
    let scale = [spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]];
    let mut table = [0.0; 256];
    for (code, area) in table.iter_mut().enumerate().take(255).skip(1) {
        let code = if code.count_ones() > 4 { 255 - code } else { code };
        let mut cube = 0usize;
        for (i, c) in CORNERS.iter().enumerate() {
            let bit = 7 - (4 * c[0] + 2 * c[1] + c[2]) as usize;
            if code >> bit & 1 == 1 {
                cube |= 1 << i;
            }
        }
        let mid = |e: i16| -> [f64; 3] {
            let [p, q] = EDGES[e as usize];
            std::array::from_fn(|k| 0.5 * (CORNERS[p][k] + CORNERS[q][k]) as f64 * scale[k])
        };
        *area = TRI_TABLE[cube]
            .chunks(3)
            .take_while(|t| t[0] >= 0)
            .map(|t| {
                let (p, q, r) = (mid(t[0]), mid(t[1]), mid(t[2]));
                let n = cross(sub(q, p), sub(r, p));
                0.5 * dot(n, n).sqrt()
            })
            .sum();
    }
    table
}

/// Neighbourhood codes on the corner grid (dims + 1 per axis) of a 0/1 crop.
fn codes(m: &[u8], dims: [usize; 3]) -> (Vec<u8>, [usize; 3]) {
    let [nx, ny, nz] = dims;
    let cd = [nx + 1, ny + 1, nz + 1];
    let voxel = |x: usize, y: usize, z: usize| -> u8 {
        // Corner (x, y, z) touches voxels x-1..=x etc.; index 0 and n are outside.
        if x == 0 || y == 0 || z == 0 || x > nx || y > ny || z > nz {
            0
        } else {
            m[(x - 1) + nx * ((y - 1) + ny * (z - 1))]
        }
    };
    let mut out = vec![0u8; cd[0] * cd[1] * cd[2]];
    out.par_chunks_mut(cd[0] * cd[1]).enumerate().for_each(|(z, plane)| {
        for y in 0..cd[1] {
            for x in 0..cd[0] {
                let mut code = 0u8;
                for kz in 0..2 {
                    for ky in 0..2 {
                        for kx in 0..2 {
                            if voxel(x + kx, y + ky, z + kz) != 0 {
                                code |= 1 << (7 - (4 * kz + 2 * ky + kx));
                            }
                        }
                    }
                }
                plane[x + cd[0] * y] = code;
            }
        }
    });
    (out, cd)
}

/// Directed surfel distances: (distance mm, area mm²) per surfel, sorted by
/// distance then area (DeepMind sorts `zip(distances, areas)`).
#[derive(Debug, Clone, Default)]
pub struct SurfelDistances {
    pub ab: Vec<(f64, f64)>,
    pub ba: Vec<(f64, f64)>,
}

pub fn surfel_distances(a: &Mask, b: &Mask) -> SurfelDistances {
    assert_eq!(a.dims(), b.dims(), "masks must share a grid");
    let dims = a.dims();
    let Some(bb) = union_bbox(a.data(), b.data(), dims) else {
        return SurfelDistances::default();
    };
    let vd = bb.dims();
    let spacing = a.geometry().spacing();
    let table = area_table(spacing);
    let (ca, cb) = rayon::join(|| crop(a.data(), dims, &bb), || crop(b.data(), dims, &bb));
    let ((code_a, cd), (code_b, _)) = rayon::join(|| codes(&ca, vd), || codes(&cb, vd));
    drop((ca, cb));
    let is_surfel = |c: &Vec<u8>| -> Vec<u8> { c.par_iter().map(|&v| u8::from(v != 0 && v != 255)).collect() };
    let (sa, sb) = rayon::join(|| is_surfel(&code_a), || is_surfel(&code_b));
    let areas = |c: &Vec<u8>| -> Vec<f64> { c.par_iter().filter(|&&v| v != 0 && v != 255).map(|&v| table[v as usize]).collect() };
    let pair = |from: &[u8], to: &[u8], code: &Vec<u8>| -> Vec<(f64, f64)> {
        // Distances to an empty surface are infinite, as in DeepMind's code.
        let d = if to.iter().any(|&v| v != 0) { directed(from, to, cd, spacing) } else { vec![f64::INFINITY; areas(code).len()] };
        let mut v: Vec<(f64, f64)> = d.into_iter().zip(areas(code)).collect();
        v.par_sort_unstable_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
        v
    };
    let (ab, ba) = rayon::join(|| pair(&sa, &sb, &code_a), || pair(&sb, &sa, &code_b));
    SurfelDistances { ab, ba }
}

/// Σ d·area / Σ area; `None` without surfels.
pub fn area_weighted_mean(v: &[(f64, f64)]) -> Option<f64> {
    let total: f64 = v.iter().map(|p| p.1).sum();
    (!v.is_empty()).then(|| v.iter().map(|p| p.0 * p.1).sum::<f64>() / total)
}

/// Nearest-rank area-weighted percentile of a list sorted by distance.
pub fn area_weighted_percentile(v: &[(f64, f64)], percent: f64) -> Option<f64> {
    let total: f64 = v.iter().map(|p| p.1).sum();
    let mut cum = 0.0;
    for &(d, area) in v {
        cum += area;
        if cum / total >= percent / 100.0 {
            return Some(d);
        }
    }
    v.last().map(|p| p.0)
}

/// Area of the surfels within `tol` mm, and the total area.
pub fn area_within(v: &[(f64, f64)], tol: f64) -> (f64, f64) {
    v.iter().fold((0.0, 0.0), |(w, t), &(d, a)| (if d <= tol { w + a } else { w }, t + a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_expected_symmetries_and_simple_areas() {
        let t = area_table([1.0, 1.0, 1.0]);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[255], 0.0);
        // One corner: the triangle between three edge midpoints, area √3/8.
        let corner = 3f64.sqrt() / 8.0;
        for bit in 0..8 {
            assert!((t[1 << bit] - corner).abs() < 1e-12);
            assert!((t[255 - (1 << bit)] - corner).abs() < 1e-12);
        }
        // Half the cube set (a face pair): a unit square.
        assert!((t[0b1111_0000] - 1.0).abs() < 1e-12); // kz = 0 plane set
        assert!((t[0b1100_1100] - 1.0).abs() < 1e-12); // ky = 0 set
        assert!((t[0b1010_1010] - 1.0).abs() < 1e-12); // kx = 0 set
        for c in 0..256 {
            assert!((t[c] - t[255 - c]).abs() < 1e-12, "code {c}");
        }
        // Anisotropic: a plane normal to z (our axis 2) has area sx*sy.
        let t = area_table([0.5, 2.0, 3.0]);
        assert!((t[0b1111_0000] - 1.0).abs() < 1e-12);
        assert!((t[0b1100_1100] - 1.5).abs() < 1e-12);
        assert!((t[0b1010_1010] - 6.0).abs() < 1e-12);
    }

    #[test]
    fn weighted_percentile_is_nearest_rank() {
        let v = [(0.0, 1.0), (1.0, 1.0), (2.0, 8.0)];
        assert_eq!(area_weighted_percentile(&v, 10.0), Some(0.0));
        assert_eq!(area_weighted_percentile(&v, 20.0), Some(1.0));
        assert_eq!(area_weighted_percentile(&v, 21.0), Some(2.0));
        assert_eq!(area_weighted_mean(&v), Some(1.7));
        assert_eq!(area_within(&v, 1.0), (2.0, 10.0));
        assert_eq!(area_weighted_percentile(&[], 95.0), None);
    }
}
