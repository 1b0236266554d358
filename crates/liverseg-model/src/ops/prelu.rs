//! PReLU with one slope per channel, forward and backward in one pass each.
//! burn computes it as `mask_where(x > 0, x, alpha * x)` with a broadcast
//! product and a mask tensor, and its backward with two more masked passes:
//! measured 12 % of a `fast` training step.

use rayon::prelude::*;

/// `[outer, channels, inner]` after flattening; `shared`: one slope for all
/// channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreluShape {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
    pub shared: bool,
}

impl PreluShape {
    fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }
    fn slope(&self, alpha: &[f32], plane: usize) -> f32 {
        if self.shared {
            alpha[0]
        } else {
            alpha[plane % self.channels]
        }
    }
}

/// `y = x` where `x > 0`, else `alpha[c] x`.
pub fn forward(s: &PreluShape, x: &[f32], alpha: &[f32]) -> Vec<f32> {
    forward_affine(s, x, None, alpha)
}

/// PReLU of `x · scale[c] + shift[c]` (with `affine`), in one pass: an
/// inference batch norm folded into the activation that follows it, where
/// burn makes four passes (subtract, divide, multiply, add) before PReLU's.
pub fn forward_affine(s: &PreluShape, x: &[f32], affine: Option<(&[f32], &[f32])>, alpha: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "prelu input length");
    // Written in place of uninitialised capacity: zero-filling `y` first
    // was 3.7 % of a one-pass `segment` (perf, 2026-12-06), since the
    // allocator hands back reused, not fresh zeroed, pages.
    let mut y: Vec<f32> = Vec::with_capacity(x.len());
    if s.inner > 0 {
        let out = &mut y.spare_capacity_mut()[..x.len()];
        out.par_chunks_mut(s.inner).zip(x.par_chunks(s.inner)).enumerate().for_each(|(plane, (y, x))| {
            let a = s.slope(alpha, plane);
            match affine {
                Some((scale, shift)) => {
                    let (m, b) = (scale[plane % s.channels], shift[plane % s.channels]);
                    y.iter_mut().zip(x).for_each(|(y, &v)| {
                        let v = v * m + b;
                        y.write(if v > 0.0 { v } else { a * v });
                    });
                }
                None => y.iter_mut().zip(x).for_each(|(y, &v)| {
                    y.write(if v > 0.0 { v } else { a * v });
                }),
            }
        });
    }
    // SAFETY: with `inner > 0` the chunks cover all `x.len()` values and
    // each was written above; with `inner == 0`, `x.len()` is 0.
    unsafe { y.set_len(x.len()) };
    y
}

/// `(dx, dalpha)` of `sum(dy · prelu(x))`; `dx` only when `want_dx`. The
/// slope gradient sums per (outer, channel) plane, then over planes in
/// order: the result does not depend on the thread count.
pub fn backward(s: &PreluShape, x: &[f32], alpha: &[f32], dy: &[f32], want_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "prelu input length");
    assert_eq!(dy.len(), s.len(), "prelu output-gradient length");
    let slopes = if s.shared { 1 } else { s.channels };
    if s.inner == 0 {
        return (want_dx.then(|| vec![0.0; x.len()]), vec![0.0; slopes]);
    }
    let mut dx = want_dx.then(|| vec![0.0f32; x.len()]);
    let plane_sums: Vec<f32> = match dx.as_mut() {
        Some(dx) => dx
            .par_chunks_mut(s.inner)
            .zip(x.par_chunks(s.inner).zip(dy.par_chunks(s.inner)))
            .enumerate()
            .map(|(plane, (dx, (x, dy)))| {
                let a = s.slope(alpha, plane);
                // Branch-free selects, so the loop vectorises (a branch on the
                // sign of random values mispredicts half the time).
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = if v > 0.0 { g } else { a * g };
                }
                negative_sum(x, dy)
            })
            .collect(),
        None => x.par_chunks(s.inner).zip(dy.par_chunks(s.inner)).map(|(x, dy)| negative_sum(x, dy)).collect(),
    };
    let mut da = vec![0.0f32; slopes];
    for (plane, v) in plane_sums.iter().enumerate() {
        da[if s.shared { 0 } else { plane % s.channels }] += v;
    }
    (dx, da)
}

/// `Σ dy · x` over the values with `x ≤ 0` (not `x > 0`), in eight
/// lanes added in a fixed order: vectorised, and the same sum on any
/// thread count.
fn negative_sum(x: &[f32], dy: &[f32]) -> f32 {
    const L: usize = 8;
    let mut acc = [0.0f32; L];
    let (xc, gc) = (x.chunks_exact(L), dy.chunks_exact(L));
    let (xr, gr) = (xc.remainder(), gc.remainder());
    for (xs, gs) in xc.zip(gc) {
        for l in 0..L {
            acc[l] += if xs[l] > 0.0 { 0.0 } else { gs[l] * xs[l] };
        }
    }
    for (l, (&v, &g)) in xr.iter().zip(gr).enumerate() {
        acc[l] += if v > 0.0 { 0.0 } else { g * v };
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_follow_the_definition() {
        let s = PreluShape { outer: 2, channels: 3, inner: 4, shared: false };
        let x: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) * 0.3).collect();
        let alpha = [0.1f32, -0.2, 0.5];
        let y = forward(&s, &x, &alpha);
        for (i, (&yv, &xv)) in y.iter().zip(&x).enumerate() {
            let a = alpha[(i / 4) % 3];
            assert_eq!(yv, if xv > 0.0 { xv } else { a * xv });
        }
        let dy: Vec<f32> = (0..24).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let (dx, da) = backward(&s, &x, &alpha, &dy, true);
        let dx = dx.unwrap();
        let mut want_da = [0.0f32; 3];
        for i in 0..24 {
            let c = (i / 4) % 3;
            let want = if x[i] > 0.0 { dy[i] } else { alpha[c] * dy[i] };
            assert_eq!(dx[i], want);
            if x[i] <= 0.0 {
                want_da[c] += dy[i] * x[i];
            }
        }
        for c in 0..3 {
            assert!((da[c] - want_da[c]).abs() < 1e-5, "{c}: {} vs {}", da[c], want_da[c]);
        }
        let (none, da2) = backward(&s, &x, &alpha, &dy, false);
        assert!(none.is_none());
        assert_eq!(da, da2);
    }

    #[test]
    fn affine_forward_follows_the_definition_and_fills_every_value() {
        let s = PreluShape { outer: 3, channels: 2, inner: 5, shared: false };
        let x: Vec<f32> = (0..30).map(|i| (i as f32 - 14.0) * 0.25).collect();
        let (scale, shift, alpha) = ([2.0f32, -0.5], [0.5f32, 1.0], [0.1f32, 0.3]);
        let y = forward_affine(&s, &x, Some((&scale, &shift)), &alpha);
        assert_eq!(y.len(), x.len());
        for (i, (&v, &got)) in x.iter().zip(&y).enumerate() {
            let c = (i / s.inner) % s.channels;
            let u = v * scale[c] + shift[c];
            let want = if u > 0.0 { u } else { alpha[c] * u };
            assert_eq!(got, want, "value {i}");
        }
        let empty = PreluShape { outer: 2, channels: 3, inner: 0, shared: false };
        assert!(forward_affine(&empty, &[], Some((&[1.0; 3], &[0.0; 3])), &[0.2; 3]).is_empty());
    }

    #[test]
    fn one_shared_slope() {
        let s = PreluShape { outer: 1, channels: 2, inner: 2, shared: true };
        let (x, dy) = ([-1.0f32, 2.0, -3.0, 4.0], [1.0f32, 1.0, 2.0, 1.0]);
        assert_eq!(forward(&s, &x, &[0.5]), [-0.5, 2.0, -1.5, 4.0]);
        let (_, da) = backward(&s, &x, &[0.5], &dy, true);
        assert_eq!(da, [-7.0]);
    }
}
