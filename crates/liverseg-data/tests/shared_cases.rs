//! The training-set loader on the real cases in ../shared/data/cases
//! (skipped when absent): leave-one-out split, negative cases kept, liver
//! volumes preserved, and the cache making a second load fast and identical.

use liverseg_data::{load_training_set, LoadedCase};
use liverseg_preprocess::PreprocessConfig;

fn reference_liver_voxels(case: &std::path::Path) -> u64 {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    json["liver_voxels"]
        .as_u64()
        .expect("case.json has liver_voxels")
}

#[test]
fn shared_cases_leave_one_out() {
    let Some(cases_dir) = liverseg_testdata::require_shared!("data/cases") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tmp.path().join("train.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[source]]\nname = \"shared\"\nlayout = \"cases\"\npath = {:?}\n[split]\nvalidation = [\"ircadb01-07\"]\n",
            cases_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    let ids: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&cases_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("ct.nii.gz").is_file())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // Coarse grid keeps the test short; the method's 1.4 mm is no different in kind.
    let config = PreprocessConfig {
        spacing_mm: 4.0,
        ..Default::default()
    };
    let cache = tmp.path().join("cache");
    let mut seen = Vec::new();
    let t = std::time::Instant::now();
    let set = load_training_set(&manifest, &config, Some(&cache), &mut |i, n, id| {
        seen.push((i, n, id.to_string()))
    })
    .unwrap();
    let cold = t.elapsed();
    assert_eq!(seen.len(), ids.len());
    assert!(seen
        .iter()
        .enumerate()
        .all(|(k, (i, n, _))| *i == k + 1 && *n == ids.len()));

    let names = |v: &[LoadedCase]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(names(&set.validation), ["ircadb01-07"]);
    assert_eq!(
        set.train.len() + 1,
        ids.len(),
        "train {:?}",
        names(&set.train)
    );
    assert!(set.duplicates.groups.is_empty(), "{:?}", set.duplicates);
    let mut hashes: Vec<&str> = set
        .train
        .iter()
        .chain(&set.validation)
        .map(|c| c.content_hash.as_str())
        .collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), ids.len());

    let mut negatives = 0;
    for case in set.train.iter().chain(&set.validation) {
        let p = &case.prepared;
        let label = p.label.as_ref().expect("training cases carry their label");
        assert_eq!(p.hu.geometry().spacing(), [4.0; 3]);
        assert!(label.geometry().same_grid(p.hu.geometry()));
        let want = reference_liver_voxels(&cases_dir.join(&case.id));
        if want == 0 {
            // A negative case: background only, and still a training case.
            assert_eq!(label.count_foreground(), 0, "{}", case.id);
            negatives += 1;
            continue;
        }
        let want_ml = want as f64 * p.original.voxel_volume_mm3() / 1000.0;
        let ratio = label.foreground_ml() / want_ml;
        assert!(
            (0.9..1.1).contains(&ratio),
            "{}: prepared liver {:.0} ml vs {want_ml:.0} ml",
            case.id,
            label.foreground_ml()
        );
        let inside_body = label
            .data()
            .iter()
            .zip(p.body.data())
            .filter(|(l, b)| **l != 0 && **b != 0)
            .count();
        assert!(
            inside_body as f64 > 0.95 * label.count_foreground() as f64,
            "{}: liver outside the body",
            case.id
        );
        // Liver HU after the median filter: soft tissue, not air or bone.
        let (sum, n) =
            p.hu.data()
                .iter()
                .zip(label.data())
                .filter(|(_, l)| **l != 0)
                .fold((0.0, 0), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
        let mean = sum / f64::from(n);
        assert!(
            (0.0..250.0).contains(&mean),
            "{}: mean liver HU {mean}",
            case.id
        );
    }
    assert!(
        negatives >= 1
            || !ids
                .iter()
                .any(|id| reference_liver_voxels(&cases_dir.join(id)) == 0)
    );

    // Second load: every case from the cache, identical, and faster.
    let t = std::time::Instant::now();
    let again = load_training_set(&manifest, &config, Some(&cache), &mut |_, _, _| {}).unwrap();
    let warm = t.elapsed();
    eprintln!(
        "{} shared cases at 4 mm: first load {cold:?}, from the cache {warm:?}",
        ids.len()
    );
    assert!(warm * 2 < cold, "cache {warm:?} vs first load {cold:?}");
    for (a, b) in again.train.iter().zip(&set.train) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.content_hash, b.content_hash);
        assert_eq!(a.prepared.hu.data(), b.prepared.hu.data());
        assert_eq!(
            a.prepared.label.as_ref().unwrap().data(),
            b.prepared.label.as_ref().unwrap().data()
        );
    }
}
