//! The worklist: which CT and which starting mask make up each case, and the
//! rules for case ids and reviewer names (they become file names, so anything
//! that could climb out of the output folder is refused).

use crate::ReviewError;
use std::path::{Path, PathBuf};

/// One case to review: a CT and the segmentation to correct, on the CT's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSpec {
    pub id: String,
    pub ct: PathBuf,
    pub mask: PathBuf,
}

/// Case ids and reviewer names are used as file names: ASCII letters, digits,
/// `.`, `_`, `-`; 1-64 characters; not starting with `.` (no hidden files, no
/// `..`). Everything else — `/`, `\`, NUL, `%2e%2e`, spaces — is refused.
pub fn validate_name(kind: &str, s: &str) -> Result<(), ReviewError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReviewError::BadRequest(format!(
            "invalid {kind} {s:?}: use 1-64 of A-Z a-z 0-9 . _ - and do not start with '.'"
        )))
    }
}

const CT_STEMS: [&str; 3] = ["ct", "image", "imaging"];
const MASK_STEMS: [&str; 6] = ["liver", "mask", "seg", "segmentation", "cnn", "label"];

fn stem_of(name: &str) -> Option<&str> {
    liverseg_io::strip_extension(name, &liverseg_io::VOLUME_FILE_EXTENSIONS)
}

/// A case folder: `ct.*` (or `image.*`, or a DICOM sub-folder `ct/`) and `liver.*`
/// (or `mask.*`, `seg.*`, ...), as in `data/cases/<id>/`. The id is the folder name.
pub fn case_from_folder(dir: &Path) -> Result<CaseSpec, ReviewError> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ReviewError::Input(format!("{}: {e}", dir.display())))?;
    let mut ct = None;
    let mut mask = None;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let stem = if p.is_dir() {
            Some(name.as_str())
        } else {
            stem_of(&name)
        };
        let Some(stem) = stem.map(str::to_ascii_lowercase) else {
            continue;
        };
        if CT_STEMS.contains(&stem.as_str()) && ct.is_none() {
            ct = Some(p.clone());
        } else if MASK_STEMS.contains(&stem.as_str()) && mask.is_none() {
            mask = Some(p.clone());
        }
    }
    match (ct, mask) {
        (Some(ct), Some(mask)) => {
            validate_name("case id (folder name)", &id)?;
            Ok(CaseSpec { id, ct, mask })
        }
        (None, _) => Err(ReviewError::Input(format!(
            "{}: no CT (ct.nii.gz, ct.mha, a ct/ DICOM folder, ...)",
            dir.display()
        ))),
        (_, None) => Err(ReviewError::Input(format!(
            "{}: no mask to correct (liver.nii.gz, mask.*, seg.*, ...)",
            dir.display()
        ))),
    }
}

/// Manifest CSV: header `case,ct,mask` (column order free, more columns
/// ignored), read by liverseg-io's manifest reader: relative paths are
/// relative to the manifest's folder, `#` starts a comment line, quoted
/// fields may hold commas.
pub fn read_manifest(path: &Path) -> Result<Vec<CaseSpec>, ReviewError> {
    let input = |e: liverseg_io::Error| ReviewError::Input(e.to_string());
    let manifest = liverseg_io::manifest::Manifest::read(path, &["case", "ct", "mask"]).map_err(input)?;
    let mut out = Vec::new();
    for row in manifest.rows() {
        let id = manifest.get(row, "case");
        validate_name("case id", id).map_err(|e| input(manifest.error(row, e)))?;
        out.push(CaseSpec {
            id: id.to_string(),
            ct: manifest.path_of(row, "ct").map_err(input)?,
            mask: manifest.path_of(row, "mask").map_err(input)?,
        });
    }
    Ok(out)
}

/// Build the worklist from positional arguments (case folders, a folder of case
/// folders, or a manifest `.csv`) and explicit `--ct/--mask` pairs.
pub fn collect_cases(
    inputs: &[PathBuf],
    pairs: &[(PathBuf, PathBuf)],
) -> Result<Vec<CaseSpec>, ReviewError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_file() {
            out.extend(read_manifest(p)?);
        } else if p.is_dir() {
            match case_from_folder(p) {
                Ok(c) => out.push(c),
                Err(first) => {
                    // A folder of case folders (e.g. data/cases/).
                    let mut subs: Vec<PathBuf> = std::fs::read_dir(p)
                        .map_err(|e| ReviewError::Input(format!("{}: {e}", p.display())))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|s| {
                            s.is_dir()
                                && !s
                                    .file_name()
                                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        })
                        .collect();
                    subs.sort();
                    let found: Vec<CaseSpec> = subs
                        .iter()
                        .filter_map(|s| case_from_folder(s).ok())
                        .collect();
                    if found.is_empty() {
                        return Err(first);
                    }
                    out.extend(found);
                }
            }
        } else {
            return Err(ReviewError::Input(format!(
                "{}: no such file or folder",
                p.display()
            )));
        }
    }
    for (ct, mask) in pairs {
        let name = ct
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let stem = stem_of(&name).unwrap_or(&name);
        // `x/ct.nii.gz` says nothing about the case; use the folder name then.
        let id = if CT_STEMS.contains(&stem.to_ascii_lowercase().as_str()) {
            ct.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| stem.to_string())
        } else {
            stem.to_string()
        };
        validate_name("case id (from the CT file name)", &id)?;
        out.push(CaseSpec {
            id,
            ct: ct.clone(),
            mask: mask.clone(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &out {
        if !seen.insert(c.id.clone()) {
            return Err(ReviewError::Input(format!(
                "case id {:?} is given twice",
                c.id
            )));
        }
    }
    if out.is_empty() {
        return Err(ReviewError::Input("no cases given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a b",
            "%2e%2e",
            "a\0b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(validate_name("case id", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["case01", "LiTS-7", "a.b_c", "0"] {
            validate_name("case id", good).unwrap();
        }
    }

    #[test]
    fn folders_manifests_and_pairs() {
        let d = tempfile::tempdir().unwrap();
        let c1 = d.path().join("cases/c1");
        std::fs::create_dir_all(&c1).unwrap();
        std::fs::write(c1.join("ct.nii.gz"), b"").unwrap();
        std::fs::write(c1.join("liver.nii.gz"), b"").unwrap();
        std::fs::write(c1.join("case.json"), b"{}").unwrap();
        let c2 = d.path().join("cases/c2");
        std::fs::create_dir_all(&c2).unwrap();
        std::fs::write(c2.join("image.mha"), b"").unwrap();
        std::fs::write(c2.join("seg.mha"), b"").unwrap();
        let all = collect_cases(&[d.path().join("cases")], &[]).unwrap();
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["c1", "c2"]
        );
        assert_eq!(all[0].ct, c1.join("ct.nii.gz"));
        assert_eq!(all[1].mask, c2.join("seg.mha"));

        let m = d.path().join("list.csv");
        std::fs::write(
            &m,
            "# worklist\ncase,mask,ct\nx1,cases/c1/liver.nii.gz,cases/c1/ct.nii.gz\n",
        )
        .unwrap();
        let all = collect_cases(
            std::slice::from_ref(&m),
            &[(c2.join("image.mha"), c2.join("seg.mha"))],
        )
        .unwrap();
        assert_eq!(
            all[0],
            CaseSpec {
                id: "x1".into(),
                ct: d.path().join("cases/c1/ct.nii.gz"),
                mask: d.path().join("cases/c1/liver.nii.gz")
            }
        );
        assert_eq!(
            all[1].id, "c2",
            "a CT named image.* takes its folder's name"
        );
        let all = collect_cases(&[], &[(c1.join("ct.nii.gz"), c1.join("liver.nii.gz"))]).unwrap();
        assert_eq!(all[0].id, "c1");

        std::fs::write(&m, "case,ct,mask\n../evil,a,b\n").unwrap();
        assert!(collect_cases(std::slice::from_ref(&m), &[]).is_err());
        std::fs::write(&m, "case,ct,mask\nc1,a,b\nc1,a,b\n").unwrap();
        assert!(collect_cases(&[m], &[])
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
