//! Order statistics with stated conventions.

use serde::Serialize;

/// `numpy.percentile(values, q)` with the default linear interpolation
/// (Hyndman & Fan type 7): position `h = (n-1) q/100` between the sorted
/// values at `floor(h)` and `ceil(h)`. `None` for an empty list. NaNs must
/// not be passed. O(n) by selection, the input is reordered.
pub fn percentile_linear(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * (q / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let t = h - lo as f64;
    let (_, &mut a, rest) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if t == 0.0 || rest.is_empty() {
        return Some(a);
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    // numpy's _lerp: the same formula from whichever end is nearer.
    Some(if t >= 0.5 { b - (b - a) * (1.0 - t) } else { a + (b - a) * t })
}

/// Cohort summary of one metric over the cases where it is defined.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Cases with a defined (finite) value.
    pub n: usize,
    /// Cases where the metric was undefined (empty masks).
    pub n_undefined: usize,
    pub median: Option<f64>,
    /// 25th and 75th percentiles (numpy linear interpolation) and their difference.
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    pub iqr: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Summary {
    pub fn of(values: &[Option<f64>]) -> Self {
        let mut v: Vec<f64> = values.iter().flatten().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        let n_undefined = values.len() - n;
        let median = percentile_linear(&mut v, 50.0);
        let q1 = percentile_linear(&mut v, 25.0);
        let q3 = percentile_linear(&mut v, 75.0);
        let min = v.iter().copied().reduce(f64::min);
        let max = v.iter().copied().reduce(f64::max);
        let mean = (n > 0).then(|| v.iter().sum::<f64>() / n as f64);
        Summary { n, n_undefined, median, q1, q3, iqr: q1.zip(q3).map(|(a, b)| b - a), min, max, mean }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numpy_examples() {
        // numpy.percentile([1, 2, 3, 4], [25, 50, 95]) = 1.75, 2.5, 3.85
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile_linear(&mut v.clone(), 25.0), Some(1.75));
        assert_eq!(percentile_linear(&mut v.clone(), 50.0), Some(2.5));
        assert!((percentile_linear(&mut v.clone(), 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile_linear(&mut [], 50.0), None);
        assert_eq!(percentile_linear(&mut [7.0], 95.0), Some(7.0));
    }

    #[test]
    fn summary_skips_undefined() {
        let s = Summary::of(&[Some(1.0), None, Some(3.0), Some(2.0)]);
        assert_eq!((s.n, s.n_undefined), (3, 1));
        assert_eq!(s.median, Some(2.0));
        assert_eq!(s.q1, Some(1.5));
        assert_eq!(s.iqr, Some(1.0));
        assert_eq!(s.mean, Some(2.0));
        assert_eq!(Summary::of(&[None]).median, None);
    }

    proptest! {
        #[test]
        fn matches_sorted_definition(mut v in proptest::collection::vec(-1e3f64..1e3, 1..50), q in 0.0f64..100.0) {
            let mut s = v.clone();
            s.sort_by(f64::total_cmp);
            let h = (s.len() - 1) as f64 * q / 100.0;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(s.len() - 1);
            let want = s[lo] + (s[hi] - s[lo]) * (h - lo as f64);
            let got = percentile_linear(&mut v, q).unwrap();
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0));
        }
    }
}
