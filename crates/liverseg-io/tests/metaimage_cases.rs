//! A real CT and its liver mask (../shared/data/cases) converted to MetaImage
//! and read back: same grid, same voxels, same world coordinates.

use liverseg_io::{metaimage, read_image, write_image, ReadOptions};
use liverseg_volume::DynVolume;

fn same(a: &DynVolume, b: &DynVolume) {
    let (ga, gb) = (a.geometry(), b.geometry());
    assert_eq!(a.dtype(), b.dtype());
    assert_eq!(ga.dims(), gb.dims());
    assert_eq!(ga.spacing(), gb.spacing());
    assert_eq!(ga.origin(), gb.origin());
    for (x, y) in ga.direction_flat().iter().zip(gb.direction_flat()) {
        assert!((x - y).abs() <= 4.0 * f64::EPSILON);
    }
    let far = ga.dims().map(|d| (d - 1) as f64);
    let (wa, wb) = (ga.index_to_world(far), gb.index_to_world(far));
    assert!(wa.iter().zip(wb).all(|(p, q)| (p - q).abs() < 1e-9), "{wa:?} vs {wb:?}");
    assert!(a == b, "voxels differ");
}

#[test]
fn real_case_ct_and_mask_through_metaimage() {
    let Some(case) = liverseg_testdata::require_shared!("data/cases/ircadb01-01") else { return };
    let dir = tempfile::tempdir().unwrap();
    for (name, out) in [("ct.nii.gz", "ct.mha"), ("liver.nii.gz", "liver.mhd")] {
        let original = read_image(&case.join(name), &ReadOptions::default()).unwrap().volume;
        let target = dir.path().join(out);
        write_image(&target, &original).unwrap();
        let back = metaimage::read(&target, &ReadOptions::default()).unwrap();
        assert!(back.info.warnings.is_empty(), "{:?}", back.info.warnings);
        same(&original, &back.volume);
    }
}
