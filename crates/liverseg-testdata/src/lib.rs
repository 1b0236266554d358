//! Locating `../shared` (real CTs, conformance corpora, reference metrics) for tests
//! and benchmarks. A user's clone has no `../shared`: tests that need it print a
//! clear SKIP line and pass, they never fail for its absence.

use std::path::PathBuf;

/// The shared data folder: `$LIVERSEG_SHARED` if set, else `<workspace>/../shared`.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIVERSEG_SHARED") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = workspace.join("../shared");
    p.is_dir().then(|| p.canonicalize().unwrap_or(p))
}

/// A path inside the shared folder if it exists; otherwise prints
/// `SKIP <test>: ../shared/<rel> not found` and returns `None`.
pub fn shared_path(test: &str, rel: &str) -> Option<PathBuf> {
    match shared_dir().map(|d| d.join(rel)) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!("SKIP {test}: ../shared/{rel} not found (set LIVERSEG_SHARED to run it)");
            None
        }
    }
}

/// `let Some(p) = require_shared!("corpora/x") else { return };` in one line.
#[macro_export]
macro_rules! require_shared {
    ($rel:expr) => {
        $crate::shared_path(module_path!(), $rel)
    };
}
