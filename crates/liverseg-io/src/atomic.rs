//! Atomic file output: write into a temporary file beside the target, then rename.
//! A crash or an error half-way leaves either the old file or no file, never a
//! truncated one.

use crate::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Create `path` atomically from whatever `fill` writes. The temporary file is
/// removed if `fill` fails.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::invalid(path, format!("output folder {} does not exist", dir.display())));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".liverseg-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        fill(&mut w).map_err(|e| Error::io(path, e))?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Write several files that belong together (e.g. `.mhd` + `.raw`): all are
/// written to temporaries first and renamed only when every one succeeded.
pub fn write_atomic_group(files: Vec<(&Path, Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + '_>)>) -> Result<()> {
    let mut staged = Vec::new();
    for (path, fill) in files {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".liverseg-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| Error::io(path, e))?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
            fill(&mut w).map_err(|e| Error::io(path, e))?;
            w.flush().map_err(|e| Error::io(path, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
        staged.push((path, tmp));
    }
    for (path, tmp) in staged {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.nii");
        let err = write_atomic(&target, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporary file left behind");
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.nii");
        std::fs::write(&target, b"old").unwrap();
        let _ = write_atomic(&target, |_| Err(std::io::Error::other("boom")));
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        write_atomic(&target, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let err = write_atomic(Path::new("/nonexistent-liverseg/x.nii"), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
