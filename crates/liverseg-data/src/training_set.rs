//! Everything `liverseg train` needs from its data argument in one call:
//! manifest (or folder) -> cases -> loaded through the cache -> duplicates
//! removed -> train / validation split.

use std::path::Path;

use crate::cache::{load_case, LoadedCase};
use crate::datasets::{discover, load_manifest, validation_ids, Manifest, Split};
use crate::duplicates::{dedupe, DuplicateReport};
use crate::{PreprocessConfig, Result};

pub struct TrainingSet {
    pub train: Vec<LoadedCase>,
    pub validation: Vec<LoadedCase>,
    pub duplicates: DuplicateReport,
}

/// Load every case of `manifest` (a manifest file or a dataset folder).
/// `progress(done, total, id)` is called after each case is loaded.
///
/// Duplicates are removed before the split, keeping the first copy (manifest
/// source order). A validation id naming a removed copy moves its kept copy
/// to validation instead, so no copy of a validation case is trained on.
pub fn load_training_set(
    manifest: &Path,
    config: &PreprocessConfig,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<TrainingSet> {
    let loaded = load_manifest(manifest)?;
    load_training_cases(&loaded, manifest, config, cache_dir, progress)
}

/// [`load_training_set`] for a manifest already read (its split possibly
/// replaced, e.g. by `train --validation`); `origin` names it in errors.
pub fn load_training_cases(
    manifest: &Manifest,
    origin: &Path,
    config: &PreprocessConfig,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<TrainingSet> {
    let cases = discover(manifest)?;
    if cases.is_empty() {
        return Err(crate::Error::invalid(origin, "no training case found"));
    }
    // Unknown validation ids fail before minutes of loading.
    let all_ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    validation_ids(&all_ids, &manifest.split)?;

    let mut loaded = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        loaded.push(load_case(case, config, cache_dir)?);
        progress(i + 1, cases.len(), &case.id);
    }
    let (kept, duplicates) = dedupe(loaded);

    let split = match &manifest.split {
        Split::Ids(ids) => {
            let mut kept_ids: Vec<String> = ids
                .iter()
                .map(|id| duplicates.kept_id(id).to_string())
                .collect();
            kept_ids.sort();
            kept_ids.dedup();
            Split::Ids(kept_ids)
        }
        other => other.clone(),
    };
    let kept_ids: Vec<&str> = kept.iter().map(|c| c.id.as_str()).collect();
    let chosen: std::collections::BTreeSet<String> = validation_ids(&kept_ids, &split)?
        .into_iter()
        .map(str::to_string)
        .collect();
    let (validation, train) = kept.into_iter().partition(|c| chosen.contains(&c.id));
    Ok(TrainingSet {
        train,
        validation,
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_phantom::{generate, PhantomConfig};
    use liverseg_volume::DynVolume;

    /// LiTS volume-1 == MSD liver_1; validation names the MSD copy.
    #[test]
    fn a_validation_duplicate_leaves_no_copy_in_train() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let small = PhantomConfig {
            dims: [48, 40, 20],
            spacing: [5.0, 5.0, 8.0],
            ..Default::default()
        };
        let a = generate(&small);
        let b = generate(&PhantomConfig {
            seed: 5,
            ..small.clone()
        });
        let write = |path: &Path, v: DynVolume| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            liverseg_io::write_image(path, &v).unwrap();
        };
        write(&r.join("lits/volume-1.nii.gz"), a.ct.clone().into());
        write(
            &r.join("lits/segmentation-1.nii.gz"),
            a.liver.clone().into(),
        );
        write(&r.join("lits/volume-2.nii.gz"), b.ct.clone().into());
        write(
            &r.join("lits/segmentation-2.nii.gz"),
            b.liver.clone().into(),
        );
        write(&r.join("msd/imagesTr/liver_1.nii.gz"), a.ct.clone().into());
        write(
            &r.join("msd/labelsTr/liver_1.nii.gz"),
            a.liver.clone().into(),
        );
        let manifest = r.join("train.toml");
        let text = |val: &str| {
            format!("[[source]]\nname = \"lits\"\nlayout = \"lits\"\npath = \"lits\"\n[[source]]\nname = \"msd\"\nlayout = \"msd\"\npath = \"msd\"\n[split]\nvalidation = [{val}]\n")
        };
        std::fs::write(&manifest, text("\"msd/liver_1\"")).unwrap();
        let config = PreprocessConfig {
            spacing_mm: 5.0,
            ..Default::default()
        };
        let mut calls = Vec::new();
        let set = load_training_set(&manifest, &config, None, &mut |i, n, id| {
            calls.push((i, n, id.to_string()))
        })
        .unwrap();
        assert_eq!(
            calls,
            [
                (1, 3, "lits/volume-1".into()),
                (2, 3, "lits/volume-2".into()),
                (3, 3, "msd/liver_1".into())
            ]
        );
        let ids = |v: &[LoadedCase]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&set.validation), ["lits/volume-1"]);
        assert_eq!(ids(&set.train), ["lits/volume-2"]);
        assert_eq!(
            set.duplicates.groups[0].ids,
            ["lits/volume-1", "msd/liver_1"]
        );

        // An unknown id fails before anything is loaded.
        std::fs::write(&manifest, text("\"lits/volume-9\"")).unwrap();
        let mut called = false;
        let e = load_training_set(&manifest, &config, None, &mut |_, _, _| called = true)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("lits/volume-9") && !called, "{e}");
    }
}
