//! The pre-processing chain on the synthetic phantom (always runs).

use liverseg_imgproc::crop::{abdomen_crop, AbdomenCropOptions};
use liverseg_imgproc::filters::{median_filter, IntensityWindow};
use liverseg_imgproc::morphology::erode_keep_largest_regrow;
use liverseg_imgproc::resample::{isotropic_grid, resample_linear, resample_mask_partial_volume, resample_nearest};
use liverseg_phantom::{generate, PhantomConfig};

#[test]
fn preprocessing_chain_and_way_back() {
    let p = generate(&PhantomConfig { dims: [160, 140, 50], spacing: [1.1, 1.1, 2.5], ..Default::default() });
    let g = p.ct.geometry().clone();
    let b = abdomen_crop(&p.ct, &AbdomenCropOptions::default()).unwrap();
    assert_eq!(b.apply(&p.liver).unwrap().count_foreground(), p.liver.count_foreground());
    assert!(b.size[0] < g.dims()[0], "air around the body is cropped");
    let ct = b.apply(&p.ct).unwrap().map(|&v| v as f32);
    let liver = b.apply(&p.liver).unwrap();
    let iso = isotropic_grid(ct.geometry(), 1.4).unwrap();
    let ct_iso = resample_linear(&ct, &iso, -1024.0);
    let ct_iso = median_filter(&ct_iso, [1, 1, 1]).unwrap();
    let input = IntensityWindow::default().apply(&ct_iso).unwrap();
    assert!(input.data().iter().all(|v| (-0.2..=0.2).contains(v)));
    // Pretend the network answered with the liver at 1.4 mm: post-process, go back
    // to the crop grid, paste into the original grid.
    let pred = resample_mask_partial_volume(&liver, &iso);
    let post = erode_keep_largest_regrow(&pred, 3.0).unwrap();
    let on_crop = resample_nearest(&post, liver.geometry(), 0);
    let full = b.paste(&on_crop, &g, 0).unwrap();
    assert_eq!(full.geometry(), &g);
    let inter = full.data().iter().zip(p.liver.data()).filter(|(&a, &b)| a != 0 && b != 0).count();
    let d = 2.0 * inter as f64 / (full.count_foreground() + p.liver.count_foreground()) as f64;
    assert!(d > 0.97, "Dice after the round trip {d}");
}
