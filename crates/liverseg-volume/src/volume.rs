use crate::geometry::Geometry;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VolumeError {
    #[error("{found} voxel values for a grid of {dims:?} ({expected} voxels)")]
    LengthMismatch { dims: [usize; 3], expected: usize, found: usize },
    #[error("grids differ: {0}")]
    GridMismatch(String),
}

/// A 3-D voxel array and the grid it samples. The fields are private so the
/// data length always matches the geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    geometry: Geometry,
    data: Vec<T>,
}

/// A binary mask (0 = background, 1 = foreground) or a small label map.
pub type Mask = Volume<u8>;

impl<T> Volume<T> {
    pub fn new(geometry: Geometry, data: Vec<T>) -> Result<Self, VolumeError> {
        if data.len() != geometry.len() {
            return Err(VolumeError::LengthMismatch { dims: geometry.dims(), expected: geometry.len(), found: data.len() });
        }
        Ok(Self { geometry, data })
    }

    pub fn filled(geometry: Geometry, value: T) -> Self
    where
        T: Clone,
    {
        let data = vec![value; geometry.len()];
        Self { geometry, data }
    }

    pub fn from_fn(geometry: Geometry, mut f: impl FnMut([usize; 3]) -> T) -> Self {
        let [nx, ny, nz] = geometry.dims();
        let mut data = Vec::with_capacity(geometry.len());
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    data.push(f([i, j, k]));
                }
            }
        }
        Self { geometry, data }
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    pub fn dims(&self) -> [usize; 3] {
        self.geometry.dims()
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn into_parts(self) -> (Geometry, Vec<T>) {
        (self.geometry, self.data)
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize, j: usize, k: usize) -> &T {
        &self.data[self.geometry.offset(i, j, k)]
    }
    #[inline]
    pub fn get_mut(&mut self, i: usize, j: usize, k: usize) -> &mut T {
        let o = self.geometry.offset(i, j, k);
        &mut self.data[o]
    }

    /// Value at voxel index, `None` outside the grid.
    pub fn checked_get(&self, index: [i64; 3]) -> Option<&T> {
        let d = self.dims();
        if (0..3).all(|a| index[a] >= 0 && (index[a] as usize) < d[a]) {
            Some(self.get(index[0] as usize, index[1] as usize, index[2] as usize))
        } else {
            None
        }
    }

    /// Same grid, new values.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Volume<U> {
        Volume { geometry: self.geometry.clone(), data: self.data.iter().map(f).collect() }
    }

    /// Replace the grid by one with the same number of voxels per axis
    /// (e.g. after a geometry correction).
    pub fn with_geometry(self, geometry: Geometry) -> Result<Self, VolumeError> {
        Volume::new(geometry, self.data)
    }
}

impl<T: Copy + PartialOrd> Volume<T> {
    /// (min, max) ignoring NaN; `None` when every value is NaN.
    pub fn min_max(&self) -> Option<(T, T)> {
        let mut it = self.data.iter().copied().filter(|v| v.partial_cmp(v).is_some());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| {
            (if v < lo { v } else { lo }, if v > hi { v } else { hi })
        }))
    }
}

impl Mask {
    /// Number of non-zero voxels.
    pub fn count_foreground(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }
    /// Foreground volume in millilitres.
    pub fn foreground_ml(&self) -> f64 {
        self.count_foreground() as f64 * self.geometry.voxel_volume_mm3() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_must_match_geometry() {
        let g = Geometry::identity([2, 2, 2], [1.0; 3]).unwrap();
        assert!(Volume::new(g.clone(), vec![0u8; 7]).is_err());
        let v = Volume::new(g, vec![0u8; 8]).unwrap();
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn mask_volume_in_ml() {
        let g = Geometry::identity([10, 10, 10], [2.0, 2.0, 2.5]).unwrap();
        let m = Volume::from_fn(g, |[i, _, _]| u8::from(i < 5));
        assert_eq!(m.count_foreground(), 500);
        assert!((m.foreground_ml() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn min_max_skips_nan() {
        let g = Geometry::identity([3, 1, 1], [1.0; 3]).unwrap();
        let v = Volume::new(g.clone(), vec![f32::NAN, 2.0, -1.0]).unwrap();
        assert_eq!(v.min_max(), Some((-1.0, 2.0)));
        let all_nan = Volume::new(g, vec![f32::NAN; 3]).unwrap();
        assert_eq!(all_nan.min_max(), None);
    }

    #[test]
    fn from_fn_uses_x_fastest_order() {
        let g = Geometry::identity([2, 3, 4], [1.0; 3]).unwrap();
        let v = Volume::from_fn(g, |[i, j, k]| (i, j, k));
        assert_eq!(*v.get(1, 2, 3), (1, 2, 3));
        assert_eq!(v.data()[1], (1, 0, 0));
    }
}
