//! Training batch norm (batch statistics) forward and backward, one pass each
//! over the data per statistic. burn's generic version swaps the batch and
//! channel axes and copies the tensor to reduce per channel, for the mean,
//! the variance and again in the backward pass (`copy_2d_tiled`, 6 % of a
//! paper-preset step, more of a fast one). Here each channel's values are
//! read where they lie (`batch` runs of `inner` values) and summed in f64, in
//! a fixed order: deterministic for any thread count.

use rayon::prelude::*;

/// `[batch, channels, inner]` after flattening the spatial axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnShape {
    pub batch: usize,
    pub channels: usize,
    pub inner: usize,
}

impl BnShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.inner
    }
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (cs, inner) = (self.channels * self.inner, self.inner);
        (0..self.batch).map(move |b| &data[b * cs + c * inner..b * cs + (c + 1) * inner])
    }
}

/// Per-channel mean and biased variance (what burn's `batch_norm_train`
/// returns and feeds the running statistics).
pub fn statistics(s: &BnShape, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "batch norm input length");
    let n = (s.batch * s.inner).max(1) as f64;
    (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let mean = lane_sum(s.runs(x, c), f64::from) / n;
            let var = lane_sum(s.runs(x, c), |v| (f64::from(v) - mean).powi(2)) / n;
            (mean as f32, var as f32)
        })
        .unzip()
}

/// `Σ f(v)` over the values of `runs`, in f64, in eight lanes added in a
/// fixed order: vectorised, and the same sum on any thread count.
fn lane_sum<'a>(runs: impl Iterator<Item = &'a [f32]>, f: impl Fn(f32) -> f64) -> f64 {
    const L: usize = 8;
    let mut acc = [0.0f64; L];
    for r in runs {
        let chunks = r.chunks_exact(L);
        let rest = chunks.remainder();
        for ch in chunks {
            for l in 0..L {
                acc[l] += f(ch[l]);
            }
        }
        for (l, &v) in rest.iter().enumerate() {
            acc[l] += f(v);
        }
    }
    acc.iter().sum()
}

/// PReLU slopes: one per channel, or one for all.
fn slope(alpha: &[f32], c: usize) -> f32 {
    if alpha.len() == 1 {
        alpha[0]
    } else {
        alpha[c]
    }
}

/// `1 / sqrt(var + eps)` per channel, in f64.
fn inverse_std(var: &[f32], eps: f64) -> Vec<f64> {
    var.iter().map(|&v| 1.0 / (f64::from(v) + eps).sqrt()).collect()
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta`, per channel.
pub fn normalise(s: &BnShape, x: &[f32], mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
    normalise_prelu(s, x, mean, var, gamma, beta, None, eps)
}

/// [`normalise`], then PReLU with slopes `alpha` (one per channel or one
/// for all) when given, in the same pass: the block's pre-activation in
/// training, where batch norm and PReLU were two passes and the normalised
/// values a tensor kept for PReLU's backward pass.
#[allow(clippy::too_many_arguments)]
pub fn normalise_prelu(s: &BnShape, x: &[f32], mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], alpha: Option<&[f32]>, eps: f64) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "batch norm input length");
    if s.inner == 0 {
        return vec![0.0f32; x.len()];
    }
    // Each value written once, in the pool: zeroing `y` first ran on the
    // calling thread alone, before every layer (perf: a few percent of a
    // scale-averaged `segment`).
    let mut y: Vec<f32> = Vec::with_capacity(x.len());
    y.spare_capacity_mut()[..x.len()].par_chunks_mut(s.inner).zip(x.par_chunks(s.inner)).enumerate().for_each(|(plane, (y, x))| {
        let c = plane % s.channels;
        let inv = (1.0 / (f64::from(var[c]) + eps).sqrt()) as f32;
        let (m, g, b) = (mean[c], gamma[c], beta[c]);
        match alpha {
            Some(alpha) => {
                let a = slope(alpha, c);
                y.iter_mut().zip(x).for_each(|(y, &v)| {
                    let z = (v - m) * inv * g + b;
                    y.write(if z > 0.0 { z } else { a * z });
                });
            }
            None => y.iter_mut().zip(x).for_each(|(y, &v)| {
                y.write((v - m) * inv * g + b);
            }),
        }
    });
    // SAFETY: `x.len()` is whole planes of `s.inner` (asserted: it is
    // `s.len()`), and each plane of `y` was written from its plane of `x`.
    unsafe { y.set_len(x.len()) };
    y
}

/// Gradients `(dx, dgamma, dbeta)` of `sum(dy · y)` with the batch
/// statistics differentiated too: with `xh = (x - mean) / std` and `N`
/// values per channel, `dbeta = Σ dy`, `dgamma = Σ dy xh`,
/// `dx = gamma / std · (dy - dbeta / N - xh dgamma / N)`.
#[allow(clippy::too_many_arguments)]
pub fn backward(s: &BnShape, x: &[f32], gamma: &[f32], mean: &[f32], var: &[f32], eps: f64, dy: &[f32], want_dx: bool) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (dx, dg, db, _) = backward_prelu(s, x, gamma, &[], None, mean, var, eps, dy, want_dx);
    (dx, dg, db)
}

/// PReLU's gradient at the normalised value `z` of `v`, and `dy · z` where
/// `z ≤ 0` (the slope's gradient term), as selects: vectorised. Without
/// PReLU `b = 0` and `a = 1`, and `dz = dy` either way; the second value is
/// then unused.
#[inline(always)]
fn prelu_grad(v: f32, d: f32, m: f32, i: f32, g: f32, b: f32, a: f32) -> (f32, f32) {
    let z = (v - m) * i * g + b;
    let pos = z > 0.0;
    (if pos { d } else { a * d }, if pos { 0.0 } else { d * z })
}

/// The gradients of [`normalise_prelu`]: `(dx, dgamma, dbeta, dalpha)`
/// (`dalpha` empty without PReLU). The normalised values `z` and PReLU's
/// gradient `dz` are recomputed where they are needed, never stored: one
/// pass for the per-channel sums, one for `dx`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn backward_prelu(
    s: &BnShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    alpha: Option<&[f32]>,
    mean: &[f32],
    var: &[f32],
    eps: f64,
    dy: &[f32],
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), s.len(), "batch norm output-gradient length");
    let n = (s.batch * s.inner).max(1) as f64;
    let inv = inverse_std(var, eps);
    // Per channel: (mean, 1/std, gamma, beta, slope); beta 0 and slope 1
    // without PReLU (see `prelu_grad`).
    let params = |c: usize| (mean[c], inv[c] as f32, gamma[c], alpha.map_or(0.0, |_| beta[c]), alpha.map_or(1.0, |al| slope(al, c)));
    // Per channel: Σ dz, Σ dz (x - mean), Σ dy z over z ≤ 0. f32 lanes over
    // blocks of 512 values, each block's lanes then added to f64 totals in a
    // fixed order: vectorised, precise, the same on any thread count.
    const L: usize = 8;
    const BLOCK: usize = 512;
    let sums: Vec<(f64, f64, f64)> = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let (m, i, g, b, a) = params(c);
            let (mut dg, mut db, mut da) = (0.0f64, 0.0f64, 0.0f64);
            for (xr, gr) in s.runs(x, c).zip(s.runs(dy, c)) {
                for (xb, gb) in xr.chunks(BLOCK).zip(gr.chunks(BLOCK)) {
                    let (mut lg, mut lb, mut la) = ([0.0f32; L], [0.0f32; L], [0.0f32; L]);
                    let (xc, gc) = (xb.chunks_exact(L), gb.chunks_exact(L));
                    let (xt, gt) = (xc.remainder(), gc.remainder());
                    for (xs, gs) in xc.zip(gc) {
                        for l in 0..L {
                            let (dz, zn) = prelu_grad(xs[l], gs[l], m, i, g, b, a);
                            lb[l] += dz;
                            lg[l] += dz * (xs[l] - m);
                            la[l] += zn;
                        }
                    }
                    for (l, (&v, &d)) in xt.iter().zip(gt).enumerate() {
                        let (dz, zn) = prelu_grad(v, d, m, i, g, b, a);
                        lb[l] += dz;
                        lg[l] += dz * (v - m);
                        la[l] += zn;
                    }
                    for l in 0..L {
                        db += f64::from(lb[l]);
                        dg += f64::from(lg[l]);
                        da += f64::from(la[l]);
                    }
                }
            }
            (dg * inv[c], db, da)
        })
        .collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let dalpha: Vec<f32> = match alpha {
        Some(al) if al.len() == 1 => vec![sums.iter().map(|s| s.2).sum::<f64>() as f32],
        Some(_) => sums.iter().map(|s| s.2 as f32).collect(),
        None => Vec::new(),
    };
    let dx = want_dx.then(|| {
        let mut dx = vec![0.0f32; x.len()];
        if s.inner > 0 {
            dx.par_chunks_mut(s.inner).zip(x.par_chunks(s.inner).zip(dy.par_chunks(s.inner))).enumerate().for_each(|(plane, (d, (x, gr)))| {
                let c = plane % s.channels;
                let (m, i, g, b, a) = params(c);
                let scale = g * i;
                let (db_n, dg_n) = ((f64::from(dbeta[c]) / n) as f32, (f64::from(dgamma[c]) / n) as f32);
                for ((d, &v), &gv) in d.iter_mut().zip(x).zip(gr) {
                    let dz = prelu_grad(v, gv, m, i, g, b, a).0;
                    *d = scale * (dz - db_n - (v - m) * i * dg_n);
                }
            });
        }
        dx
    });
    (dx, dgamma, dbeta, dalpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradients of the batch norm, alone and with PReLU (per-channel and
    /// shared slopes), against central differences of `sum(v · y)`.
    #[test]
    fn backward_matches_finite_differences() {
        let s = BnShape { batch: 3, channels: 2, inner: 5 };
        let x: Vec<f32> = (0..30).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.2).collect();
        let gamma = [1.3f32, -0.7];
        let beta = [0.1f32, 0.4];
        let v: Vec<f32> = (0..30).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
        let eps = 1e-5;
        for alpha in [None, Some(vec![0.3f32, -0.4]), Some(vec![0.2f32])] {
            let al = alpha.as_deref();
            let loss = |x: &[f32], gamma: &[f32], alpha: Option<&[f32]>| -> f64 {
                let (m, var) = statistics(&s, x);
                normalise_prelu(&s, x, &m, &var, gamma, &beta, alpha, eps).iter().zip(&v).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
            };
            let (m, var) = statistics(&s, &x);
            let (dx, dg, _, da) = backward_prelu(&s, &x, &gamma, &beta, al, &m, &var, eps, &v, true);
            let dx = dx.unwrap();
            let h = 1e-2f32;
            for i in [0usize, 7, 13, 29] {
                let (mut a, mut b) = (x.clone(), x.clone());
                a[i] += h;
                b[i] -= h;
                let num = (loss(&a, &gamma, al) - loss(&b, &gamma, al)) / (2.0 * f64::from(h));
                assert!((f64::from(dx[i]) - num).abs() < 2e-2 * num.abs().max(1.0), "{alpha:?} dx[{i}] {} vs {num}", dx[i]);
            }
            for c in 0..2 {
                let (mut a, mut b) = (gamma, gamma);
                a[c] += h;
                b[c] -= h;
                let num = (loss(&x, &a, al) - loss(&x, &b, al)) / (2.0 * f64::from(h));
                assert!((f64::from(dg[c]) - num).abs() < 1e-2 * num.abs().max(1.0), "{alpha:?} dgamma[{c}] {} vs {num}", dg[c]);
            }
            if let Some(alpha) = &alpha {
                for c in 0..alpha.len() {
                    let (mut a, mut b) = (alpha.clone(), alpha.clone());
                    a[c] += h;
                    b[c] -= h;
                    let num = (loss(&x, &gamma, Some(&a)) - loss(&x, &gamma, Some(&b))) / (2.0 * f64::from(h));
                    assert!((f64::from(da[c]) - num).abs() < 1e-2 * num.abs().max(1.0), "{alpha:?} dalpha[{c}] {} vs {num}", da[c]);
                }
            }
        }
    }
}
