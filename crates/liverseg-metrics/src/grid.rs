//! Bounding boxes and crops of binary masks.

use liverseg_volume::Overlap;
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

/// Voxel counts of a, b and a∩b (non-zero = foreground), in parallel: a CT
/// holds tens of millions of voxels.
pub(crate) fn counts(a: &[u8], b: &[u8]) -> Overlap {
    a.par_chunks(1 << 16)
        .zip(b.par_chunks(1 << 16))
        .map(|(ca, cb)| Overlap::of(ca, cb))
        .reduce(Overlap::default, |p, q| p + q)
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
        assert_eq!(counts(&a, &b), Overlap { a: 1, b: 1, both: 0 });
    }
}
