use crate::geometry::Geometry;
use crate::volume::Volume;
use serde::{Deserialize, Serialize};

/// The voxel type a file stored (after any scaling the format asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
    pub fn size_bytes(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A volume whose voxel type is known only at run time (what a reader returns).
/// CT stays in its stored integer type so a 512x512x600 series costs 300 MB, not 600.
#[derive(Debug, Clone, PartialEq)]
pub enum DynVolume {
    U8(Volume<u8>),
    I8(Volume<i8>),
    U16(Volume<u16>),
    I16(Volume<i16>),
    U32(Volume<u32>),
    I32(Volume<i32>),
    U64(Volume<u64>),
    I64(Volume<i64>),
    F32(Volume<f32>),
    F64(Volume<f64>),
}

/// Run the same expression on whichever typed volume is inside.
#[macro_export]
macro_rules! dyn_dispatch {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            $crate::DynVolume::U8($v) => $body,
            $crate::DynVolume::I8($v) => $body,
            $crate::DynVolume::U16($v) => $body,
            $crate::DynVolume::I16($v) => $body,
            $crate::DynVolume::U32($v) => $body,
            $crate::DynVolume::I32($v) => $body,
            $crate::DynVolume::U64($v) => $body,
            $crate::DynVolume::I64($v) => $body,
            $crate::DynVolume::F32($v) => $body,
            $crate::DynVolume::F64($v) => $body,
        }
    };
}

macro_rules! impl_from_volume {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<Volume<$t>> for DynVolume {
            fn from(v: Volume<$t>) -> Self { DynVolume::$variant(v) }
        }
    )*};
}
impl_from_volume!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64, f32 => F32, f64 => F64);

// dyn_dispatch! writes the same `x as T` for every pixel type, T's own included.
#[allow(clippy::unnecessary_cast)]
impl DynVolume {
    pub fn dtype(&self) -> DType {
        match self {
            DynVolume::U8(_) => DType::U8,
            DynVolume::I8(_) => DType::I8,
            DynVolume::U16(_) => DType::U16,
            DynVolume::I16(_) => DType::I16,
            DynVolume::U32(_) => DType::U32,
            DynVolume::I32(_) => DType::I32,
            DynVolume::U64(_) => DType::U64,
            DynVolume::I64(_) => DType::I64,
            DynVolume::F32(_) => DType::F32,
            DynVolume::F64(_) => DType::F64,
        }
    }

    pub fn geometry(&self) -> &Geometry {
        dyn_dispatch!(self, v => v.geometry())
    }

    /// Replace the grid (same dims) without touching the voxels.
    pub fn with_geometry(self, geometry: Geometry) -> Result<Self, crate::VolumeError> {
        Ok(dyn_dispatch!(self, v => DynVolume::from(v.with_geometry(geometry)?)))
    }

    /// Value at a linear offset as f64 (exact for every type but 64-bit integers
    /// beyond 2^53).
    pub fn value_f64(&self, offset: usize) -> f64 {
        dyn_dispatch!(self, v => v.data()[offset] as f64)
    }

    /// (min, max) as f64, NaN ignored.
    pub fn min_max_f64(&self) -> Option<(f64, f64)> {
        dyn_dispatch!(self, v => v.min_max().map(|(a, b)| (a as f64, b as f64)))
    }

    pub fn to_f32(&self) -> Volume<f32> {
        dyn_dispatch!(self, v => v.map(|&x| x as f32))
    }

    pub fn to_f64(&self) -> Volume<f64> {
        dyn_dispatch!(self, v => v.map(|&x| x as f64))
    }

    /// CT in Hounsfield units as i16 when every value fits exactly, else `None`.
    pub fn to_i16_exact(&self) -> Option<Volume<i16>> {
        match self {
            DynVolume::I16(v) => Some(v.clone()),
            _ => {
                let (lo, hi) = self.min_max_f64()?;
                if lo < i16::MIN as f64 || hi > i16::MAX as f64 {
                    return None;
                }
                let exact = dyn_dispatch!(self, v => v.data().iter().all(|&x| (x as f64).fract() == 0.0));
                exact.then(|| dyn_dispatch!(self, v => v.map(|&x| x as i16)))
            }
        }
    }

    /// Binary mask of voxels whose value satisfies `keep` (e.g. `|v| v >= 1.0` for
    /// LiTS labels, where 1 = liver and 2 = tumour inside the liver).
    pub fn to_mask(&self, keep: impl Fn(f64) -> bool) -> Volume<u8> {
        dyn_dispatch!(self, v => v.map(|&x| u8::from(keep(x as f64))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lits_labels_to_liver_mask() {
        let g = Geometry::identity([4, 1, 1], [1.0; 3]).unwrap();
        let labels = DynVolume::from(Volume::new(g, vec![0u8, 1, 2, 0]).unwrap());
        let liver = labels.to_mask(|v| v >= 1.0);
        assert_eq!(liver.data(), &[0, 1, 1, 0]);
        assert_eq!(labels.dtype(), DType::U8);
    }

    #[test]
    fn exact_i16_conversion_only_when_lossless() {
        let g = Geometry::identity([3, 1, 1], [1.0; 3]).unwrap();
        let ok = DynVolume::from(Volume::new(g.clone(), vec![-1024.0f32, 0.0, 3071.0]).unwrap());
        assert_eq!(ok.to_i16_exact().unwrap().data(), &[-1024, 0, 3071]);
        let fractional = DynVolume::from(Volume::new(g.clone(), vec![0.5f32, 0.0, 1.0]).unwrap());
        assert!(fractional.to_i16_exact().is_none());
        let wide = DynVolume::from(Volume::new(g, vec![70000i32, 0, 1]).unwrap());
        assert!(wide.to_i16_exact().is_none());
    }
}
