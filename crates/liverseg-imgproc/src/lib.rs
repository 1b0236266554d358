//! 3-D image processing on liverseg volumes. Every kernel works in physical
//! space (mm) through the volume's geometry, and every kernel is parallel
//! (rayon) and at most O(n log n) in voxels.

pub mod edt;
