//! Training data sources: the public liver dataset layouts, a TOML manifest
//! naming several of them, and the train/validation split.
//!
//! Layouts (all labels read as binary, label >= 1 = liver incl. tumour):
//! - `lits`: `volume-N.nii[.gz]` + `segmentation-N.nii[.gz]`, anywhere below
//!   the folder (the challenge ships them in two "Training Batch" folders);
//! - `msd`: Medical Segmentation Decathlon Task03, `imagesTr/liver_N.nii.gz` +
//!   `labelsTr/liver_N.nii.gz` (macOS `._*` files ignored);
//! - `sliver07`: `liver-origNNN.mhd` + `liver-segNNN.mhd`, anywhere below;
//! - `cases`: `<id>/ct.nii[.gz]` + `<id>/liver.nii[.gz]` (an empty liver is a
//!   valid negative case);
//! - `dicom`: `<id>/PATIENT_DICOM/` CT series + `<id>/MASKS_DICOM/liver/` mask
//!   series (3D-IRCADb), folder names configurable.
//!
//! Case ids: the bare folder id for `cases`, `<source name>/<case>` otherwise
//! (`lits/volume-3`, `msd/liver_3`, `sliver07/liver-orig001`,
//! `ircadb/3Dircadb1.1`). Cases come in manifest source order, then natural
//! order within a source; duplicate removal keeps the first copy, so list the
//! dataset whose copy should survive first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use liverseg_volume::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One training case on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSource {
    /// Unique across all sources of a manifest.
    pub id: String,
    /// The source's name in the manifest.
    pub dataset: String,
    /// CT file (or DICOM series folder).
    pub ct: PathBuf,
    /// Reference liver file (or DICOM mask series folder).
    pub label: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Lits,
    #[serde(alias = "msd-task03", alias = "task03")]
    Msd,
    #[serde(alias = "sliver")]
    Sliver07,
    Cases,
    Dicom,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Lits => "lits",
            Layout::Msd => "msd",
            Layout::Sliver07 => "sliver07",
            Layout::Cases => "cases",
            Layout::Dicom => "dicom",
        }
    }
}

/// One `[[source]]` of a manifest, its path resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    pub name: String,
    pub layout: Layout,
    pub path: PathBuf,
    /// `dicom` layout: the CT series folder inside each case folder.
    #[serde(default = "default_dicom_ct")]
    pub ct: String,
    /// `dicom` layout: the liver mask series folder inside each case folder.
    #[serde(default = "default_dicom_mask")]
    pub mask: String,
}

fn default_dicom_ct() -> String {
    "PATIENT_DICOM".into()
}
fn default_dicom_mask() -> String {
    "MASKS_DICOM/liver".into()
}

impl SourceEntry {
    pub fn new(name: &str, layout: Layout, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            layout,
            path: path.into(),
            ct: default_dicom_ct(),
            mask: default_dicom_mask(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Split {
    /// These case ids are the validation set.
    Ids(Vec<String>),
    /// This fraction of the cases, chosen by `seed`.
    Fraction { fraction: f64, seed: u64 },
    /// Everything trains.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub sources: Vec<SourceEntry>,
    pub split: Split,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    source: Vec<SourceEntry>,
    split: Option<RawSplit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplit {
    validation: Option<Vec<String>>,
    validation_fraction: Option<f64>,
    seed: Option<u64>,
}

/// Read a manifest file, or treat a folder as one source of the layout found
/// in it (no split).
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    if path.is_dir() {
        let layout = detect_layout(path)?;
        return Ok(Manifest {
            sources: vec![SourceEntry::new(layout.name(), layout, path)],
            split: Split::None,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let raw: RawManifest = toml::from_str(&text)
        .map_err(|e| Error::invalid(path, format!("not a valid manifest: {e}")))?;
    if raw.source.is_empty() {
        return Err(Error::invalid(path, "no [[source]] in the manifest"));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    for mut s in raw.source {
        let ok = !s.name.is_empty()
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(Error::invalid(
                path,
                format!(
                    "source name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                    s.name
                ),
            ));
        }
        if !names.insert(s.name.clone()) {
            return Err(Error::invalid(
                path,
                format!("source name {:?} is used twice", s.name),
            ));
        }
        if s.path.is_relative() {
            s.path = base.join(&s.path);
        }
        sources.push(s);
    }
    let split = match raw.split {
        None => Split::None,
        Some(RawSplit {
            validation: Some(_),
            validation_fraction: Some(_),
            ..
        }) => {
            return Err(Error::invalid(
                path,
                "[split] gives both validation ids and validation_fraction; choose one",
            ));
        }
        Some(RawSplit {
            validation: Some(ids),
            seed,
            ..
        }) => {
            if seed.is_some() {
                return Err(Error::invalid(
                    path,
                    "[split] seed only applies to validation_fraction",
                ));
            }
            Split::Ids(ids)
        }
        Some(RawSplit {
            validation_fraction: Some(f),
            seed,
            ..
        }) => {
            if !(0.0..1.0).contains(&f) {
                return Err(Error::invalid(
                    path,
                    format!("[split] validation_fraction {f} is not in [0, 1)"),
                ));
            }
            Split::Fraction {
                fraction: f,
                seed: seed.unwrap_or(0),
            }
        }
        Some(_) => Split::None,
    };
    Ok(Manifest { sources, split })
}

/// Every case of every source, in source order then natural order.
pub fn discover(manifest: &Manifest) -> Result<Vec<CaseSource>> {
    let mut all: Vec<CaseSource> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for source in &manifest.sources {
        if !source.path.is_dir() {
            return Err(Error::invalid(
                &source.path,
                format!("source {:?}: no such folder", source.name),
            ));
        }
        let mut cases = match source.layout {
            Layout::Lits => discover_pairs(
                source,
                &|n| numbered(n, "volume-", &[".nii", ".nii.gz"]),
                &|n| numbered(n, "segmentation-", &[".nii", ".nii.gz"]),
            )?,
            Layout::Sliver07 => {
                discover_pairs(source, &|n| numbered(n, "liver-orig", &[".mhd"]), &|n| {
                    numbered(n, "liver-seg", &[".mhd"])
                })?
            }
            Layout::Msd => discover_msd(source)?,
            Layout::Cases => discover_cases(source)?,
            Layout::Dicom => discover_dicom(source)?,
        };
        if cases.is_empty() {
            return Err(Error::invalid(
                &source.path,
                format!(
                    "source {:?}: no {} cases found",
                    source.name,
                    source.layout.name()
                ),
            ));
        }
        cases.sort_by(|a, b| natural_cmp(&a.id, &b.id));
        for c in cases {
            if let Some(first) = seen.insert(c.id.clone(), c.ct.clone()) {
                return Err(Error::invalid(
                    &c.ct,
                    format!(
                        "case id {:?} is also {}; rename one of the sources",
                        c.id,
                        first.display()
                    ),
                ));
            }
            all.push(c);
        }
    }
    Ok(all)
}

/// (train, validation), each in the input order, before de-duplication. Only
/// the tests split raw sources: training splits the de-duplicated set
/// ([`crate::load_training_cases`]).
#[cfg(test)]
fn split_cases(
    cases: &[CaseSource],
    split: &Split,
) -> Result<(Vec<CaseSource>, Vec<CaseSource>)> {
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let chosen = validation_ids(&ids, split)?;
    Ok(cases
        .iter()
        .cloned()
        .partition(|c| !chosen.contains(c.id.as_str())))
}

/// The validation ids among `ids` for `split` (the de-duplicated training
/// set's split).
pub(crate) fn validation_ids<'a>(ids: &[&'a str], split: &Split) -> Result<BTreeSet<&'a str>> {
    match split {
        Split::None => Ok(BTreeSet::new()),
        Split::Ids(want) => {
            let known: BTreeSet<&str> = ids.iter().copied().collect();
            let unknown: Vec<&str> = want
                .iter()
                .map(String::as_str)
                .filter(|w| !known.contains(w))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::param(
                    "validation",
                    format!("unknown case ids: {}", unknown.join(", ")),
                ));
            }
            Ok(ids
                .iter()
                .copied()
                .filter(|id| want.iter().any(|w| w == id))
                .collect())
        }
        Split::Fraction { fraction, seed } => {
            if !(0.0..1.0).contains(fraction) {
                return Err(Error::param(
                    "validation_fraction",
                    format!("{fraction} is not in [0, 1)"),
                ));
            }
            let n = ids.len();
            let mut count = (fraction * n as f64).round() as usize;
            // Some validation whenever asked for and possible, never all of it.
            if *fraction > 0.0 && n >= 2 {
                count = count.clamp(1, n - 1);
            }
            // Rank by a hash of (seed, id), not a shuffle of positions: adding a
            // case to a dataset moves at most one other case across the split.
            let mut ranked: Vec<(u64, &str)> =
                ids.iter().map(|id| (id_hash(*seed, id), *id)).collect();
            ranked.sort();
            Ok(ranked.into_iter().take(count).map(|(_, id)| id).collect())
        }
    }
}

fn id_hash(seed: u64, id: &str) -> u64 {
    // FNV-1a of the id, then SplitMix64 mixing with the seed: stable across
    // releases (std's hasher is not).
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    SplitMix64(h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Which layout a plain folder holds.
pub fn detect_layout(path: &Path) -> Result<Layout> {
    if path.join("imagesTr").is_dir() && path.join("labelsTr").is_dir() {
        return Ok(Layout::Msd);
    }
    let files = walk(path, 3)?;
    let has = |f: &dyn Fn(&str) -> bool| files.iter().any(|p| file_name(p).is_some_and(f));
    if has(&|n| numbered(n, "volume-", &[".nii", ".nii.gz"]).is_some()) {
        return Ok(Layout::Lits);
    }
    if has(&|n| numbered(n, "liver-orig", &[".mhd"]).is_some()) {
        return Ok(Layout::Sliver07);
    }
    for dir in subfolders(path)? {
        if find_one(&dir, &["ct.nii.gz", "ct.nii"]).is_some() {
            return Ok(Layout::Cases);
        }
        if dir.join(default_dicom_ct()).is_dir() {
            return Ok(Layout::Dicom);
        }
    }
    Err(Error::invalid(
        path,
        "no known dataset layout (LiTS volume-N/segmentation-N, MSD imagesTr/labelsTr, SLIVER07 liver-orig/liver-seg, <id>/ct.nii.gz + liver.nii.gz, <id>/PATIENT_DICOM + MASKS_DICOM/liver)",
    ))
}

fn file_name(p: &Path) -> Option<&str> {
    p.file_name().and_then(|n| n.to_str())
}

/// `prefix<digits><one of exts>` -> the digits.
fn numbered<'a>(name: &'a str, prefix: &str, exts: &[&str]) -> Option<&'a str> {
    let rest = name.strip_prefix(prefix)?;
    let digits = exts.iter().find_map(|e| rest.strip_suffix(e))?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Files below `root` up to `depth` folders down, skipping hidden and macOS
/// `._` entries, sorted.
fn walk(root: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries = read_dir_sorted(root)?;
    for p in entries.drain(..) {
        if p.is_dir() {
            if depth > 0 {
                out.extend(walk(&p, depth - 1)?);
            }
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))? {
        let entry = entry.map_err(|e| Error::file(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn find_one(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Pair image and label files by their number, anywhere below the source.
fn discover_pairs(
    source: &SourceEntry,
    image: &dyn Fn(&str) -> Option<&str>,
    label: &dyn Fn(&str) -> Option<&str>,
) -> Result<Vec<CaseSource>> {
    let files = walk(&source.path, 3)?;
    let mut images: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut labels: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for p in files {
        let Some(name) = file_name(&p) else { continue };
        for (parse, map) in [(image, &mut images), (label, &mut labels)] {
            if let Some(digits) = parse(name) {
                let n: u64 = digits
                    .parse()
                    .map_err(|_| Error::invalid(&p, "case number too large"))?;
                if let Some(other) = map.insert(n, p.clone()) {
                    return Err(Error::invalid(
                        &p,
                        format!("case {n} is also stored as {}; keep one", other.display()),
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (n, ct) in &images {
        let label = labels
            .get(n)
            .ok_or_else(|| Error::invalid(ct, "no matching reference segmentation file"))?;
        let stem = file_name(ct).unwrap_or_default();
        let case = stem
            .trim_end_matches(".gz")
            .trim_end_matches(".nii")
            .trim_end_matches(".mhd");
        out.push(CaseSource {
            id: format!("{}/{case}", source.name),
            dataset: source.name.clone(),
            ct: ct.clone(),
            label: label.clone(),
        });
    }
    if let Some((_, orphan)) = labels.iter().find(|(n, _)| !images.contains_key(n)) {
        return Err(Error::invalid(
            orphan,
            "segmentation without a matching CT volume",
        ));
    }
    Ok(out)
}

fn discover_msd(source: &SourceEntry) -> Result<Vec<CaseSource>> {
    let (images, labels) = (source.path.join("imagesTr"), source.path.join("labelsTr"));
    for d in [&images, &labels] {
        if !d.is_dir() {
            return Err(Error::invalid(d, "MSD layout: folder missing"));
        }
    }
    let mut out = Vec::new();
    for ct in read_dir_sorted(&images)? {
        let Some(name) = file_name(&ct) else { continue };
        let Some(case) = name
            .strip_suffix(".nii.gz")
            .or_else(|| name.strip_suffix(".nii"))
        else {
            continue;
        };
        let label = labels.join(name);
        if !label.is_file() {
            return Err(Error::invalid(
                &ct,
                format!("no label {} for this image", label.display()),
            ));
        }
        out.push(CaseSource {
            id: format!("{}/{case}", source.name),
            dataset: source.name.clone(),
            ct,
            label,
        });
    }
    Ok(out)
}

fn discover_cases(source: &SourceEntry) -> Result<Vec<CaseSource>> {
    let mut out = Vec::new();
    for dir in subfolders(&source.path)? {
        let Some(ct) = find_one(&dir, &["ct.nii.gz", "ct.nii"]) else {
            continue;
        };
        let label = find_one(&dir, &["liver.nii.gz", "liver.nii"])
            .ok_or_else(|| Error::invalid(&dir, "has a ct.nii[.gz] but no liver.nii[.gz]"))?;
        let id = file_name(&dir)
            .ok_or_else(|| Error::invalid(&dir, "case folder name is not UTF-8"))?
            .to_string();
        out.push(CaseSource {
            id,
            dataset: source.name.clone(),
            ct,
            label,
        });
    }
    Ok(out)
}

fn discover_dicom(source: &SourceEntry) -> Result<Vec<CaseSource>> {
    let mut out = Vec::new();
    for dir in subfolders(&source.path)? {
        let ct = dir.join(&source.ct);
        if !ct.is_dir() {
            continue;
        }
        let label = dir.join(&source.mask);
        if !label.is_dir() {
            return Err(Error::invalid(
                &dir,
                format!(
                    "has a CT series folder {} but no mask series folder {}",
                    source.ct, source.mask
                ),
            ));
        }
        let case =
            file_name(&dir).ok_or_else(|| Error::invalid(&dir, "case folder name is not UTF-8"))?;
        out.push(CaseSource {
            id: format!("{}/{case}", source.name),
            dataset: source.name.clone(),
            ct,
            label,
        });
    }
    Ok(out)
}

/// "volume-2" before "volume-10".
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len()
                .cmp(&tb.len())
                .then(ta.cmp(tb))
                .then(sa.len().cmp(&sb.len()))
        } else {
            sa.cmp(sb)
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    fn ids(cases: &[CaseSource]) -> Vec<&str> {
        cases.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["volume-10", "volume-2", "volume-1", "liver_0", "a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "liver_0", "volume-1", "volume-2", "volume-10"]);
    }

    #[test]
    fn every_layout_is_found_and_paired() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        // LiTS in two batch folders, mixed .nii / .nii.gz; a test-set volume is not a case.
        touch(&r.join("lits/Training Batch 1/volume-0.nii"));
        touch(&r.join("lits/Training Batch 1/segmentation-0.nii"));
        touch(&r.join("lits/Training Batch 2/volume-10.nii.gz"));
        touch(&r.join("lits/Training Batch 2/segmentation-10.nii.gz"));
        touch(&r.join("lits/Training Batch 2/volume-2.nii"));
        touch(&r.join("lits/Training Batch 2/segmentation-2.nii"));
        touch(&r.join("lits/test/test-volume-5.nii"));
        // MSD with macOS resource forks and a test image folder.
        touch(&r.join("msd/imagesTr/liver_3.nii.gz"));
        touch(&r.join("msd/labelsTr/liver_3.nii.gz"));
        touch(&r.join("msd/imagesTr/._liver_3.nii.gz"));
        touch(&r.join("msd/imagesTs/liver_200.nii.gz"));
        // SLIVER07.
        touch(&r.join("sliver/scan/liver-orig001.mhd"));
        touch(&r.join("sliver/scan/liver-orig001.raw"));
        touch(&r.join("sliver/label/liver-seg001.mhd"));
        // Cases: a folder without ct is not a case.
        touch(&r.join("cases/b/ct.nii.gz"));
        touch(&r.join("cases/b/liver.nii.gz"));
        touch(&r.join("cases/a/ct.nii"));
        touch(&r.join("cases/a/liver.nii"));
        touch(&r.join("cases/notes/readme.txt"));
        // DICOM.
        touch(&r.join("ircadb/3Dircadb1.1/PATIENT_DICOM/image_0"));
        touch(&r.join("ircadb/3Dircadb1.1/MASKS_DICOM/liver/image_0"));
        touch(&r.join("ircadb/3Dircadb1.1/MASKS_DICOM/bone/image_0"));
        let manifest = r.join("m.toml");
        std::fs::write(
            &manifest,
            r#"
[[source]]
name = "lits"
layout = "lits"
path = "lits"
[[source]]
name = "msd"
layout = "msd"
path = "msd"
[[source]]
name = "sliver07"
layout = "sliver07"
path = "sliver"
[[source]]
name = "local"
layout = "cases"
path = "cases"
[[source]]
name = "ircadb"
layout = "dicom"
path = "ircadb"
[split]
validation = ["a", "lits/volume-2"]
"#,
        )
        .unwrap();
        let m = load_manifest(&manifest).unwrap();
        assert_eq!(m.sources[0].path, r.join("lits"));
        let cases = discover(&m).unwrap();
        assert_eq!(
            ids(&cases),
            [
                "lits/volume-0",
                "lits/volume-2",
                "lits/volume-10",
                "msd/liver_3",
                "sliver07/liver-orig001",
                "a",
                "b",
                "ircadb/3Dircadb1.1"
            ]
        );
        let v10 = &cases[2];
        assert_eq!(v10.ct, r.join("lits/Training Batch 2/volume-10.nii.gz"));
        assert_eq!(
            v10.label,
            r.join("lits/Training Batch 2/segmentation-10.nii.gz")
        );
        assert_eq!(cases[4].label, r.join("sliver/label/liver-seg001.mhd"));
        assert_eq!(cases[5].dataset, "local");
        assert_eq!(
            cases[7].label,
            r.join("ircadb/3Dircadb1.1/MASKS_DICOM/liver")
        );
        let (train, val) = split_cases(&cases, &m.split).unwrap();
        assert_eq!(ids(&val), ["lits/volume-2", "a"]);
        assert_eq!(train.len(), 6);
        // Deterministic.
        assert_eq!(discover(&m).unwrap(), cases);

        // Folders alone: the layout is detected.
        for (dir, layout) in [
            ("lits", Layout::Lits),
            ("msd", Layout::Msd),
            ("sliver", Layout::Sliver07),
            ("cases", Layout::Cases),
            ("ircadb", Layout::Dicom),
        ] {
            let m = load_manifest(&r.join(dir)).unwrap();
            assert_eq!(m.sources[0].layout, layout, "{dir}");
            assert_eq!(m.split, Split::None);
            assert!(!discover(&m).unwrap().is_empty());
        }
        assert_eq!(
            ids(&discover(&load_manifest(&r.join("cases")).unwrap()).unwrap()),
            ["a", "b"]
        );
        assert!(load_manifest(&r.join("cases/notes")).is_err());
    }

    #[test]
    fn missing_partners_and_bad_manifests_are_named() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("lits/volume-1.nii"));
        let e = discover(&load_manifest(&r.join("lits")).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("volume-1.nii") && e.contains("no matching"),
            "{e}"
        );
        touch(&r.join("lits/segmentation-1.nii"));
        touch(&r.join("lits/volume-1.nii.gz"));
        let e = discover(&load_manifest(&r.join("lits")).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("also stored"), "{e}");

        touch(&r.join("cases/x/ct.nii.gz"));
        let e = discover(&load_manifest(&r.join("cases")).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cases/x") && e.contains("liver"), "{e}");

        let bad = |text: &str, want: &str| {
            let p = r.join("bad.toml");
            std::fs::write(&p, text).unwrap();
            let e = load_manifest(&p).unwrap_err().to_string();
            assert!(e.contains("bad.toml") && e.contains(want), "{e}");
        };
        bad(
            "[[source]]\nname = \"a\"\nlayout = \"nope\"\npath = \".\"\n",
            "nope",
        );
        bad("[[source]]\nname = \"a\"\nlayout = \"lits\"\npath = \".\"\n[[source]]\nname = \"a\"\nlayout = \"msd\"\npath = \".\"\n", "twice");
        bad(
            "[[source]]\nname = \"a b\"\nlayout = \"lits\"\npath = \".\"\n",
            "source name",
        );
        bad("", "no [[source]]");
        bad("[[source]]\nname = \"a\"\nlayout = \"lits\"\npath = \".\"\n[split]\nvalidation_fraction = 1.5\n", "validation_fraction");
        bad("[[source]]\nname = \"a\"\nlayout = \"lits\"\npath = \".\"\n[split]\nvalidation = [\"x\"]\nvalidation_fraction = 0.2\n", "choose one");
        bad(
            "[[source]]\nname = \"a\"\nlayout = \"lits\"\npath = \".\"\ncolour = 1\n",
            "colour",
        );

        // An empty source is an error, not zero cases.
        std::fs::create_dir_all(r.join("empty")).unwrap();
        let m = Manifest {
            sources: vec![SourceEntry::new("e", Layout::Lits, r.join("empty"))],
            split: Split::None,
        };
        assert!(discover(&m)
            .unwrap_err()
            .to_string()
            .contains("no lits cases"));
    }

    #[test]
    fn ids_clash_across_sources() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for s in ["one", "two"] {
            touch(&r.join(s).join("c1/ct.nii.gz"));
            touch(&r.join(s).join("c1/liver.nii.gz"));
        }
        let m = Manifest {
            sources: vec![
                SourceEntry::new("one", Layout::Cases, r.join("one")),
                SourceEntry::new("two", Layout::Cases, r.join("two")),
            ],
            split: Split::None,
        };
        let e = discover(&m).unwrap_err().to_string();
        assert!(e.contains("\"c1\""), "{e}");
    }

    #[test]
    fn splits() {
        let cases: Vec<CaseSource> = (0..20)
            .map(|i| CaseSource {
                id: format!("s/c{i}"),
                dataset: "s".into(),
                ct: PathBuf::from(format!("{i}")),
                label: PathBuf::new(),
            })
            .collect();
        let (t, v) = split_cases(&cases, &Split::None).unwrap();
        assert_eq!((t.len(), v.len()), (20, 0));
        let e = split_cases(
            &cases,
            &Split::Ids(vec!["s/c1".into(), "s/zz".into(), "q".into()]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s/zz, q") && !e.contains("s/c1"), "{e}");
        let f = Split::Fraction {
            fraction: 0.2,
            seed: 7,
        };
        let (t, v) = split_cases(&cases, &f).unwrap();
        assert_eq!((t.len(), v.len()), (16, 4));
        assert!(t.iter().all(|c| !v.contains(c)));
        // Same seed, same split; another seed, another split.
        assert_eq!(split_cases(&cases, &f).unwrap().1, v);
        assert_ne!(
            split_cases(
                &cases,
                &Split::Fraction {
                    fraction: 0.2,
                    seed: 8
                }
            )
            .unwrap()
            .1,
            v
        );
        // Adding a case moves at most one case across.
        let mut more = cases.clone();
        more.push(CaseSource {
            id: "s/new".into(),
            dataset: "s".into(),
            ct: PathBuf::new(),
            label: PathBuf::new(),
        });
        let (_, v2) = split_cases(&more, &f).unwrap();
        assert!(v.iter().filter(|c| !v2.contains(c)).count() <= 1);
        // Tiny sets still get one validation case and keep one for training.
        let (t, v) = split_cases(
            &cases[..2],
            &Split::Fraction {
                fraction: 0.1,
                seed: 0,
            },
        )
        .unwrap();
        assert_eq!((t.len(), v.len()), (1, 1));
    }
}
