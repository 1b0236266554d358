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
            let mean = s.runs(x, c).flat_map(|r| r.iter()).map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = s.runs(x, c).flat_map(|r| r.iter()).map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            (mean as f32, var as f32)
        })
        .unzip()
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta`, per channel.
pub fn normalise(s: &BnShape, x: &[f32], mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    if s.inner == 0 {
        return y;
    }
    y.par_chunks_mut(s.inner).zip(x.par_chunks(s.inner)).enumerate().for_each(|(plane, (y, x))| {
        let c = plane % s.channels;
        let inv = (1.0 / (f64::from(var[c]) + eps).sqrt()) as f32;
        let (m, g, b) = (mean[c], gamma[c], beta[c]);
        y.iter_mut().zip(x).for_each(|(y, &v)| *y = (v - m) * inv * g + b);
    });
    y
}

/// Gradients `(dx, dgamma, dbeta)` of `sum(dy · y)` with the batch
/// statistics differentiated too: with `xh = (x - mean) / std` and `N`
/// values per channel, `dbeta = Σ dy`, `dgamma = Σ dy xh`,
/// `dx = gamma / std · (dy - dbeta / N - xh dgamma / N)`.
#[allow(clippy::too_many_arguments)]
pub fn backward(s: &BnShape, x: &[f32], gamma: &[f32], mean: &[f32], var: &[f32], eps: f64, dy: &[f32], want_dx: bool) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), s.len(), "batch norm output-gradient length");
    let n = (s.batch * s.inner).max(1) as f64;
    let inv: Vec<f64> = var.iter().map(|&v| 1.0 / (f64::from(v) + eps).sqrt()).collect();
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let (m, i) = (f64::from(mean[c]), inv[c]);
            let (mut dg, mut db) = (0.0f64, 0.0f64);
            for (xr, gr) in s.runs(x, c).zip(s.runs(dy, c)) {
                for (&v, &g) in xr.iter().zip(gr) {
                    db += f64::from(g);
                    dg += f64::from(g) * (f64::from(v) - m) * i;
                }
            }
            (dg as f32, db as f32)
        })
        .unzip();
    let dx = want_dx.then(|| {
        let mut dx = vec![0.0f32; x.len()];
        if s.inner > 0 {
            dx.par_chunks_mut(s.inner).zip(x.par_chunks(s.inner).zip(dy.par_chunks(s.inner))).enumerate().for_each(|(plane, (d, (x, g)))| {
                let c = plane % s.channels;
                let (m, i) = (mean[c], inv[c] as f32);
                let scale = gamma[c] * i;
                let (db_n, dg_n) = ((f64::from(dbeta[c]) / n) as f32, (f64::from(dgamma[c]) / n) as f32);
                for ((d, &v), &gv) in d.iter_mut().zip(x).zip(g) {
                    *d = scale * (gv - db_n - (v - m) * i * dg_n);
                }
            });
        }
        dx
    });
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_finite_differences() {
        let s = BnShape { batch: 3, channels: 2, inner: 5 };
        let x: Vec<f32> = (0..30).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.2).collect();
        let gamma = [1.3f32, -0.7];
        let beta = [0.1f32, 0.4];
        let v: Vec<f32> = (0..30).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
        let eps = 1e-5;
        let loss = |x: &[f32], gamma: &[f32]| -> f64 {
            let (m, var) = statistics(&s, x);
            normalise(&s, x, &m, &var, gamma, &beta, eps).iter().zip(&v).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
        };
        let (m, var) = statistics(&s, &x);
        let (dx, dg, _) = backward(&s, &x, &gamma, &m, &var, eps, &v, true);
        let dx = dx.unwrap();
        let h = 1e-2f32;
        for i in [0usize, 7, 13, 29] {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let num = (loss(&a, &gamma) - loss(&b, &gamma)) / (2.0 * f64::from(h));
            assert!((f64::from(dx[i]) - num).abs() < 2e-2 * num.abs().max(1.0), "dx[{i}] {} vs {num}", dx[i]);
        }
        for c in 0..2 {
            let (mut a, mut b) = (gamma, gamma);
            a[c] += h;
            b[c] -= h;
            let num = (loss(&x, &a) - loss(&x, &b)) / (2.0 * f64::from(h));
            assert!((f64::from(dg[c]) - num).abs() < 1e-2 * num.abs().max(1.0), "dgamma[{c}] {} vs {num}", dg[c]);
        }
    }
}
