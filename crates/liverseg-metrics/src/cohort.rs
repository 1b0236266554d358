//! Many pairs of masks: per-case metrics and a cohort summary.
//!
//! Cases are matched by case id: the file name without its image extension
//! (`.nii.gz`, `.nii`, `.mha`, `.mhd`, `.hdr`, `.dcm`) or the name of a
//! sub-folder (a DICOM series). A manifest CSV names them explicitly.

use crate::evaluate::{evaluate_resampling, EvalOptions, Evaluation, MetricsError};
use crate::stats::Summary;
use liverseg_io::atomic::write_atomic;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The case id of a directory entry, or `None` for files that are not images
/// (sidecars, `.raw`/`.img` data files, hidden files).
pub fn case_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().to_string();
    if name.starts_with('.') {
        return None;
    }
    if path.is_dir() {
        return Some(name);
    }
    // A .dcm here is a DICOM-SEG, whose one file holds a whole mask.
    liverseg_io::strip_extension(&name, &liverseg_io::VOLUME_FILE_EXTENSIONS)
        .or_else(|| liverseg_io::strip_extension(&name, &[".dcm"]))
        .map(str::to_string)
}

/// Case id -> path for every image file or sub-folder of `dir`.
pub fn case_entries(dir: &Path) -> Result<BTreeMap<String, PathBuf>, MetricsError> {
    let rd = std::fs::read_dir(dir).map_err(|e| liverseg_io::Error::io(dir, e))?;
    let mut out = BTreeMap::new();
    for entry in rd {
        let p = entry.map_err(|e| liverseg_io::Error::io(dir, e))?.path();
        if let Some(id) = case_id(&p) {
            if let Some(prev) = out.insert(id.clone(), p.clone()) {
                return Err(liverseg_io::Error::invalid(dir, format!("case id {id:?} is given twice ({} and {})", prev.display(), p.display())).into());
            }
        }
    }
    Ok(out)
}

/// One case to compare: `a` is the reference, `b` the second mask.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseInput {
    pub case: String,
    pub a: PathBuf,
    pub b: PathBuf,
}

/// Cases present in both folders; ids found in only one are returned as warnings.
pub fn pairs_from_dirs(dir_a: &Path, dir_b: &Path) -> Result<(Vec<CaseInput>, Vec<String>), MetricsError> {
    let ea = case_entries(dir_a)?;
    let eb = case_entries(dir_b)?;
    let mut warnings = vec![];
    for id in ea.keys().filter(|k| !eb.contains_key(*k)) {
        warnings.push(format!("case {id}: only in {}", dir_a.display()));
    }
    for id in eb.keys().filter(|k| !ea.contains_key(*k)) {
        warnings.push(format!("case {id}: only in {}", dir_b.display()));
    }
    let cases: Vec<CaseInput> = ea
        .iter()
        .filter_map(|(id, a)| eb.get(id).map(|b| CaseInput { case: id.clone(), a: a.clone(), b: b.clone() }))
        .collect();
    if cases.is_empty() {
        return Err(MetricsError::Invalid(format!("no case id is in both {} and {}", dir_a.display(), dir_b.display())));
    }
    Ok((cases, warnings))
}

/// Read a CSV table with a header row (liverseg-io's manifest reader) into
/// records keyed by lower-case column name.
pub(crate) fn read_csv(path: &Path, required: &[&str]) -> Result<Vec<BTreeMap<String, String>>, MetricsError> {
    let table = liverseg_io::manifest::Manifest::read_table(path, required)?;
    Ok(table.rows().iter().map(|r| table.columns().iter().map(|c| (c.clone(), table.get(r, c).to_string())).collect()).collect())
}

/// Manifest CSV with columns `case,a,b` (liverseg-io's manifest reader:
/// relative paths are relative to the manifest, `#` comments, quoted fields).
pub fn pairs_from_manifest(path: &Path) -> Result<Vec<CaseInput>, MetricsError> {
    let manifest = liverseg_io::manifest::Manifest::read(path, &["case", "a", "b"])?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = vec![];
    for r in manifest.rows() {
        let case = manifest.get(r, "case").to_string();
        if case.is_empty() || !seen.insert(case.clone()) {
            return Err(manifest.error(r, format!("case id {case:?} is empty or repeated")).into());
        }
        out.push(CaseInput { case, a: manifest.path_of(r, "a")?, b: manifest.path_of(r, "b")? });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: String,
    pub result: Result<Evaluation, String>,
}

#[derive(Debug, Clone)]
pub struct CohortReport {
    pub cases: Vec<CaseResult>,
    /// Metric key -> summary over the cases, in the order of the JSON keys.
    pub summary: Vec<(String, Summary)>,
    pub warnings: Vec<String>,
}

fn read(path: &Path, reference: Option<&liverseg_volume::Geometry>) -> Result<liverseg_volume::Mask, String> {
    liverseg_io::read_mask(path, reference, &Default::default()).map(|(m, _)| m).map_err(|e| e.to_string())
}

/// Evaluate every case; a case that cannot be read is reported, not fatal.
pub fn evaluate_cohort(inputs: &[CaseInput], options: &EvalOptions, warnings: Vec<String>) -> CohortReport {
    let cases = inputs
        .iter()
        .map(|c| {
            let result = read(&c.a, None).and_then(|a| {
                let b = read(&c.b, Some(a.geometry()))?;
                Ok(evaluate_resampling(&a, &b, options))
            });
            CaseResult { case: c.case.clone(), result }
        })
        .collect();
    CohortReport::new(cases, warnings)
}

impl CohortReport {
    pub fn new(cases: Vec<CaseResult>, warnings: Vec<String>) -> Self {
        let keys: Vec<String> = cases
            .iter()
            .find_map(|c| c.result.as_ref().ok())
            .map(|e| e.metric_rows().into_iter().map(|(k, _)| k).collect())
            .unwrap_or_default();
        let rows: Vec<Vec<(String, Option<f64>)>> = cases.iter().filter_map(|c| c.result.as_ref().ok()).map(|e| e.metric_rows()).collect();
        let summary = keys
            .iter()
            .map(|k| {
                let vals: Vec<Option<f64>> = rows.iter().map(|r| r.iter().find(|(kk, _)| kk == k).and_then(|(_, v)| *v)).collect();
                (k.clone(), Summary::of(&vals))
            })
            .collect();
        CohortReport { cases, summary, warnings }
    }

    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| c.result.is_err()).count()
    }

    fn keys(&self) -> Vec<String> {
        self.summary.iter().map(|(k, _)| k.clone()).collect()
    }

    /// One row per case: case, metrics..., resampled, error.
    pub fn cases_csv(&self) -> String {
        let keys = self.keys();
        let mut s = format!("case,{},resampled_b_onto_a,error\n", keys.join(","));
        for c in &self.cases {
            s.push_str(&csv_field(&c.case));
            match &c.result {
                Ok(e) => {
                    let rows = e.metric_rows();
                    for k in &keys {
                        let v = rows.iter().find(|(kk, _)| kk == k).and_then(|(_, v)| *v);
                        s.push(',');
                        s.push_str(&v.map_or(String::new(), |x| format!("{x}")));
                    }
                    s.push_str(&format!(",{},\n", e.resampled));
                }
                Err(err) => {
                    s.push_str(&",".repeat(keys.len() + 1));
                    s.push(',');
                    s.push_str(&csv_field(err));
                    s.push('\n');
                }
            }
        }
        s
    }

    pub fn summary_csv(&self) -> String {
        let mut s = String::from("metric,n,n_undefined,median,q1,q3,iqr,min,max,mean\n");
        let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
        for (k, m) in &self.summary {
            s.push_str(&format!(
                "{k},{},{},{},{},{},{},{},{},{}\n",
                m.n,
                m.n_undefined,
                f(m.median),
                f(m.q1),
                f(m.q3),
                f(m.iqr),
                f(m.min),
                f(m.max),
                f(m.mean)
            ));
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|c| match &c.result {
                Ok(e) => {
                    let mut v = e.to_json();
                    v.as_object_mut().unwrap().insert("case".into(), json!(c.case));
                    v
                }
                Err(err) => json!({ "case": c.case, "error": err }),
            })
            .collect();
        let summary: serde_json::Map<String, Value> = self.summary.iter().map(|(k, s)| (k.clone(), json!(s))).collect();
        json!({
            "summary_definition": "per metric over the cases where it is defined: median, q1/q3 = 25th/75th percentiles (numpy linear interpolation), iqr = q3 - q1, min, max, mean",
            "cases": cases,
            "summary": summary,
            "failed_cases": self.failed(),
            "warnings": self.warnings,
        })
    }

    /// Per-case table and cohort summary for the terminal.
    pub fn to_table(&self) -> String {
        let keys = self.keys();
        let shown: Vec<&String> = keys.iter().filter(|k| ["dice", "volume_ratio", "assd", "hd", "hd95", "surfel_assd", "surfel_hd95"].contains(&k.as_str())).collect();
        let mut s = format!("{:<20}", "case");
        for k in &shown {
            s.push_str(&format!(" {k:>12}"));
        }
        s.push('\n');
        for c in &self.cases {
            s.push_str(&format!("{:<20}", c.case));
            match &c.result {
                Ok(e) => {
                    let rows = e.metric_rows();
                    for k in &shown {
                        let v = rows.iter().find(|(kk, _)| kk == *k).and_then(|(_, v)| *v);
                        s.push_str(&format!(" {:>12}", v.map_or("undefined".to_string(), |x| format!("{x:.4}"))));
                    }
                    if e.resampled {
                        s.push_str("  (b resampled)");
                    }
                }
                Err(err) => s.push_str(&format!(" error: {err}")),
            }
            s.push('\n');
        }
        s.push_str(&format!("\n{:<20} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "metric", "n", "median", "q1", "q3", "min", "max", "mean"));
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
        for (k, m) in &self.summary {
            s.push_str(&format!(
                "{k:<20} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                m.n,
                f(m.median),
                f(m.q1),
                f(m.q3),
                f(m.min),
                f(m.max),
                f(m.mean)
            ));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }

    /// `cases.csv`, `summary.csv` and `evaluation.json` in `out`, each atomically.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, MetricsError> {
        std::fs::create_dir_all(out).map_err(|e| liverseg_io::Error::io(out, e))?;
        let files = [
            ("cases.csv", self.cases_csv()),
            ("summary.csv", self.summary_csv()),
            ("evaluation.json", serde_json::to_string_pretty(&self.to_json()).unwrap() + "\n"),
        ];
        let mut written = vec![];
        for (name, text) in files {
            let p = out.join(name);
            write_atomic(&p, |w: &mut dyn Write| w.write_all(text.as_bytes()))?;
            written.push(p);
        }
        Ok(written)
    }
}

pub(crate) use liverseg_io::manifest::csv_field;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_from_names() {
        let d = tempfile::tempdir().unwrap();
        for f in ["case01.nii.gz", "case02.mha", "case03.mhd", "case03.raw", ".hidden.nii", "notes.txt"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.path().join("case04")).unwrap();
        let e = case_entries(d.path()).unwrap();
        assert_eq!(e.keys().cloned().collect::<Vec<_>>(), ["case01", "case02", "case03", "case04"]);
        std::fs::write(d.path().join("case01.mha"), b"x").unwrap();
        assert!(case_entries(d.path()).unwrap_err().to_string().contains("case01"));
    }

    #[test]
    fn manifest_parsing() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.csv");
        std::fs::write(&m, "case, a ,b\nc1,x/a1.nii,/abs/b1.nii\n\nc2,a2.mha,b2.mha\n").unwrap();
        let p = pairs_from_manifest(&m).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].a, d.path().join("x/a1.nii"));
        assert_eq!(p[0].b, PathBuf::from("/abs/b1.nii"));
        std::fs::write(&m, "case,a\nc1,x\n").unwrap();
        assert!(pairs_from_manifest(&m).unwrap_err().to_string().contains("missing column \"b\""));
        std::fs::write(&m, "case,a,b\nc1,x,y\nc1,x,y\n").unwrap();
        assert!(pairs_from_manifest(&m).unwrap_err().to_string().contains("repeated"));
    }
}
