//! Median filter, HU window normalisation and flips.

use crate::{Error, Result, Scalar};
use liverseg_volume::{Geometry, Volume};
use rayon::prelude::*;

/// Values the median filter can order. Floats use IEEE total order, so NaN
/// never breaks the sort (positive NaN sorts above +inf).
pub trait MedianValue: Copy + Send + Sync {
    /// The greatest value in the order of [`MedianValue::less`] (a sentinel).
    const GREATEST: Self;
    fn less(a: Self, b: Self) -> bool;
}

macro_rules! impl_median_int {
    ($($t:ty),*) => {$(
        impl MedianValue for $t {
            const GREATEST: Self = <$t>::MAX;
            #[inline(always)]
            fn less(a: Self, b: Self) -> bool { a < b }
        }
    )*};
}
impl_median_int!(u8, i8, u16, i16, u32, i32, u64, i64);

impl MedianValue for f32 {
    // Positive NaN with the largest payload tops IEEE total order.
    const GREATEST: Self = f32::from_bits(0x7fff_ffff);
    #[inline(always)]
    fn less(a: Self, b: Self) -> bool {
        a.total_cmp(&b).is_lt()
    }
}
impl MedianValue for f64 {
    const GREATEST: Self = f64::from_bits(0x7fff_ffff_ffff_ffff);
    #[inline(always)]
    fn less(a: Self, b: Self) -> bool {
        a.total_cmp(&b).is_lt()
    }
}

/// Largest radius per axis accepted by [`median_filter`] (a 65-voxel window).
pub const MAX_MEDIAN_RADIUS: usize = 32;

/// 3-D median over a box of `(2 r_x + 1) x (2 r_y + 1) x (2 r_z + 1)` voxels
/// (`[1, 1, 1]` = the method's 3x3x3), edges replicated.
///
/// Why hand-written: for every row, each x position's column of
/// `(2 r_y + 1)(2 r_z + 1)` values is sorted once and shared by the `2 r_x + 1`
/// windows that contain it; the median is then the middle element of a k-way
/// merge of the window's sorted columns, stopping half way. For 3x3x3 that is
/// one 9-element sort and at most 42 comparisons per voxel instead of a
/// 27-element selection. Slices run in parallel. Works for every ordered voxel
/// type (i16 CT and f32 images are the common ones).
pub fn median_filter<T: MedianValue>(volume: &Volume<T>, radius: [usize; 3]) -> Result<Volume<T>> {
    if let Some(a) = (0..3).find(|&a| radius[a] > MAX_MEDIAN_RADIUS) {
        return Err(Error::param("radius", format!("axis {a}: {} voxels exceeds the maximum of {MAX_MEDIAN_RADIUS}", radius[a])));
    }
    if radius == [0; 3] {
        return Ok(volume.clone());
    }
    let [nx, ny, nz] = volume.dims();
    let nxy = nx * ny;
    let [rx, ry, rz] = radius.map(|r| r as isize);
    let col_len = ((2 * ry + 1) * (2 * rz + 1)) as usize;
    let window = col_len * (2 * rx + 1) as usize;
    let mid = window / 2;
    let src = volume.data();
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    // Each sorted column is followed by `mid + 1` sentinels, so the merge never
    // needs a bounds test: a sentinel is only taken when every remaining value
    // equals the greatest value, and then it is the right answer anyway.
    let stride = col_len + mid + 1;
    let mut out: Vec<T> = src.to_vec();
    out.par_chunks_mut(nxy).enumerate().for_each(|(k, slice)| {
        let mut cols: Vec<T> = vec![T::GREATEST; nx * stride];
        let zs: Vec<usize> = (-rz..=rz).map(|d| clamp(k as isize + d, nz) * nxy).collect();
        let mut heads = vec![0usize; (2 * rx + 1) as usize];
        let mut which = vec![0usize; (2 * rx + 1) as usize];
        for j in 0..ny {
            let rows: Vec<usize> =
                zs.iter().flat_map(|&z| (-ry..=ry).map(move |d| z + clamp(j as isize + d, ny) * nx)).collect();
            for (i, col) in cols.chunks_exact_mut(stride).enumerate() {
                for (c, &r) in col.iter_mut().zip(&rows) {
                    *c = src[r + i];
                }
                if col_len == 9 {
                    sort9(&mut col[..9]);
                } else {
                    insertion_sort(&mut col[..col_len]);
                }
            }
            let row_out = &mut slice[j * nx..(j + 1) * nx];
            if rx == 1 {
                // The method's case (3 columns): a branch-free three-way merge.
                for (i, o) in row_out.iter_mut().enumerate() {
                    let a = &cols[clamp(i as isize - 1, nx) * stride..][..stride];
                    let b = &cols[i * stride..][..stride];
                    let c = &cols[clamp(i as isize + 1, nx) * stride..][..stride];
                    let (mut ia, mut ib, mut ic) = (0usize, 0usize, 0usize);
                    let mut last = a[0];
                    for _ in 0..=mid {
                        let (va, vb, vc) = (a[ia], b[ib], c[ic]);
                        let a_first = !T::less(vb, va);
                        let ab = if a_first { va } else { vb };
                        let c_first = T::less(vc, ab);
                        last = if c_first { vc } else { ab };
                        ic += usize::from(c_first);
                        ia += usize::from(!c_first & a_first);
                        ib += usize::from(!c_first & !a_first);
                    }
                    *o = last;
                }
                continue;
            }
            for (i, o) in row_out.iter_mut().enumerate() {
                for (w, d) in (-rx..=rx).enumerate() {
                    which[w] = clamp(i as isize + d, nx) * stride;
                    heads[w] = 0;
                }
                let mut last = cols[which[0]];
                for _ in 0..=mid {
                    let mut best = 0;
                    last = cols[which[0] + heads[0]];
                    for w in 1..which.len() {
                        let v = cols[which[w] + heads[w]];
                        if T::less(v, last) {
                            best = w;
                            last = v;
                        }
                    }
                    heads[best] += 1;
                }
                *o = last;
            }
        }
    });
    Ok(Volume::new(volume.geometry().clone(), out)?)
}

/// Sorting network for 9 values (25 compare-exchanges, Floyd/Knuth): branch
/// free, unlike an insertion sort whose branches mispredict on CT noise.
const SORT9: [(usize, usize); 25] = [
    (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (0, 3), (3, 6), (0, 3), (1, 4),
    (4, 7), (1, 4), (2, 5), (5, 8), (2, 5), (1, 3), (5, 7), (2, 6), (4, 6), (2, 4), (2, 3), (5, 6),
];

#[inline]
fn sort9<T: MedianValue>(v: &mut [T]) {
    let v: &mut [T; 9] = v.try_into().expect("9 values");
    for &(i, j) in &SORT9 {
        let (a, b) = (v[i], v[j]);
        let swap = T::less(b, a);
        v[i] = if swap { b } else { a };
        v[j] = if swap { a } else { b };
    }
}

#[inline]
fn insertion_sort<T: MedianValue>(v: &mut [T]) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && T::less(x, v[j - 1]) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Linear intensity window: values are clipped to `[lo, hi]` and mapped
/// linearly onto `[out_lo, out_hi]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityWindow {
    pub lo: f64,
    pub hi: f64,
    pub out_lo: f64,
    pub out_hi: f64,
}

impl Default for IntensityWindow {
    /// The method's window: HU [-200, 200] onto [-0.2, 0.2].
    fn default() -> Self {
        Self { lo: -200.0, hi: 200.0, out_lo: -0.2, out_hi: 0.2 }
    }
}

impl IntensityWindow {
    /// Clip and map every voxel. NaN voxels map to `out_lo` (treated as the
    /// lowest intensity, so a network never sees NaN).
    pub fn apply<T: Scalar>(&self, volume: &Volume<T>) -> Result<Volume<f32>> {
        let Self { lo, hi, out_lo, out_hi } = *self;
        if ![lo, hi, out_lo, out_hi].iter().all(|v| v.is_finite()) || lo >= hi {
            return Err(Error::param("window", format!("[{lo}, {hi}] -> [{out_lo}, {out_hi}] needs finite values and lo < hi")));
        }
        let scale = (out_hi - out_lo) / (hi - lo);
        let data = volume
            .data()
            .par_iter()
            .map(|&v| {
                let x = v.to_f64();
                if x.is_nan() {
                    out_lo as f32
                } else {
                    (out_lo + (x.clamp(lo, hi) - lo) * scale) as f32
                }
            })
            .collect();
        Ok(Volume::new(volume.geometry().clone(), data)?)
    }
}

/// A voxel axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    X = 0,
    Y = 1,
    Z = 2,
}

/// Reverse the voxel order along `axis` and keep the geometry: the image content
/// moves in world space (a mirrored patient). This is the training augmentation.
pub fn flip_data<T: Copy + Send + Sync>(volume: &Volume<T>, axis: Axis) -> Volume<T> {
    let data = flipped(volume, axis);
    Volume::new(volume.geometry().clone(), data).expect("same grid")
}

/// Reverse the voxel order along `axis` and update the geometry (origin moved to
/// the old last voxel, that axis' direction negated) so every voxel keeps its
/// world position: the same image, stored the other way round.
pub fn flip_preserving_world<T: Copy + Send + Sync>(volume: &Volume<T>, axis: Axis) -> Result<Volume<T>> {
    let g = volume.geometry();
    let a = axis as usize;
    let mut last = [0.0; 3];
    last[a] = (g.dims()[a] - 1) as f64;
    let mut direction = g.direction();
    for row in direction.iter_mut() {
        row[a] = -row[a];
    }
    let geometry = Geometry::new(g.dims(), g.spacing(), g.index_to_world(last), direction)?;
    Ok(Volume::new(geometry, flipped(volume, axis))?)
}

fn flipped<T: Copy + Send + Sync>(volume: &Volume<T>, axis: Axis) -> Vec<T> {
    let [nx, ny, nz] = volume.dims();
    let nxy = nx * ny;
    let src = volume.data();
    let mut out = src.to_vec();
    out.par_chunks_mut(nxy).enumerate().for_each(|(k, slice)| {
        let from_k = if axis == Axis::Z { nz - 1 - k } else { k };
        let from = &src[from_k * nxy..(from_k + 1) * nxy];
        for j in 0..ny {
            let from_j = if axis == Axis::Y { ny - 1 - j } else { j };
            let dst = &mut slice[j * nx..(j + 1) * nx];
            dst.copy_from_slice(&from[from_j * nx..(from_j + 1) * nx]);
            if axis == Axis::X {
                dst.reverse();
            }
        }
    });
    out
}

/// Separable Gaussian smoothing with standard deviation `sigma_mm` (per
/// world mm, converted per axis with the voxel spacing), kernel truncated at
/// 3 sigma, edges clamped. A sigma under a tenth of a voxel leaves that axis
/// as it is. Used by training augmentation (blur).
pub fn gaussian_blur(volume: &Volume<f32>, sigma_mm: f64) -> Result<Volume<f32>> {
    if !(sigma_mm.is_finite() && sigma_mm >= 0.0) {
        return Err(Error::param("sigma_mm", format!("{sigma_mm} is not a non-negative number of mm")));
    }
    let spacing = volume.geometry().spacing();
    let mut data = volume.data().to_vec();
    for (axis, &sp) in spacing.iter().enumerate() {
        let sigma = sigma_mm / sp;
        if sigma < 0.1 {
            continue;
        }
        let radius = (3.0 * sigma).ceil() as i64;
        let mut kernel: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
        let sum: f32 = kernel.iter().sum();
        kernel.iter_mut().for_each(|k| *k /= sum);
        data = smooth_axis(&data, volume.geometry().dims(), axis, &kernel);
    }
    Ok(Volume::new(volume.geometry().clone(), data)?)
}

/// Convolve every line along `axis` with the odd-length `kernel` (clamped
/// edges): each output voxel gathers its own line's neighbours.
fn smooth_axis(data: &[f32], dims: [usize; 3], axis: usize, kernel: &[f32]) -> Vec<f32> {
    let n = dims[axis] as i64;
    let stride = [1, dims[0], dims[0] * dims[1]][axis];
    let radius = (kernel.len() / 2) as i64;
    let mut out = vec![0.0f32; data.len()];
    out.par_iter_mut().enumerate().for_each(|(o, v)| {
        let c = ((o / stride) as i64) % n;
        let line_start = o - c as usize * stride;
        *v = kernel
            .iter()
            .enumerate()
            .map(|(t, &w)| w * data[line_start + (c + t as i64 - radius).clamp(0, n - 1) as usize * stride])
            .sum();
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{rot, Rng};
    use proptest::prelude::*;

    fn brute_median<T: MedianValue>(v: &Volume<T>, r: [usize; 3]) -> Vec<T> {
        let g = v.geometry();
        let d = g.dims();
        (0..v.len())
            .map(|o| {
                let c = g.index_of(o);
                let mut w = Vec::new();
                for dk in -(r[2] as i64)..=r[2] as i64 {
                    for dj in -(r[1] as i64)..=r[1] as i64 {
                        for di in -(r[0] as i64)..=r[0] as i64 {
                            let q: [usize; 3] = std::array::from_fn(|a| (c[a] as i64 + [di, dj, dk][a]).clamp(0, d[a] as i64 - 1) as usize);
                            w.push(*v.get(q[0], q[1], q[2]));
                        }
                    }
                }
                w.sort_by(|a, b| if T::less(*a, *b) { std::cmp::Ordering::Less } else if T::less(*b, *a) { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Equal });
                w[w.len() / 2]
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn median_matches_brute_force(
            nx in 1usize..9, ny in 1usize..9, nz in 1usize..6,
            rx in 0usize..3, ry in 0usize..3, rz in 0usize..3, seed: u64,
        ) {
            let g = Geometry::identity([nx, ny, nz], [1.0; 3]).unwrap();
            let mut rng = Rng(seed | 1);
            let ct = Volume::from_fn(g.clone(), |_| (rng.next() % 200) as i16 - 100);
            let r = [rx, ry, rz];
            let fast_i16 = median_filter(&ct, r).unwrap();
            prop_assert_eq!(fast_i16.data(), &brute_median(&ct, r)[..]);
            let f = Volume::from_fn(g, |_| if rng.next().is_multiple_of(17) { f32::NAN } else { rng.unit() as f32 - 0.5 });
            let fast = median_filter(&f, r).unwrap();
            let slow = brute_median(&f, r);
            prop_assert!(fast.data().iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn sort9_network_sorts_every_binary_input() {
        // 0-1 principle: a comparator network that sorts all 2^9 binary inputs sorts everything.
        for bits in 0u32..512 {
            let mut v: Vec<u8> = (0..9).map(|b| ((bits >> b) & 1) as u8).collect();
            let mut want = v.clone();
            want.sort();
            sort9(&mut v);
            assert_eq!(v, want);
        }
    }

    #[test]
    fn median_removes_salt_and_keeps_edges() {
        let g = Geometry::identity([12, 10, 8], [0.7, 0.7, 2.5]).unwrap();
        let step = Volume::from_fn(g, |[i, _, _]| if i < 6 { -100i16 } else { 300 });
        let mut noisy = step.clone();
        *noisy.get_mut(2, 4, 4) = 3000;
        *noisy.get_mut(9, 5, 3) = -1000;
        assert_eq!(median_filter(&noisy, [1, 1, 1]).unwrap(), step);
        assert!(median_filter(&step, [33, 0, 0]).is_err());
        assert_eq!(median_filter(&step, [0, 0, 0]).unwrap(), step);
        // Values equal to the merge sentinel are ordinary values.
        let top = Volume::from_fn(step.geometry().clone(), |[i, j, _]| if (i + j) % 3 == 0 { 5 } else { i16::MAX });
        for r in [[1, 1, 1], [2, 1, 0]] {
            assert_eq!(median_filter(&top, r).unwrap().data(), &brute_median(&top, r)[..]);
        }
        let all_top = Volume::filled(step.geometry().clone(), f32::from_bits(0x7fff_ffff));
        assert!(median_filter(&all_top, [1, 1, 1]).unwrap().data().iter().all(|v| v.to_bits() == 0x7fff_ffff));
    }

    #[test]
    fn intensity_window() {
        let g = Geometry::identity([6, 1, 1], [1.0; 3]).unwrap();
        let ct = Volume::new(g.clone(), vec![-1000.0f32, -200.0, 0.0, 100.0, 1000.0, f32::NAN]).unwrap();
        let out = IntensityWindow::default().apply(&ct).unwrap();
        let want = [-0.2f32, -0.2, 0.0, 0.1, 0.2, -0.2];
        for (a, b) in out.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        let custom = IntensityWindow { lo: 0.0, hi: 100.0, out_lo: 0.0, out_hi: 1.0 }.apply(&ct).unwrap();
        assert_eq!(custom.data()[3], 1.0);
        assert!(IntensityWindow { lo: 5.0, hi: 5.0, out_lo: 0.0, out_hi: 1.0 }.apply(&ct).is_err());
        let i16ct = Volume::new(g, vec![-1024i16, -200, 0, 100, 3071, 50]).unwrap();
        assert!((IntensityWindow::default().apply(&i16ct).unwrap().data()[5] - 0.05).abs() < 1e-7);
    }

    #[test]
    fn flips() {
        let g = Geometry::new([4, 3, 5], [0.7, 0.8, 2.0], [10.0, -5.0, 30.0], rot([1.0, 1.0, 1.0], 20.0)).unwrap();
        let v = Volume::from_fn(g.clone(), |[i, j, k]| (i * 100 + j * 10 + k) as u16);
        for axis in [Axis::X, Axis::Y, Axis::Z] {
            let world = flip_preserving_world(&v, axis).unwrap();
            // Every value sits at the same world position as before.
            for o in 0..v.len() {
                let idx = world.geometry().index_of(o);
                let w = world.geometry().index_to_world(idx.map(|x| x as f64));
                let back = g.world_to_index(w).map(|x| x.round() as usize);
                assert_eq!(world.data()[o], *v.get(back[0], back[1], back[2]));
            }
            assert_eq!(flip_preserving_world(&world, axis).unwrap().data(), v.data());
            let data = flip_data(&v, axis);
            assert_eq!(data.geometry(), v.geometry());
            let a = axis as usize;
            let n = g.dims()[a];
            let mut idx = [1, 2, 3];
            let orig = *v.get(idx[0], idx[1], idx[2]);
            idx[a] = n - 1 - idx[a];
            assert_eq!(*data.get(idx[0], idx[1], idx[2]), orig);
            assert_eq!(flip_data(&data, axis), v);
        }
        let thin = Volume::filled(Geometry::identity([1, 1, 1], [1.0; 3]).unwrap(), 5u8);
        assert_eq!(flip_preserving_world(&thin, Axis::Z).unwrap().data(), &[5]);
    }

    #[test]
    fn gaussian_blur_keeps_the_sum_and_spreads_a_point_by_sigma() {
        let g = Geometry::identity([21, 21, 21], [1.0, 2.0, 1.0]).unwrap();
        let point = Volume::from_fn(g, |p| if p == [10, 10, 10] { 1000.0f32 } else { 0.0 });
        let out = gaussian_blur(&point, 2.0).unwrap();
        let total: f32 = out.data().iter().sum();
        assert!((total - 1000.0).abs() < 1.0, "sum {total}");
        // Variance along each axis in mm^2 is sigma^2 = 4, whatever the spacing.
        for axis in 0..3 {
            let sp = [1.0, 2.0, 1.0][axis];
            let var: f64 = out
                .data()
                .iter()
                .enumerate()
                .map(|(o, &v)| {
                    let idx = [o % 21, (o / 21) % 21, o / 441][axis] as f64;
                    f64::from(v) / 1000.0 * ((idx - 10.0) * sp).powi(2)
                })
                .sum();
            assert!((var - 4.0).abs() < 0.4, "axis {axis}: variance {var}");
        }
        assert_eq!(gaussian_blur(&point, 0.0).unwrap().data(), point.data());
        assert!(gaussian_blur(&point, -1.0).is_err());
    }
}
