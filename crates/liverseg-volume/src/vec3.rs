//! Plain 3-vector arithmetic on `[f64; 3]`, for code that handles LPS points and
//! directions outside a [`Geometry`](crate::Geometry) (DICOM plane vectors,
//! slice normals). Arrays rather than a vector type, so callers keep the arrays
//! the formats give them.

/// `a · b`.
#[inline]
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `a × b` (right-handed).
#[inline]
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// `a - b`.
#[inline]
pub fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_handed_cross_and_dot() {
        let (x, y, z) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
        assert_eq!(cross(x, y), z);
        assert_eq!(cross(y, x), [0.0, 0.0, -1.0]);
        assert_eq!(dot([1.0, 2.0, 3.0], [4.0, -5.0, 6.0]), 12.0);
        let (a, b) = ([1.0, 2.0, 3.0], [-2.0, 0.5, 4.0]);
        let n = cross(a, b);
        assert_eq!((dot(n, a), dot(n, b)), (0.0, 0.0));
        assert_eq!(sub(a, b), [3.0, 1.5, -1.0]);
    }
}
