use super::*;
use crate::testing::HuWindowModel;
use liverseg_imgproc::crop::CropBox;
use liverseg_imgproc::resample::{resample_mask_partial_volume, resample_nearest};
use liverseg_phantom::{generate, Phantom, PhantomConfig};
use liverseg_volume::Geometry;

/// The default phantom's field of view on a coarser grid (fast tests).
fn phantom(cfg: PhantomConfig) -> Phantom {
    generate(&PhantomConfig {
        dims: [128, 106, 48],
        spacing: [2.7, 2.72, 4.5],
        ..cfg
    })
}

fn coarse() -> PreprocessConfig {
    PreprocessConfig {
        spacing_mm: 2.2,
        ..Default::default()
    }
}

/// Dice of two masks; two empty masks score 0, so an empty segmentation
/// never passes for a match.
fn dice(a: &Mask, b: &Mask) -> f64 {
    liverseg_volume::dice(a.data(), b.data()).unwrap_or(0.0)
}

/// A model that knows the answer: the truth mask brought onto the
/// pre-processed grid, with `inside` / `outside` as probabilities.
struct Oracle {
    truth: Mask,
    inside: f32,
    outside: f32,
    config: PreprocessConfig,
}

impl Oracle {
    fn new(truth: Mask) -> Self {
        Oracle {
            truth,
            inside: 0.97,
            outside: 0.02,
            config: coarse(),
        }
    }
}

impl ProbabilityModel for Oracle {
    fn id(&self) -> String {
        "oracle".into()
    }
    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.config
    }
    fn default_threshold(&self) -> f32 {
        0.5
    }
    fn predict(
        &self,
        prepared: &Prepared,
        _input: &Volume<f32>,
        _threshold: f32,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Prediction, crate::ModelError> {
        progress(0, 1);
        let m = resample_mask_partial_volume(&self.truth, prepared.hu.geometry());
        progress(1, 1);
        Ok(m.map(|&v| if v != 0 { self.inside } else { self.outside }).into())
    }
}

fn run(ct: &Volume<i16>, model: &dyn ProbabilityModel, options: &SegmentOptions) -> Segmentation {
    let mut stages = Vec::new();
    let seg = segment(ct, model, options, &mut |s, _, _| {
        if stages.last() != Some(&s) {
            stages.push(s)
        }
    })
    .unwrap();
    assert_eq!(
        stages,
        [
            Stage::Preprocess,
            Stage::Predict,
            Stage::Postprocess,
            Stage::ToOriginalGrid,
            Stage::Measure
        ]
    );
    seg
}

fn flag_names(seg: &Segmentation) -> Vec<&str> {
    seg.report.flags.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn phantom_with_the_test_double_report_and_grid() {
    let p = phantom(PhantomConfig::default());
    let model = HuWindowModel {
        config: coarse(),
        ..Default::default()
    };
    let seg = run(
        &p.ct,
        &model,
        &SegmentOptions {
            probability: true,
            ..Default::default()
        },
    );
    assert_eq!(seg.liver.geometry(), p.ct.geometry());
    let d = dice(&seg.liver, &p.liver);
    assert!(d > 0.85, "test double DSC {d}");
    let r = &seg.report;
    assert_eq!(r.liver_volume_ml, seg.liver.foreground_ml());
    assert!((r.liver_mass_g - 1.03 * r.liver_volume_ml).abs() < 1e-9);
    assert!(seg.liver.data().iter().all(|&v| v <= 1));
    // Mean HU of a 110 HU liver with darker and brighter lesions excluded by the window.
    let median = r.liver_hu_median.unwrap();
    assert!((100.0..120.0).contains(&median), "median {median}");
    // Bounding box: every liver voxel inside it, its faces touched.
    let b = r.bounding_box.as_ref().unwrap();
    let g = seg.liver.geometry();
    for (o, &v) in seg.liver.data().iter().enumerate() {
        if v != 0 {
            let idx = g.index_of(o);
            assert!((0..3).all(|a| idx[a] >= b.voxel_min[a] && idx[a] <= b.voxel_max[a]));
        }
    }
    let w = g.index_to_world(b.voxel_min.map(|x| x as f64));
    assert_eq!(
        w, b.lps_min_mm,
        "identity direction: min corner is voxel_min"
    );
    // Probability on the CT grid, 0 outside the crop, in [0, 1].
    let prob = seg.probability.as_ref().unwrap();
    assert_eq!(prob.geometry(), p.ct.geometry());
    assert!(prob.data().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(r.threshold, 0.5);
    assert!(r.model_id.starts_with("hu-window-test-double"));
    let stages: Vec<&str> = r.timings_s.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "preprocess",
            "predict",
            "postprocess",
            "to_original_grid",
            "measure"
        ]
    );
    // The spleen (same HU as the liver) is kept out by the double; nothing to flag.
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    // The report is JSON with the documented names.
    let json: serde_json::Value = serde_json::from_str(&r.to_json_pretty()).unwrap();
    for key in [
        "liver_volume_ml",
        "liver_mass_g",
        "liver_hu_mean",
        "liver_hu_median",
        "bounding_box",
        "timings_s",
        "model_id",
        "threshold",
        "flags",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    // serde_json may round the last bit of a float when reading back.
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(
        (
            &back.flags,
            &back.grid.dims,
            back.bounding_box.as_ref().map(|b| b.voxel_max)
        ),
        (&r.flags, &r.grid.dims, Some(b.voxel_max))
    );
    assert!((back.liver_volume_ml - r.liver_volume_ml).abs() < 1e-9);
}

#[test]
fn flipped_and_rotated_grid_comes_back_on_itself() {
    let p = phantom(PhantomConfig {
        noise_hu: 6.0,
        ..Default::default()
    });
    // Same anatomy on a grid rotated 20 degrees in plane, rows mirrored and
    // slices going feet-wards: resampled in world space, so the patient is
    // where the axis-aligned phantom has it.
    let (s, c) = 20f64.to_radians().sin_cos();
    let direction = [[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]];
    let g0 = p.ct.geometry();
    let centre = g0.index_to_world(g0.dims().map(|d| (d as f64 - 1.0) / 2.0));
    let dims = [120, 110, 44];
    let spacing = [2.9, 2.8, 4.9];
    let half: [f64; 3] = [0, 1, 2].map(|a| (dims[a] as f64 - 1.0) / 2.0 * spacing[a]);
    let origin =
        [0, 1, 2].map(|r| centre[r] - (0..3).map(|a| direction[r][a] * half[a]).sum::<f64>());
    let g = Geometry::new(dims, spacing, origin, direction).unwrap();
    let ct = resample_nearest(&p.ct, &g, -1000i16);
    let truth = resample_nearest(&p.liver, &g, 0u8);
    let model = HuWindowModel {
        config: coarse(),
        ..Default::default()
    };
    let seg = run(&ct, &model, &SegmentOptions::default());
    assert!(seg.liver.geometry().same_grid(&g));
    assert_eq!(seg.liver.geometry(), &g, "exactly the input grid");
    let d = dice(&seg.liver, &truth);
    assert!(d > 0.85, "DSC on the oblique grid {d}");
    let straight = run(&p.ct, &model, &SegmentOptions::default());
    let ratio = seg.report.liver_volume_ml / straight.report.liver_volume_ml;
    assert!((0.95..1.05).contains(&ratio), "volume ratio {ratio}");
    // The centroid is the same place in the patient, whatever the grid.
    let (a, b) = (
        seg.report.centroid_lps_mm.unwrap(),
        straight.report.centroid_lps_mm.unwrap(),
    );
    let dist = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
    assert!(dist < 5.0, "centroids {a:?} vs {b:?}");
    // The LPS box holds the centroid.
    let bb = seg.report.bounding_box.unwrap();
    assert!((0..3).all(|i| bb.lps_min_mm[i] <= a[i] && a[i] <= bb.lps_max_mm[i]));
}

#[test]
fn flags_on_phantom_variations() {
    let base = phantom(PhantomConfig::default());
    let oracle = Oracle::new(base.liver.clone());
    // One grid: the oracle's map is the truth, sharp; averaged over three
    // grids it blurs at the border, which is the averaging's doing, not a
    // doubtful case (a trained model's border confidence drops by about
    // 0.08 with the default three grids on the five folds, none near the
    // flag's 0.15).
    let options = SegmentOptions { scale_average: vec![1.0], ..Default::default() };
    let good = run(&base.ct, &oracle, &options);
    assert!(good.report.flags.is_empty(), "{:?}", good.report.flags);
    let m = &good.report.measurements;
    assert!(m.liver_contrast_hu.unwrap() > 40.0, "{m:?}");
    assert!(m.enhanced_tissue_ml.unwrap() > 20.0, "{m:?}");
    let noise = m.noise_hu.unwrap();
    assert!((9.0..15.0).contains(&noise), "noise {noise} for 12 HU");
    assert!(m.border_confidence.unwrap() > 0.9);
    assert_eq!(good.report.components.large, 1);
    assert!(dice(&good.liver, &base.liver) > 0.95);

    // Non-contrast: liver within ~5 HU of muscle, no enhanced vessels or kidneys.
    let nc = phantom(PhantomConfig {
        contrast: 0.0,
        ..Default::default()
    });
    let seg = run(&nc.ct, &oracle, &options);
    assert_eq!(
        flag_names(&seg),
        ["non_contrast"],
        "{:?}",
        seg.report.measurements
    );
    // Arterial-like: vessels bright, liver not enhanced.
    let art = phantom(PhantomConfig {
        liver_hu: Some(65.0),
        ..Default::default()
    });
    let seg = run(&art.ct, &oracle, &options);
    assert_eq!(
        flag_names(&seg),
        ["low_contrast"],
        "{:?}",
        seg.report.measurements
    );

    let noisy = phantom(PhantomConfig {
        noise_hu: 45.0,
        ..Default::default()
    });
    let seg = run(&noisy.ct, &oracle, &options);
    assert_eq!(
        flag_names(&seg),
        ["low_dose"],
        "{:?}",
        seg.report.measurements
    );
    let f = &seg.report.flags[0];
    assert!(f.value.unwrap() > 35.0 && f.threshold == 25.0);

    // A small body: the whole phantom at 55% scale holds a ~250 ml liver,
    // and its 120 mm scan range is short.
    let small = generate(&PhantomConfig {
        dims: [128, 106, 48],
        spacing: [1.5, 1.5, 2.5],
        ..Default::default()
    });
    let seg = run(&small.ct, &Oracle::new(small.liver.clone()), &options);
    assert_eq!(
        flag_names(&seg),
        ["volume_implausible", "short_scan"],
        "{} ml",
        seg.report.liver_volume_ml
    );

    // Scan range ending inside the liver: its top is cut.
    let cut = CropBox {
        start: [0, 0, 0],
        size: [128, 106, 36],
    };
    let (ct, truth) = (
        cut.apply(&base.ct).unwrap(),
        cut.apply(&base.liver).unwrap(),
    );
    let seg = run(&ct, &Oracle::new(truth), &options);
    assert_eq!(
        flag_names(&seg),
        ["touches_crop_border"],
        "{:?}",
        seg.report.measurements
    );

    // Liver and spleen both predicted: two large components, the liver kept.
    let spleen = base.mask("spleen").unwrap();
    let both = base
        .liver
        .map(|&v| v)
        .data()
        .iter()
        .zip(spleen.data())
        .map(|(&a, &b)| a | b)
        .collect();
    let both = Mask::new(base.liver.geometry().clone(), both).unwrap();
    let rules = QualityRules {
        large_component_ml: 30.0,
        ..Default::default()
    };
    let seg = run(
        &base.ct,
        &Oracle::new(both),
        &SegmentOptions {
            rules,
            ..Default::default()
        },
    );
    assert_eq!(flag_names(&seg), ["multiple_large_components"]);
    assert_eq!(seg.report.components.large, 2);
    assert!(seg.report.components.removed_ml > 30.0);
    assert!(
        dice(&seg.liver, &base.liver) > 0.95,
        "the liver, not the spleen, is kept"
    );

    // A mask that spilled 11 mm into the liver's neighbours (muscle wall,
    // fat, stomach), in one piece with the liver: only the HU inside tell.
    let spilled = liverseg_imgproc::morphology::dilate(&base.liver, 11.0).unwrap();
    let seg = run(&base.ct, &Oracle::new(spilled), &options);
    assert_eq!(
        flag_names(&seg),
        ["mixed_tissue"],
        "{:?}",
        seg.report.measurements
    );
    let m = &seg.report.measurements;
    let mode = m.liver_mode_hu.unwrap();
    assert!((100.0..120.0).contains(&mode), "the liver's 110 HU, not the spill's: {mode}");
    // The well-segmented phantom above: only its lesions are darker.
    let clean = good.report.measurements.darker_than_liver_fraction.unwrap();
    assert!(clean < 0.1, "{clean}");

    // A hesitant model: right answer, probabilities near 0.5.
    let unsure = Oracle {
        inside: 0.56,
        outside: 0.44,
        ..Oracle::new(base.liver.clone())
    };
    let seg = run(&base.ct, &unsure, &options);
    assert_eq!(flag_names(&seg), ["low_border_confidence"]);

    // Nothing found.
    let nothing = Oracle::new(base.liver.map(|_| 0));
    let seg = run(&base.ct, &nothing, &options);
    assert_eq!(flag_names(&seg), ["empty_result"]);
    assert_eq!(seg.report.liver_volume_ml, 0.0);
    assert!(seg.report.bounding_box.is_none() && seg.report.liver_hu_mean.is_none());
}

#[test]
fn threshold_and_bad_models_are_handled() {
    let p = phantom(PhantomConfig {
        noise_hu: 0.0,
        ..Default::default()
    });
    let oracle = Oracle {
        inside: 0.7,
        ..Oracle::new(p.liver.clone())
    };
    // Threshold above the model's "inside" probability: nothing left.
    let seg = run(
        &p.ct,
        &oracle,
        &SegmentOptions {
            threshold: Some(0.8),
            ..Default::default()
        },
    );
    assert_eq!(seg.report.threshold, 0.8);
    assert_eq!(flag_names(&seg), ["empty_result"]);
    for bad in [0.0, 1.0, f32::NAN] {
        let e = segment(
            &p.ct,
            &oracle,
            &SegmentOptions {
                threshold: Some(bad),
                ..Default::default()
            },
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
    }
    struct Broken(PreprocessConfig, bool);
    impl ProbabilityModel for Broken {
        fn id(&self) -> String {
            "broken".into()
        }
        fn preprocess_config(&self) -> &PreprocessConfig {
            &self.0
        }
        fn default_threshold(&self) -> f32 {
            0.5
        }
        fn predict(
            &self,
            prepared: &Prepared,
            _: &Volume<f32>,
            _: f32,
            _: &mut dyn FnMut(usize, usize),
        ) -> Result<Prediction, crate::ModelError> {
            if self.1 {
                Err("out of memory".into())
            } else {
                Ok(prepared.hu.map(|_| 2.0).into())
            }
        }
    }
    let e = segment(
        &p.ct,
        &Broken(coarse(), true),
        &SegmentOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "model broken: out of memory");
    let e = segment(
        &p.ct,
        &Broken(coarse(), false),
        &SegmentOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a probability"), "{e}");
}

/// Tumours inside the liver are liver; a notch open to the outside is not a
/// hole (the vena cava's groove, a tumour at the border).
#[test]
fn postprocess_fills_enclosed_holes_and_leaves_open_notches() {
    let g = Geometry::identity([40, 40, 40], [1.0, 1.0, 1.0]).unwrap();
    let inside_tumour = |[i, j, k]: [usize; 3]| [i, j, k].iter().zip([20, 20, 20]).map(|(&a, c)| (a as f64 - c as f64).powi(2)).sum::<f64>() <= 16.0;
    let edge_notch = |[i, j, k]: [usize; 3]| i >= 30 && (17..23).contains(&j) && (17..23).contains(&k);
    let raw = Mask::from_fn(g, |p| {
        let [i, j, k] = p;
        let organ = (4..36).contains(&i) && (4..36).contains(&j) && (4..36).contains(&k);
        u8::from(organ && !inside_tumour(p) && !edge_notch(p))
    });
    let post = postprocess(&raw, 1.5, 0.01, HoleFill::ThreeD).unwrap();
    let m = &post.mask;
    assert_eq!(*m.get(20, 20, 20), 1, "the enclosed tumour is filled");
    assert_eq!(*m.get(23, 20, 20), 1);
    assert_eq!(*m.get(33, 20, 20), 0, "the notch open to the outside stays out");
    let tumour_voxels = raw.data().len() - raw.count_foreground();
    assert!(post.components.holes_filled_ml > 0.2 && post.components.holes_filled_ml < tumour_voxels as f64 / 1000.0, "{}", post.components.holes_filled_ml);
}

/// Axial filling also takes a vessel that runs through the liver along the
/// slice axis (open at both ends in 3-D, closed in every slice it crosses),
/// but not one that runs within a slice out of the liver, nor the notch.
#[test]
fn axial_hole_filling_takes_what_each_slice_encloses() {
    let g = Geometry::identity([40, 40, 40], [1.0, 1.0, 1.0]).unwrap();
    let along_z = |[i, j, _]: [usize; 3]| (10..13).contains(&i) && (10..13).contains(&j);
    let in_plane = |[_, j, k]: [usize; 3]| (26..29).contains(&j) && (26..29).contains(&k);
    let edge_notch = |[i, j, k]: [usize; 3]| i >= 30 && (17..23).contains(&j) && (17..23).contains(&k);
    let raw = Mask::from_fn(g, |p| {
        let [i, j, k] = p;
        let organ = (4..36).contains(&i) && (4..36).contains(&j) && (4..36).contains(&k);
        u8::from(organ && !along_z(p) && !in_plane(p) && !edge_notch(p))
    });
    let three_d = postprocess(&raw, 1.5, 0.01, HoleFill::ThreeD).unwrap();
    let axial = postprocess(&raw, 1.5, 0.01, HoleFill::Axial).unwrap();
    for post in [&three_d, &axial] {
        assert_eq!(*post.mask.get(20, 27, 27), 0, "the in-plane vessel is open in its slices");
        assert_eq!(*post.mask.get(33, 20, 20), 0, "the notch stays out");
    }
    assert_eq!(*three_d.mask.get(11, 11, 20), 0, "open at both ends in 3-D");
    assert_eq!(three_d.components.holes_filled_ml, 0.0);
    assert_eq!(*axial.mask.get(11, 11, 20), 1, "closed in each axial slice");
    // The z vessel's 3 x 3 voxels in each of the organ's 32 slices, no more.
    assert_eq!(axial.mask.count_foreground() - three_d.mask.count_foreground(), 9 * 32);
    assert!((axial.components.holes_filled_ml - 9.0 * 32.0 / 1000.0).abs() < 1e-9);
}

#[test]
fn postprocess_keeps_the_largest_and_never_adds() {
    let g = Geometry::identity([40, 30, 20], [1.0, 1.0, 1.0]).unwrap();
    // A big box and a small one joined by a 1-voxel bridge, and a far blob.
    let raw = Mask::from_fn(g, |[i, j, k]| {
        let big = (2..18).contains(&i) && (2..18).contains(&j) && (2..18).contains(&k);
        let small = (24..32).contains(&i) && (5..13).contains(&j) && (5..13).contains(&k);
        let bridge = (18..24).contains(&i) && j == 9 && k == 9;
        u8::from(big || small || bridge)
    });
    let post = postprocess(&raw, 2.0, 0.01, HoleFill::ThreeD).unwrap();
    assert!(post
        .mask
        .data()
        .iter()
        .zip(raw.data())
        .all(|(&p, &r)| p <= r));
    assert_eq!(post.components.count, 2, "the bridge is cut by the erosion");
    assert_eq!(post.components.large, 2);
    assert_eq!(*post.mask.get(10, 10, 10), 1);
    assert_eq!(*post.mask.get(28, 9, 9), 0);
    // Regrowth gives the box back whole (a dilation would round its edges
    // and corners) with the half of the bridge nearer to its core: the cores
    // end at i = 15 and i = 26, so i = 18, 19, 20 go to the box.
    assert_eq!(post.mask.count_foreground(), 4096 + 3);
    assert_eq!(*post.mask.get(20, 9, 9), 1);
    assert_eq!(*post.mask.get(21, 9, 9), 0);
    // Thinner than the ball everywhere: fall back to the largest raw component.
    let thin = Mask::from_fn(raw.geometry().clone(), |[i, j, k]| {
        u8::from(j == 3 && k == 3 && i < 30)
    });
    let post = postprocess(&thin, 2.0, 50.0, HoleFill::ThreeD).unwrap();
    assert_eq!(post.mask, thin);
    assert_eq!(post.components.large, 0);
}

/// Answers 0.3 on the model's own grid and 0.9 on any other: the averaged
/// map tells how each grid was weighted, and the grids it was asked on are
/// kept.
struct BySpacing {
    config: PreprocessConfig,
    asked: std::sync::Mutex<Vec<f64>>,
}

impl ProbabilityModel for BySpacing {
    fn id(&self) -> String {
        "by-spacing-test-double".into()
    }
    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.config
    }
    fn default_threshold(&self) -> f32 {
        0.5
    }
    fn predict(
        &self,
        prepared: &Prepared,
        _input: &Volume<f32>,
        _threshold: f32,
        _progress: &mut dyn FnMut(usize, usize),
    ) -> std::result::Result<Prediction, crate::ModelError> {
        let g = prepared.hu.geometry();
        self.asked.lock().unwrap().push(g.spacing()[0]);
        let p = if (g.spacing()[0] - self.config.spacing_mm).abs() < 1e-9 { 0.3 } else { 0.9 };
        Ok(Volume::filled(g.clone(), p).into())
    }
}

#[test]
fn scale_average_reads_each_grid_and_weighs_them_equally() {
    let p = phantom(PhantomConfig::default());
    let model = BySpacing { config: coarse(), asked: Default::default() };
    let options = |factors: Vec<f64>| SegmentOptions { probability: true, scale_average: factors, ..Default::default() };
    let one = segment(&p.ct, &model, &options(vec![1.0]), &mut |_, _, _| {}).unwrap();
    assert_eq!(one.liver.count_foreground(), 0, "0.3 alone stays below 0.5");
    assert_eq!(one.report.scale_average, vec![1.0]);
    model.asked.lock().unwrap().clear();
    let avg = segment(&p.ct, &model, &options(vec![1.0, 1.2]), &mut |_, _, _| {}).unwrap();
    let asked = model.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert!((asked[0] - 2.2).abs() < 1e-9 && (asked[1] - 2.64).abs() < 1e-9, "{asked:?}");
    assert_eq!(avg.report.scale_average, vec![1.0, 1.2]);
    // The CT's centre is deep inside both grids: (0.3 + 0.9) / 2.
    let prob = avg.probability.as_ref().unwrap();
    let [nx, ny, nz] = prob.dims();
    assert!((prob.get(nx / 2, ny / 2, nz / 2) - 0.6).abs() < 1e-5, "{}", prob.get(nx / 2, ny / 2, nz / 2));
    assert!(avg.liver.count_foreground() > 0, "0.6 is above 0.5");
    for bad in [vec![], vec![3.0], vec![1.0, f64::NAN]] {
        let e = segment(&p.ct, &model, &options(bad.clone()), &mut |_, _, _| {}).unwrap_err();
        assert!(e.to_string().contains("scale_average"), "{bad:?}: {e}");
    }
}

/// Sees "liver" (0.8) on its own grid where world x is below `edge_mm`, and
/// nothing elsewhere; on other grids answers 0 and keeps the mask it was
/// told the first grid saw.
struct Seeing {
    config: PreprocessConfig,
    edge_mm: f64,
    seen: std::sync::Mutex<Vec<Option<Mask>>>,
}

impl Seeing {
    fn answer(&self, prepared: &Prepared, seen: Option<&Mask>) -> Prediction {
        let g = prepared.hu.geometry();
        self.seen.lock().unwrap().push(seen.cloned());
        let own = (g.spacing()[0] - self.config.spacing_mm).abs() < 1e-9;
        Volume::from_fn(g.clone(), |[i, j, k]| if own && g.index_to_world([i as f64, j as f64, k as f64])[0] < self.edge_mm { 0.8 } else { 0.0 }).into()
    }
}

impl ProbabilityModel for Seeing {
    fn id(&self) -> String {
        "seeing-test-double".into()
    }
    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.config
    }
    fn default_threshold(&self) -> f32 {
        0.5
    }
    fn predict(&self, prepared: &Prepared, _: &Volume<f32>, _: f32, _: &mut dyn FnMut(usize, usize)) -> std::result::Result<Prediction, crate::ModelError> {
        Ok(self.answer(prepared, None))
    }
    fn predict_seen(&self, prepared: &Prepared, _: &Volume<f32>, _: f32, seen: &Mask, _: &mut dyn FnMut(usize, usize)) -> std::result::Result<Prediction, crate::ModelError> {
        assert!(seen.geometry().same_grid(prepared.hu.geometry()), "the seen mask is on the grid asked about");
        Ok(self.answer(prepared, Some(seen)))
    }
}

#[test]
fn scaled_grids_are_told_where_the_factor_1_grid_saw_liver() {
    let p = phantom(PhantomConfig::default());
    let (lo, hi) = p.ct.geometry().world_bounds();
    let edge_mm = (lo[0] + hi[0]) / 2.0;
    let model = Seeing { config: coarse(), edge_mm, seen: Default::default() };
    let options = SegmentOptions { scale_average: vec![0.9, 1.0, 1.1], ..Default::default() };
    segment(&p.ct, &model, &options, &mut |_, _, _| {}).unwrap();
    let seen = model.seen.lock().unwrap();
    // The factor-1 grid first, on its own; then 0.9 and 1.1, each told.
    assert_eq!(seen.len(), 3);
    assert!(seen[0].is_none());
    for mask in seen[1..].iter() {
        let mask = mask.as_ref().expect("a scaled grid is told what the first saw");
        let g = mask.geometry();
        let s = g.spacing()[0];
        let [nx, ny, nz] = g.dims();
        let (mut inside, mut beyond) = (0, 0);
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let x = g.index_to_world([i as f64, j as f64, k as f64])[0];
                    let on = *mask.get(i, j, k) != 0;
                    // Everything a voxel or more inside the edge, the
                    // factor-1 grid's voxel of interpolation beside it, and
                    // one voxel of growth: nothing 3 voxels past it.
                    if x < edge_mm - 2.0 * s && !on {
                        inside += 1;
                    }
                    if x > edge_mm + 3.0 * s.max(coarse().spacing_mm) && on {
                        beyond += 1;
                    }
                }
            }
        }
        assert_eq!((inside, beyond), (0, 0), "spacing {s}");
    }
}
