//! Crop and resampling on the real CTs of ../shared/data/cases (skipped when
//! the folder is absent, or while the NIfTI reader is not implemented yet).

use liverseg_imgproc::crop::{abdomen_crop, AbdomenCropOptions};
use liverseg_imgproc::morphology::bounding_box;
use liverseg_imgproc::resample::{isotropic_grid, resample_mask_partial_volume};
use liverseg_io::{read_image, read_mask, Error, ReadOptions};
use liverseg_volume::{Mask, Volume};
use std::path::{Path, PathBuf};

struct Case {
    id: String,
    ct: Volume<f32>,
    liver: Mask,
}

/// Every case folder with a CT and a liver mask; `None` (and a SKIP line) when
/// the data or the NIfTI reader is missing.
fn cases(test: &str) -> Option<Vec<Case>> {
    let dir = liverseg_testdata::shared_path(test, "data/cases")?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        let (ct_path, liver_path) = (d.join("ct.nii.gz"), d.join("liver.nii.gz"));
        if !ct_path.is_file() || !liver_path.is_file() {
            continue;
        }
        let ct = match read_image(&ct_path, &ReadOptions::default()) {
            Ok(out) => out.volume.to_f32(),
            Err(e) if not_implemented(&e) => {
                eprintln!("SKIP {test}: {e}");
                return None;
            }
            Err(e) => panic!("{e}"),
        };
        let (liver, _) = read_mask(&liver_path, Some(ct.geometry()), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(liver.geometry().same_grid(ct.geometry()), "{}: liver mask and CT grids differ", d.display());
        out.push(Case { id: name(&d), ct, liver });
    }
    Some(out)
}

fn name(d: &Path) -> String {
    d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn not_implemented(e: &Error) -> bool {
    matches!(e, Error::Unsupported { message, .. } if message.contains("not implemented yet"))
}

#[test]
fn abdomen_crop_keeps_the_whole_liver() {
    let Some(cases) = cases("abdomen_crop_keeps_the_whole_liver") else { return };
    for c in &cases {
        let b = abdomen_crop(&c.ct, &AbdomenCropOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        let total = c.liver.count_foreground();
        let kept = b.apply(&c.liver).unwrap().count_foreground();
        // Negative cases (no liver in the scan) only need a crop that works.
        let liver_box = bounding_box(&c.liver);
        let d = c.ct.dims();
        let s = c.ct.geometry().spacing();
        eprintln!(
            "{}: dims {d:?}, crop start {:?} size {:?} ({:.0} x {:.0} mm), liver box {liver_box:?}",
            c.id,
            b.start,
            b.size,
            b.size[0] as f64 * s[0],
            b.size[1] as f64 * s[1]
        );
        assert_eq!(kept, total, "{}: the crop cuts {} liver voxels", c.id, total - kept);
    }
}

#[test]
fn liver_mask_to_1_4_mm_and_back() {
    let Some(cases) = cases("liver_mask_to_1_4_mm_and_back") else { return };
    for c in &cases {
        let g = c.liver.geometry();
        let iso = isotropic_grid(g, 1.4).unwrap();
        let there = resample_mask_partial_volume(&c.liver, &iso);
        let back = resample_mask_partial_volume(&there, g);
        assert_eq!(back.geometry(), g, "{}: the way back must land on the original grid", c.id);
        if c.liver.count_foreground() == 0 {
            eprintln!("{}: no liver (negative case)", c.id);
            assert_eq!(back.count_foreground(), 0, "{}: voxels appeared from nothing", c.id);
            continue;
        }
        let d = liverseg_volume::dice(c.liver.data(), back.data()).unwrap_or(0.0);
        let rv = there.foreground_ml() / c.liver.foreground_ml();
        eprintln!("{}: there-and-back Dice {d:.4}, volume ratio at 1.4 mm {rv:.4}", c.id);
        assert!(d >= 0.99, "{}: Dice {d}", c.id);
        // A liver cut by the field of view gains up to half a 1.4 mm voxel on each
        // cut face (the 1.4 mm grid covers the original field of view and its edge
        // voxels reach slightly beyond it), so the volume check applies only to
        // livers inside the field of view.
        let (lo, hi) = bounding_box(&c.liver).unwrap();
        let touches_border = (0..3).any(|a| lo[a] == 0 || hi[a] == g.dims()[a]);
        if !touches_border {
            assert!((rv - 1.0).abs() < 0.01, "{}: volume ratio {rv}", c.id);
        }
    }
}
