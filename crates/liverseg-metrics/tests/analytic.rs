//! Metrics on masks generated in code, with answers known in closed form or
//! from a brute-force reimplementation of each definition.

use liverseg_metrics::{evaluate, evaluate_resampling, EvalOptions, SurfaceConvention};
use liverseg_volume::{Geometry, Mask, Volume};
use proptest::prelude::*;

fn both() -> EvalOptions {
    EvalOptions { convention: SurfaceConvention::Both, tolerances_mm: vec![1.0, 2.0] }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

fn boxed(g: &Geometry, lo: [usize; 3], hi: [usize; 3]) -> Mask {
    Volume::from_fn(g.clone(), |p| u8::from((0..3).all(|a| p[a] >= lo[a] && p[a] < hi[a])))
}

#[test]
fn identical_masks() {
    let g = Geometry::identity([20, 18, 9], [0.7, 0.8, 2.5]).unwrap();
    let a = boxed(&g, [3, 4, 2], [15, 12, 7]);
    let e = evaluate(&a, &a, &both()).unwrap();
    assert_eq!(e.dice, Some(1.0));
    assert_eq!(e.volume_ratio, Some(1.0));
    assert_eq!(e.volume_similarity, Some(0.0));
    let m = e.medpy.clone().unwrap();
    assert_eq!((m.asd_ab, m.assd, m.hd, m.hd95), (Some(0.0), Some(0.0), Some(0.0), Some(0.0)));
    let s = e.surfel.clone().unwrap();
    assert_eq!((s.asd_ab, s.hd, s.hd95), (Some(0.0), Some(0.0), Some(0.0)));
    assert_eq!(s.surface_dice, vec![(1.0, Some(1.0)), (2.0, Some(1.0))]);
    assert!(e.undefined.is_empty());
    let keys: Vec<String> = e.metric_rows().into_iter().map(|r| r.0).collect();
    let issue = ["dice", "volume_a_ml", "volume_b_ml", "volume_ratio", "volume_similarity", "asd_ab", "asd_ba", "assd", "hd", "hd95"];
    assert_eq!(&keys[..10], &issue);
    let table = e.to_table();
    for k in issue.iter().chain(&["surfel_hd95", "surface_dice_at_1mm"]) {
        assert!(table.lines().any(|l| l.starts_with(k) && !l.contains("undefined")), "{k} missing in\n{table}");
    }
}

#[test]
fn box_volume_and_shift_along_each_axis() {
    let sp = [0.6, 0.9, 2.5];
    let g = Geometry::identity([24, 22, 16], sp).unwrap();
    let (lo, hi) = ([4, 5, 3], [16, 15, 11]);
    let a = boxed(&g, lo, hi);
    for axis in 0..3 {
        for k in 1..3usize {
            let mut blo = lo;
            let mut bhi = hi;
            blo[axis] += k;
            bhi[axis] += k;
            let b = boxed(&g, blo, bhi);
            let e = evaluate(&a, &b, &both()).unwrap();
            let len = (hi[axis] - lo[axis]) as f64;
            let n = (0..3).map(|i| hi[i] - lo[i]).product::<usize>() as f64;
            assert!(close(e.volume_a_ml, n * sp.iter().product::<f64>() / 1000.0, 1e-12));
            assert_eq!(e.volume_ratio, Some(1.0));
            assert!(close(e.dice.unwrap(), (len - k as f64) / len, 1e-12), "axis {axis} k {k}");
            // The farthest surface voxels are the faces normal to the shift: k voxels apart.
            let m = e.medpy.as_ref().unwrap();
            assert!(close(m.hd.unwrap(), k as f64 * sp[axis], 1e-12), "axis {axis} k {k}: {:?}", m.hd);
            // Symmetric configuration: both directions agree.
            assert!(close(m.asd_ab.unwrap(), m.asd_ba.unwrap(), 1e-12));
            let s = e.surfel.as_ref().unwrap();
            assert!(close(s.hd.unwrap(), k as f64 * sp[axis], 1e-12));
            assert!(close(s.area_a_mm2, s.area_b_mm2, 1e-12));
        }
    }
}

#[test]
fn two_single_voxels() {
    // Voxels d apart along y: MedPy distance d*sy; the 8 corners of each voxel
    // are its surfels (equal areas), half at (d-1)*sy and half at d*sy.
    let sp = [0.5, 1.5, 3.0];
    let g = Geometry::identity([5, 9, 4], sp).unwrap();
    for d in 1..5usize {
        let a = Volume::from_fn(g.clone(), |p| u8::from(p == [2, 1, 1]));
        let b = Volume::from_fn(g.clone(), |p| u8::from(p == [2, 1 + d, 1]));
        let e = evaluate(&a, &b, &both()).unwrap();
        assert_eq!(e.dice, Some(0.0));
        let m = e.medpy.unwrap();
        assert!(close(m.asd_ab.unwrap(), d as f64 * sp[1], 1e-12));
        assert!(close(m.hd95.unwrap(), d as f64 * sp[1], 1e-12));
        let s = e.surfel.unwrap();
        assert_eq!((s.surfels_a, s.surfels_b), (8, 8));
        assert!(close(s.asd_ab.unwrap(), (d as f64 - 0.5) * sp[1], 1e-12));
        assert!(close(s.hd.unwrap(), d as f64 * sp[1], 1e-12));
        assert!(close(s.hd95.unwrap(), d as f64 * sp[1], 1e-12));
        // Single corner triangle with half-edges along each axis.
        let (hx, hy, hz) = (sp[0] / 2.0, sp[1] / 2.0, sp[2] / 2.0);
        let tri = 0.5 * ((hy * hz).powi(2) + (hx * hz).powi(2) + (hx * hy).powi(2)).sqrt();
        assert!(close(s.area_a_mm2, 8.0 * tri, 1e-12));
        let within1 = if (d as f64 - 1.0) * sp[1] <= 1.0 { 0.5 } else { 0.0 } + if d as f64 * sp[1] <= 1.0 { 0.5 } else { 0.0 };
        assert!(close(s.surface_dice[0].1.unwrap(), within1, 1e-12));
    }
}

#[test]
fn concentric_spheres_on_an_anisotropic_grid() {
    // Radii 10 and 13 mm: the surfaces are 3 mm apart up to the voxel size.
    let sp = [0.5, 0.6, 1.5];
    let g = Geometry::identity([70, 60, 24], sp).unwrap();
    let c = [17.5, 18.0, 17.25];
    let sphere = |r: f64| {
        Volume::from_fn(g.clone(), |p| {
            let d2: f64 = (0..3).map(|a| (p[a] as f64 * sp[a] - c[a]).powi(2)).sum();
            u8::from(d2 <= r * r)
        })
    };
    let (a, b) = (sphere(10.0), sphere(13.0));
    let e = evaluate(&a, &b, &both()).unwrap();
    let v = |r: f64| 4.0 / 3.0 * std::f64::consts::PI * r.powi(3) / 1000.0;
    assert!(close(e.volume_a_ml, v(10.0), 0.02), "{}", e.volume_a_ml);
    assert!(close(e.volume_ratio.unwrap(), (13.0f64 / 10.0).powi(3), 0.03));
    assert!(close(e.dice.unwrap(), 2.0 * 1000.0 / (1000.0 + 2197.0), 0.02));
    let m = e.medpy.unwrap();
    for d in [m.asd_ab, m.asd_ba, m.assd] {
        assert!((d.unwrap() - 3.0).abs() < 0.5, "{d:?}");
    }
    assert!((m.hd.unwrap() - 3.0).abs() < 1.5);
    let s = e.surfel.unwrap();
    assert!((s.assd.unwrap() - 3.0).abs() < 0.5, "{:?}", s.assd);
}

#[test]
fn empty_masks_are_undefined_never_zero() {
    let g = Geometry::identity([12, 12, 6], [0.7, 0.7, 2.5]).unwrap();
    let empty = Volume::filled(g.clone(), 0u8);
    let full = boxed(&g, [2, 2, 1], [9, 8, 4]);
    let distance_keys = ["asd_ab", "asd_ba", "assd", "hd", "hd95", "surfel_asd_ab", "surfel_hd", "surfel_hd95"];

    let e = evaluate(&empty, &full, &both()).unwrap(); // a empty
    assert_eq!(e.dice, Some(0.0));
    assert_eq!(e.volume_ratio, None);
    assert_eq!(e.volume_similarity, Some(-2.0));
    let j = e.to_json();
    for k in distance_keys.iter().chain(&["volume_ratio"]) {
        assert!(j[k].is_null(), "{k}");
        assert!(j["undefined"][k].as_str().unwrap().contains("empty"), "{k}");
    }
    assert_eq!(j["surface_dice_at_1mm"], 0.0);

    let e = evaluate(&full, &empty, &both()).unwrap(); // b empty
    assert_eq!((e.dice, e.volume_ratio, e.volume_similarity), (Some(0.0), Some(0.0), Some(2.0)));
    let j = e.to_json();
    for k in distance_keys {
        assert!(j[k].is_null() && j["undefined"][k].is_string(), "{k}");
    }

    let e = evaluate(&empty, &empty, &both()).unwrap();
    assert_eq!((e.dice, e.volume_ratio, e.volume_similarity), (None, None, None));
    assert_eq!(e.volume_a_ml, 0.0);
    let j = e.to_json();
    for k in distance_keys.iter().chain(&["dice", "volume_similarity", "surface_dice_at_2mm"]) {
        assert!(j[k].is_null() && j["undefined"][k].is_string(), "{k}");
    }
    assert!(e.to_table().contains("undefined (both masks are empty"));
}

#[test]
fn other_grid_is_resampled_with_a_warning() {
    let ga = Geometry::identity([20, 20, 10], [1.0, 1.0, 2.0]).unwrap();
    let gb = Geometry::identity([40, 40, 20], [0.5, 0.5, 1.0]).unwrap();
    let a = boxed(&ga, [4, 4, 2], [12, 12, 6]);
    // The same box on the finer grid: voxel centres i*0.5 within [4, 12) mm etc.
    let b = Volume::from_fn(gb.clone(), |[i, j, k]| {
        let (x, y, z) = (i as f64 * 0.5, j as f64 * 0.5, k as f64 * 1.0);
        u8::from((3.5..11.5).contains(&x) && (3.5..11.5).contains(&y) && (3.0..11.0).contains(&z))
    });
    assert!(evaluate(&a, &b, &EvalOptions::default()).is_err());
    let e = evaluate_resampling(&a, &b, &EvalOptions::default());
    assert!(e.resampled);
    assert_eq!(e.to_json()["resampled_b_onto_a"], true);
    assert!(e.warnings[0].contains("nearest neighbour"));
    assert_eq!(e.dice, Some(1.0));
}

// ---- brute force -----------------------------------------------------------

fn mask_from(dims: [usize; 3], sp: [f64; 3], bits: &[bool]) -> Mask {
    let g = Geometry::identity(dims, sp).unwrap();
    let mut n = 0;
    Volume::from_fn(g, |_| {
        n += 1;
        u8::from(bits[n - 1])
    })
}

fn at(m: &Mask, p: [i64; 3]) -> bool {
    m.checked_get(p).is_some_and(|&v| v != 0)
}

fn brute_border(m: &Mask) -> Vec<[f64; 3]> {
    let [nx, ny, nz] = m.dims();
    let sp = m.geometry().spacing();
    let mut out = vec![];
    for z in 0..nz as i64 {
        for y in 0..ny as i64 {
            for x in 0..nx as i64 {
                let p = [x, y, z];
                if at(m, p) {
                    let nb = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
                    if nb.iter().any(|d| !at(m, [x + d[0], y + d[1], z + d[2]])) {
                        out.push([x as f64 * sp[0], y as f64 * sp[1], z as f64 * sp[2]]);
                    }
                }
            }
        }
    }
    out
}

fn nearest(p: &[f64; 3], set: &[[f64; 3]]) -> f64 {
    set.iter().map(|q| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()).fold(f64::INFINITY, f64::min)
}

/// Corner surfels: (position mm, is-surfel) by looking at the 8 voxels around each corner.
fn brute_surfels(m: &Mask) -> Vec<([f64; 3], u8)> {
    let [nx, ny, nz] = m.dims();
    let sp = m.geometry().spacing();
    let mut out = vec![];
    for z in 0..=nz as i64 {
        for y in 0..=ny as i64 {
            for x in 0..=nx as i64 {
                let mut code = 0u8;
                for (kz, ky, kx) in (0..8).map(|i| (i >> 2, (i >> 1) & 1, i & 1)) {
                    if at(m, [x - 1 + kx, y - 1 + ky, z - 1 + kz]) {
                        code |= 1 << (7 - (4 * kz + 2 * ky + kx));
                    }
                }
                if code != 0 && code != 255 {
                    out.push(([x as f64 * sp[0], y as f64 * sp[1], z as f64 * sp[2]], code));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn matches_brute_force(
        nx in 1usize..7, ny in 1usize..7, nz in 1usize..6,
        sx in 0.3f64..3.0, sy in 0.3f64..3.0, sz in 0.3f64..3.0,
        ba in proptest::collection::vec(any::<bool>(), 252),
        bb in proptest::collection::vec(any::<bool>(), 252),
    ) {
        let a = mask_from([nx, ny, nz], [sx, sy, sz], &ba);
        let b = mask_from([nx, ny, nz], [sx, sy, sz], &bb);
        let e = evaluate(&a, &b, &both()).unwrap();
        let (sa, sb) = (brute_border(&a), brute_border(&b));
        if sa.is_empty() || sb.is_empty() {
            prop_assert!(e.medpy.as_ref().unwrap().assd.is_none());
            return Ok(());
        }
        let dab: Vec<f64> = sa.iter().map(|p| nearest(p, &sb)).collect();
        let dba: Vec<f64> = sb.iter().map(|p| nearest(p, &sa)).collect();
        let m = e.medpy.as_ref().unwrap();
        prop_assert!(close(m.asd_ab.unwrap(), dab.iter().sum::<f64>() / dab.len() as f64, 1e-9));
        prop_assert!(close(m.asd_ba.unwrap(), dba.iter().sum::<f64>() / dba.len() as f64, 1e-9));
        let mut pooled: Vec<f64> = dab.iter().chain(&dba).copied().collect();
        pooled.sort_by(f64::total_cmp);
        prop_assert!(close(m.assd.unwrap(), pooled.iter().sum::<f64>() / pooled.len() as f64, 1e-9));
        prop_assert!(close(m.hd.unwrap(), *pooled.last().unwrap(), 1e-9));
        let h = (pooled.len() - 1) as f64 * 0.95;
        let lo = h.floor() as usize;
        let want = pooled[lo] + (pooled[(lo + 1).min(pooled.len() - 1)] - pooled[lo]) * (h - lo as f64);
        prop_assert!(close(m.hd95.unwrap(), want, 1e-9));

        // Surfels: count, and the unweighted structure of the distances.
        let (ca, cb) = (brute_surfels(&a), brute_surfels(&b));
        let s = e.surfel.as_ref().unwrap();
        prop_assert_eq!((s.surfels_a, s.surfels_b), (ca.len(), cb.len()));
        let pb: Vec<[f64; 3]> = cb.iter().map(|c| c.0).collect();
        let pa: Vec<[f64; 3]> = ca.iter().map(|c| c.0).collect();
        let max_ab = ca.iter().map(|c| nearest(&c.0, &pb)).fold(0.0, f64::max);
        let max_ba = cb.iter().map(|c| nearest(&c.0, &pa)).fold(0.0, f64::max);
        prop_assert!(close(s.hd.unwrap(), max_ab.max(max_ba), 1e-9));
        let table = liverseg_metrics::surfel::area_table([sx, sy, sz]);
        let (mut num, mut den) = (0.0, 0.0);
        for c in &ca {
            num += nearest(&c.0, &pb) * table[c.1 as usize];
            den += table[c.1 as usize];
        }
        prop_assert!(close(s.asd_ab.unwrap(), num / den, 1e-9));
    }
}
