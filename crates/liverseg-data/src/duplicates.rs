//! Duplicate training cases, found by voxel content. The paper found 91 MSD
//! Task03 cases to be LiTS cases under other names; training on both counts
//! them twice, and a copy on each side of the split leaks validation data.
//!
//! The content hash covers the CT's dims and voxel values only, not its
//! header: the same scan stored as `.nii` or `.nii.gz`, NIfTI or MetaImage,
//! int16 or float (with integer values), hashes the same. A copy whose voxel
//! order differs (re-oriented on disk) is not caught by the hash.

use std::collections::BTreeMap;

use liverseg_volume::{dyn_dispatch, DynVolume};
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3Default;

use crate::cache::LoadedCase;

/// Values go through the hasher in blocks this long (voxels).
const BLOCK: usize = 1 << 14;

/// 128-bit xxh3 of the dims and the voxel values as exact integers where they
/// are integers (so an int16 copy and a float copy of one CT agree), else as
/// the f64 bit pattern (one NaN for all NaNs). 32 hex digits.
// `x as f64` is a no-op for the f64 variant of the dispatch.
#[allow(clippy::unnecessary_cast)]
pub fn content_hash(volume: &DynVolume) -> String {
    let mut h = Xxh3Default::new();
    h.update(b"liverseg-ct-content-v1");
    for d in volume.geometry().dims() {
        h.update(&(d as u64).to_le_bytes());
    }
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 9);
    dyn_dispatch!(volume, v => {
        for chunk in v.data().chunks(BLOCK) {
            buf.clear();
            for &x in chunk {
                canonical(x as f64, &mut buf);
            }
            h.update(&buf);
        }
    });
    format!("{:032x}", h.digest128())
}

/// A tag byte keeps an integer and a float with the same 8 bytes apart.
#[inline(always)]
fn canonical(v: f64, out: &mut Vec<u8>) {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        out.push(0);
        out.extend_from_slice(&(v as i64).to_le_bytes());
    } else {
        out.push(1);
        let bits = if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        };
        out.extend_from_slice(&bits.to_le_bytes());
    }
}

/// Cases with identical CT content; the first id is the copy that is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateGroup {
    pub content_hash: String,
    pub ids: Vec<String>,
}

/// Two cases on the same grid size whose prepared CTs agree on almost every
/// voxel (re-saved with a small change, e.g. a different HU clip). Reported
/// only; [`dedupe`] keeps both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearDuplicate {
    pub a: String,
    pub b: String,
    /// Fraction of prepared voxels within 0.5 HU of each other.
    pub identical_fraction: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DuplicateReport {
    /// Groups of two or more identical cases, in input order of their first id.
    pub groups: Vec<DuplicateGroup>,
    pub near: Vec<NearDuplicate>,
}

impl DuplicateReport {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.near.is_empty()
    }

    /// Ids [`dedupe`] drops (every group member but the first).
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.ids[1..].iter().map(String::as_str))
    }

    /// The id kept in place of `id` (itself when it is not a removed copy).
    pub fn kept_id<'a>(&'a self, id: &'a str) -> &'a str {
        self.groups
            .iter()
            .find(|g| g.ids.iter().any(|i| i == id))
            .map_or(id, |g| g.ids[0].as_str())
    }
}

/// Share of voxels that must agree for a near-duplicate.
pub const NEAR_DUPLICATE_FRACTION: f64 = 0.999;

/// Identical groups by content hash, and near-duplicates among the rest.
pub fn find_duplicates(cases: &[LoadedCase]) -> DuplicateReport {
    let mut by_hash: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        by_hash.entry(c.content_hash.as_str()).or_default().push(i);
    }
    let mut groups: Vec<(usize, DuplicateGroup)> = by_hash
        .into_iter()
        .filter(|(_, members)| members.len() > 1)
        .map(|(hash, members)| {
            (
                members[0],
                DuplicateGroup {
                    content_hash: hash.to_string(),
                    ids: members.iter().map(|&i| cases[i].id.clone()).collect(),
                },
            )
        })
        .collect();
    groups.sort_by_key(|(first, _)| *first);

    // Near-duplicates: only pairs with different hashes and the same original
    // and prepared grid sizes are compared, so this is cheap on real datasets.
    // Only the first copy of each identical group takes part.
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<&LoadedCase> = cases
        .iter()
        .filter(|c| seen.insert(c.content_hash.as_str()))
        .collect();
    let mut near = Vec::new();
    for i in 0..firsts.len() {
        for j in i + 1..firsts.len() {
            let (a, b) = (firsts[i], firsts[j]);
            if a.prepared.original.dims() != b.prepared.original.dims()
                || a.prepared.hu.dims() != b.prepared.hu.dims()
            {
                continue;
            }
            let same = a
                .prepared
                .hu
                .data()
                .iter()
                .zip(b.prepared.hu.data())
                .filter(|(x, y)| (**x - **y).abs() <= 0.5)
                .count();
            let fraction = same as f64 / a.prepared.hu.len() as f64;
            if fraction > NEAR_DUPLICATE_FRACTION {
                near.push(NearDuplicate {
                    a: a.id.clone(),
                    b: b.id.clone(),
                    identical_fraction: fraction,
                });
            }
        }
    }
    DuplicateReport {
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        near,
    }
}

/// Drop every identical copy but the first (input order).
pub fn dedupe(cases: Vec<LoadedCase>) -> (Vec<LoadedCase>, DuplicateReport) {
    let report = find_duplicates(&cases);
    let removed: std::collections::BTreeSet<String> =
        report.removed().map(str::to_string).collect();
    let kept = cases
        .into_iter()
        .filter(|c| !removed.contains(&c.id))
        .collect();
    (kept, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::load_case;
    use crate::datasets::CaseSource;
    use crate::PreprocessConfig;
    use liverseg_phantom::{generate, PhantomConfig};
    use liverseg_volume::{Geometry, Mask, Volume};
    use std::path::Path;

    fn vol<T>(data: Vec<T>, dims: [usize; 3]) -> DynVolume
    where
        DynVolume: From<Volume<T>>,
    {
        DynVolume::from(Volume::new(Geometry::identity(dims, [1.0; 3]).unwrap(), data).unwrap())
    }

    #[test]
    fn hash_sees_values_not_types_or_headers() {
        let ints: Vec<i16> = (0..60).map(|i| (i * 37 % 200 - 100) as i16).collect();
        let a = vol(ints.clone(), [5, 4, 3]);
        let f = vol(
            ints.iter().map(|&v| f32::from(v)).collect::<Vec<f32>>(),
            [5, 4, 3],
        );
        let d = vol(
            ints.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>(),
            [5, 4, 3],
        );
        assert_eq!(content_hash(&a), content_hash(&f));
        assert_eq!(content_hash(&a), content_hash(&d));
        // Another header, same voxels: same hash.
        let moved = a
            .clone()
            .with_geometry(
                Geometry::new(
                    [5, 4, 3],
                    [0.7, 0.7, 2.5],
                    [10.0, -3.0, 4.0],
                    liverseg_volume::IDENTITY,
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(content_hash(&a), content_hash(&moved));
        // One voxel changed, other dims, or a fractional value: different.
        let mut changed = ints.clone();
        changed[17] += 1;
        assert_ne!(content_hash(&a), content_hash(&vol(changed, [5, 4, 3])));
        assert_ne!(
            content_hash(&a),
            content_hash(&vol(ints.clone(), [4, 5, 3]))
        );
        let mut frac: Vec<f32> = ints.iter().map(|&v| f32::from(v)).collect();
        frac[3] += 0.25;
        assert_ne!(content_hash(&a), content_hash(&vol(frac, [5, 4, 3])));
        assert_eq!(content_hash(&a).len(), 32);
    }

    fn write_case(
        dir: &Path,
        dataset: &str,
        id: &str,
        ct: DynVolume,
        label: &Mask,
        ext: &str,
    ) -> CaseSource {
        std::fs::create_dir_all(dir.join(dataset)).unwrap();
        let (c, l) = (
            dir.join(dataset).join(format!("{id}-ct.{ext}")),
            dir.join(dataset).join(format!("{id}-liver.{ext}")),
        );
        liverseg_io::write_image(&c, &ct).unwrap();
        liverseg_io::write_image(&l, &DynVolume::from(label.clone())).unwrap();
        CaseSource {
            id: format!("{dataset}/{id}"),
            dataset: dataset.into(),
            ct: c,
            label: l,
        }
    }

    #[test]
    fn one_phantom_in_two_formats_and_two_datasets_is_one_case() {
        let d = tempfile::tempdir().unwrap();
        let small = PhantomConfig {
            dims: [64, 56, 30],
            spacing: [4.0, 4.0, 6.0],
            ..Default::default()
        };
        let p = generate(&small);
        let other = generate(&PhantomConfig {
            seed: 2,
            ..small.clone()
        });
        // Near-duplicate: a few voxels re-valued.
        let mut edited = p.ct.clone();
        for v in &mut edited.data_mut()[20_000..20_002] {
            *v += 300;
        }
        let cases = [
            write_case(
                d.path(),
                "lits",
                "volume-1",
                DynVolume::from(p.ct.clone()),
                &p.liver,
                "nii.gz",
            ),
            write_case(
                d.path(),
                "lits",
                "volume-2",
                DynVolume::from(other.ct.clone()),
                &other.liver,
                "nii",
            ),
            write_case(
                d.path(),
                "msd",
                "liver_1",
                DynVolume::from(p.ct.clone()),
                &p.liver,
                "mha",
            ),
            write_case(
                d.path(),
                "float",
                "copy",
                DynVolume::from(p.ct.map(|&v| f32::from(v))),
                &p.liver,
                "mhd",
            ),
            write_case(
                d.path(),
                "edited",
                "e",
                DynVolume::from(edited),
                &p.liver,
                "nii.gz",
            ),
        ];
        let config = PreprocessConfig {
            spacing_mm: 4.0,
            ..Default::default()
        };
        let loaded: Vec<LoadedCase> = cases
            .iter()
            .map(|c| load_case(c, &config, None).unwrap())
            .collect();
        let (kept, report) = dedupe(loaded);
        assert_eq!(report.groups.len(), 1, "{report:?}");
        assert_eq!(
            report.groups[0].ids,
            ["lits/volume-1", "msd/liver_1", "float/copy"]
        );
        let kept_ids: Vec<&str> = kept.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(kept_ids, ["lits/volume-1", "lits/volume-2", "edited/e"]);
        assert_eq!(
            report.removed().collect::<Vec<_>>(),
            ["msd/liver_1", "float/copy"]
        );
        assert_eq!(report.kept_id("float/copy"), "lits/volume-1");
        assert_eq!(report.kept_id("lits/volume-2"), "lits/volume-2");
        // The edited copy is near, not identical; the other phantom is neither.
        assert_eq!(report.near.len(), 1, "{:?}", report.near);
        let n = &report.near[0];
        assert_eq!((n.a.as_str(), n.b.as_str()), ("lits/volume-1", "edited/e"));
        assert!(
            n.identical_fraction > NEAR_DUPLICATE_FRACTION && n.identical_fraction < 1.0,
            "{}",
            n.identical_fraction
        );
        // Nothing to remove in an already clean set.
        let (again, none) = dedupe(kept);
        assert_eq!(again.len(), 3);
        assert!(none.groups.is_empty());
    }
}
