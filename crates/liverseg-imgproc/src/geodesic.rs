//! Seeded region competition by geodesic distance ("grow from seeds").
//!
//! Every labelled seed voxel starts a front; a front pays, for each step to a
//! 6-neighbour, the step's length in mm times `1 + (ΔHU / sigma)²`, where ΔHU
//! is the difference between the two voxels after a median over each voxel
//! and its six neighbours.
//! Each voxel takes the label of the front that reaches it at the least cost
//! (Dijkstra run from all seeds at once), so a boundary of strong contrast is
//! where fronts stop and meet, while inside a homogeneous organ the cost is
//! close to the distance in mm.
//!
//! A front also pays for entering voxels unlike its own seeds: per mm,
//! `region_weight * ((|HU - m| - s) / s)²` where `|HU - m| > s`, with `m` the
//! median HU of that label's seed voxels and `s` the larger of
//! `region_floor_hu` and 2.5 robust standard deviations (1.4826 MAD) of them.
//! The edge term alone lets a front through an edge that is spread over two
//! or three voxels (partial volume: each step pays only part of the jump);
//! the region term stops a liver front a few mm into muscle or kidney even
//! there, while a not-liver front seeded on fat and kidney, whose seeds
//! spread widely, is held back by edges alone. Fronts do not pass through
//! each other: a voxel belongs to the first front to settle it.
//!
//! Only voxels reached at a cost below `reach_mm` get a label; the rest are
//! left to the caller (the review tool keeps their current label). Because
//! every step costs at least its length, a voxel reached below `reach_mm` lies
//! within `reach_mm` (Euclidean) of a seed, so the work is confined to the
//! seeds' bounding box grown by `reach_mm`: the cost does not depend on the
//! size of the volume, only on how far the seeds are allowed to reach.
//!
//! Costs are kept in eighths of a mm (a bucket queue settles a voxel in O(1)).
//! The result is deterministic: it depends only on the input, not on thread
//! timing, and a voxel given two labels in the seed list takes the last one.

use crate::{Error, Result, Scalar};
use liverseg_volume::Volume;
use rayon::prelude::*;

/// Parameters of [`geodesic_competition`].
#[derive(Debug, Clone, Copy)]
pub struct GeodesicParams {
    /// HU difference between neighbours that doubles a step's cost; small
    /// values make edges stronger barriers (and noise too).
    pub sigma: f64,
    /// Fronts stop at this cost (mm in a homogeneous region).
    pub reach_mm: f64,
    /// Weight of the region term (0: edges only).
    pub region_weight: f64,
    /// Least tolerance (HU) around a label's seed median before the region
    /// term starts to count.
    pub region_floor_hu: f64,
    /// Take the median of each voxel and its six neighbours first, so noise
    /// does not raise the cost of every step inside an organ. Not 3x3x3: that
    /// median rounds an organ's corner and edge voxels off into the fat
    /// around them, which then no front of the organ can enter.
    pub smooth: bool,
}

impl Default for GeodesicParams {
    fn default() -> Self {
        // 12 HU: liver parenchyma noise (10-20 HU) after the median is
        // 5-10 HU, so steps inside the liver cost ~1, while a liver/fat edge
        // (150+ HU) costs > 100 per voxel step and stops any front.
        // Region: a voxel 2 tolerances from the seeds' median costs 10 per mm,
        // so a liver front (tolerance ~20 HU) dies within a few mm in muscle
        // (50-60 HU below enhanced liver) or kidney (~50 HU above).
        GeodesicParams { sigma: 12.0, reach_mm: 40.0, smooth: true, region_weight: 10.0, region_floor_hu: 15.0 }
    }
}

/// What [`geodesic_competition`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Competition {
    /// Voxels reached below the reach, as (offset, label), sorted by offset.
    pub labels: Vec<(usize, u8)>,
    /// The box the fronts could run in: lower corner and size (voxels).
    pub box_origin: [usize; 3],
    pub box_dims: [usize; 3],
}

/// Most seed voxels accepted (a stroke painted over a whole volume is not a seed).
pub const MAX_SEEDS: usize = 20_000_000;

/// Label voxels by the seed front that reaches them first; see the module
/// header. `seeds` are (offset, label) on `image`'s grid.
pub fn geodesic_competition<T: Scalar>(
    image: &Volume<T>,
    seeds: &[(usize, u8)],
    params: &GeodesicParams,
) -> Result<Competition> {
    let g = image.geometry();
    let dims = g.dims();
    if seeds.is_empty() {
        return Err(Error::param("seeds", "no seed voxels"));
    }
    if seeds.len() > MAX_SEEDS {
        return Err(Error::param("seeds", format!("{} seed voxels, more than {MAX_SEEDS}", seeds.len())));
    }
    if seeds.iter().any(|&(_, l)| l == u8::MAX) {
        return Err(Error::param("seeds", "label 255 is reserved (no label)"));
    }
    if let Some(&(o, _)) = seeds.iter().find(|(o, _)| *o >= image.len()) {
        return Err(Error::param("seeds", format!("offset {o} outside the volume ({} voxels)", image.len())));
    }
    if !(params.sigma.is_finite() && params.sigma > 0.0) {
        return Err(Error::param("sigma", format!("{} is not a positive number of HU", params.sigma)));
    }
    if !(params.region_weight.is_finite() && params.region_weight >= 0.0) {
        return Err(Error::param("region_weight", format!("{} is not a number >= 0", params.region_weight)));
    }
    if !(params.region_floor_hu.is_finite() && params.region_floor_hu > 0.0) {
        return Err(Error::param("region_floor_hu", format!("{} is not a positive number of HU", params.region_floor_hu)));
    }
    if !(params.reach_mm.is_finite() && params.reach_mm > 0.0 && params.reach_mm <= 1000.0) {
        return Err(Error::param("reach_mm", format!("{} mm is outside (0, 1000]", params.reach_mm)));
    }
    let sp = g.spacing();
    // The box: seeds' bounding box grown by the reach (exact bound, see above).
    let mut lo = dims;
    let mut hi = [0usize; 3];
    for &(o, _) in seeds {
        let ijk = g.index_of(o);
        for a in 0..3 {
            lo[a] = lo[a].min(ijk[a]);
            hi[a] = hi[a].max(ijk[a]);
        }
    }
    for a in 0..3 {
        let m = (params.reach_mm / sp[a]).ceil().min(dims[a] as f64) as usize;
        lo[a] = lo[a].saturating_sub(m);
        hi[a] = (hi[a] + m).min(dims[a] - 1);
    }
    let bd = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let (bx, bxy) = (bd[0], bd[0] * bd[1]);
    let n = bxy * bd[2];
    if n > u32::MAX as usize {
        return Err(Error::param("reach_mm", "the seeds' box holds more than 2^32 voxels"));
    }
    let local = |[i, j, k]: [usize; 3]| (i - lo[0]) + (j - lo[1]) * bx + (k - lo[2]) * bxy;
    let global = |l: usize| g.offset(lo[0] + l % bx, lo[1] + (l / bx) % bd[1], lo[2] + l / bxy);

    let view = BoxView {
        src: image.data(),
        base: g.offset(lo[0], lo[1], lo[2]),
        gstride: [1, dims[0], dims[0] * dims[1]],
        bd,
        smooth: params.smooth,
    };
    let stride = [1usize, bx, bxy];
    // Costs in units of 1/QUANTA mm: a bucket queue (Dial's algorithm) then
    // settles each voxel in O(1), where a binary heap took ~4 s for a liver's
    // worth of voxels on a 512x512 CT. An eighth of a mm is far below the
    // voxel size, so the rounding moves no boundary that matters.
    const QUANTA: f32 = 8.0;
    let nb = (params.reach_mm as f32 * QUANTA).ceil() as usize; // <= 8000: fits a u16
    // One 8-byte cell per voxel, so settling a voxel touches one cache line.
    let mut cells = vec![Cell::UNSEEN; n];
    // Last label of each seed voxel wins; then seeds enter in offset order.
    let mut start: Vec<(u32, u8)> = seeds.iter().map(|&(o, l)| (local(g.index_of(o)) as u32, l)).collect();
    start.reverse();
    start.sort_by_key(|s| s.0); // stable: the last given comes first
    start.dedup_by_key(|s| s.0);
    // Each label's seed intensities: median and tolerance (see the module header).
    let mut model = [(0f32, f32::INFINITY); 256];
    let mut by_label: Vec<Vec<f32>> = vec![vec![]; 256];
    for &(l, lab) in &start {
        by_label[lab as usize].push(view.hu(&mut cells, l as usize));
    }
    for (lab, v) in by_label.iter_mut().enumerate().filter(|(_, v)| !v.is_empty()) {
        let med = median(v);
        let mut dev: Vec<f32> = v.iter().map(|x| (x - med).abs()).collect();
        let mad = median(&mut dev);
        model[lab] = (med, (2.5 * 1.4826 * mad).max(params.region_floor_hu as f32));
    }
    let wr = params.region_weight as f32;
    let mut buckets: Vec<Vec<u32>> = vec![vec![]; nb.max(1)];
    // Pushed in reverse: a bucket is settled last in, first out, so seeds
    // settle in offset order. The order of pushes depends only on the input,
    // so the result is deterministic.
    for &(l, lab) in start.iter().rev() {
        let c = &mut cells[l as usize];
        c.dist = 0;
        c.label = lab;
        buckets[0].push(l);
    }
    let inv_s2 = (1.0 / (params.sigma * params.sigma)) as f32;
    let mut settled: Vec<u32> = vec![];
    let len = [sp[0] as f32, sp[1] as f32, sp[2] as f32];
    for d in 0..nb {
        while let Some(l) = buckets[d].pop() {
            let l = l as usize;
            if cells[l].flags & Cell::DONE != 0 || cells[l].dist as usize != d {
                continue;
            }
            cells[l].flags |= Cell::DONE;
            settled.push(l as u32);
            let h = view.hu(&mut cells, l);
            let lab = cells[l].label;
            let (m, tol) = model[lab as usize];
            let c = [l % bx, (l / bx) % bd[1], l / bxy];
            for a in 0..3 {
                for up in [false, true] {
                    let q = if up {
                        if c[a] + 1 >= bd[a] {
                            continue;
                        }
                        l + stride[a]
                    } else {
                        if c[a] == 0 {
                            continue;
                        }
                        l - stride[a]
                    };
                    if cells[q].flags & Cell::DONE != 0 {
                        continue;
                    }
                    let hq = view.hu(&mut cells, q);
                    let dh = hq - h;
                    let off = ((hq - m).abs() - tol).max(0.0) / tol;
                    let step = len[a] * (1.0 + dh * dh * inv_s2 + wr * off * off) * QUANTA;
                    // A step past the reach (a wall, or NaN from a NaN
                    // voxel) is dropped before the float becomes an integer.
                    if step.is_nan() || step >= nb as f32 {
                        continue;
                    }
                    let nd = d + (step.round() as usize).max(1);
                    // Ties: the first front to offer a cost keeps the voxel.
                    if nd < nb && nd < cells[q].dist as usize {
                        cells[q].dist = nd as u16;
                        cells[q].label = lab;
                        buckets[nd].push(q as u32);
                    }
                }
            }
        }
        buckets[d] = Vec::new();
    }
    let mut labels: Vec<(usize, u8)> =
        settled.par_iter().map(|&l| (global(l as usize), cells[l as usize].label)).collect();
    labels.par_sort_unstable_by_key(|x| x.0);
    Ok(Competition { labels, box_origin: lo, box_dims: bd })
}

/// A voxel of the fronts' box: its (filtered) HU once a front has looked at
/// it, its cost in quanta, its label and flags.
#[derive(Clone, Copy)]
struct Cell {
    hu: f32,
    dist: u16,
    label: u8,
    flags: u8,
}

impl Cell {
    const DONE: u8 = 1;
    const HU: u8 = 2;
    const UNSEEN: Cell = Cell { hu: 0.0, dist: u16::MAX, label: u8::MAX, flags: 0 };
}

/// The image as the fronts see it, in box coordinates.
struct BoxView<'a, T> {
    src: &'a [T],
    base: usize,
    gstride: [usize; 3],
    bd: [usize; 3],
    smooth: bool,
}

impl<T: Scalar> BoxView<'_, T> {
    /// The filtered HU of box voxel `l`, computed on first use only: the box
    /// of a whole liver's seeds is ~2*10^7 voxels, of which fronts touch a
    /// tenth, and filtering all of them took 1.5 s of a 2 s grow. The median
    /// of a voxel and its six neighbours (outside the box: the voxel itself)
    /// keeps a step edge a step, so two fronts meet on the edge rather than a
    /// voxel beside it, and keeps a box's corner (4 of its 7 values inside).
    #[inline]
    fn hu(&self, cells: &mut [Cell], l: usize) -> f32 {
        if cells[l].flags & Cell::HU != 0 {
            return cells[l].hu;
        }
        let bd = self.bd;
        let c = [l % bd[0], (l / bd[0]) % bd[1], l / (bd[0] * bd[1])];
        let o = self.base + c[0] + c[1] * self.gstride[1] + c[2] * self.gstride[2];
        let v = if self.smooth {
            let mut w = [self.src[o].to_f32(); 7];
            for a in 0..3 {
                if c[a] > 0 {
                    w[1 + 2 * a] = self.src[o - self.gstride[a]].to_f32();
                }
                if c[a] + 1 < bd[a] {
                    w[2 + 2 * a] = self.src[o + self.gstride[a]].to_f32();
                }
            }
            w.sort_unstable_by(f32::total_cmp);
            w[3]
        } else {
            self.src[o].to_f32()
        };
        cells[l].hu = v;
        cells[l].flags |= Cell::HU;
        v
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_unstable_by(f32::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_volume::Geometry;

    /// Two boxes touching along i = 20: 60 HU (i < 20) and 140 HU (i >= 20),
    /// in -100 HU fat, with a little deterministic "noise".
    fn blobs() -> Volume<i16> {
        let g = Geometry::identity([40, 24, 12], [1.0, 1.0, 2.0]).unwrap();
        Volume::from_fn(g, |[i, j, k]| {
            let noise = ((i * 7 + j * 13 + k * 5) % 9) as i16 - 4;
            let inside = (4..20).contains(&j) && (2..10).contains(&k);
            match (inside, i) {
                (true, 4..=19) => 60 + noise,
                (true, 20..=35) => 140 + noise,
                _ => -100 + noise,
            }
        })
    }

    #[test]
    fn two_touching_blobs_of_different_hu_are_separated() {
        let v = blobs();
        let g = v.geometry().clone();
        // One seed in each blob, off-centre, so distance alone would misplace the edge.
        let seeds = [(g.offset(17, 10, 5), 1), (g.offset(33, 10, 5), 0)];
        let p = GeodesicParams { reach_mm: 200.0, ..Default::default() };
        let c = geodesic_competition(&v, &seeds, &p).unwrap();
        let lab = |i, j, k| c.labels.iter().find(|x| x.0 == g.offset(i, j, k)).map(|x| x.1);
        for k in 3..9 {
            for j in 5..19 {
                for i in 5..20 {
                    assert_eq!(lab(i, j, k), Some(1), "60 HU blob at {i},{j},{k}");
                }
                for i in 20..35 {
                    assert_eq!(lab(i, j, k), Some(0), "140 HU blob at {i},{j},{k}");
                }
            }
        }
        // Plain distance would have split at i = 25.
        assert_eq!(lab(22, 10, 5), Some(0));
    }

    #[test]
    fn fronts_stop_at_the_reach_and_at_strong_edges() {
        let v = blobs();
        let g = v.geometry().clone();
        let p = GeodesicParams { reach_mm: 6.0, ..Default::default() };
        let c = geodesic_competition(&v, &[(g.offset(10, 10, 5), 1)], &p).unwrap();
        assert!(c.labels.iter().all(|&(o, _)| {
            let [i, j, k] = g.index_of(o);
            let d2 = (i as f64 - 10.0).powi(2) + (j as f64 - 10.0).powi(2) + (2.0 * (k as f64 - 5.0)).powi(2);
            d2 < 36.0
        }));
        assert!(c.labels.iter().any(|&(o, _)| o == g.offset(13, 10, 5)));
        assert_eq!(c.box_dims, [13, 13, 7]);
        // Next to the fat: the 160 HU edge is a wall, the fat stays unlabelled.
        let c = geodesic_competition(&v, &[(g.offset(4, 10, 5), 1)], &GeodesicParams::default()).unwrap();
        assert!(c.labels.iter().any(|&(o, _)| o == g.offset(12, 10, 5)));
        assert!(c.labels.iter().all(|&(o, _)| g.index_of(o)[0] >= 4), "leaked into the fat");
    }

    #[test]
    fn seeds_keep_their_label_and_results_are_deterministic() {
        let v = blobs();
        let g = v.geometry().clone();
        // A remove seed inside the 60 HU blob, surrounded by add seeds.
        let mut seeds: Vec<(usize, u8)> = (6..16).map(|i| (g.offset(i, 8, 5), 1)).collect();
        seeds.push((g.offset(10, 9, 5), 0));
        seeds.push((g.offset(30, 9, 5), 0));
        let p = GeodesicParams { reach_mm: 30.0, ..Default::default() };
        let a = geodesic_competition(&v, &seeds, &p).unwrap();
        for &(o, l) in &seeds {
            assert!(a.labels.binary_search(&(o, l)).is_ok(), "seed {:?} lost its label", g.index_of(o));
        }
        seeds.reverse();
        // Same seeds in another order: the same answer.
        let b = geodesic_competition(&v, &seeds, &p).unwrap();
        assert_eq!(a, b);
        // A voxel seeded twice takes the label given last.
        let o = g.offset(12, 12, 5);
        let c = geodesic_competition(&v, &[(o, 1), (o, 0)], &p).unwrap();
        assert!(c.labels.binary_search(&(o, 0)).is_ok());
    }

    #[test]
    fn bad_input_is_an_error() {
        let v = blobs();
        let p = GeodesicParams::default();
        assert!(geodesic_competition(&v, &[], &p).is_err());
        assert!(geodesic_competition(&v, &[(v.len(), 1)], &p).is_err());
        assert!(geodesic_competition(&v, &[(0, 255)], &p).is_err());
        for bad in [GeodesicParams { sigma: 0.0, ..p }, GeodesicParams { reach_mm: f64::NAN, ..p }, GeodesicParams { reach_mm: -1.0, ..p }] {
            assert!(geodesic_competition(&v, &[(0, 1)], &bad).is_err());
        }
    }
}
