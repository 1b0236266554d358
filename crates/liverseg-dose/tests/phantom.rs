//! Phantom tests: voxel dosimetry against the analytic dose, and the partition
//! model against voxel dosimetry of a map with a known T/N.

use liverseg_dose::formulas::{complete_decay_dose, tissue_mass};
use liverseg_dose::methods::PartitionTarget;
use liverseg_dose::plan::{self, ActivityInput, Method, PlanInput};
use liverseg_dose::regions::{mask_volume, Regions};
use liverseg_dose::units::*;
use liverseg_dose::voxel::tn_from_count_map;
use liverseg_dose::{report, Limits, Sphere};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_volume::{Geometry, Mask, Volume};

fn small_phantom() -> liverseg_phantom::Phantom {
    generate(&PhantomConfig { dims: [96, 80, 36], spacing: [3.6, 3.6, 6.0], noise_hu: 0.0, lesions: 0, ..Default::default() })
}

fn base_input<'a>(regions: &'a Regions, methods: Vec<Method>) -> PlanInput<'a> {
    PlanInput {
        methods,
        skip_unavailable: false,
        regions: Some(regions),
        volumes: regions.volumes(),
        height: Some(Centimetres(175.0)),
        weight: Some(Kilograms(75.0)),
        lsf: Some(ShuntFraction::from_percent(8.0).unwrap()),
        lsf_source: "given".into(),
        lung_mass: Kilograms(1.0),
        density: GramsPerMl(1.03),
        sphere: Sphere::Resin,
        limits: Limits::for_sphere(Sphere::Resin),
        target_dose: Some(Gray(100.0)),
        target_normal: None,
        target_tumour: None,
        tn: None,
        tn_source: String::new(),
        activity: None,
        dvh_bin_width: Gray(0.5),
    }
}

#[test]
fn uniform_activity_in_the_liver_gives_the_analytic_mean_dose() {
    let p = small_phantom();
    let regions = Regions::new(&p.liver, &[], None).unwrap();
    // 1.5 MBq/ml everywhere in the liver, nothing outside.
    let c = 1.5e6;
    let map = p.liver.map(|&m| if m != 0 { c } else { 0.0 });
    let liver_ml = mask_volume(&p.liver);
    let a_liver = BqPerMl(c).times(liver_ml).to_gbq();
    // Analytic: D = 49.67 A / M with M = V rho; equivalently 49.67e-6 c / rho.
    let analytic = complete_decay_dose(a_liver, tissue_mass(liver_ml, GramsPerMl(1.03)).unwrap()).unwrap();
    assert!((analytic.0 - 49.67e-6 * c / 1.03).abs() < 1e-9);
    let mut input = base_input(&regions, vec![Method::Voxel]);
    input.activity = Some(ActivityInput::Calibrated { name: "pet".into(), bq_per_ml: map });
    let (summary, dose) = plan::run(&input).unwrap();
    let v = summary.voxel.unwrap();
    let liver = &v.regions[0];
    assert_eq!(liver.region, "liver");
    assert!((liver.mean_gy.0 - analytic.0).abs() < 1e-4, "{} vs {}", liver.mean_gy.0, analytic.0);
    assert!((liver.activity_gbq.0 - a_liver.0).abs() < 1e-9);
    for d in &liver.d {
        assert!((d.dose_gy.0 - analytic.0).abs() < 1e-4, "D{} = {}", d.percent, d.dose_gy.0);
    }
    // 72.33 Gy uniform: V20, V40, V70 = 100 %, V100, V120 = 0.
    for e in &liver.v {
        let want = if e.dose_gy.0 <= analytic.0 { 1.0 } else { 0.0 };
        assert_eq!(e.volume_fraction.0, want, "V{}", e.dose_gy.0);
    }
    // Without tumours the normal liver is the liver (listed once); the uniform 72 Gy
    // crosses the 40 Gy resin advisory, which is reported.
    assert_eq!(v.regions.len(), 1);
    assert!(v.warnings.iter().any(|w| w.code == "normal-liver-dose" && w.message.contains("to the liver")), "{:?}", v.warnings);
    let dose = dose.unwrap();
    assert!(dose.gray.geometry().same_grid(p.liver.geometry()));
    let outside_max = dose.gray.data().iter().zip(p.liver.data()).filter(|(_, &m)| m == 0).map(|(&d, _)| d).fold(0.0f32, f32::max);
    assert_eq!(outside_max, 0.0);
}

/// A box liver with a spherical tumour, on a small anisotropic grid.
fn box_liver_with_tumour() -> (Mask, Mask) {
    let g = Geometry::new([40, 36, 24], [2.5, 2.5, 4.0], [-50.0, -45.0, -48.0], liverseg_volume::IDENTITY).unwrap();
    let liver = Volume::from_fn(g.clone(), |[i, j, k]| u8::from((4..36).contains(&i) && (4..32).contains(&j) && (2..22).contains(&k)));
    let tumour = Volume::from_fn(g, |[i, j, k]| {
        let (x, y, z) = ((i as f64 - 14.0) * 2.5, (j as f64 - 16.0) * 2.5, (k as f64 - 12.0) * 4.0);
        u8::from(x * x + y * y + z * z <= 15.0 * 15.0)
    });
    (liver, tumour)
}

#[test]
fn partition_with_known_tn_matches_the_analytic_and_voxel_doses() {
    let (liver, tumour) = box_liver_with_tumour();
    let regions = Regions::new(&liver, &[("tumour".into(), &tumour)], None).unwrap();
    let tn_true = 4.0;
    // MAA counts: 4 per voxel in tumour, 1 in normal liver, 0.2 background outside.
    let counts = Volume::from_fn(liver.geometry().clone(), |[i, j, k]| {
        if *tumour.get(i, j, k) != 0 {
            tn_true
        } else if *liver.get(i, j, k) != 0 {
            1.0
        } else {
            0.2
        }
    });
    let tn = tn_from_count_map("spect", &counts, &regions.tumour, &regions.normal).unwrap();
    assert!((tn.value() - tn_true).abs() < 1e-12);

    let mut input = base_input(&regions, vec![Method::Partition, Method::Voxel]);
    input.tn = Some(tn);
    input.target_normal = Some(Gray(35.0));
    input.activity = Some(ActivityInput::Counts { name: "spect".into(), counts, administered: None });
    let (summary, _) = plan::run(&input).unwrap();
    let p = summary.partition.as_ref().unwrap();
    // Analytic: D_T = T/N D_N; A = D_N (T/N M_T + M_N) / (49.67 (1 - LSF)).
    let (m_t, m_n) = (summary.inputs.treated_tumour_mass_kg.0, summary.inputs.treated_normal_liver_mass_kg.0);
    let a = 35.0 * (tn_true * m_t + m_n) / (49.67 * 0.92);
    assert_eq!(p.target, PartitionTarget::NormalLiverGy(Gray(35.0)));
    assert!((p.activity_gbq.0 - a).abs() < 1e-9);
    assert!((p.tumour_dose_gy.0 - 140.0).abs() < 1e-9);
    assert!((p.normal_liver_dose_gy.0 - 35.0).abs() < 1e-9);
    // Voxel dosimetry of the same counts scaled to the partition activity reproduces
    // both compartment doses: the two methods agree when uptake is uniform per compartment.
    let v = summary.voxel.as_ref().unwrap();
    assert!(v.activity_source.contains("partition model"), "{}", v.activity_source);
    let by_name = |n: &str| v.regions.iter().find(|r| r.region == n).unwrap();
    assert!((by_name("tumour").mean_gy.0 - 140.0).abs() < 1e-3, "{}", by_name("tumour").mean_gy.0);
    assert!((by_name("normal liver").mean_gy.0 - 35.0).abs() < 1e-3);
    assert!((by_name("liver").activity_gbq.0 - a * 0.92).abs() < 1e-9);
    // DVH: normal liver 100 % >= 35 Gy, none >= 70 Gy; tumour 100 % >= 120 Gy.
    assert_eq!(by_name("normal liver").v_at(40.0).unwrap().0, 0.0);
    assert_eq!(by_name("tumour").v_at(120.0).unwrap().0, 1.0);
    assert!(summary.all_warnings().is_empty(), "{:?}", summary.all_warnings());

    let md = report::markdown(&summary, &[("DVH".into(), "dvh.png".into())], &["dose.nii.gz".into()], &["a note & <more>".into()]);
    for text in ["## Partition model", "T/N x M_T + M_N", "| Tumour dose | 140.0 Gy |", "## Voxel dosimetry", "![DVH](dvh.png)", "D50 (Gy)", "## Notes\n\n- a note & <more>"] {
        assert!(md.contains(text), "{text} missing from\n{md}");
    }
    let html = report::html(&summary, &[], &[], &["a note & <more>".into()]);
    assert!(html.contains("<td>Tumour dose</td><td>140.0 Gy</td>") && html.ends_with("</html>\n"));
    // Notes are a section of the page, escaped, before its end.
    assert!(html.contains("<h2>Notes</h2>\n<ul>\n<li>a note &amp; &lt;more&gt;</li>"), "{html}");
}

#[test]
fn all_methods_skip_what_they_lack_and_explicit_methods_fail_naming_it() {
    let (liver, _) = box_liver_with_tumour();
    let regions = Regions::new(&liver, &[], None).unwrap();
    let mut input = base_input(&regions, Method::ALL.to_vec());
    input.skip_unavailable = true;
    let (s, map) = plan::run(&input).unwrap();
    assert!(s.bsa.is_some() && s.mird.is_some() && s.partition.is_none() && s.voxel.is_none() && map.is_none());
    let skipped: Vec<_> = s.skipped.iter().map(|k| k.method).collect();
    assert_eq!(skipped, [Method::Partition, Method::Voxel]);
    assert!(s.skipped[0].reason.contains("tumour") && s.skipped[0].reason.contains("--tn"), "{}", s.skipped[0].reason);

    let mut input = base_input(&regions, vec![Method::Mird]);
    input.lsf = None;
    let e = plan::run(&input).unwrap_err().to_string();
    assert!(e.starts_with("method mird: needs lung shunt fraction"), "{e}");
}

#[test]
fn voxel_doses_scale_linearly_and_match_the_lobar_territory() {
    // Perfused territory = left half of the box liver: counts only there.
    let (liver, _) = box_liver_with_tumour();
    let g = liver.geometry().clone();
    let perfused = Volume::from_fn(g.clone(), |[i, _, _]| u8::from(i < 20));
    let regions = Regions::new(&liver, &[], Some(("lobe".into(), &perfused))).unwrap();
    let counts = perfused.map(|&m| m as f64 * 7.0);
    let mut input = base_input(&regions, vec![Method::Voxel]);
    input.lsf = None;
    input.activity = Some(ActivityInput::Counts { name: "spect".into(), counts, administered: Some(Gbq(1.2)) });
    let (s, _) = plan::run(&input).unwrap();
    let v = s.voxel.unwrap();
    let treated = v.regions.iter().find(|r| r.region == "treated liver").unwrap();
    // All 1.2 GBq (no LSF given: warned) in the treated liver mass.
    let m = tissue_mass(mask_volume(&regions.treated), GramsPerMl(1.03)).unwrap();
    let analytic = complete_decay_dose(Gbq(1.2), m).unwrap();
    assert!((treated.mean_gy.0 - analytic.0).abs() < 1e-3, "{} vs {}", treated.mean_gy.0, analytic.0);
    // The whole liver's mean is diluted by the unperfused half: V_treated / V_liver.
    let whole = &v.regions[0];
    let ratio = mask_volume(&regions.treated).0 / mask_volume(&regions.liver).0;
    assert!((whole.mean_gy.0 - analytic.0 * ratio).abs() < 1e-3);
    assert!(v.warnings.iter().any(|w| w.code == "lsf-assumed-zero"));
    // Exactly half the liver is perfused: the hottest 50 % is the treated half
    // (D50 = its dose), the hottest 70 % reaches into the untreated half (D70 = 0).
    assert!((ratio - 0.5).abs() < 1e-12);
    assert!((whole.d_at(50.0).unwrap().0 - analytic.0).abs() < 1e-3);
    assert_eq!(whole.d_at(70.0).unwrap().0, 0.0);
}
