//! 3-D image processing on liverseg volumes. Every kernel works in physical
//! space (mm) through the volume's geometry, and every kernel is parallel
//! (rayon) and at most O(n log n) in voxels.
//!
//! - [`resample`]: world-space resampling (nearest, trilinear, Catmull-Rom cubic,
//!   partial-volume masks) and isotropic grids.
//! - [`crop`]: the abdomen crop of the method (body outline, crop box, paste back).
//! - [`filters`]: median filter, HU window normalisation, flips.
//! - [`morphology`]: ball morphology in mm, connected components, hole filling,
//!   the paper's erode / keep largest / dilate post-processing.
//! - [`edt`]: exact anisotropic Euclidean distance transform.
//! - [`geodesic`]: seeded region competition by HU-weighted geodesic distance.
//! - [`mesh`]: closed surface mesh of a mask in patient mm (surface nets).

pub mod crop;
pub mod edt;
mod error;
pub mod filters;
pub mod geodesic;
pub mod mesh;
pub mod morphology;
pub mod resample;

pub use error::{Error, Result};

/// Voxel types the kernels read as numbers (CT is stored as i16, probabilities
/// as f32, masks as u8).
pub trait Scalar: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
}

macro_rules! impl_scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            #[inline(always)]
            fn to_f32(self) -> f32 { self as f32 }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
impl_scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

#[cfg(test)]
pub(crate) mod testutil {
    use liverseg_volume::{Geometry, Mask, Volume};

    pub fn rot_z(deg: f64) -> [[f64; 3]; 3] {
        let (s, c) = deg.to_radians().sin_cos();
        [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    }

    /// Rotation about an arbitrary axis (Rodrigues), for oblique grids.
    pub fn rot(axis: [f64; 3], deg: f64) -> [[f64; 3]; 3] {
        let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
        let [x, y, z] = axis.map(|v| v / n);
        let (s, c) = deg.to_radians().sin_cos();
        let t = 1.0 - c;
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    }

    /// Voxels whose centre lies within `r` mm of the world point `c`.
    pub fn ball(g: &Geometry, c: [f64; 3], r: f64) -> Mask {
        Volume::from_fn(g.clone(), |[i, j, k]| {
            let w = g.index_to_world([i as f64, j as f64, k as f64]);
            u8::from((0..3).map(|a| (w[a] - c[a]).powi(2)).sum::<f64>() <= r * r)
        })
    }

    /// Dice of two masks; two empty masks agree perfectly.
    pub fn dice(a: &Mask, b: &Mask) -> f64 {
        liverseg_volume::dice(a.data(), b.data()).unwrap_or(1.0)
    }

    /// Tiny deterministic PRNG (xorshift) so tests need no extra dependency.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}
