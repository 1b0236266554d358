//! The bad inputs issue 8 names (negative activity, LSF >= 1, masks on different
//! grids, empty liver) and a few more, each through the public entry points: every
//! one is an error that names the input, never a panic and never a silent result.

use liverseg_dose::formulas::{complete_decay_dose, dubois_bsa, lung_dose};
use liverseg_dose::plan::{self, ActivityInput, Method, PlanInput};
use liverseg_dose::regions::{RegionVolumes, Regions};
use liverseg_dose::units::*;
use liverseg_dose::{Limits, Sphere};
use liverseg_volume::{Geometry, Mask, Volume};

fn grid() -> Geometry {
    Geometry::new([20, 18, 10], [2.0, 2.0, 3.0], [0.0, 0.0, 0.0], liverseg_volume::IDENTITY).unwrap()
}

fn liver() -> Mask {
    Volume::from_fn(grid(), |[i, j, k]| u8::from((2..18).contains(&i) && (2..16).contains(&j) && (1..9).contains(&k)))
}

fn input<'a>(regions: &'a Regions, methods: Vec<Method>) -> PlanInput<'a> {
    PlanInput {
        methods,
        skip_unavailable: false,
        regions: Some(regions),
        volumes: regions.volumes(),
        height: Some(Centimetres(170.0)),
        weight: Some(Kilograms(70.0)),
        lsf: Some(ShuntFraction::from_percent(6.0).unwrap()),
        lsf_source: "given".into(),
        lung_mass: Kilograms(1.0),
        density: GramsPerMl(1.03),
        sphere: Sphere::Glass,
        limits: Limits::for_sphere(Sphere::Glass),
        target_dose: Some(Gray(120.0)),
        target_normal: None,
        target_tumour: None,
        tn: None,
        tn_source: String::new(),
        activity: None,
        dvh_bin_width: Gray(1.0),
    }
}

fn run_err(input: &PlanInput) -> String {
    plan::run(input).unwrap_err().to_string()
}

#[test]
fn negative_activity_is_refused() {
    let e = complete_decay_dose(Gbq(-0.5), Kilograms(1.5)).unwrap_err().to_string();
    assert_eq!(e, "activity: -0.5 GBq must be zero or positive");
    let e = lung_dose(Gbq(-1.0), ShuntFraction::from_fraction(0.1).unwrap(), Kilograms(1.0)).unwrap_err().to_string();
    assert!(e.starts_with("activity: -1 GBq"), "{e}");
    // A counts map scaled to a negative administered activity.
    let regions = Regions::new(&liver(), &[], None).unwrap();
    let mut i = input(&regions, vec![Method::Voxel]);
    i.activity = Some(ActivityInput::Counts { name: "maa.nii.gz".into(), counts: liver().map(|&m| m as f64), administered: Some(Gbq(-2.0)) });
    let e = run_err(&i);
    assert_eq!(e, "administered activity: -2 GBq must be a positive number");
}

#[test]
fn lung_shunt_of_one_or_more_is_refused() {
    for bad in [1.0, 1.2, f64::NAN] {
        let e = ShuntFraction::from_fraction(bad).unwrap_err().to_string();
        assert!(e.starts_with("lung shunt fraction:") && e.contains("[0, 1)"), "{e}");
    }
    let e = ShuntFraction::from_percent(100.0).unwrap_err().to_string();
    assert_eq!(e, "lung shunt fraction: 100 % is not in [0, 100) %");
}

#[test]
fn masks_and_maps_on_other_grids_are_refused() {
    let other = Geometry::new([20, 18, 10], [2.0, 2.0, 3.0], [0.0, 0.0, 5.0], liverseg_volume::IDENTITY).unwrap();
    let shifted: Mask = Volume::filled(other.clone(), 1u8);
    let e = Regions::new(&liver(), &[("lesion.nii.gz".into(), &shifted)], None).unwrap_err().to_string();
    assert!(e.starts_with("tumour mask lesion.nii.gz: not on the CT grid") && e.contains("origin"), "{e}");
    let e = Regions::new(&liver(), &[], Some(("lobe.nii.gz".into(), &shifted))).unwrap_err().to_string();
    assert!(e.starts_with("perfused mask lobe.nii.gz: not on the CT grid"), "{e}");
    let regions = Regions::new(&liver(), &[], None).unwrap();
    let mut i = input(&regions, vec![Method::Voxel]);
    i.activity = Some(ActivityInput::Calibrated { name: "y90pet.nii.gz".into(), bq_per_ml: Volume::filled(other, 1.0e6) });
    let e = run_err(&i);
    assert!(e.starts_with("y90pet.nii.gz: not on the CT grid") && e.contains("resample"), "{e}");
}

#[test]
fn empty_liver_is_refused() {
    let empty: Mask = Volume::filled(grid(), 0u8);
    assert_eq!(Regions::new(&empty, &[], None).unwrap_err().to_string(), "liver mask: is empty (no foreground voxels)");
    // Volumes given as numbers, liver 0 ml.
    let regions = Regions::new(&liver(), &[], None).unwrap();
    let mut i = input(&regions, vec![Method::Mird]);
    i.regions = None;
    i.volumes = RegionVolumes {
        liver_ml: Millilitres(0.0),
        tumour_ml: Millilitres(0.0),
        normal_liver_ml: Millilitres(0.0),
        treated_liver_ml: Millilitres(0.0),
        treated_tumour_ml: Millilitres(0.0),
        treated_normal_liver_ml: Millilitres(0.0),
    };
    assert_eq!(run_err(&i), "liver: is empty: liver volume 0 ml");
}

#[test]
fn inconsistent_volumes_limits_and_units_are_refused() {
    let regions = Regions::new(&liver(), &[], None).unwrap();
    let mut i = input(&regions, vec![Method::Mird]);
    i.regions = None;
    i.volumes = RegionVolumes { tumour_ml: Millilitres(5000.0), ..regions.volumes() };
    let e = run_err(&i);
    assert!(e.starts_with("tumour volume: 5000 ml is larger than the liver"), "{e}");

    let mut i = input(&regions, vec![Method::Mird]);
    i.limits.lung_per_treatment_gy = Gray(-30.0);
    assert!(run_err(&i).starts_with("lung limit per treatment: -30 Gy"));

    let mut i = input(&regions, vec![Method::Mird]);
    i.density = GramsPerMl(0.0);
    assert!(run_err(&i).starts_with("density: 0 g/ml"));

    // Height in metres or weight in grams are caught by plausibility, not used.
    assert!(dubois_bsa(Centimetres(1.7), Kilograms(70.0)).unwrap_err().to_string().contains("centimetres"));
    assert!(dubois_bsa(Centimetres(170.0), Kilograms(70_000.0)).unwrap_err().to_string().contains("kilograms"));
}
