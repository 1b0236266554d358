//! Every pair of `../shared/metrics/reference.json`, both conventions: MedPy
//! 0.5.2 for the default keys and DeepMind surface-distance for the surfel keys.
//! Skips cleanly without `../shared`, or while the NIfTI reader is missing.

use liverseg_metrics::{evaluate, EvalOptions, Evaluation, SurfaceConvention};
use serde_json::Value;
use std::path::Path;

const REL: f64 = 1e-3;

/// Reference numbers; "NaN"/"Infinity" strings are non-finite.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        _ => None,
    }
}

fn check(failures: &mut Vec<String>, worst: &mut f64, what: &str, got: Option<f64>, want: f64) {
    match got {
        Some(g) => {
            let rel = (g - want).abs() / want.abs().max(1e-9);
            let rel = if g == want { 0.0 } else { rel };
            *worst = worst.max(rel);
            if rel > REL {
                failures.push(format!("{what}: got {g}, reference {want} (rel {rel:.2e})"));
            }
        }
        None => failures.push(format!("{what}: got undefined, reference {want}")),
    }
}

fn load(path: &Path) -> Option<liverseg_volume::Mask> {
    match liverseg_io::read_mask(path, None, &Default::default()) {
        Ok((m, _)) => Some(m),
        Err(e) if e.to_string().contains("not implemented yet") => None,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn evaluate_pair(dir: &Path) -> Option<Evaluation> {
    let a = load(&dir.join("a.nii.gz"))?;
    let b = load(&dir.join("b.nii.gz"))?;
    let opts = EvalOptions { convention: SurfaceConvention::Both, tolerances_mm: vec![1.0, 2.0] };
    Some(evaluate(&a, &b, &opts).expect("reference pairs share a grid"))
}

#[test]
fn reproduces_reference_json() {
    let Some(root) = liverseg_testdata::require_shared!("metrics/reference.json") else { return };
    let root = root.parent().unwrap().to_path_buf();
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(root.join("reference.json")).unwrap()).unwrap();
    let mut failures = vec![];
    let mut worst = 0.0f64;
    let mut done = 0;
    for (id, pair) in reference["pairs"].as_object().unwrap() {
        let Some(e) = evaluate_pair(&root.join(id)) else {
            eprintln!("SKIP reproduces_reference_json: liverseg_io cannot read NIfTI yet");
            return;
        };
        done += 1;
        let c = &pair["counts"];
        assert_eq!(e.voxels_a as u64, c["voxels_a"].as_u64().unwrap(), "{id}");
        assert_eq!(e.voxels_b as u64, c["voxels_b"].as_u64().unwrap(), "{id}");
        assert_eq!(e.voxels_intersection as u64, c["voxels_intersection"].as_u64().unwrap(), "{id}");
        let mut chk = |what: &str, got: Option<f64>, want: Option<f64>| match want {
            Some(w) if w.is_finite() => check(&mut failures, &mut worst, &format!("{id} {what}"), got, w),
            // Reference NaN/inf/error: we must say "undefined", never a number.
            _ => {
                if got.is_some() {
                    failures.push(format!("{id} {what}: got {got:?}, reference has no finite value"));
                }
            }
        };
        chk("volume_a_ml", Some(e.volume_a_ml), num(&c["volume_a_ml"]));
        chk("volume_b_ml", Some(e.volume_b_ml), num(&c["volume_b_ml"]));
        // Our RV is V_b / V_a, the reciprocal of the reference's V1/V2.
        let rv = num(&c["volume_ratio_from_counts"]).map(|r| 1.0 / r);
        chk("volume_ratio", e.volume_ratio, rv.filter(|r| r.is_finite()));
        chk("volume_similarity", e.volume_similarity, num(&c["volume_similarity_from_counts"]));

        let mp = &pair["results"]["medpy"]["values"];
        chk("dice", e.dice, num(&mp["dice"]));
        let m = e.medpy.as_ref().unwrap();
        for (k, got) in [("asd_a_to_b", m.asd_ab), ("asd_b_to_a", m.asd_ba), ("assd", m.assd), ("hd", m.hd), ("hd95", m.hd95)] {
            chk(&format!("medpy {k}"), got, num(&mp[k]));
        }
        let sd = &pair["results"]["surface_distance"]["values"];
        let s = e.surfel.as_ref().unwrap();
        assert_eq!(s.surfels_a as u64, sd["surfels_a"].as_u64().unwrap(), "{id}");
        assert_eq!(s.surfels_b as u64, sd["surfels_b"].as_u64().unwrap(), "{id}");
        chk("surfel area a", Some(s.area_a_mm2), num(&sd["surface_area_a_mm2"]));
        chk("surfel area b", Some(s.area_b_mm2), num(&sd["surface_area_b_mm2"]));
        for (k, got) in [
            ("asd_a_to_b", s.asd_ab),
            ("asd_b_to_a", s.asd_ba),
            ("assd_mean_of_directed", s.assd),
            ("assd_pooled_area_weighted", s.assd_pooled),
            ("hd", s.hd),
            ("hd95", s.hd95),
            ("surface_dice_at_1mm", s.surface_dice[0].1),
            ("surface_dice_at_2mm", s.surface_dice[1].1),
        ] {
            chk(&format!("surfel {k}"), got, num(&sd[k]));
        }
        // Away from the image border MedPy's surface is SimpleITK's LabelContour.
        if id != "a_totalseg_example_v1_vs_v2" && e.voxels_a > 0 && e.voxels_b > 0 {
            let si = &pair["results"]["simpleitk"]["values"];
            assert_eq!(m.surface_voxels_a as u64, si["surface_voxels_a"].as_u64().unwrap(), "{id}");
            assert_eq!(m.surface_voxels_b as u64, si["surface_voxels_b"].as_u64().unwrap(), "{id}");
        }
    }
    eprintln!("reference pairs: {done}, worst relative difference {worst:.2e}");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
