//! `liverseg evaluate` and `liverseg study` end to end on masks written here.

use liverseg_volume::{DynVolume, Geometry, Volume};
use std::path::Path;
use std::process::Command;

fn write_box(path: &Path, g: &Geometry, lo: [usize; 3], hi: [usize; 3]) {
    let m = Volume::from_fn(g.clone(), |p| u8::from((0..3).all(|a| p[a] >= lo[a] && p[a] < hi[a])));
    liverseg_io::write_image(path, &DynVolume::from(m)).unwrap();
}

fn liverseg(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_liverseg")).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn evaluate_one_pair_json_table_help_and_grids() {
    let d = tempfile::tempdir().unwrap();
    let g = Geometry::identity([30, 28, 12], [0.8, 0.8, 2.0]).unwrap();
    let (a, b, e) = (d.path().join("a.nii.gz"), d.path().join("b.nii.gz"), d.path().join("e.nii.gz"));
    write_box(&a, &g, [5, 5, 2], [20, 20, 9]);
    write_box(&b, &g, [7, 5, 2], [22, 20, 9]);
    write_box(&e, &g, [0, 0, 0], [0, 0, 0]);
    let (ok, out, err) = liverseg(&["evaluate", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["dice", "volume_a_ml", "volume_b_ml", "volume_ratio", "volume_similarity", "asd_ab", "asd_ba", "assd", "hd", "hd95"] {
        assert!(j[k].is_number(), "{k}: {}", j[k]);
    }
    assert!((j["dice"].as_f64().unwrap() - 13.0 / 15.0).abs() < 1e-12);
    assert!((j["hd"].as_f64().unwrap() - 1.6).abs() < 1e-6, "two voxels of 0.8 mm (float32 spacing)");
    assert_eq!(j["resampled_b_onto_a"], false);

    let (ok, out, _) = liverseg(&["evaluate", a.to_str().unwrap(), b.to_str().unwrap(), "--surface", "surfel"]);
    assert!(ok);
    assert!(out.contains("surfel_hd95") && out.contains("surface_dice_at_1mm") && !out.contains("\nassd"));

    // Empty b: distances undefined with a reason, never 0.
    let (ok, out, _) = liverseg(&["evaluate", a.to_str().unwrap(), e.to_str().unwrap(), "--json"]);
    assert!(ok);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(j["assd"].is_null() && j["undefined"]["assd"].as_str().unwrap().contains("empty"));
    assert_eq!(j["dice"], 0.0);

    // b on a finer grid: resampled, and said so.
    let fine = Geometry::identity([60, 56, 24], [0.4, 0.4, 1.0]).unwrap();
    let bf = d.path().join("b_fine.nii.gz");
    let m = Volume::from_fn(fine, |[i, j, k]| {
        let p = [i as f64 * 0.4, j as f64 * 0.4, k as f64];
        u8::from((5.4..17.4).contains(&p[0]) && (3.8..15.8).contains(&p[1]) && (3.6..17.6).contains(&p[2]))
    });
    liverseg_io::write_image(&bf, &DynVolume::from(m)).unwrap();
    let (ok, out, err) = liverseg(&["evaluate", a.to_str().unwrap(), bf.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["resampled_b_onto_a"], true);
    assert!(err.contains("resampled onto a's grid with nearest neighbour"));

    let (ok, out, _) = liverseg(&["evaluate", "--help"]);
    assert!(ok);
    for needle in ["V_b / V_a", "2 (V_a - V_b) / (V_a + V_b)", "pooled list", "linear interpolation", "nearest-rank", "image border", "Empty masks"] {
        assert!(out.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn evaluate_pairs_and_study() {
    let d = tempfile::tempdir().unwrap();
    let g = Geometry::identity([24, 24, 10], [1.0, 1.0, 2.5]).unwrap();
    let (da, db, dc) = (d.path().join("ref"), d.path().join("seg"), d.path().join("seg2"));
    for p in [&da, &db, &dc] {
        std::fs::create_dir(p).unwrap();
    }
    for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
        write_box(&da.join(format!("{id}.nii.gz")), &g, [4, 4, 2], [16, 16, 8]);
        write_box(&db.join(format!("{id}.nii.gz")), &g, [4 + i, 4, 2], [16 + i, 16, 8]);
        write_box(&dc.join(format!("{id}.nii.gz")), &g, [4, 4, 2], [16, 17 + i, 8]);
    }
    std::fs::write(db.join("notes.txt"), "not an image").unwrap();
    let out = d.path().join("eval");
    let (ok, table, err) = liverseg(&["evaluate", "--pairs", da.to_str().unwrap(), db.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(table.contains("c3") && table.contains("median"));
    let cases = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    assert_eq!(cases.lines().count(), 4);
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("evaluation.json")).unwrap()).unwrap();
    assert_eq!(j["summary"]["dice"]["n"], 3);
    assert_eq!(j["summary"]["dice"]["max"], 1.0);

    // Manifest form.
    let man = d.path().join("m.csv");
    std::fs::write(&man, "case,a,b\nx,ref/c1.nii.gz,seg/c2.nii.gz\n").unwrap();
    let (ok, out, _) = liverseg(&["evaluate", "--pairs", man.to_str().unwrap(), "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["cases"][0]["case"], "x");

    let scores = d.path().join("scores.csv");
    std::fs::write(&scores, "case,reviewer,score\nc1,E1,4\nc2,E1,3\nc3,E1,2.5\n").unwrap();
    let sout = d.path().join("study");
    let (ok, md, err) = liverseg(&[
        "study",
        "--set",
        &format!("manual={}", da.display()),
        "--set",
        &format!("cnn={}", db.display()),
        "--set",
        &format!("other={}", dc.display()),
        "--scores",
        scores.to_str().unwrap(),
        "--out",
        sout.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(md.contains("| manual vs cnn | 3 | 0 |"));
    for f in ["report.md", "per_case.csv", "comparisons.csv", "box_dsc.png", "box_msd.svg", "scores.png", "study.json"] {
        assert!(sout.join(f).is_file(), "{f}");
    }
    let (ok, _, err) = liverseg(&["study", "--set", "x", "--out", "y"]);
    assert!(!ok && err.contains("NAME=FOLDER"));
}
