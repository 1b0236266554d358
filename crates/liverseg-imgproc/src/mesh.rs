//! Surface mesh of a binary mask, for drawing it in 3-D (the review tool's
//! surface view).
//!
//! Naive surface nets on a block-averaged copy of the mask: the mask is
//! reduced to cells of about [`MeshOptions::cell_mm`] (each cell holds the
//! share of its voxels that are set), lightly blurred, padded with an empty
//! layer, and the 0.5 level of that field is meshed with one vertex per grid
//! cube the level crosses (the mean of the crossing points on its edges) and
//! one quad (two triangles) per grid edge the level crosses. Averaging makes
//! the surface smooth where the mask is a staircase of voxels, and the
//! padding closes it at the volume's border, so the mesh is always closed and
//! consistently oriented (normals point out of the mask).
//!
//! Vertices are in patient LPS mm through [`Geometry::index_to_world`], the
//! volume's own index -> patient transform; a grid whose axes form a
//! left-handed frame in LPS (negative determinant) gets its triangles
//! reversed, so outward stays outward.
//!
//! Marching cubes would need its 256-case table and still leaves ambiguous
//! faces to resolve; surface nets needs neither, and with one vertex per
//! cell gives about half the triangles for the same cell size.

use crate::{Error, Result};
use liverseg_volume::{det3, Mask};
use rayon::prelude::*;
use std::collections::HashMap;

/// How finely to mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshOptions {
    /// Target cell size in mm: each axis is reduced by the whole number of
    /// voxels closest to it (at least 1). Parts of the mask thinner than
    /// about half a cell may not show.
    pub cell_mm: f64,
    /// Upper bound on triangles: while the mesh has more, the cells grow by
    /// a quarter and it is made again.
    pub max_triangles: usize,
    /// Blur the cell field with a [1, 4, 1] / 6 kernel per axis before
    /// meshing: a smoother surface. Not [1, 2, 1] / 4: that takes a layer one
    /// cell thick (a stroke painted on one 2.5 mm slice) to exactly 0.5, and
    /// the edit would vanish from the view.
    pub smooth: bool,
}

impl Default for MeshOptions {
    fn default() -> Self {
        // 2 mm cells give a liver (about 700 cm^2 of surface) some 50,000
        // triangles; 200,000 is what a browser draws smoothly on any GPU.
        MeshOptions { cell_mm: 2.0, max_triangles: 200_000, smooth: true }
    }
}

/// A triangle mesh in patient LPS mm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub positions: Vec<[f32; 3]>,
    /// Counter-clockwise seen from outside the mask.
    pub triangles: Vec<[u32; 3]>,
    /// Voxels per cell along each axis of the mask's grid.
    pub factors: [usize; 3],
}

impl Mesh {
    /// Surface area in mm^2.
    pub fn area_mm2(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.pos(i));
                0.5 * norm(cross(sub(b, a), sub(c, a)))
            })
            .sum()
    }

    /// Enclosed volume in mm^3 (divergence theorem; positive for a closed
    /// mesh whose triangles face outwards).
    pub fn volume_mm3(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.pos(i));
                dot(a, cross(b, c)) / 6.0
            })
            .sum()
    }

    /// Closed and consistently oriented: every directed edge a->b is matched
    /// by as many b->a (each edge is shared by faces of opposite winding).
    pub fn is_closed(&self) -> bool {
        let mut count: HashMap<(u32, u32), i64> = HashMap::new();
        for t in &self.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                if a == b {
                    return false;
                }
                let (key, d) = if a < b { ((a, b), 1) } else { ((b, a), -1) };
                *count.entry(key).or_default() += d;
            }
        }
        count.values().all(|&c| c == 0)
    }

    /// Every edge in exactly two triangles (a 2-manifold surface).
    pub fn is_manifold(&self) -> bool {
        let mut count: HashMap<(u32, u32), u32> = HashMap::new();
        for t in &self.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                *count.entry((a.min(b), a.max(b))).or_default() += 1;
            }
        }
        count.values().all(|&c| c == 2)
    }

    /// Compact little-endian binary for the browser: `u32` vertex count,
    /// `u32` triangle count, the positions (`3 f32` each, mm LPS), then the
    /// triangles (`3 u32` each). Typed arrays read it without parsing.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 12 * (self.positions.len() + self.triangles.len()));
        out.extend_from_slice(&(self.positions.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.triangles.len() as u32).to_le_bytes());
        for p in &self.positions {
            for v in p {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for t in &self.triangles {
            for v in t {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    fn pos(&self, i: u32) -> [f64; 3] {
        self.positions[i as usize].map(f64::from)
    }
}

/// The surface of `mask` (voxels != 0) as a closed triangle mesh in LPS mm,
/// made coarser until it has at most `opts.max_triangles` triangles. An empty
/// mask gives an empty mesh.
pub fn surface_mesh(mask: &Mask, opts: &MeshOptions) -> Result<Mesh> {
    if !(opts.cell_mm.is_finite() && opts.cell_mm > 0.0) {
        return Err(Error::param("cell_mm", format!("{} is not a positive number of mm", opts.cell_mm)));
    }
    if opts.max_triangles == 0 {
        return Err(Error::param("max_triangles", "0: no mesh fits"));
    }
    let g = mask.geometry();
    let dims = g.dims();
    let mut cell = opts.cell_mm;
    loop {
        let factors: [usize; 3] =
            std::array::from_fn(|a| ((cell / g.spacing()[a]).round() as usize).clamp(1, dims[a]));
        let mesh = mesh_at(mask, factors, opts.smooth)?;
        if mesh.triangles.len() <= opts.max_triangles {
            return Ok(mesh);
        }
        if factors == dims {
            // One cell per axis cannot be coarsened further (never reached
            // in practice: that mesh has at most 6 quads).
            return Ok(mesh);
        }
        cell *= 1.25;
    }
}

/// Mesh `mask` with cells of `factors` voxels.
fn mesh_at(mask: &Mask, factors: [usize; 3], smooth: bool) -> Result<Mesh> {
    let g = mask.geometry();
    let (field, fdims) = cell_field(mask, factors, smooth)?;
    let (verts, quads) = surface_nets(&field, fdims, 0.5)?;
    // Sample s of the padded field (s = 0 and s = n + 1 are the padding)
    // lies at the centre of cell s - 1, in the mask's continuous index.
    let centre = |a: usize, s: f64| -> f64 {
        let f = factors[a] as f64;
        let n = g.dims()[a] as f64;
        let c = s - 1.0;
        // The last cell may be partial: its centre is that of its voxels.
        let last = ((n / f).ceil() - 1.0).max(0.0);
        let at = |c: f64| -> f64 {
            if c >= last {
                let lo = last * f;
                let mid = (lo + n - 1.0) / 2.0;
                // Beyond the last cell (padding), step on by one cell.
                mid + (c - last) * f
            } else {
                c * f + (f - 1.0) / 2.0
            }
        };
        // Piecewise linear between sample centres.
        let c0 = c.floor();
        let t = c - c0;
        at(c0) + t * (at(c0 + 1.0) - at(c0))
    };
    let positions: Vec<[f32; 3]> = verts
        .iter()
        .map(|v| {
            let idx = [centre(0, v[0]), centre(1, v[1]), centre(2, v[2])];
            g.index_to_world(idx).map(|x| x as f32)
        })
        .collect();
    // Surface nets orients quads in index space; a left-handed index frame
    // in LPS mirrors them.
    let flip = det3(&g.index_to_world_matrix()) < 0.0;
    let mut triangles = Vec::with_capacity(2 * quads.len());
    for q in quads {
        let [a, b, c, d] = q;
        // Split along the shorter diagonal: fewer slivers, smoother shading.
        let d_ac = dist2(positions[a as usize], positions[c as usize]);
        let d_bd = dist2(positions[b as usize], positions[d as usize]);
        let (t1, t2) = if d_ac <= d_bd { ([a, b, c], [a, c, d]) } else { ([a, b, d], [b, c, d]) };
        for t in [t1, t2] {
            triangles.push(if flip { [t[0], t[2], t[1]] } else { t });
        }
    }
    Ok(Mesh { positions, triangles, factors })
}

/// Share of set voxels per cell of `factors` voxels, padded with one empty
/// cell on every side; optionally blurred. Returns the field (x fastest) and
/// its dims.
fn cell_field(mask: &Mask, factors: [usize; 3], smooth: bool) -> Result<(Vec<f32>, [usize; 3])> {
    let dims = mask.dims();
    let cells: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(factors[a]));
    let fdims = cells.map(|c| c + 2);
    let too_large = || Error::TooLarge { kernel: "surface mesh", voxels: fdims.iter().product() };
    let n = fdims[0]
        .checked_mul(fdims[1])
        .and_then(|v| v.checked_mul(fdims[2]))
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(too_large)?;
    let plane = fdims[0] * fdims[1];
    let data = mask.data();
    let mut field = vec![0f32; n];
    // One padded z plane of cells per task.
    field
        .par_chunks_mut(plane)
        .enumerate()
        .filter(|(cz, _)| *cz >= 1 && *cz <= cells[2])
        .for_each(|(cz, out)| {
            let z0 = (cz - 1) * factors[2];
            let z1 = (z0 + factors[2]).min(dims[2]);
            let mut counts = vec![0u32; cells[0] * cells[1]];
            for z in z0..z1 {
                for y in 0..dims[1] {
                    let row = &data[(z * dims[1] + y) * dims[0]..][..dims[0]];
                    let cy = y / factors[1];
                    for (x, &v) in row.iter().enumerate() {
                        counts[cy * cells[0] + x / factors[0]] += u32::from(v != 0);
                    }
                }
            }
            for cy in 0..cells[1] {
                let ny = ((cy + 1) * factors[1]).min(dims[1]) - cy * factors[1];
                for cx in 0..cells[0] {
                    let nx = ((cx + 1) * factors[0]).min(dims[0]) - cx * factors[0];
                    let total = (nx * ny * (z1 - z0)) as f32;
                    out[(cy + 1) * fdims[0] + cx + 1] = counts[cy * cells[0] + cx] as f32 / total;
                }
            }
        });
    if smooth {
        for axis in 0..3 {
            blur_axis(&mut field, fdims, axis);
        }
    }
    Ok((field, fdims))
}

/// [1, 4, 1] / 6 along one axis; outside the field counts as 0. The padding
/// stays below 0.5 (it gets at most a sixth of a full neighbour per axis),
/// so the surface still closes inside the padded box.
fn blur_axis(field: &mut [f32], dims: [usize; 3], axis: usize) {
    let stride = [1, dims[0], dims[0] * dims[1]][axis];
    let len = dims[axis];
    let src = field.to_vec();
    field.par_iter_mut().enumerate().for_each(|(i, out)| {
        let pos = (i / stride) % len;
        let prev = if pos > 0 { src[i - stride] } else { 0.0 };
        let next = if pos + 1 < len { src[i + stride] } else { 0.0 };
        *out = (prev + 4.0 * src[i] + next) / 6.0;
    });
}

/// Vertices (field sample coordinates) and quads (four vertex indices).
type Nets = (Vec<[f64; 3]>, Vec<[u32; 4]>);

/// Naive surface nets on `field` (x fastest, `dims`), level `level`: vertices
/// in field sample coordinates and quads, counter-clockwise seen from the
/// side below the level ("outside"). Samples on the field's border must be
/// below the level (the caller pads), so every quad's four cells exist.
fn surface_nets(field: &[f32], dims: [usize; 3], level: f32) -> Result<Nets> {
    let [nx, ny, nz] = dims;
    if nx < 2 || ny < 2 || nz < 2 || field.len() != nx * ny * nz {
        return Err(Error::param("field", format!("{} values for dims {dims:?}", field.len())));
    }
    let at = |x: usize, y: usize, z: usize| field[x + nx * (y + ny * z)];
    let inside = |v: f32| v > level;
    // Cell (x, y, z) spans samples x..=x+1 etc.; its vertex index, or MAX.
    let (cx, cy) = (nx - 1, ny - 1);
    let mut cell_vertex = vec![u32::MAX; cx * cy * (nz - 1)];
    let mut verts: Vec<[f64; 3]> = Vec::new();
    // The 12 edges of a cube as pairs of corner numbers (bit 0: +x, 1: +y, 2: +z).
    const EDGES: [(usize, usize); 12] = [
        (0, 1), (2, 3), (4, 5), (6, 7),
        (0, 2), (1, 3), (4, 6), (5, 7),
        (0, 4), (1, 5), (2, 6), (3, 7),
    ];
    for z in 0..nz - 1 {
        for y in 0..cy {
            for x in 0..cx {
                let v: [f32; 8] = std::array::from_fn(|c| at(x + (c & 1), y + (c >> 1 & 1), z + (c >> 2 & 1)));
                let n_in = v.iter().filter(|&&a| inside(a)).count();
                if n_in == 0 || n_in == 8 {
                    continue;
                }
                let mut sum = [0f64; 3];
                let mut k = 0u32;
                for &(a, b) in &EDGES {
                    if inside(v[a]) != inside(v[b]) {
                        let t = f64::from((level - v[a]) / (v[b] - v[a]));
                        for (ax, s) in sum.iter_mut().enumerate() {
                            let pa = (a >> ax & 1) as f64;
                            let pb = (b >> ax & 1) as f64;
                            *s += pa + t * (pb - pa);
                        }
                        k += 1;
                    }
                }
                let k = f64::from(k);
                cell_vertex[x + cx * (y + cy * z)] = verts.len() as u32;
                verts.push([x as f64 + sum[0] / k, y as f64 + sum[1] / k, z as f64 + sum[2] / k]);
            }
        }
    }
    let cell = |p: [usize; 3]| cell_vertex[p[0] + cx * (p[1] + cy * p[2])];
    let mut quads = Vec::new();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let p = [x, y, z];
                let here = inside(at(x, y, z));
                for d in 0..3 {
                    if p[d] + 1 >= dims[d] {
                        continue;
                    }
                    let mut q = p;
                    q[d] += 1;
                    if here == inside(at(q[0], q[1], q[2])) {
                        continue;
                    }
                    // (u, v, d) is a right-handed cycle, so (c00, c10, c11,
                    // c01) runs counter-clockwise seen from +d.
                    let (u, v) = ((d + 1) % 3, (d + 2) % 3);
                    if p[u] == 0 || p[v] == 0 {
                        return Err(Error::param("field", "a sample on the border is above the level"));
                    }
                    let shift = |du: usize, dv: usize| {
                        let mut c = p;
                        c[u] -= du;
                        c[v] -= dv;
                        cell(c)
                    };
                    let quad = [shift(1, 1), shift(0, 1), shift(0, 0), shift(1, 0)];
                    // Outward is +d when the inside is at p.
                    quads.push(if here { quad } else { [quad[0], quad[3], quad[2], quad[1]] });
                }
            }
        }
    }
    Ok((verts, quads))
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
fn dist2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|k| (a[k] - b[k]).powi(2)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ball, rot, Rng};
    use liverseg_volume::{Geometry, Volume, IDENTITY};
    use std::f64::consts::PI;

    fn opts(cell_mm: f64, smooth: bool) -> MeshOptions {
        MeshOptions { cell_mm, max_triangles: 1_000_000, smooth }
    }

    #[test]
    fn a_sphere_is_closed_manifold_and_has_the_analytic_area_and_volume() {
        let g = Geometry::new([64, 64, 40], [1.0, 1.0, 1.5], [-30.0, 12.0, -400.0], IDENTITY).unwrap();
        let c = g.index_to_world([31.5, 31.5, 19.5]);
        let r = 25.0;
        let m = ball(&g, c, r);
        for (cell, smooth) in [(1.0, false), (2.0, true), (3.0, true)] {
            let mesh = surface_mesh(&m, &opts(cell, smooth)).unwrap();
            assert!(mesh.is_closed(), "cell {cell}");
            assert!(mesh.is_manifold(), "cell {cell}");
            let (v, a) = (mesh.volume_mm3(), mesh.area_mm2());
            let (v0, a0) = (4.0 / 3.0 * PI * r.powi(3), 4.0 * PI * r * r);
            // Coarser cells cut more off the curved surface (at 3 mm the
            // ball is 8 cells across its radius).
            let tol = if cell > 2.0 { 0.05 } else { 0.03 };
            assert!((v / v0 - 1.0).abs() < tol, "cell {cell}: volume {v} vs {v0}");
            assert!((a / a0 - 1.0).abs() < 0.05, "cell {cell}: area {a} vs {a0}");
            // Every vertex lies near the sphere, in patient mm.
            let worst = mesh
                .positions
                .iter()
                .map(|p| (norm(sub(p.map(f64::from), c)) - r).abs())
                .fold(0.0, f64::max);
            assert!(worst < 0.75 * cell.max(1.5), "cell {cell}: a vertex {worst} mm off the sphere");
        }
    }

    #[test]
    fn a_box_touching_the_volume_border_is_closed_with_its_volume() {
        // A box that fills the grid to its edge: the padding closes it.
        let g = Geometry::identity([20, 16, 10], [2.0, 2.0, 3.0]).unwrap();
        let m = Volume::from_fn(g.clone(), |[i, _, k]| u8::from(i >= 5 && k < 7));
        let mesh = surface_mesh(&m, &opts(2.0, false)).unwrap();
        assert!(mesh.is_closed() && mesh.is_manifold());
        // Voxel faces: x from 4.5 to 19.5 voxels, y -0.5..15.5, z -0.5..6.5.
        let v0 = (15.0 * 2.0) * (16.0 * 2.0) * (7.0 * 3.0);
        let v = mesh.volume_mm3();
        // Unsmoothed, the 0.5 level passes through the voxel faces on flat
        // sides; surface nets only bevels the 12 edges.
        assert!(v < v0 && v > 0.9 * v0, "{v} vs {v0}");
        let a0 = 2.0 * (30.0 * 32.0 + 30.0 * 21.0 + 32.0 * 21.0);
        let a = mesh.area_mm2();
        assert!(a < a0 && a > 0.9 * a0, "{a} vs {a0}");
    }

    #[test]
    fn vertices_go_through_the_volumes_own_geometry_and_stay_outward() {
        // An oblique, left-handed grid (one axis flipped) far from the origin.
        let mut d = rot([1.0, 2.0, 0.5], 33.0);
        for row in d.iter_mut() {
            row[0] = -row[0];
        }
        let g = Geometry::new([40, 40, 30], [1.0, 1.2, 1.5], [150.0, -80.0, 900.0], d).unwrap();
        assert!(det3(&g.index_to_world_matrix()) < 0.0);
        let c = g.index_to_world([20.0, 19.0, 15.0]);
        let m = ball(&g, c, 15.0);
        let mesh = surface_mesh(&m, &opts(1.5, true)).unwrap();
        assert!(mesh.is_closed());
        let v0 = 4.0 / 3.0 * PI * 15f64.powi(3);
        assert!((mesh.volume_mm3() / v0 - 1.0).abs() < 0.04, "{} vs {v0}", mesh.volume_mm3());
        // Centroid at the ball's centre in LPS.
        let n = mesh.positions.len() as f64;
        let mean: [f64; 3] = std::array::from_fn(|a| mesh.positions.iter().map(|p| f64::from(p[a])).sum::<f64>() / n);
        assert!(norm(sub(mean, c)) < 0.5, "{mean:?} vs {c:?}");
    }

    #[test]
    fn the_triangle_budget_coarsens_the_cells() {
        let g = Geometry::identity([80, 80, 60], [0.7, 0.7, 1.0]).unwrap();
        let m = ball(&g, [28.0, 28.0, 30.0], 25.0);
        let fine = surface_mesh(&m, &opts(0.7, true)).unwrap();
        let budget = fine.triangles.len() / 5;
        let coarse = surface_mesh(&m, &MeshOptions { cell_mm: 0.7, max_triangles: budget, smooth: true }).unwrap();
        assert!(coarse.triangles.len() <= budget && !coarse.triangles.is_empty());
        assert!(coarse.factors.iter().zip(fine.factors).all(|(c, f)| *c >= f) && coarse.factors != fine.factors);
        assert!(coarse.is_closed());
        assert!((coarse.volume_mm3() / fine.volume_mm3() - 1.0).abs() < 0.05);
    }

    /// A liver-sized ellipsoid on a 512x512x130 CT grid stays within the
    /// default budget the review page draws.
    #[test]
    fn a_liver_sized_mask_on_a_full_ct_grid_fits_the_default_budget() {
        let g = Geometry::new([512, 512, 130], [0.7, 0.7, 2.5], [-180.0, -180.0, -300.0], IDENTITY).unwrap();
        let c = g.index_to_world([256.0, 256.0, 65.0]);
        let axes = [110.0, 85.0, 75.0];
        let m = Volume::from_fn(g.clone(), |[i, j, k]| {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            u8::from((0..3).map(|a| ((w[a] - c[a]) / axes[a]).powi(2)).sum::<f64>() <= 1.0)
        });
        let t0 = std::time::Instant::now();
        let mesh = surface_mesh(&m, &MeshOptions::default()).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let v0 = 4.0 / 3.0 * PI * axes.iter().product::<f64>();
        eprintln!(
            "512x512x130: {} triangles, {} vertices, cells {:?} voxels, {:.2} s, volume {:.1} of {:.1} ml",
            mesh.triangles.len(),
            mesh.positions.len(),
            mesh.factors,
            secs,
            mesh.volume_mm3() / 1e3,
            v0 / 1e3
        );
        assert!(mesh.triangles.len() <= 200_000 && mesh.triangles.len() > 10_000);
        assert!(mesh.is_closed());
        assert!((mesh.volume_mm3() / v0 - 1.0).abs() < 0.02);
    }

    /// A stroke painted on one slice of a CT whose slices are thicker than a
    /// cell is one cell thick: it must still show (and be about its size).
    #[test]
    fn a_layer_one_slice_thick_still_shows() {
        let g = Geometry::identity([60, 60, 20], [0.7, 0.7, 2.5]).unwrap();
        let m = Volume::from_fn(g.clone(), |[i, j, k]| {
            u8::from(k == 10 && (i as f64 - 30.0).hypot(j as f64 - 30.0) * 0.7 <= 10.0)
        });
        let mesh = surface_mesh(&m, &MeshOptions::default()).unwrap();
        assert!(mesh.is_closed() && !mesh.triangles.is_empty());
        // Seen at about its size across (the blur thins it along z: a lone
        // one-slice disc keeps some 40 % of its volume; one beside the
        // liver merges into its surface).
        let c = g.index_to_world([30.0, 30.0, 10.0]);
        let reach = mesh.positions.iter().map(|p| (f64::from(p[0]) - c[0]).hypot(f64::from(p[1]) - c[1])).fold(0.0, f64::max);
        assert!(reach > 8.5 && reach < 11.0, "{reach} mm across for a 10 mm disc");
        let v0 = m.foreground_ml() * 1e3;
        assert!(mesh.volume_mm3() > 0.3 * v0 && mesh.volume_mm3() < v0, "{} vs {v0}", mesh.volume_mm3());
    }

    #[test]
    fn empty_tiny_and_random_masks_never_panic_and_stay_closed() {
        let g = Geometry::identity([1, 1, 1], [1.0; 3]).unwrap();
        let empty = Volume::filled(g.clone(), 0u8);
        assert!(surface_mesh(&empty, &MeshOptions::default()).unwrap().triangles.is_empty());
        // One voxel: a closed octahedron-like cell around it.
        let one = Volume::filled(g, 1u8);
        let mesh = surface_mesh(&one, &opts(1.0, false)).unwrap();
        assert!(!mesh.triangles.is_empty() && mesh.is_closed() && mesh.volume_mm3() > 0.0);
        // Noise (many ambiguous cells): closed and oriented even where not manifold.
        let g = Geometry::identity([17, 13, 9], [1.0, 1.0, 2.0]).unwrap();
        let mut rng = Rng(7);
        let noise = Volume::from_fn(g, |_| u8::from(rng.unit() < 0.45));
        for cell in [1.0, 2.0] {
            let mesh = surface_mesh(&noise, &opts(cell, cell > 1.0)).unwrap();
            assert!(mesh.is_closed(), "cell {cell}");
            assert!(mesh.volume_mm3() > 0.0);
        }
        assert!(surface_mesh(&noise, &opts(f64::NAN, true)).is_err());
        assert!(surface_mesh(&noise, &MeshOptions { max_triangles: 0, ..Default::default() }).is_err());
    }

    #[test]
    fn binary_layout() {
        let mesh = Mesh { positions: vec![[1.0, 2.0, 3.0]], triangles: vec![[0, 0, 0]], factors: [1; 3] };
        let b = mesh.to_bytes();
        assert_eq!(b.len(), 8 + 12 + 12);
        assert_eq!(&b[..8], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(f32::from_le_bytes(b[12..16].try_into().unwrap()), 2.0);
    }
}
