//! Atomic file output: write into a temporary file beside the target, then rename.
//! A crash or an error half-way leaves either the old file or no file, never a
//! truncated one.

use crate::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Temporary files are created 0600; outputs should get the usual permissions
/// (0644 less the umask, as a plain `File::create` would), or keep those of the
/// file they replace.
fn output_permissions(tmp: &std::fs::File, target: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(target) {
            Ok(existing) => existing.permissions().mode() & 0o7777,
            Err(_) => 0o666 & !current_umask(),
        };
        tmp.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (tmp, target);
    Ok(())
}

#[cfg(unix)]
fn current_umask() -> u32 {
    // The umask can only be read by setting it; the process is the CLI, where a
    // brief swap with the same value is harmless.
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        // SAFETY: umask has no memory-safety preconditions.
        unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old as u32
        }
    })
}

/// Create `path` atomically from whatever `fill` writes. The temporary file is
/// removed if `fill` fails.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let tmp = stage(path, fill)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// What writes one file's bytes in [`write_atomic_group`].
pub type Fill<'a> = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// Write several files that belong together (e.g. `.mhd` + `.raw`): all are
/// written to temporaries first and renamed only when every one succeeded.
pub fn write_atomic_group(files: Vec<(&Path, Fill<'_>)>) -> Result<()> {
    let staged = files.into_iter().map(|(path, fill)| Ok((path, stage(path, fill)?))).collect::<Result<Vec<_>>>()?;
    for (path, tmp) in staged {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

/// Write `fill`'s bytes to a synced temporary file beside `path`, with the
/// permissions the final file should have; dropped (deleted) on any error.
fn stage(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<tempfile::NamedTempFile> {
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
    output_permissions(tmp.as_file(), path).map_err(|e| Error::io(path, e))?;
    Ok(tmp)
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

    #[cfg(unix)]
    #[test]
    fn outputs_get_normal_permissions_not_the_temp_files_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.nii");
        write_atomic(&target, |w| w.write_all(b"x")).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !current_umask(), "mode {mode:o}");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&target, |w| w.write_all(b"y")).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640, "replacing keeps the old mode");
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let err = write_atomic(Path::new("/nonexistent-liverseg/x.nii"), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
