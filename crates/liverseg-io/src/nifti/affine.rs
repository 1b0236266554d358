//! Voxel-to-world transforms of a NIfTI header (all in NIfTI's RAS+ space).
//!
//! Follows the NIfTI-1 standard (nifti1.h, "METHOD 1/2/3") and matches nibabel's
//! `get_qform` / `get_sform` numerically: quaternion to matrix in f64 from the
//! stored values, qfac from pixdim[0], negative pixdim made positive, zero
//! pixdim replaced by 1.

use super::header::Header;

pub(super) use liverseg_volume::Mat3;
use liverseg_volume::{det3, inverse3, IDENTITY as IDENTITY3};

pub type Affine = [[f64; 4]; 4];

/// Which header transform gave the geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Sform,
    Qform,
    /// NIfTI "method 1" (and Analyze): voxel sizes only, no orientation.
    Pixdim,
}

impl Transform {
    pub fn name(self) -> &'static str {
        match self {
            Transform::Sform => "sform",
            Transform::Qform => "qform",
            Transform::Pixdim => "pixdim",
        }
    }
}

/// pixdim[1..=3] as nibabel fixes them on load: absolute values, 0 / NaN -> 1.
pub fn spatial_pixdim(h: &Header, warnings: &mut Vec<String>) -> [f64; 3] {
    let mut out = [1.0; 3];
    for (a, slot) in out.iter_mut().enumerate() {
        let p = h.pixdim[a + 1];
        let used_dim = (a as i64) < h.dim[0];
        if p.is_finite() && p != 0.0 {
            if p < 0.0 && used_dim {
                warnings.push(format!("pixdim[{}] = {p} is negative; using its absolute value", a + 1));
            }
            *slot = p.abs();
        } else if used_dim {
            warnings.push(format!("pixdim[{}] = {p} is not a usable voxel size; using 1", a + 1));
        }
    }
    out
}

/// NIfTI method 2: rotation from the quaternion, voxel sizes from pixdim,
/// the third column negated when qfac (pixdim[0]) is negative.
pub fn qform(h: &Header, warnings: &mut Vec<String>) -> Affine {
    let [b, c, d] = h.quatern;
    let sum = b * b + c * c + d * d;
    let (a, b, c, d) = if !sum.is_finite() {
        warnings.push("qform quaternion is not finite; using no rotation".into());
        (1.0, 0.0, 0.0, 0.0)
    } else {
        // nibabel's threshold: the float32 rounding of a unit quaternion with a = 0.
        let threshold = if h.format == crate::Format::Nifti2 { 3.0 * f64::EPSILON } else { 3.0 * f32::EPSILON as f64 };
        let w2 = 1.0 - sum;
        if w2 >= 0.0 {
            (w2.sqrt(), b, c, d)
        } else if w2 >= -threshold {
            (0.0, b, c, d)
        } else {
            // nifti1_io's rescue (nibabel refuses): treat as a 180 degree rotation.
            warnings.push(format!("qform quaternion (b,c,d) has length {:.6} > 1; normalised", sum.sqrt()));
            let n = sum.sqrt();
            (0.0, b / n, c / n, d / n)
        }
    };
    let r = quat_to_mat(a, b, c, d);
    let mut vox = spatial_pixdim(h, warnings);
    if h.pixdim[0] < 0.0 {
        vox[2] = -vox[2];
    }
    let mut out = identity4();
    for row in 0..3 {
        for col in 0..3 {
            out[row][col] = r[row][col] * vox[col];
        }
        out[row][3] = h.qoffset[row];
    }
    out
}

/// NIfTI method 3: the three stored rows.
pub fn sform(h: &Header) -> Affine {
    let mut out = identity4();
    out[..3].copy_from_slice(&h.srow);
    out
}

/// NIfTI method 1: voxel sizes only, origin at voxel (0,0,0). nibabel differs
/// here (it centres the image and flips x, as for SPM Analyze files); the
/// standard's definition is used because it is the documented meaning.
pub fn pixdim_only(h: &Header, warnings: &mut Vec<String>) -> Affine {
    let vox = spatial_pixdim(h, warnings);
    let mut out = identity4();
    for (a, v) in vox.into_iter().enumerate() {
        out[a][a] = v;
    }
    out
}

fn quat_to_mat(w: f64, x: f64, y: f64, z: f64) -> Mat3 {
    // Same formula as nibabel.quaternions.quat2mat (and nifti1_io).
    let n = w * w + x * x + y * y + z * z;
    if n < f64::EPSILON {
        return IDENTITY3;
    }
    let s = 2.0 / n;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

pub fn identity4() -> Affine {
    let mut a = [[0.0; 4]; 4];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    a
}

/// Largest distance (mm) between where the two transforms put the corners of
/// the grid: a scale-aware measure of how much they disagree.
pub fn corner_disagreement(a: &Affine, b: &Affine, dims: [usize; 3]) -> f64 {
    let mut worst: f64 = 0.0;
    for corner in 0..8 {
        let idx: [f64; 3] = std::array::from_fn(|ax| if corner >> ax & 1 == 1 { (dims[ax] as f64 - 1.0).max(0.0) } else { 0.0 });
        let mut d2 = 0.0;
        for r in 0..3 {
            let pa = a[r][3] + (0..3).map(|c| a[r][c] * idx[c]).sum::<f64>();
            let pb = b[r][3] + (0..3).map(|c| b[r][c] * idx[c]).sum::<f64>();
            d2 += (pa - pb).powi(2);
        }
        worst = worst.max(d2.sqrt());
    }
    worst
}

/// The rotation closest to `m` (polar decomposition by Newton iteration,
/// X <- (X + X^-T) / 2), as nifti1_io's `nifti_mat33_polar` computes it.
pub fn nearest_orthogonal(m: &Mat3) -> Option<Mat3> {
    let mut x = *m;
    for _ in 0..100 {
        let inv = inverse3(&x)?;
        let next: Mat3 = std::array::from_fn(|r| std::array::from_fn(|c| 0.5 * (x[r][c] + inv[c][r])));
        let change = (0..3).flat_map(|r| (0..3).map(move |c| (r, c))).map(|(r, c)| (next[r][c] - x[r][c]).abs()).fold(0.0, f64::max);
        x = next;
        if change < 1e-15 {
            break;
        }
    }
    x.iter().flatten().all(|v| v.is_finite()).then_some(x)
}

/// Quaternion (b, c, d) and qfac of an orthogonal matrix, by nifti1_io's
/// `nifti_mat44_to_quatern` (a >= 0 so the stored triple determines it).
pub fn quaternion_of(orthogonal: &Mat3) -> ([f64; 3], f64) {
    let mut r = *orthogonal;
    let qfac = if det3(&r) > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace = r11 + r22 + r33 + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        if a < 0.0 {
            (a, b, c, d) = (-a, -b, -c, -d);
        }
    }
    let _ = a;
    ([b, c, d], qfac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn header_with_quaternion(q: [f64; 3], qfac: f64, pixdim: [f64; 3]) -> Header {
        Header {
            format: Format::Nifti2,
            big_endian: false,
            single_file: true,
            dim: [3, 10, 10, 10, 1, 1, 1, 1],
            pixdim: [qfac, pixdim[0], pixdim[1], pixdim[2], 0.0, 0.0, 0.0, 0.0],
            datatype: 2,
            bitpix: 8,
            vox_offset: 544.0,
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 0,
            quatern: q,
            qoffset: [1.0, 2.0, 3.0],
            srow: [[0.0; 4]; 3],
            xyzt_units: 2,
            intent_code: 0,
            magic_tail_ok: true,
        }
    }

    fn rot(axis: usize, deg: f64) -> Mat3 {
        let (s, c) = deg.to_radians().sin_cos();
        let (i, j) = [(1, 2), (2, 0), (0, 1)][axis];
        let mut m = IDENTITY3;
        m[i][i] = c;
        m[j][j] = c;
        m[i][j] = -s;
        m[j][i] = s;
        m
    }

    fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
        std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
    }

    #[test]
    fn quaternion_roundtrip_through_qform() {
        // Rotations of every kind, including the 180 degree ones where a = 0.
        let cases = [
            IDENTITY3,
            rot(2, 180.0),
            rot(0, 180.0),
            rot(1, 90.0),
            mul(&rot(0, 17.0), &mul(&rot(1, -33.0), &rot(2, 141.0))),
            mul(&rot(2, 180.0), &rot(0, 1e-3)),
        ];
        for (n, r) in cases.iter().enumerate() {
            for flip in [false, true] {
                let mut m = *r;
                if flip {
                    for row in m.iter_mut() {
                        row[2] = -row[2];
                    }
                }
                let (q, qfac) = quaternion_of(&m);
                let mut w = Vec::new();
                let a = qform(&header_with_quaternion(q, qfac, [2.0, 3.0, 4.0]), &mut w);
                assert!(w.is_empty(), "{w:?}");
                for row in 0..3 {
                    for col in 0..3 {
                        let expected = m[row][col] * [2.0, 3.0, 4.0][col];
                        // Near 180 degrees a = sqrt(1 - |bcd|^2) is rounding noise
                        // (~sqrt(eps)): an inherent limit of the qform encoding.
                        let tol = if n == 5 { 1e-7 } else { 1e-12 };
                        assert!((a[row][col] - expected).abs() < tol, "case {n} flip {flip}: {a:?} vs {m:?}");
                    }
                }
                assert_eq!([a[0][3], a[1][3], a[2][3]], [1.0, 2.0, 3.0]);
            }
        }
    }

    #[test]
    fn qfac_zero_counts_as_positive_and_pixdim_is_fixed() {
        let mut w = Vec::new();
        let a = qform(&header_with_quaternion([0.0; 3], 0.0, [-2.0, 0.0, 3.0]), &mut w);
        assert_eq!([a[0][0], a[1][1], a[2][2]], [2.0, 1.0, 3.0]);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn over_long_quaternion_is_normalised_with_a_warning() {
        let mut w = Vec::new();
        let a = qform(&header_with_quaternion([0.0, 0.0, 1.5], 1.0, [1.0; 3]), &mut w);
        // 180 degrees about z.
        assert!((a[0][0] + 1.0).abs() < 1e-12 && (a[1][1] + 1.0).abs() < 1e-12 && (a[2][2] - 1.0).abs() < 1e-12);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn polar_decomposition_finds_the_rotation_under_a_shear() {
        let r = mul(&rot(0, 20.0), &rot(2, 35.0));
        let shear: Mat3 = [[1.0, 0.0, 0.1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let sheared = mul(&r, &shear);
        let q = nearest_orthogonal(&sheared).unwrap();
        let qtq = mul(&std::array::from_fn(|a| std::array::from_fn(|b| q[b][a])), &q);
        for a in 0..3 {
            for b in 0..3 {
                assert!((qtq[a][b] - f64::from(u8::from(a == b))).abs() < 1e-12);
            }
        }
        // Close to r but not equal (the shear pulls it a little).
        let dist = (0..3).flat_map(|a| (0..3).map(move |b| (a, b))).map(|(a, b)| (q[a][b] - r[a][b]).abs()).fold(0.0, f64::max);
        assert!(dist < 0.1 && dist > 1e-4, "{dist}");
        assert!(nearest_orthogonal(&[[0.0; 3]; 3]).is_none());
    }

    #[test]
    fn corner_disagreement_is_in_mm() {
        let a = identity4();
        let mut b = identity4();
        b[0][3] = 0.5;
        assert!((corner_disagreement(&a, &b, [10, 10, 10]) - 0.5).abs() < 1e-12);
        b[0][3] = 0.0;
        b[0][0] = 1.01; // 1% scale error: 0.09 mm at the far corner
        assert!((corner_disagreement(&a, &b, [10, 10, 10]) - 0.09).abs() < 1e-9);
    }
}
