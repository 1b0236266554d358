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

pub mod crop;
pub mod edt;
mod error;
pub mod filters;
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
