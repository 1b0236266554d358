//! Where the network's tensors meet: the merge of the pathways (each coarse
//! pathway's output up-sampled by repetition, then all concatenated along
//! the channels) and the residual connections (an earlier output,
//! centre-cropped, added to the first channels of a later one).
//!
//! burn builds the merge from three `repeat_dim` passes and reshapes per
//! coarse pathway and a `cat` copy, and takes them back as three summing
//! passes and slices; a residual whose earlier output has fewer channels is a
//! zero tensor, a `cat`, a sliced view and an add, taken back by a zero
//! tensor and a `slice_assign`. Here each is one pass forward and one pass
//! backward, per (batch item, channel) plane, in a fixed order: the results
//! do not depend on the thread count.

use rayon::prelude::*;

/// One input of the merge: `channels` planes of `dims` voxels, every voxel
/// repeated `factor` times along each axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub channels: usize,
    pub dims: [usize; 3],
    pub factor: usize,
}

impl Part {
    fn plane(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The merge of `parts` for `batch` items into `[batch, Σ channels, out]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeShape {
    pub batch: usize,
    pub out: [usize; 3],
    pub parts: Vec<Part>,
}

impl MergeShape {
    /// `None` unless every part, up-sampled, covers the same output grid.
    pub fn new(batch: usize, parts: Vec<Part>) -> Option<Self> {
        let first = parts.first()?;
        let out = first.dims.map(|n| n * first.factor);
        let fits = parts.iter().all(|p| p.factor >= 1 && p.dims.map(|n| n * p.factor) == out);
        fits.then_some(Self { batch, out, parts })
    }
    pub fn channels(&self) -> usize {
        self.parts.iter().map(|p| p.channels).sum()
    }
    fn out_plane(&self) -> usize {
        self.out.iter().product()
    }
    pub fn out_len(&self) -> usize {
        self.batch * self.channels() * self.out_plane()
    }
    /// The part and its channel that merged channel `c` comes from.
    fn source(&self, mut c: usize) -> (usize, usize) {
        for (i, p) in self.parts.iter().enumerate() {
            if c < p.channels {
                return (i, c);
            }
            c -= p.channels;
        }
        unreachable!("channel beyond the merged channels")
    }
}

/// Concatenate `xs[p]` (each `[batch, channels_p, dims_p]`), each repeated
/// by its factor, along the channels.
pub fn upsample_cat(s: &MergeShape, xs: &[&[f32]]) -> Vec<f32> {
    assert_eq!(xs.len(), s.parts.len(), "merge inputs");
    for (x, p) in xs.iter().zip(&s.parts) {
        assert_eq!(x.len(), s.batch * p.channels * p.plane(), "merge input length");
        // What makes every output value written below (`MergeShape::new`
        // checks it too; the fields are public).
        assert!(p.factor >= 1 && p.dims.map(|n| n * p.factor) == s.out, "merge part does not cover the output");
    }
    let (channels, plane) = (s.channels(), s.out_plane());
    if plane == 0 {
        return vec![0.0f32; s.out_len()];
    }
    let total = s.out_len();
    // Each value written once in the pool (zeroing it first ran on the
    // calling thread alone).
    let mut y: Vec<f32> = Vec::with_capacity(total);
    let [_, oh, ow] = s.out;
    y.spare_capacity_mut()[..total].par_chunks_mut(plane).enumerate().for_each(|(q, dst)| {
        let (b, c) = (q / channels, q % channels);
        let (i, cp) = s.source(c);
        let p = &s.parts[i];
        let src = &xs[i][(b * p.channels + cp) * p.plane()..][..p.plane()];
        if p.factor == 1 {
            dst.iter_mut().zip(src).for_each(|(d, &v)| {
                d.write(v);
            });
            return;
        }
        let (f, [_, h, w]) = (p.factor, p.dims);
        for (r, row) in dst.chunks_exact_mut(ow).enumerate() {
            let (z, yy) = (r / oh, r % oh);
            let src_row = &src[((z / f) * h + yy / f) * w..][..w];
            row.chunks_exact_mut(f).zip(src_row).for_each(|(block, &v)| {
                block.iter_mut().for_each(|d| {
                    d.write(v);
                });
            });
        }
    });
    // SAFETY: every plane (batch x channel) was written in full above: a
    // copy of its part's plane, or each row's blocks of `f` (the output
    // edge is the part's times its factor, `MergeShape::new` checks it).
    unsafe { y.set_len(total) };
    y
}

/// The adjoint of [`upsample_cat`]: each part's gradient, every voxel the sum
/// of the `factor³` output values it was repeated into.
pub fn upsample_cat_backward(s: &MergeShape, dy: &[f32]) -> Vec<Vec<f32>> {
    assert_eq!(dy.len(), s.out_len(), "merge output-gradient length");
    let (channels, plane) = (s.channels(), s.out_plane());
    let [_, oh, ow] = s.out;
    let mut first = 0;
    s.parts
        .iter()
        .map(|p| {
            let offset = first;
            first += p.channels;
            let mut dx = vec![0.0f32; s.batch * p.channels * p.plane()];
            if p.plane() == 0 {
                return dx;
            }
            dx.par_chunks_mut(p.plane()).enumerate().for_each(|(q, dst)| {
                let (b, cp) = (q / p.channels, q % p.channels);
                let src = &dy[(b * channels + offset + cp) * plane..][..plane];
                if p.factor == 1 {
                    dst.copy_from_slice(src);
                    return;
                }
                let (f, [_, h, w]) = (p.factor, p.dims);
                // Output rows in order, each added into its coarse row: every
                // coarse voxel sums its block in the same order every time.
                for (r, row) in src.chunks_exact(ow).enumerate() {
                    let (z, yy) = (r / oh, r % oh);
                    let dst_row = &mut dst[((z / f) * h + yy / f) * w..][..w];
                    dst_row.iter_mut().zip(row.chunks_exact(f)).for_each(|(d, block)| *d += block.iter().sum::<f32>());
                }
            });
            dx
        })
        .collect()
}

/// A residual connection: `later` `[batch, channels, dims]` gets the centre
/// crop of `earlier` `[batch, earlier_channels, earlier_dims]` added to its
/// first `min(channels, earlier_channels)` channels (DeepMedic's: an earlier
/// output with fewer channels is zero-padded, one with more is cut).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidualShape {
    pub batch: usize,
    pub channels: usize,
    pub dims: [usize; 3],
    pub earlier_channels: usize,
    pub earlier_dims: [usize; 3],
}

impl ResidualShape {
    /// `None` when the earlier output is smaller than the later one on an axis.
    pub fn new(batch: usize, channels: usize, dims: [usize; 3], earlier_channels: usize, earlier_dims: [usize; 3]) -> Option<Self> {
        (0..3).all(|a| earlier_dims[a] >= dims[a]).then_some(Self { batch, channels, dims, earlier_channels, earlier_dims })
    }
    fn plane(&self) -> usize {
        self.dims.iter().product()
    }
    fn earlier_plane(&self) -> usize {
        self.earlier_dims.iter().product()
    }
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.plane()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn earlier_len(&self) -> usize {
        self.batch * self.earlier_channels * self.earlier_plane()
    }
    /// Every row of the crop: `visit(later_offset, earlier_offset)` of
    /// `dims[2]` values each, inside one plane.
    fn rows(&self, mut visit: impl FnMut(usize, usize)) {
        let [d, h, w] = self.dims;
        let [de, he, we] = self.earlier_dims;
        let (oz, oy, ox) = ((de - d) / 2, (he - h) / 2, (we - w) / 2);
        for z in 0..d {
            for y in 0..h {
                visit((z * h + y) * w, ((z + oz) * he + y + oy) * we + ox);
            }
        }
    }
}

/// `later += crop(earlier)` in place, on the shared channels.
pub fn residual_add(s: &ResidualShape, later: &mut [f32], earlier: &[f32]) {
    assert_eq!(later.len(), s.len(), "residual output length");
    assert_eq!(earlier.len(), s.earlier_len(), "residual input length");
    let (plane, eplane, w) = (s.plane(), s.earlier_plane(), s.dims[2]);
    if plane == 0 {
        return;
    }
    let shared = s.channels.min(s.earlier_channels);
    later.par_chunks_mut(plane).enumerate().filter(|(q, _)| q % s.channels < shared).for_each(|(q, dst)| {
        let (b, c) = (q / s.channels, q % s.channels);
        let src = &earlier[(b * s.earlier_channels + c) * eplane..][..eplane];
        s.rows(|l, e| dst[l..l + w].iter_mut().zip(&src[e..e + w]).for_each(|(d, v)| *d += v));
    });
}

/// The gradient of the earlier output: `dy` on the crop of the shared
/// channels, zero elsewhere. (The later output's gradient is `dy` itself.)
pub fn residual_backward(s: &ResidualShape, dy: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), s.len(), "residual output-gradient length");
    let (plane, eplane, w) = (s.plane(), s.earlier_plane(), s.dims[2]);
    let mut de = vec![0.0f32; s.earlier_len()];
    if eplane == 0 || plane == 0 {
        return de;
    }
    let shared = s.channels.min(s.earlier_channels);
    de.par_chunks_mut(eplane).enumerate().filter(|(q, _)| q % s.earlier_channels < shared).for_each(|(q, dst)| {
        let (b, c) = (q / s.earlier_channels, q % s.earlier_channels);
        let src = &dy[(b * s.channels + c) * plane..][..plane];
        s.rows(|l, e| dst[e..e + w].copy_from_slice(&src[l..l + w]));
    });
    de
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) * 0.02).collect()
    }

    #[test]
    fn merge_repeats_and_concatenates() {
        let s = MergeShape::new(2, vec![Part { channels: 2, dims: [6, 4, 2], factor: 1 }, Part { channels: 3, dims: [3, 2, 1], factor: 2 }]).unwrap();
        let (a, b) = (data(2 * 2 * 48, 1), data(2 * 3 * 6, 2));
        let y = upsample_cat(&s, &[&a, &b]);
        for bi in 0..2 {
            for c in 0..5 {
                for z in 0..6 {
                    for yy in 0..4 {
                        for x in 0..2 {
                            let got = y[(((bi * 5 + c) * 6 + z) * 4 + yy) * 2 + x];
                            let want = if c < 2 { a[(((bi * 2 + c) * 6 + z) * 4 + yy) * 2 + x] } else { b[(((bi * 3 + c - 2) * 3 + z / 2) * 2 + yy / 2) + x / 2] };
                            assert_eq!(got, want);
                        }
                    }
                }
            }
        }
        assert!(MergeShape::new(1, vec![Part { channels: 1, dims: [6, 6, 6], factor: 1 }, Part { channels: 1, dims: [2, 2, 2], factor: 2 }]).is_none());
    }

    /// The backward passes are the adjoints of the forward passes:
    /// `<dy, f(x)> = <f*(dy), x>` for linear `f`.
    #[test]
    fn backward_passes_are_adjoints() {
        let s = MergeShape::new(3, vec![Part { channels: 2, dims: [6, 3, 9], factor: 1 }, Part { channels: 1, dims: [2, 1, 3], factor: 3 }]).unwrap();
        let (a, b) = (data(3 * 2 * 162, 3), data(3 * 6, 4));
        let dy = data(s.out_len(), 5);
        let y = upsample_cat(&s, &[&a, &b]);
        let g = upsample_cat_backward(&s, &dy);
        let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
        let (lhs, rhs) = (dot(&y, &dy), dot(&g[0], &a) + dot(&g[1], &b));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs}");

        for (c, ce) in [(3, 2), (2, 2), (2, 4)] {
            let r = ResidualShape::new(2, c, [3, 2, 4], ce, [5, 4, 7]).unwrap();
            let (later, earlier, dy) = (data(r.len(), 6), data(r.earlier_len(), 7), data(r.len(), 8));
            let mut y = later.clone();
            residual_add(&r, &mut y, &earlier);
            let added: Vec<f32> = y.iter().zip(&later).map(|(a, b)| a - b).collect();
            let de = residual_backward(&r, &dy);
            let (lhs, rhs) = (dot(&added, &dy), dot(&de, &earlier));
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{c}/{ce}: {lhs} vs {rhs}");
        }
    }
}
