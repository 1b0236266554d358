//! Voxel overlap of two masks and the Dice similarity coefficient.
//!
//! Dice lives here, in the lowest crate of the workspace, because its callers
//! span the graph: liverseg-metrics' evaluation, liverseg-model's threshold
//! search (which must not depend on liverseg-metrics and its plotting and CSV
//! dependencies), and the tests of liverseg-io, -imgproc, -data, -node and
//! -pipeline. Every one of them already depends on liverseg-volume.

use std::ops::Add;

/// Foreground voxel counts of two masks (any non-zero value is foreground).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overlap {
    /// Foreground voxels of the first mask.
    pub a: usize,
    /// Foreground voxels of the second mask.
    pub b: usize,
    /// Voxels foreground in both.
    pub both: usize,
}

impl Overlap {
    /// Counts over the voxels the two slices have in common (the shorter
    /// slice's length); callers check that the masks share a grid.
    pub fn of(a: &[u8], b: &[u8]) -> Overlap {
        let mut n = Overlap::default();
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x != 0, y != 0);
            n.a += usize::from(x);
            n.b += usize::from(y);
            n.both += usize::from(x && y);
        }
        n
    }

    /// `2|a∩b| / (|a| + |b|)`; `None` when both masks are empty (0/0), where
    /// callers differ on purpose: a score of 1 (nothing to find, nothing
    /// found), 0, or "undefined".
    pub fn dice(&self) -> Option<f64> {
        let n = self.a + self.b;
        (n > 0).then(|| 2.0 * self.both as f64 / n as f64)
    }
}

/// Counts of disjoint parts of two masks add up (chunked, parallel counting).
impl Add for Overlap {
    type Output = Overlap;
    fn add(self, o: Overlap) -> Overlap {
        Overlap { a: self.a + o.a, b: self.b + o.b, both: self.both + o.both }
    }
}

/// Dice similarity of two masks given as voxel slices on one grid; `None` when
/// both are empty. See [`Overlap::dice`].
pub fn dice(a: &[u8], b: &[u8]) -> Option<f64> {
    Overlap::of(a, b).dice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_dice() {
        let a = [0, 1, 1, 1, 0, 2];
        let b = [1, 1, 0, 1, 0, 0];
        let o = Overlap::of(&a, &b);
        assert_eq!(o, Overlap { a: 4, b: 3, both: 2 });
        assert_eq!(o.dice(), Some(4.0 / 7.0));
        assert_eq!(dice(&a, &a), Some(1.0));
        assert_eq!(dice(&a, &[0; 6]), Some(0.0));
    }

    #[test]
    fn both_empty_is_undefined() {
        assert_eq!(dice(&[0; 4], &[0; 4]), None);
        assert_eq!(dice(&[], &[]), None);
    }

    #[test]
    fn chunked_counts_add_up() {
        let a: Vec<u8> = (0..1000u32).map(|i| u8::from(i % 3 == 0)).collect();
        let b: Vec<u8> = (0..1000u32).map(|i| u8::from(i % 5 < 2)).collect();
        let whole = Overlap::of(&a, &b);
        let parts = a.chunks(64).zip(b.chunks(64)).map(|(x, y)| Overlap::of(x, y)).fold(Overlap::default(), |p, q| p + q);
        assert_eq!(whole, parts);
        assert_eq!(whole.dice(), dice(&a, &b));
    }
}
