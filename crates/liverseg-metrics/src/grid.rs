//! Bounding boxes, crops and nearest-neighbour resampling of binary masks.

use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;

/// Inclusive voxel bounding box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl BBox {
    pub fn dims(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.hi[a] - self.lo[a] + 1)
    }
    fn merge(a: Option<BBox>, b: Option<BBox>) -> Option<BBox> {
        match (a, b) {
            (Some(a), Some(b)) => Some(BBox {
                lo: std::array::from_fn(|i| a.lo[i].min(b.lo[i])),
                hi: std::array::from_fn(|i| a.hi[i].max(b.hi[i])),
            }),
            (x, None) | (None, x) => x,
        }
    }
}

/// Voxel counts of a, b and a∩b (non-zero = foreground).
pub(crate) fn counts(a: &[u8], b: &[u8]) -> (usize, usize, usize) {
    a.par_chunks(1 << 16)
        .zip(b.par_chunks(1 << 16))
        .map(|(ca, cb)| {
            let mut n = (0usize, 0usize, 0usize);
            for (&x, &y) in ca.iter().zip(cb) {
                let (x, y) = (x != 0, y != 0);
                n.0 += x as usize;
                n.1 += y as usize;
                n.2 += (x && y) as usize;
            }
            n
        })
        .reduce(|| (0, 0, 0), |p, q| (p.0 + q.0, p.1 + q.1, p.2 + q.2))
}

/// Bounding box of the voxels that are foreground in `a` or `b`.
pub(crate) fn union_bbox(a: &[u8], b: &[u8], dims: [usize; 3]) -> Option<BBox> {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    (0..nz)
        .into_par_iter()
        .map(|z| {
            let mut bb: Option<BBox> = None;
            for y in 0..ny {
                let row = z * plane + y * nx;
                let ra = &a[row..row + nx];
                let rb = &b[row..row + nx];
                let first = (0..nx).find(|&x| ra[x] != 0 || rb[x] != 0);
                if let Some(x0) = first {
                    let x1 = (0..nx).rev().find(|&x| ra[x] != 0 || rb[x] != 0).unwrap_or(x0);
                    bb = BBox::merge(bb, Some(BBox { lo: [x0, y, z], hi: [x1, y, z] }));
                }
            }
            bb
        })
        .reduce(|| None, BBox::merge)
}

/// Copy of the box `bb` of `data` as a 0/1 array, x fastest.
pub(crate) fn crop(data: &[u8], dims: [usize; 3], bb: &BBox) -> Vec<u8> {
    let [cx, cy, cz] = bb.dims();
    let mut out = vec![0u8; cx * cy * cz];
    out.par_chunks_mut(cx * cy).enumerate().for_each(|(k, plane)| {
        let z = bb.lo[2] + k;
        for j in 0..cy {
            let y = bb.lo[1] + j;
            let src = bb.lo[0] + dims[0] * (y + dims[1] * z);
            for (o, &v) in plane[j * cx..(j + 1) * cx].iter_mut().zip(&data[src..src + cx]) {
                *o = u8::from(v != 0);
            }
        }
    });
    out
}

/// Nearest-neighbour resampling of mask `b` onto `target`, in world (LPS)
/// coordinates; voxels that fall outside `b` become background.
///
/// Local stand-in until `liverseg_imgproc::resample` offers nearest-neighbour
/// resampling of masks; replace it then.
pub fn resample_nearest(b: &Mask, target: &Geometry) -> Mask {
    let [nx, ny, nz] = target.dims();
    let [bx, by, bz] = b.dims();
    let src = b.geometry();
    let mut out = vec![0u8; target.len()];
    out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, plane)| {
        for j in 0..ny {
            for i in 0..nx {
                let w = target.index_to_world([i as f64, j as f64, k as f64]);
                let c = src.world_to_index(w);
                // Round half up, like ITK's NearestNeighborInterpolateImageFunction.
                let r = [(c[0] + 0.5).floor(), (c[1] + 0.5).floor(), (c[2] + 0.5).floor()];
                if r.iter().zip([bx, by, bz]).all(|(&v, n)| v >= 0.0 && v < n as f64) {
                    plane[i + nx * j] = u8::from(*b.get(r[0] as usize, r[1] as usize, r[2] as usize) != 0);
                }
            }
        }
    });
    let _ = nz;
    Volume::new(target.clone(), out).expect("target grid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_and_crop() {
        let dims = [5, 4, 3];
        let mut a = vec![0u8; 60];
        let mut b = vec![0u8; 60];
        a[1 + 5 * (2 + 4 * 1)] = 1;
        b[3 + 5 * (1 + 4 * 2)] = 7;
        let bb = union_bbox(&a, &b, dims).unwrap();
        assert_eq!(bb, BBox { lo: [1, 1, 1], hi: [3, 2, 2] });
        let c = crop(&b, dims, &bb);
        assert_eq!(c.len(), 3 * 2 * 2);
        assert_eq!(c.iter().map(|&v| v as usize).sum::<usize>(), 1);
        assert_eq!(c[2 + 3 * (0 + 2 * 1)], 1);
        assert!(union_bbox(&[0; 60], &[0; 60], dims).is_none());
        assert_eq!(counts(&a, &b), (1, 1, 0));
    }

    #[test]
    fn resample_identity_and_shift() {
        let g = Geometry::identity([6, 5, 4], [1.0, 2.0, 3.0]).unwrap();
        let m = Volume::from_fn(g.clone(), |[i, j, k]| u8::from(i == 2 && j == 3 && k == 1));
        assert_eq!(resample_nearest(&m, &g), m);
        // Target shifted by one voxel in x: the point moves to i = 1.
        let t = Geometry::new([6, 5, 4], [1.0, 2.0, 3.0], [1.0, 0.0, 0.0], liverseg_volume::IDENTITY).unwrap();
        let r = resample_nearest(&m, &t);
        assert_eq!(*r.get(1, 3, 1), 1);
        assert_eq!(r.count_foreground(), 1);
    }
}
