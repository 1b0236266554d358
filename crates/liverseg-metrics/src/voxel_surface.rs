//! MedPy 0.5.2 surface distances (the default convention).
//!
//! Surface of a mask = its foreground voxels with a face-neighbour (6-connected)
//! in the background; neighbours outside the image count as background, so
//! voxels on the image border are surface (`mask ^ binary_erosion(mask)` with
//! scipy's `border_value=0`). Distances are Euclidean, in mm, between voxel
//! centres: from each surface voxel of one mask to the nearest surface voxel of
//! the other (exact EDT with the voxel spacing).
//!
//! Both masks are cropped to the bounding box of their union first. That is
//! exact, not an approximation: every voxel outside the box is background, so
//! a crop edge is a background neighbour exactly like the image edge, and an
//! exact EDT over a box holding every surface voxel gives the true nearest one.

use crate::grid::{crop, union_bbox};
use liverseg_imgproc::edt::squared_distance_to_foreground;
use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;

/// Distances from every surface voxel of `a` to the surface of `b` and back, mm.
#[derive(Debug, Clone, Default)]
pub struct VoxelSurfaceDistances {
    /// One entry per surface voxel of a (x-fastest order).
    pub ab: Vec<f64>,
    /// One entry per surface voxel of b.
    pub ba: Vec<f64>,
}

/// Surface voxels of a 0/1 array: foreground with a background (or outside)
/// face-neighbour.
pub(crate) fn border(m: &[u8], dims: [usize; 3]) -> Vec<u8> {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    let mut out = vec![0u8; m.len()];
    out.par_chunks_mut(plane).enumerate().for_each(|(z, o)| {
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * y + plane * z;
                if m[i] == 0 {
                    continue;
                }
                let interior = x > 0
                    && x + 1 < nx
                    && y > 0
                    && y + 1 < ny
                    && z > 0
                    && z + 1 < nz
                    && m[i - 1] != 0
                    && m[i + 1] != 0
                    && m[i - nx] != 0
                    && m[i + nx] != 0
                    && m[i - plane] != 0
                    && m[i + plane] != 0;
                o[x + nx * y] = u8::from(!interior);
            }
        }
    });
    out
}

/// Distances sampled at the non-zero voxels of `from`, to the nearest non-zero
/// voxel of `to` (both arrays on the same crop grid).
pub(crate) fn directed(from: &[u8], to: &[u8], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let g = Geometry::identity(dims, spacing).expect("crop grid is valid");
    let target = Volume::new(g, to.to_vec()).expect("crop length");
    let d2 = squared_distance_to_foreground(&target);
    from.par_iter()
        .zip(d2.data().par_iter())
        .filter_map(|(&m, &d)| (m != 0).then(|| d.sqrt()))
        .collect()
}

/// MedPy-convention surface distances of two masks on the same grid. Both lists
/// are empty when a mask is empty (the caller reports that as undefined); a
/// list is all `inf` when only the other mask is empty.
pub fn voxel_surface_distances(a: &Mask, b: &Mask) -> VoxelSurfaceDistances {
    assert_eq!(a.dims(), b.dims(), "masks must share a grid");
    let dims = a.dims();
    let Some(bb) = union_bbox(a.data(), b.data(), dims) else {
        return VoxelSurfaceDistances::default();
    };
    let cd = bb.dims();
    let (ca, cb) = rayon::join(|| crop(a.data(), dims, &bb), || crop(b.data(), dims, &bb));
    let (sa, sb) = rayon::join(|| border(&ca, cd), || border(&cb, cd));
    drop((ca, cb));
    let spacing = a.geometry().spacing();
    let (ab, ba) = rayon::join(|| directed(&sa, &sb, cd, spacing), || directed(&sb, &sa, cd, spacing));
    VoxelSurfaceDistances { ab, ba }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_of_a_solid_block_touching_the_image_edge() {
        // 4x4x4 image, block fills x 0..3, y 1..3, z 1..3: voxels at x = 0 are
        // surface because they touch the image edge (MedPy's convention).
        let dims = [4, 4, 4];
        let m: Vec<u8> = (0..64)
            .map(|o| {
                let (x, y, z) = (o % 4, (o / 4) % 4, o / 16);
                u8::from(x < 3 && (1..3).contains(&y) && (1..3).contains(&z))
            })
            .collect();
        let s = border(&m, dims);
        assert_eq!(s.iter().filter(|&&v| v != 0).count(), 12, "a 3x2x2 block is all surface");
        let big: Vec<u8> = vec![1; 64];
        let sb = border(&big, dims);
        // Only the 2x2x2 core is interior.
        assert_eq!(sb.iter().filter(|&&v| v != 0).count(), 64 - 8);
    }
}
