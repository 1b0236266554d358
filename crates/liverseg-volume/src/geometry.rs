use serde::{Deserialize, Serialize};

/// A 3x3 matrix stored row-major: `m[row][col]`.
pub type Mat3 = [[f64; 3]; 3];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GeometryError {
    #[error("dimension {axis} is zero")]
    ZeroDim { axis: usize },
    #[error("spacing along axis {axis} is {value}, it must be a finite positive number of mm")]
    BadSpacing { axis: usize, value: f64 },
    #[error("origin component {axis} is not finite ({value})")]
    BadOrigin { axis: usize, value: f64 },
    #[error("direction matrix is not finite or is singular (determinant {det})")]
    SingularDirection { det: f64 },
    #[error("voxel count {0:?} overflows memory addressing")]
    TooLarge([usize; 3]),
}

/// The sampling grid of a volume in patient LPS space.
///
/// `world = origin + direction * diag(spacing) * index`, where column `j` of
/// `direction` is the unit vector of voxel axis `j` in LPS. This is ITK's
/// convention, so numbers compare one-to-one with SimpleITK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    dims: [usize; 3],
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: Mat3,
}

/// Direction columns are normalised on construction; two geometries whose
/// directions differ by less than this (per component) are the same grid.
const DIRECTION_TOLERANCE: f64 = 1e-5;

impl Geometry {
    pub fn new(
        dims: [usize; 3],
        spacing: [f64; 3],
        origin: [f64; 3],
        direction: Mat3,
    ) -> Result<Self, GeometryError> {
        for axis in 0..3 {
            if dims[axis] == 0 {
                return Err(GeometryError::ZeroDim { axis });
            }
            if !(spacing[axis].is_finite() && spacing[axis] > 0.0) {
                return Err(GeometryError::BadSpacing { axis, value: spacing[axis] });
            }
            if !origin[axis].is_finite() {
                return Err(GeometryError::BadOrigin { axis, value: origin[axis] });
            }
        }
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 8)
            .ok_or(GeometryError::TooLarge(dims))?;
        let mut direction = direction;
        for col in 0..3 {
            let norm = (0..3).map(|r| direction[r][col].powi(2)).sum::<f64>().sqrt();
            if !(norm.is_finite() && norm > 1e-12) {
                return Err(GeometryError::SingularDirection { det: 0.0 });
            }
            for row in direction.iter_mut() {
                row[col] /= norm;
            }
        }
        let det = det3(&direction);
        if !(det.is_finite() && det.abs() > 1e-6) {
            return Err(GeometryError::SingularDirection { det });
        }
        Ok(Self { dims, spacing, origin, direction })
    }

    /// Axis-aligned identity-direction grid, origin at zero.
    pub fn identity(dims: [usize; 3], spacing: [f64; 3]) -> Result<Self, GeometryError> {
        Self::new(dims, spacing, [0.0; 3], IDENTITY)
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }
    pub fn origin(&self) -> [f64; 3] {
        self.origin
    }
    /// Row-major; column `j` is the LPS direction of voxel axis `j`.
    pub fn direction(&self) -> Mat3 {
        self.direction
    }
    /// The direction as 9 numbers, row-major (ITK `GetDirection()` order).
    pub fn direction_flat(&self) -> [f64; 9] {
        let d = &self.direction;
        [d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2], d[2][0], d[2][1], d[2][2]]
    }
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn voxel_volume_mm3(&self) -> f64 {
        // The direction may carry shear (tilted gantry); the true voxel volume is
        // |det(D * diag(s))|, which reduces to the spacing product when D is orthonormal.
        (det3(&self.direction) * self.spacing.iter().product::<f64>()).abs()
    }

    /// Linear offset of voxel (i, j, k) in x-fastest order.
    #[inline]
    pub fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Inverse of [`Geometry::offset`].
    #[inline]
    pub fn index_of(&self, offset: usize) -> [usize; 3] {
        let i = offset % self.dims[0];
        let rest = offset / self.dims[0];
        [i, rest % self.dims[1], rest / self.dims[1]]
    }

    /// Continuous voxel index -> LPS world point (mm).
    pub fn index_to_world(&self, index: [f64; 3]) -> [f64; 3] {
        let m = self.index_to_world_matrix();
        std::array::from_fn(|r| {
            self.origin[r] + m[r][0] * index[0] + m[r][1] * index[1] + m[r][2] * index[2]
        })
    }

    /// LPS world point (mm) -> continuous voxel index.
    pub fn world_to_index(&self, world: [f64; 3]) -> [f64; 3] {
        let inv = inverse3(&self.index_to_world_matrix()).expect("checked invertible on construction");
        let d = [world[0] - self.origin[0], world[1] - self.origin[1], world[2] - self.origin[2]];
        std::array::from_fn(|r| inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2])
    }

    /// `direction * diag(spacing)`: the linear part of index -> world.
    pub fn index_to_world_matrix(&self) -> Mat3 {
        std::array::from_fn(|r| std::array::from_fn(|c| self.direction[r][c] * self.spacing[c]))
    }

    /// 4x4 homogeneous index -> LPS affine.
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let m = self.index_to_world_matrix();
        let o = self.origin;
        [
            [m[0][0], m[0][1], m[0][2], o[0]],
            [m[1][0], m[1][1], m[1][2], o[1]],
            [m[2][0], m[2][1], m[2][2], o[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// 4x4 homogeneous index -> RAS affine (NIfTI / nibabel convention): LPS with
    /// the first two rows negated.
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let mut a = self.affine_lps();
        for c in 0..4 {
            a[0][c] = -a[0][c];
            a[1][c] = -a[1][c];
        }
        a
    }

    /// Build a geometry from a 4x4 index -> LPS affine (the inverse of
    /// [`Geometry::affine_lps`]); spacing is the length of each column.
    pub fn from_affine_lps(dims: [usize; 3], affine: &[[f64; 4]; 4]) -> Result<Self, GeometryError> {
        let mut spacing = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for c in 0..3 {
            let len = (0..3).map(|r| affine[r][c].powi(2)).sum::<f64>().sqrt();
            spacing[c] = len;
            for r in 0..3 {
                direction[r][c] = if len > 0.0 { affine[r][c] / len } else { 0.0 };
            }
        }
        Self::new(dims, spacing, [affine[0][3], affine[1][3], affine[2][3]], direction)
    }

    /// Like [`Geometry::from_affine_lps`] but from a NIfTI-style RAS affine.
    pub fn from_affine_ras(dims: [usize; 3], affine: &[[f64; 4]; 4]) -> Result<Self, GeometryError> {
        let mut a = *affine;
        for c in 0..4 {
            a[0][c] = -a[0][c];
            a[1][c] = -a[1][c];
        }
        Self::from_affine_lps(dims, &a)
    }

    /// True when the direction columns are mutually orthogonal (no shear).
    pub fn is_orthonormal(&self) -> bool {
        let d = &self.direction;
        (0..3).all(|a| {
            (a + 1..3).all(|b| (0..3).map(|r| d[r][a] * d[r][b]).sum::<f64>().abs() < 1e-4)
        })
    }

    /// Same sampling grid (dims, spacing, origin, direction) within a small tolerance
    /// relative to the voxel size.
    pub fn same_grid(&self, other: &Geometry) -> bool {
        let tol_mm = 1e-3 * self.spacing.iter().cloned().fold(f64::INFINITY, f64::min);
        self.dims == other.dims
            && (0..3).all(|a| (self.spacing[a] - other.spacing[a]).abs() <= 1e-4 * self.spacing[a])
            && (0..3).all(|a| (self.origin[a] - other.origin[a]).abs() <= tol_mm.max(1e-4))
            && (0..3).all(|r| (0..3).all(|c| (self.direction[r][c] - other.direction[r][c]).abs() <= DIRECTION_TOLERANCE))
    }

    /// The axis-aligned LPS box (min corner, max corner; mm) around the
    /// continuous index box `lo..=hi`. Index -> world is affine, so the box's
    /// extremes lie on its 8 corners; an oblique grid's box is larger than the
    /// index box it comes from.
    pub fn world_box(&self, lo: [f64; 3], hi: [f64; 3]) -> ([f64; 3], [f64; 3]) {
        let (mut min, mut max) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        for c in 0..8 {
            let idx: [f64; 3] = std::array::from_fn(|a| if c >> a & 1 == 0 { lo[a] } else { hi[a] });
            let w = self.index_to_world(idx);
            for a in 0..3 {
                min[a] = min[a].min(w[a]);
                max[a] = max[a].max(w[a]);
            }
        }
        (min, max)
    }

    /// The LPS box (min, max; mm) the voxels cover: their centres' box grown by
    /// half a voxel, so a one-slice grid still has a thickness.
    pub fn world_bounds(&self) -> ([f64; 3], [f64; 3]) {
        self.world_box([-0.5; 3], self.dims.map(|n| n as f64 - 0.5))
    }

    /// Largest distance (mm) between where `self` and `other` put the same
    /// corner voxel centre of `self`'s index box. For two headers of one image
    /// that differ by float rounding this is tiny where [`Geometry::same_grid`]
    /// may already say no; the corners bound the disagreement of every voxel
    /// because both maps are affine.
    pub fn corner_distance(&self, other: &Geometry) -> f64 {
        let d = self.dims;
        (0..8)
            .map(|c| {
                let idx: [f64; 3] = std::array::from_fn(|k| if c >> k & 1 == 1 { (d[k] - 1) as f64 } else { 0.0 });
                let (p, q) = (self.index_to_world(idx), other.index_to_world(idx));
                (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f64>().sqrt()
            })
            .fold(0.0, f64::max)
    }

    /// Same geometry with other dims (for crops and derived grids).
    pub fn with_dims(&self, dims: [usize; 3]) -> Result<Self, GeometryError> {
        Self::new(dims, self.spacing, self.origin, self.direction)
    }

    /// The sub-grid starting at voxel `start` with `dims` voxels: same spacing and
    /// direction, origin moved to that voxel's centre.
    pub fn sub_grid(&self, start: [usize; 3], dims: [usize; 3]) -> Result<Self, GeometryError> {
        let origin = self.index_to_world([start[0] as f64, start[1] as f64, start[2] as f64]);
        Self::new(dims, self.spacing, origin, self.direction)
    }

    /// Orientation code in ITK/DICOM terms: for each voxel axis the LPS letter it
    /// points *towards* (e.g. "LPS" for a standard DICOM axial stack, "RAS"
    /// for a NIfTI written by many neuro tools). Oblique axes take the dominant one.
    pub fn orientation_code(&self) -> String {
        (0..3)
            .map(|c| {
                let col = [self.direction[0][c], self.direction[1][c], self.direction[2][c]];
                let (r, v) = col
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                    .map(|(r, v)| (r, *v))
                    .unwrap_or((0, 1.0));
                match (r, v >= 0.0) {
                    (0, true) => 'L',
                    (0, false) => 'R',
                    (1, true) => 'P',
                    (1, false) => 'A',
                    (2, true) => 'S',
                    _ => 'I',
                }
            })
            .collect()
    }
}

pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

pub fn det3(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

pub fn inverse3(m: &Mat3) -> Option<Mat3> {
    let det = det3(m);
    if !(det.is_finite()) || det.abs() < 1e-300 {
        return None;
    }
    let inv_det = 1.0 / det;
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    Some([
        [c(1, 1, 2, 2) * inv_det, -c(0, 1, 2, 2) * inv_det, c(0, 1, 1, 2) * inv_det],
        [-c(1, 0, 2, 2) * inv_det, c(0, 0, 2, 2) * inv_det, -c(0, 0, 1, 2) * inv_det],
        [c(1, 0, 2, 1) * inv_det, -c(0, 0, 2, 1) * inv_det, c(0, 0, 1, 1) * inv_det],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rot_z(deg: f64) -> Mat3 {
        let (s, c) = deg.to_radians().sin_cos();
        [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    }

    #[test]
    fn axial_dicom_stack_world_coordinates() {
        // A standard head-first-supine axial stack: rows run to the patient's left,
        // columns posterior, slices superior.
        let g = Geometry::new([512, 512, 100], [0.7, 0.7, 2.5], [-180.0, -200.0, -300.0], IDENTITY).unwrap();
        assert_eq!(g.index_to_world([0.0, 0.0, 0.0]), [-180.0, -200.0, -300.0]);
        assert_eq!(g.index_to_world([10.0, 20.0, 4.0]), [-173.0, -186.0, -290.0]);
        assert_eq!(g.orientation_code(), "LPS");
        let ras = g.affine_ras();
        assert_eq!(ras[0][3], 180.0);
        assert_eq!(ras[1][1], -0.7);
    }

    #[test]
    fn flipped_axes_and_ras_roundtrip() {
        let dir = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
        let g = Geometry::new([4, 5, 6], [2.0, 3.0, 4.0], [10.0, 20.0, 30.0], dir).unwrap();
        assert_eq!(g.orientation_code(), "RAS");
        assert_eq!(g.index_to_world([1.0, 1.0, 1.0]), [8.0, 17.0, 34.0]);
        let back = Geometry::from_affine_ras(g.dims(), &g.affine_ras()).unwrap();
        assert!(back.same_grid(&g));
    }

    #[test]
    fn rejects_bad_geometry() {
        assert_eq!(Geometry::identity([0, 1, 1], [1.0; 3]), Err(GeometryError::ZeroDim { axis: 0 }));
        assert!(matches!(Geometry::identity([1, 1, 1], [1.0, -1.0, 1.0]), Err(GeometryError::BadSpacing { axis: 1, .. })));
        assert!(matches!(Geometry::identity([1, 1, 1], [1.0, f64::NAN, 1.0]), Err(GeometryError::BadSpacing { .. })));
        let singular = [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(matches!(Geometry::new([1, 1, 1], [1.0; 3], [0.0; 3], singular), Err(GeometryError::SingularDirection { .. })));
        assert!(matches!(Geometry::identity([usize::MAX, 2, 2], [1.0; 3]), Err(GeometryError::TooLarge(_))));
    }

    #[test]
    fn sheared_voxel_volume() {
        // 10 degree gantry tilt: the slice axis leans in y; the voxel volume is the
        // in-plane area times the slice *separation*, not the spacing along the lean.
        let t = 10f64.to_radians();
        let dir = [[1.0, 0.0, 0.0], [0.0, 1.0, t.sin()], [0.0, 0.0, t.cos()]];
        let g = Geometry::new([2, 2, 2], [1.0, 1.0, 2.0], [0.0; 3], dir).unwrap();
        assert!(!g.is_orthonormal());
        assert!((g.voxel_volume_mm3() - 2.0 * t.cos()).abs() < 1e-12);
    }

    #[test]
    fn offsets_are_x_fastest() {
        let g = Geometry::identity([3, 4, 5], [1.0; 3]).unwrap();
        assert_eq!(g.offset(1, 0, 0), 1);
        assert_eq!(g.offset(0, 1, 0), 3);
        assert_eq!(g.offset(0, 0, 1), 12);
        assert_eq!(g.index_of(g.offset(2, 3, 4)), [2, 3, 4]);
        let sub = g.sub_grid([1, 2, 3], [1, 1, 1]).unwrap();
        assert_eq!(sub.origin(), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn world_box_takes_the_extremes_of_all_corners() {
        let g = Geometry::new([4, 6, 3], [2.0, 1.0, 5.0], [10.0, 20.0, 30.0], rot_z(90.0)).unwrap();
        // Voxel x runs along +y in LPS, voxel y along -x.
        let (lo, hi) = g.world_box([0.0; 3], [3.0, 5.0, 2.0]);
        assert!(lo.iter().zip([5.0, 20.0, 30.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{lo:?}");
        assert!(hi.iter().zip([10.0, 26.0, 40.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{hi:?}");
        // Voxel edges: half a voxel more on each side.
        let (lo, hi) = g.world_bounds();
        assert!(lo.iter().zip([4.5, 19.0, 27.5]).all(|(a, b)| (a - b).abs() < 1e-12), "{lo:?}");
        assert!(hi.iter().zip([10.5, 27.0, 42.5]).all(|(a, b)| (a - b).abs() < 1e-12), "{hi:?}");
        // A 45-degree rotation widens the box beyond the grid's own extent.
        let r = Geometry::new([11, 11, 1], [1.0; 3], [0.0; 3], rot_z(45.0)).unwrap();
        let (lo, hi) = r.world_box([0.0; 3], [10.0, 10.0, 0.0]);
        assert!((hi[1] - lo[1] - 200f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn corner_distance_is_the_worst_corner() {
        let g = Geometry::identity([10, 10, 10], [1.0; 3]).unwrap();
        assert_eq!(g.corner_distance(&g), 0.0);
        let shifted = Geometry::new([10, 10, 10], [1.0; 3], [0.3, 0.0, 0.4], IDENTITY).unwrap();
        assert!((g.corner_distance(&shifted) - 0.5).abs() < 1e-12);
        // 1% larger spacing: nothing at the origin, 9 * 0.01 * sqrt(3) at the far corner.
        let scaled = Geometry::identity([10, 10, 10], [1.01; 3]).unwrap();
        assert!((g.corner_distance(&scaled) - 0.09 * 3f64.sqrt()).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn world_index_roundtrip(
            angle in -180.0f64..180.0,
            sx in 0.1f64..5.0, sy in 0.1f64..5.0, sz in 0.1f64..5.0,
            ox in -500.0f64..500.0, oy in -500.0f64..500.0, oz in -500.0f64..500.0,
            i in 0.0f64..512.0, j in 0.0f64..512.0, k in 0.0f64..300.0,
        ) {
            let g = Geometry::new([512, 512, 300], [sx, sy, sz], [ox, oy, oz], rot_z(angle)).unwrap();
            let w = g.index_to_world([i, j, k]);
            let back = g.world_to_index(w);
            for a in 0..3 {
                prop_assert!((back[a] - [i, j, k][a]).abs() < 1e-8);
            }
            let from_affine = Geometry::from_affine_lps(g.dims(), &g.affine_lps()).unwrap();
            prop_assert!(from_affine.same_grid(&g));
        }
    }
}
