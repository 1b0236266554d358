//! Loading a training case, with its pre-processing cached on disk so later
//! epochs and runs skip reading and preparing the CT again.
//!
//! An entry is keyed by the identity of the input files (canonical path, size,
//! modification time; every file of a DICOM folder) and the
//! [`PreprocessConfig`] (as JSON), so an edited file or a changed setting
//! misses the cache. It stores the prepared HU as raw f32 (exactly what
//! [`prepare`] returned, so a hit gives the same [`Prepared`] bit for bit), the
//! body and label masks, the crop box, both grids and the CT content hash. It
//! is written atomically and checked on read (magic, lengths, key, checksum);
//! an entry that fails a check is rebuilt, never trusted.
//!
//! Layout of `<cache>/<id>-<key>.lsc`: 16-byte magic, u64 LE header length,
//! JSON header, HU (n x f32 LE), body (n x u8), label (n x u8, when present),
//! xxh3-64 of everything before it (u64 LE).

use std::path::{Path, PathBuf};

use liverseg_imgproc::crop::CropBox;
use liverseg_imgproc::resample::resample_nearest;
use liverseg_io::{read_image, read_mask, ReadOptions};
use liverseg_volume::{Geometry, Mask, Volume};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::datasets::CaseSource;
use crate::duplicates::content_hash;
use crate::{prepare, Error, Prepared, PreprocessConfig, Result};

/// A training case read, prepared and hashed.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub id: String,
    pub dataset: String,
    pub prepared: Prepared,
    /// [`content_hash`] of the CT voxels as read.
    pub content_hash: String,
}

const MAGIC: &[u8; 16] = b"liverseg-cache1\n";
/// Headers are a few hundred bytes; anything larger is not one of ours.
const MAX_HEADER: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    key: String,
    content_hash: String,
    grid: Geometry,
    original: Geometry,
    crop_start: [usize; 3],
    crop_size: [usize; 3],
    has_label: bool,
    /// Encoding of the HU block; only "f32" (raw, little-endian) exists.
    hu: String,
}

/// Read, prepare and hash one case, through the cache when `cache_dir` is given.
pub fn load_case(
    case: &CaseSource,
    config: &PreprocessConfig,
    cache_dir: Option<&Path>,
) -> Result<LoadedCase> {
    let entry = match cache_dir {
        Some(dir) => Some(cache_entry_path(case, config, dir)?),
        None => None,
    };
    if let Some(path) = &entry {
        if let Some((prepared, content_hash)) = read_entry(path, &entry_key(path)) {
            return Ok(LoadedCase {
                id: case.id.clone(),
                dataset: case.dataset.clone(),
                prepared,
                content_hash,
            });
        }
    }
    let (prepared, content_hash) = load_uncached(case, config)?;
    if let (Some(path), Some(dir)) = (&entry, cache_dir) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        write_entry(path, &entry_key(path), &prepared, &content_hash)?;
    }
    Ok(LoadedCase {
        id: case.id.clone(),
        dataset: case.dataset.clone(),
        prepared,
        content_hash,
    })
}

/// Where the cache entry of `case` prepared with `config` lives.
pub fn cache_entry_path(
    case: &CaseSource,
    config: &PreprocessConfig,
    cache_dir: &Path,
) -> Result<PathBuf> {
    let identity = serde_json::json!({
        "version": 1,
        "ct": file_identity(&case.ct)?,
        "label": file_identity(&case.label)?,
        "config": config,
    });
    let key = xxh3_128(identity.to_string().as_bytes());
    let readable: String = case
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    Ok(cache_dir.join(format!("{readable}-{key:032x}.lsc")))
}

fn entry_key(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (path, size, mtime) of a file, or of every file below a folder.
fn file_identity(path: &Path) -> Result<serde_json::Value> {
    let canonical = path.canonicalize().map_err(|e| Error::file(path, e))?;
    let one = |p: &Path| -> Result<serde_json::Value> {
        let meta = std::fs::metadata(p).map_err(|e| Error::file(p, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos().to_string());
        Ok(serde_json::json!([p.to_string_lossy(), meta.len(), mtime]))
    };
    if !canonical.is_dir() {
        return one(&canonical);
    }
    let mut files = Vec::new();
    let mut stack = vec![canonical.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::file(&dir, e))? {
            let p = entry.map_err(|e| Error::file(&dir, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(serde_json::Value::Array(
        files.iter().map(|p| one(p)).collect::<Result<_>>()?,
    ))
}

fn load_uncached(case: &CaseSource, config: &PreprocessConfig) -> Result<(Prepared, String)> {
    let ct = read_image(&case.ct, &ReadOptions::default())?.volume;
    let hash = content_hash(&ct);
    let geometry = ct.geometry().clone();
    let label = read_label(&case.label, &geometry)?;
    // int16 halves the memory of the original CT during preparation.
    let prepared = match ct.to_i16_exact() {
        Some(v) => prepare(&v, Some(&label), config),
        None => prepare(&ct.to_f32(), Some(&label), config),
    };
    let prepared =
        prepared.map_err(|e| Error::invalid(&case.ct, format!("pre-processing failed: {e}")))?;
    Ok((prepared, hash))
}

/// The reference liver on the CT grid. A label whose header differs from the
/// CT's is mapped by world position (nearest voxel); when the two differ only
/// by rounding in the header the CT grid is taken as is.
fn read_label(path: &Path, ct: &Geometry) -> Result<Mask> {
    let mask = if path.is_dir() {
        liverseg_io::dicom::read_mask_series_onto(path, ct)?
    } else {
        read_mask(path, Some(ct), &ReadOptions::default())?.0
    };
    if mask.geometry().same_grid(ct) {
        return Ok(mask);
    }
    let g = mask.geometry();
    // Within a tenth of a voxel: the same grid written with other float rounding.
    let tol = 0.1 * ct.spacing().iter().cloned().fold(f64::INFINITY, f64::min);
    if g.dims() == ct.dims() && g.corner_distance(ct) <= tol {
        return Ok(mask.with_geometry(ct.clone())?);
    }
    let mapped = resample_nearest(&mask, ct, 0u8);
    if mask.count_foreground() > 0 && mapped.count_foreground() == 0 {
        return Err(Error::invalid(
            path,
            "the reference mask does not overlap the CT",
        ));
    }
    Ok(mapped)
}

fn write_entry(path: &Path, key: &str, p: &Prepared, content_hash: &str) -> Result<()> {
    let header = Header {
        key: key.to_string(),
        content_hash: content_hash.to_string(),
        grid: p.hu.geometry().clone(),
        original: p.original.clone(),
        crop_start: p.crop.start,
        crop_size: p.crop.size,
        has_label: p.label.is_some(),
        hu: "f32".into(),
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| Error::invalid(path, format!("cache header: {e}")))?;
    let n = p.hu.len();
    let mut buf = Vec::with_capacity(16 + 8 + json.len() + n * 6 + 8);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(json.len() as u64).to_le_bytes());
    buf.extend_from_slice(&json);
    for v in p.hu.data() {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf.extend_from_slice(p.body.data());
    if let Some(label) = &p.label {
        buf.extend_from_slice(label.data());
    }
    let sum = xxh3_64(&buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    Ok(liverseg_io::atomic::write_atomic(path, |w| {
        w.write_all(&buf)
    })?)
}

/// The entry, or `None` when it is absent or fails any check.
fn read_entry(path: &Path, key: &str) -> Option<(Prepared, String)> {
    let bytes = std::fs::read(path).ok()?;
    parse_entry(&bytes, key)
}

fn parse_entry(bytes: &[u8], key: &str) -> Option<(Prepared, String)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if xxh3_64(body) != u64::from_le_bytes(sum.try_into().ok()?) || !body.starts_with(MAGIC) {
        return None;
    }
    let rest = &body[MAGIC.len()..];
    let (len, rest) = rest.split_at_checked(8)?;
    let len = u64::from_le_bytes(len.try_into().ok()?);
    if len > MAX_HEADER {
        return None;
    }
    let (json, rest) = rest.split_at_checked(len as usize)?;
    let h: Header = serde_json::from_slice(json).ok()?;
    // Geometry's serde skips its constructor's checks (positive spacing,
    // invertible direction, sane size): redo them.
    let valid =
        |g: &Geometry| Geometry::new(g.dims(), g.spacing(), g.origin(), g.direction()).is_ok();
    if !valid(&h.grid) || !valid(&h.original) {
        return None;
    }
    if h.key != key || h.hu != "f32" {
        return None;
    }
    let n = h.grid.len();
    let want = n.checked_mul(if h.has_label { 6 } else { 5 })?;
    if rest.len() != want {
        return None;
    }
    let crop = CropBox {
        start: h.crop_start,
        size: h.crop_size,
    };
    let od = h.original.dims();
    if (0..3).any(|a| {
        crop.size[a] == 0
            || crop.start[a]
                .checked_add(crop.size[a])
                .is_none_or(|e| e > od[a])
    }) {
        return None;
    }
    let (hu, rest) = rest.split_at(n * 4);
    let (body_mask, label) = rest.split_at(n);
    let hu: Vec<f32> = hu
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let prepared = Prepared {
        hu: Volume::new(h.grid.clone(), hu).ok()?,
        body: Volume::new(h.grid.clone(), body_mask.to_vec()).ok()?,
        label: if h.has_label {
            Some(Volume::new(h.grid.clone(), label.to_vec()).ok()?)
        } else {
            None
        },
        crop,
        original: h.original,
    };
    Some((prepared, h.content_hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_phantom::{generate, PhantomConfig};
    use liverseg_volume::DynVolume;

    pub(crate) fn assert_same(a: &Prepared, b: &Prepared) {
        assert_eq!(a.hu.geometry(), b.hu.geometry());
        assert_eq!(a.hu.data(), b.hu.data());
        assert_eq!(a.body.data(), b.body.data());
        assert_eq!(
            a.label.as_ref().map(|l| l.data()),
            b.label.as_ref().map(|l| l.data())
        );
        assert_eq!(a.crop, b.crop);
        assert_eq!(a.original, b.original);
    }

    fn phantom_case(dir: &Path) -> CaseSource {
        let p = generate(&PhantomConfig {
            dims: [96, 80, 40],
            spacing: [3.0, 3.0, 5.0],
            ..Default::default()
        });
        let (ct, label) = (dir.join("c/ct.nii.gz"), dir.join("c/liver.nii.gz"));
        std::fs::create_dir_all(dir.join("c")).unwrap();
        liverseg_io::write_image(&ct, &DynVolume::from(p.ct)).unwrap();
        liverseg_io::write_image(&label, &DynVolume::from(p.liver)).unwrap();
        CaseSource {
            id: "c".into(),
            dataset: "cases".into(),
            ct,
            label,
        }
    }

    #[test]
    fn second_load_hits_the_cache_and_config_changes_miss_it() {
        let d = tempfile::tempdir().unwrap();
        let case = phantom_case(d.path());
        let cache = d.path().join("cache");
        let config = PreprocessConfig {
            spacing_mm: 3.0,
            ..Default::default()
        };

        let t = std::time::Instant::now();
        let first = load_case(&case, &config, Some(&cache)).unwrap();
        let cold = t.elapsed();
        let entry = cache_entry_path(&case, &config, &cache).unwrap();
        let written = std::fs::metadata(&entry).unwrap().modified().unwrap();
        let t = std::time::Instant::now();
        let second = load_case(&case, &config, Some(&cache)).unwrap();
        let warm = t.elapsed();
        assert_same(&first.prepared, &second.prepared);
        assert_eq!(first.content_hash, second.content_hash);
        assert_eq!(
            (second.id.as_str(), second.dataset.as_str()),
            ("c", "cases")
        );
        // A hit reads the entry and does not rewrite it.
        assert_eq!(
            std::fs::metadata(&entry).unwrap().modified().unwrap(),
            written
        );
        assert!(
            warm < cold,
            "cache hit {warm:?} not faster than the first load {cold:?}"
        );
        // Without a cache: the same result.
        assert_same(
            &load_case(&case, &config, None).unwrap().prepared,
            &first.prepared,
        );

        // Another spacing: another entry, another grid.
        let coarser = PreprocessConfig {
            spacing_mm: 5.0,
            ..Default::default()
        };
        assert_ne!(cache_entry_path(&case, &coarser, &cache).unwrap(), entry);
        let other = load_case(&case, &coarser, Some(&cache)).unwrap();
        assert_eq!(other.prepared.hu.geometry().spacing(), [5.0; 3]);
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }

    #[test]
    fn a_corrupt_entry_is_rebuilt() {
        let d = tempfile::tempdir().unwrap();
        let case = phantom_case(d.path());
        let cache = d.path().join("cache");
        let config = PreprocessConfig {
            spacing_mm: 4.0,
            ..Default::default()
        };
        let good = load_case(&case, &config, Some(&cache)).unwrap();
        let entry = cache_entry_path(&case, &config, &cache).unwrap();
        let bytes = std::fs::read(&entry).unwrap();
        let key = entry_key(&entry);
        assert!(parse_entry(&bytes, &key).is_some());
        assert!(parse_entry(&bytes, "another-key").is_none());
        // Truncated, one flipped bit in the voxels, garbage: all refused.
        assert!(parse_entry(&bytes[..bytes.len() - 100], &key).is_none());
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(parse_entry(&flipped, &key).is_none());
        assert!(parse_entry(b"short", &key).is_none());
        assert!(parse_entry(&[], &key).is_none());
        // On disk: the damaged entry is replaced by a good one.
        std::fs::write(&entry, &flipped).unwrap();
        let again = load_case(&case, &config, Some(&cache)).unwrap();
        assert_same(&again.prepared, &good.prepared);
        assert_eq!(std::fs::read(&entry).unwrap(), bytes);
    }

    #[test]
    fn an_edited_input_misses_the_cache() {
        let d = tempfile::tempdir().unwrap();
        let case = phantom_case(d.path());
        let cache = d.path().join("cache");
        let config = PreprocessConfig {
            spacing_mm: 4.0,
            ..Default::default()
        };
        let before = cache_entry_path(&case, &config, &cache).unwrap();
        // Rewrite the label with one more slice of liver: size changes.
        let p = generate(&PhantomConfig {
            dims: [96, 80, 40],
            spacing: [3.0, 3.0, 5.0],
            ..Default::default()
        });
        let mut liver = p.liver.clone();
        liver.data_mut()[..96 * 80].fill(1);
        liverseg_io::write_image(&case.label, &DynVolume::from(liver)).unwrap();
        assert_ne!(cache_entry_path(&case, &config, &cache).unwrap(), before);
    }

    #[test]
    fn missing_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let case = CaseSource {
            id: "x".into(),
            dataset: "d".into(),
            ct: d.path().join("nope.nii.gz"),
            label: d.path().join("l.nii.gz"),
        };
        let e = load_case(&case, &PreprocessConfig::default(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.nii.gz"), "{e}");
        let e = load_case(&case, &PreprocessConfig::default(), Some(d.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.nii.gz"), "{e}");
    }

    #[test]
    fn a_label_with_another_header_is_mapped_by_position() {
        let d = tempfile::tempdir().unwrap();
        let ct = Geometry::new(
            [20, 16, 10],
            [2.0, 2.0, 3.0],
            [-20.0, -16.0, 5.0],
            liverseg_volume::IDENTITY,
        )
        .unwrap();
        let write = |name: &str, origin: [f64; 3], dims: [usize; 3]| {
            let g =
                Geometry::new(dims, [2.0, 2.0, 3.0], origin, liverseg_volume::IDENTITY).unwrap();
            let m = Volume::from_fn(g, |[i, _, _]| u8::from(i == 10));
            let path = d.path().join(name);
            liverseg_io::write_image(&path, &DynVolume::from(m)).unwrap();
            path
        };
        let column = |m: &Mask| {
            (0..20)
                .filter(|&i| *m.get(i, 3, 3) != 0)
                .collect::<Vec<_>>()
        };
        // Header rounding (0.01 voxel): taken on the CT grid as is.
        let m = read_label(&write("round.nii", [-19.98, -16.0, 5.0], [20, 16, 10]), &ct).unwrap();
        assert!(m.geometry().same_grid(&ct));
        assert_eq!(column(&m), [10]);
        // Two voxels over in x: mapped by position.
        let m = read_label(&write("moved.nii", [-16.0, -16.0, 5.0], [20, 16, 10]), &ct).unwrap();
        assert_eq!(column(&m), [12]);
        // Another size, same world: mapped.
        let m = read_label(&write("bigger.nii", [-20.0, -16.0, 5.0], [24, 16, 10]), &ct).unwrap();
        assert!(m.geometry().same_grid(&ct));
        assert_eq!(column(&m), [10]);
        // Elsewhere entirely: refused, naming the file.
        let e = read_label(&write("far.nii", [500.0, -16.0, 5.0], [20, 16, 10]), &ct)
            .unwrap_err()
            .to_string();
        assert!(e.contains("far.nii") && e.contains("overlap"), "{e}");
    }
}
