//! The list of cases of a batch: where each CT is and the folder its outputs
//! go to.
//!
//! Two manifest formats are read (the CSV through liverseg-io's shared
//! manifest reader):
//! - CSV with a header (the format every command that takes a list of cases
//!   is moving to, issue 19): a `ct` column (or `path` / `input`) with the CT
//!   path and an optional `case` column with the folder name; other columns
//!   (a reference `mask`, say) are ignored here;
//! - the older text list: `path` or `name<TAB>path` per line (deprecated,
//!   still read).
//!
//! In both, `#` starts a comment line and relative paths are read from the
//! manifest's folder.

use super::BatchError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One input as listed: an optional case name and the CT path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedInput {
    pub name: Option<String>,
    pub input: PathBuf,
}

impl ListedInput {
    pub fn path(input: impl Into<PathBuf>) -> Self {
        ListedInput {
            name: None,
            input: input.into(),
        }
    }
}

/// One case: its name (the output folder `DIR/<name>/`) and its CT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseEntry {
    pub name: String,
    pub input: PathBuf,
}

/// Read a manifest (CSV with a header, or the text list; see the module).
pub fn read_manifest(path: &Path) -> Result<Vec<ListedInput>, BatchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BatchError::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let err = |line: usize, message: String| BatchError::Manifest {
        path: path.to_path_buf(),
        line: Some(line),
        message,
    };
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let header = liverseg_io::manifest::Manifest::header_of(&text);
    let mut out = Vec::new();
    if let Some(ct_col) = ["ct", "path", "input"].into_iter().find(|c| header.iter().any(|h| h == c)) {
        let manifest = liverseg_io::manifest::Manifest::from_text(path, &text, &[ct_col]).map_err(manifest_error)?;
        for row in manifest.rows() {
            if manifest.get(row, ct_col).is_empty() {
                return Err(err(row.line, format!("no CT path in column {ct_col:?}")));
            }
            let ct = manifest.path_of(row, ct_col).map_err(manifest_error)?;
            let name = Some(manifest.get(row, "case")).filter(|n| !n.is_empty()).map(str::to_string);
            out.push(ListedInput { name, input: ct });
        }
    } else {
        for (n, line) in lines {
            // The text list allows a trailing comment on a line.
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, p) = match line.split_once('\t') {
                Some((name, p)) => (Some(name.trim().to_string()), p.trim()),
                None => (None, line),
            };
            if p.is_empty() || name.as_deref() == Some("") {
                return Err(err(
                    n,
                    "expected `path` or `name<TAB>path` (or a CSV with a `case,ct` header)".into(),
                ));
            }
            out.push(ListedInput {
                name,
                input: resolve(p),
            });
        }
    }
    if out.is_empty() {
        return Err(BatchError::Manifest {
            path: path.to_path_buf(),
            line: None,
            message: "the manifest lists no input".into(),
        });
    }
    Ok(out)
}

/// The shared manifest reader's errors as batch errors (its messages already
/// name the line).
fn manifest_error(e: liverseg_io::Error) -> BatchError {
    match e {
        liverseg_io::Error::Io { path, source } => BatchError::Io { path, source },
        liverseg_io::Error::Invalid { path, message }
        | liverseg_io::Error::Unsupported { path, message }
        | liverseg_io::Error::Ambiguous { path, message } => BatchError::Manifest { path, line: None, message },
    }
}

/// Endings a case name drops (longest first). Wider than
/// `liverseg_io::VOLUME_FILE_EXTENSIONS`: a CT given to `segment` may be one
/// DICOM file or any gzipped image, and `.hdr` is not an input it takes.
const CASE_NAME_EXTENSIONS: [&str; 6] = [".nii.gz", ".nii", ".mha", ".mhd", ".dcm", ".gz"];

/// The file name without its image extension.
pub fn case_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case".into());
    match liverseg_io::strip_extension(&name, &CASE_NAME_EXTENSIONS) {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => name,
    }
}

fn parent_name(path: &Path) -> Option<String> {
    let abs = std::path::absolute(path).ok()?;
    Some(abs.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// Case names: the given one; else the file stem, or the parent folder's
/// name when the stem is generic (`ct.nii.gz` in a case folder) or shared
/// with another input. Names must be unique and usable as a folder name.
pub fn name_cases(inputs: Vec<ListedInput>) -> Result<Vec<CaseEntry>, BatchError> {
    let stems: Vec<String> = inputs.iter().map(|l| case_stem(&l.input)).collect();
    let generic =
        |s: &str| ["ct", "image", "img", "volume", "scan"].contains(&s.to_lowercase().as_str());
    let names: Vec<String> = inputs
        .iter()
        .zip(&stems)
        .map(|(l, s)| {
            if let Some(g) = &l.name {
                return g.clone();
            }
            let shared = stems.iter().filter(|t| *t == s).count() > 1;
            match (generic(s) || shared, parent_name(&l.input)) {
                (true, Some(parent)) if generic(s) => parent,
                (true, Some(parent)) => format!("{parent}-{s}"),
                _ => s.clone(),
            }
        })
        .collect();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || n == "." || n == ".." || n.starts_with('.') || n.contains(['/', '\\']) {
            return Err(BatchError::CaseName {
                message: format!(
                    "{}: case name {n:?} cannot be a case folder name; give one in a manifest",
                    inputs[i].input.display()
                ),
            });
        }
        if let Some(j) = names[..i].iter().position(|m| m == n) {
            return Err(BatchError::CaseName {
                message: format!(
                    "{} and {} both give the case name {n:?}; name them in a manifest (a `case` column)",
                    inputs[j].input.display(),
                    inputs[i].input.display()
                ),
            });
        }
    }
    Ok(names
        .into_iter()
        .zip(inputs)
        .map(|(name, l)| CaseEntry {
            name,
            input: l.input,
        })
        .collect())
}

/// A short hash of the case list (names and absolute paths, in order): tasks of one
/// job array compare it to be sure they sliced the same list.
pub fn list_hash(cases: &[CaseEntry]) -> String {
    let mut h = Sha256::new();
    for c in cases {
        h.update(c.name.as_bytes());
        h.update([0]);
        // Absolute, so that tasks started from other folders agree.
        let input = std::path::absolute(&c.input).unwrap_or_else(|_| c.input.clone());
        h.update(input.to_string_lossy().as_bytes());
        h.update([b'\n']);
    }
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.txt");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_the_text_list_and_the_csv_alike() {
        let (d, p) = manifest("# cohort\na/ct.nii.gz\nb\t/abs/b.nii.gz # second\n");
        let list = read_manifest(&p).unwrap();
        assert_eq!(list[0], ListedInput::path(d.path().join("a/ct.nii.gz")));
        assert_eq!(list[1].name.as_deref(), Some("b"));
        assert_eq!(list[1].input, PathBuf::from("/abs/b.nii.gz"));

        let (d, p) = manifest("case,ct,mask\np1,p1/ct.nii.gz,p1/liver.nii.gz\n,\"x, y.nii.gz\",\n");
        let list = read_manifest(&p).unwrap();
        assert_eq!(list[0].name.as_deref(), Some("p1"));
        assert_eq!(list[0].input, d.path().join("p1/ct.nii.gz"));
        assert_eq!(list[1].name, None);
        assert_eq!(list[1].input, d.path().join("x, y.nii.gz"));
    }

    #[test]
    fn bad_manifests_name_the_file_and_line() {
        let (_d, p) = manifest("case,ct\np1,\n");
        let e = read_manifest(&p).unwrap_err().to_string();
        assert!(e.contains("m.txt: line 2: no CT path"), "{e}");
        let (_d, p) = manifest("case,ct\np1,a.nii,b.nii\n");
        let e = read_manifest(&p).unwrap_err().to_string();
        assert!(e.contains("m.txt: line 2:") && e.contains("3 fields"), "{e}");
        let (_d, p) = manifest("# nothing\n\n");
        assert!(read_manifest(&p).unwrap_err().to_string().contains("lists no input"));
        let e = read_manifest(Path::new("/no/such/manifest.csv")).unwrap_err();
        assert!(matches!(e, BatchError::Io { .. }), "{e}");
    }

    #[test]
    fn names_come_from_stems_parents_or_the_manifest() {
        let cases = name_cases(vec![
            ListedInput::path("/d/p1/ct.nii.gz"),
            ListedInput::path("/d/x/scan7.mha"),
            ListedInput::path("/d/y/scan7.mha"),
            ListedInput { name: Some("given".into()), input: "/d/z.nii".into() },
        ])
        .unwrap();
        let names: Vec<_> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["p1", "x-scan7", "y-scan7", "given"]);
        let dup = name_cases(vec![
            ListedInput { name: Some("a".into()), input: "/1.nii".into() },
            ListedInput { name: Some("a".into()), input: "/2.nii".into() },
        ]);
        assert!(matches!(dup, Err(BatchError::CaseName { .. })));
        for bad in ["..", ".tasks", "a/b"] {
            let r = name_cases(vec![ListedInput { name: Some(bad.into()), input: "/1.nii".into() }]);
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn the_list_hash_sees_order_names_and_paths() {
        let a = CaseEntry { name: "a".into(), input: "/a.nii".into() };
        let b = CaseEntry { name: "b".into(), input: "/b.nii".into() };
        let h = list_hash(&[a.clone(), b.clone()]);
        assert_eq!(h.len(), 16);
        assert_eq!(h, list_hash(&[a.clone(), b.clone()]));
        assert_ne!(h, list_hash(&[b.clone(), a.clone()]));
        let renamed = CaseEntry { name: "c".into(), ..b.clone() };
        assert_ne!(h, list_hash(&[a, renamed]));
    }
}
