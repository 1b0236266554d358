//! The crate's formulas checked against numbers printed in published sources.
//!
//! Every expected number below was read in the cited text; the comment next to it
//! names the source (authors or publisher, title, journal/year or URL, section) and
//! quotes the passage. Where a source states a formula but no worked patient, the
//! test checks the crate against the formula as printed (constants, structure,
//! conventions) and says so. Where a source rounds, the tolerance says by how much.
//!
//! No published worked patient example (inputs and the printed result) was found
//! for the BSA method, the mono-compartment MIRD method, the partition model or
//! voxel local deposition; those keep their hand-computed tests in `src/` and in
//! `tests/phantom.rs`. See the crate README ("Published checks").

use liverseg_dose::formulas::{activity_for_dose, complete_decay_dose, dubois_bsa, lsf_from_planar, lung_dose, tn_from_counts};
use liverseg_dose::formulas::{y90_dose_factor_from_physics, PlanarCounts, TnRatio};
use liverseg_dose::methods::{bsa_method, mird_method, partition_method, BsaInput, LsfAdjustment, MirdInput, PartitionInput, PartitionTarget};
use liverseg_dose::units::*;
use liverseg_dose::voxel::gray_per_bq_per_ml;
use liverseg_dose::{Limits, Sphere, Y90_GY_KG_PER_GBQ};

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn lsf(percent: f64) -> ShuntFraction {
    ShuntFraction::from_percent(percent).unwrap()
}

/// DuBois & DuBois BSA: the two published forms of the constant.
///
/// * DuBois D, DuBois EF, "A formula to estimate the approximate surface area if
///   height and weight be known", Arch Intern Med 1916;17:863-71, as restated by
///   GlobalRPh (http://globalrph.com/bsa2.htm, "References", item 1):
///   "BSA (m2) = 0.007184 x Height(cm)0.725 x Weight(kg)0.425".
/// * harderworld.com BSA calculator references
///   (https://harderworld.com/2013/03/13/here-we-go-again-2/, "The DuBois and DuBois
///   formula"): "BSA (m2) = 0.20247 x Height(m)0.725 x Weight(kg)0.425", and the
///   0.007184 cm form "gives virtually identical results".
/// * C. van Roekel, PhD thesis (Utrecht), chapter 2 p. 30
///   (https://publicatie-online.nl/uploaded/flipbook/143091-Caren-van-Roekel/30):
///   the BSA used for SIRT reads "0.2024 ∗ height( )^0,725 ∗ weight( )^0,425" (the
///   flipbook's text layer drops the units and exponent marks; the constant 0.2024
///   only fits height in metres).
///
/// Investigated and rejected as a reference: the calculatorcollection.org "Body
/// Surface Area Calculator" example ("a patient weighing 70 kg with a height of
/// 170 cm ... 70^0.425 ≈ 6.828; then 170^0.725 ≈ 37.16 ... ≈ 1.823 m²") is wrong in
/// both powers (70^0.425 = 6.084, 170^0.725 = 41.41); the correct DuBois value is
/// 1.8097 m², which the crate gives (asserted below). The crate is right there.
#[test]
fn dubois_matches_the_published_forms_of_the_formula() {
    for (h_cm, w_kg) in [(150.0, 45.0), (160.0, 60.0), (170.0, 70.0), (175.0, 75.0), (190.0, 110.0)] {
        let crate_bsa = dubois_bsa(Centimetres(h_cm), Kilograms(w_kg)).unwrap().0;
        let cm_form = 0.007184 * f64::powf(h_cm, 0.725) * f64::powf(w_kg, 0.425);
        let m_form = 0.20247 * f64::powf(h_cm / 100.0, 0.725) * f64::powf(w_kg, 0.425);
        let thesis_form = 0.2024 * f64::powf(h_cm / 100.0, 0.725) * f64::powf(w_kg, 0.425);
        // 0.007184 x 100^0.725 = 0.2024726: the two published constants agree to
        // the 5 digits printed (< 3e-5 relative).
        assert!(rel(crate_bsa, cm_form) < 3e-5, "{h_cm} cm {w_kg} kg: {crate_bsa} vs {cm_form}");
        assert!(rel(crate_bsa, m_form) < 3e-5, "{crate_bsa} vs {m_form}");
        // The thesis truncates the constant to 4 digits: 0.2024 / 0.20247 = 0.99965.
        assert!(rel(crate_bsa, thesis_form) < 5e-4, "{crate_bsa} vs {thesis_form}");
    }
    // The calculatorcollection.org patient, recomputed (see above).
    let bsa = dubois_bsa(Centimetres(170.0), Kilograms(70.0)).unwrap().0;
    assert!((bsa - 1.8097).abs() < 1e-4, "{bsa}");
}

/// The Y-90 dose factor (Gy per GBq per kg, complete decay, local absorption).
///
/// * TheraSphere Yttrium-90 Glass Microspheres Package Insert (USA, rev. 12; copy at
///   https://ja.scribd.com/document/317860231/TS-PackageInsert-USA-v12), DESCRIPTION,
///   p. 1: "decays to stable zirconium-90 with a physical half-life of 64.1 hours
///   (2.67 days). The average energy of the beta emissions from yttrium-90 is
///   0.9367 MeV."
/// * The glass-sphere liver dose formula as reproduced in "... and Dose Calculation"
///   (radiologykey.com/and-dose-calculation, eq. (2)): "Liver Dose (Gy) = 50 [Injected
///   Activity (GBq)][1 - F] / Mass of Selected Liver Target (kg)".
/// * Sirtex Medical, "Dosimetry" (https://www.sirtex.com/us/clinicians/about-sirt/dosimetry/):
///   "In general, 1 GBq (27 mCi) of yttrium-90/kg of tissue provides the equivalent of
///   50 Gy of radiation dose."
///
/// Finding: from the insert's own half-life and mean energy the factor is
/// 1e9 x 64.1 x 3600 / ln 2 x 0.9367 MeV x 1.602e-13 J/MeV = 49.96 Gy kg/GBq, which
/// the vendors round to 50. The crate uses 49.67 (METHOD.md, issue 8; it corresponds
/// to a mean beta energy of 0.931 MeV at 64.1 h, between the 0.9267 MeV of ENSDF and
/// the insert's 0.9367 MeV). The two conventions differ by 0.66 %, below the
/// uncertainty of either energy value; the crate keeps 49.67 and prints it in every
/// report formula, so a number from a 50-based vendor sheet differs by exactly
/// 50 / 49.67 (asserted in `mird_activity_versus_the_glass_sphere_formula`).
#[test]
fn y90_dose_factor_against_the_package_insert_and_the_vendor_figure() {
    let from_insert = y90_dose_factor_from_physics(64.1, 0.9367);
    assert!((from_insert - 49.96).abs() < 0.01, "{from_insert}");
    // The insert's physics gives the vendors' rounded 50 to 0.1 %.
    assert!(rel(from_insert, 50.0) < 1e-3);
    // The crate's constant is within 0.6 % of both.
    assert!(rel(Y90_GY_KG_PER_GBQ, from_insert) < 6e-3);
    assert!(rel(Y90_GY_KG_PER_GBQ, 50.0) < 7e-3);
    // Sirtex: 1 GBq per kg "provides the equivalent of 50 Gy" -> crate 49.67 Gy.
    let d = complete_decay_dose(Gbq(1.0), Kilograms(1.0)).unwrap().0;
    assert!(rel(d, 50.0) < 7e-3, "{d}");
    // Sirtex's "1 GBq (27 mCi)": 1000 / 37 = 27.03 mCi.
    assert!((Gbq(1.0).to_mci().0 - 27.0).abs() < 0.05);
}

/// The mono-compartment (MIRD) prescription against the glass-sphere formula as
/// printed (radiologykey.com/and-dose-calculation, eq. (2), quoted above): solving
/// "Liver Dose (Gy) = 50 [A (GBq)][1 - F] / M (kg)" for A gives A = D M / (50 (1 - F)),
/// the crate's formula with 50 in place of 49.67.
#[test]
fn mird_activity_versus_the_glass_sphere_formula() {
    for (d_gy, m_kg, f) in [(120.0, 1.5, 0.10), (80.0, 0.6, 0.0), (150.0, 2.2, 0.15)] {
        let r = mird_method(&MirdInput {
            target: Gray(d_gy),
            treated_mass: Kilograms(m_kg),
            lsf: ShuntFraction::from_fraction(f).unwrap(),
            lung_mass: Kilograms(1.0),
            limits: Limits::for_sphere(Sphere::Glass),
        })
        .unwrap();
        let insert = d_gy * m_kg / (50.0 * (1.0 - f));
        // Same formula: the ratio is exactly the ratio of the constants.
        assert!((r.activity_gbq.0 / insert - 50.0 / 49.67).abs() < 1e-12, "{} vs {insert}", r.activity_gbq.0);
        // Feeding the crate's activity into the printed dose equation (factor 50)
        // returns the target dose to the 0.66 % of the constant.
        let dose_by_eq2 = 50.0 * r.activity_gbq.0 * (1.0 - f) / m_kg;
        assert!(rel(dose_by_eq2, d_gy) < 7e-3);
    }
    // The inverse formula agrees with itself: 120 Gy in 1.5 kg without shunt.
    let a = activity_for_dose(Gray(120.0), Kilograms(1.5)).unwrap();
    assert!((complete_decay_dose(a, Kilograms(1.5)).unwrap().0 - 120.0).abs() < 1e-9);
}

/// Vial sizes printed in the TheraSphere Package Insert (DESCRIPTION, p. 1, source
/// above): "3 GBq (81 mCi), 5 GBq (135 mCi), 7 GBq (189 mCi), 10 GBq (270 mCi),
/// 15 GBq (405 mCi) and 20 GBq (540 mCi)". Every label is GBq x 27, the exact
/// 1000 / 37 = 27.03 mCi per GBq rounded (20 GBq is 540.54 mCi), so the labels sit
/// 0.1 % below the exact conversion: that is the tolerance.
#[test]
fn millicurie_conversion_reproduces_the_insert_vial_labels() {
    for (gbq, mci) in [(3.0, 81.0), (5.0, 135.0), (7.0, 189.0), (10.0, 270.0), (15.0, 405.0), (20.0, 540.0)] {
        let exact = Gbq(gbq).to_mci().0;
        assert!(rel(exact, mci) < 1.1e-3, "{gbq} GBq -> {exact} mCi, label {mci}");
        assert!(exact > mci, "the labels round the factor down");
        assert!(rel(Millicuries(mci).to_gbq().0, gbq) < 1.1e-3);
    }
}

/// Lung limits.
///
/// * van Roekel thesis (above), chapter 2 p. 30, "Lung shunt calculation": "the
///   highest tolerable lung shunt was defined as 30 Gy after a single treatment and a
///   cumulative dose of 50 Gy after repeated treatments".
/// * Radiopaedia, "Lung shunt fraction" (https://radiopaedia.org/articles/lung-shunt-fraction):
///   "Guidelines suggest a maximum per treatment dose of 30Gy and a maximum total
///   dose of 50Gy."
/// * The glass-sphere chapter (radiologykey.com/and-dose-calculation, after eq. (2)):
///   "In these equations for glass microspheres F = 0.61 when GBq is used,
///   (representing the upper limit of activity that can safely be delivered to the
///   lungs in a single glass microsphere administration)", read as 0.61 GBq reaching
///   the lungs. With the 1 kg lung mass of the crate's default, 0.61 GBq x 49.67 =
///   30.3 Gy (x 50 = 30.5 Gy): the same 30 Gy limit, the 0.61 being rounded (1 %
///   tolerance).
#[test]
fn lung_limits_are_the_published_30_and_50_gy() {
    for sphere in [Sphere::Resin, Sphere::Glass] {
        let l = Limits::for_sphere(sphere);
        assert_eq!(l.lung_per_treatment_gy, Gray(30.0));
        assert_eq!(l.lung_cumulative_gy, Gray(50.0));
    }
    let l = Limits::for_sphere(Sphere::Glass);
    // 0.61 GBq reaching 1 kg of lung (e.g. 6.1 GBq at LSF 10 %).
    let d = lung_dose(Gbq(6.1), lsf(10.0), Kilograms(1.0)).unwrap().0;
    assert!(rel(d, 30.0) < 0.011, "{d}");
    // The crate's highest activity within the lung limit, at LSF 10 %, puts 0.604 GBq
    // in the lung: the published 0.61 GBq to its rounding.
    let r = mird_method(&MirdInput { target: Gray(120.0), treated_mass: Kilograms(1.5), lsf: lsf(10.0), lung_mass: Kilograms(1.0), limits: l }).unwrap();
    let lung_share = r.max_activity_lung_gbq.unwrap().0 * 0.10;
    assert!(rel(lung_share, 0.61) < 0.011, "{lung_share}");
    // Crossing 30 Gy in one treatment, or 50 Gy with earlier ones, is flagged.
    assert_eq!(l.check_lung(Gray(31.0)).iter().map(|w| w.code).collect::<Vec<_>>(), ["lung-dose"]);
    let prior = Limits { prior_lung_gy: Gray(25.0), ..l };
    assert_eq!(prior.check_lung(Gray(26.0)).iter().map(|w| w.code).collect::<Vec<_>>(), ["lung-dose-cumulative"]);
}

/// Lung shunt fraction from counts. Radiopaedia, "Lung shunt fraction" (above): "The
/// lung shunt fraction = (total lung counts) / (total lung counts + total liver
/// counts)". (The crate also offers the geometric mean of anterior and posterior
/// views; with anterior counts only it is the printed formula.)
#[test]
fn lsf_is_lung_over_lung_plus_liver_counts() {
    let ant = |c: f64| PlanarCounts { anterior: Counts(c), posterior: None };
    for (lung, liver) in [(9.0e4, 9.1e5), (1.0e5, 4.0e5), (2.5e4, 9.75e5)] {
        let f = lsf_from_planar(ant(lung), ant(liver)).unwrap().value();
        assert!((f - lung / (lung + liver)).abs() < 1e-12);
    }
}

/// SIR-Spheres activity reduction for lung shunting.
///
/// * van Roekel thesis (above), chapter 2 p. 41: "dose reductions of 20%, 40% and
///   100% if the LSF exceeds 10%, 15% or 20%".
/// * Grosser OS et al., "Intrahepatic activity distribution in radioembolization with
///   yttrium-90-labeled resin microspheres using the body surface area method - a
///   less than perfect model", J Vasc Interv Radiol 2015;26(11):1615-21, abstract:
///   "Resulting activities were reduced according to LLS RF by 20% in 12.4% and by
///   40% in 3.5% of patients."
///
/// Inside the bands the crate agrees. At the exact edges the thesis' "exceeds" would
/// leave LSF = 10 % unreduced and 15 % at 20 %; the crate takes the stricter band at
/// both (documented in `LsfAdjustment`), so it never prescribes more than the
/// published rule. At 20 % both give a 40 % reduction (100 % only above 20 %).
#[test]
fn lsf_reduction_bands_match_the_published_rule() {
    for (p, factor) in [(5.0, Some(1.0)), (12.0, Some(0.8)), (17.5, Some(0.6)), (20.0, Some(0.6)), (25.0, None)] {
        assert_eq!(LsfAdjustment::for_lsf(lsf(p)).factor(), factor, "LSF {p} %");
    }
    // Edges, stricter than "exceeds": documented convention.
    assert_eq!(LsfAdjustment::for_lsf(lsf(10.0)), LsfAdjustment::Reduce20);
    assert_eq!(LsfAdjustment::for_lsf(lsf(15.0)), LsfAdjustment::Reduce40);
}

/// BSA method, formula as printed (no worked patient found; the SIR-Spheres
/// instructions and Kennedy et al. 2007 were not reachable in the stored sources).
///
/// articl.net, "Dose Calculator for Radioembolization"
/// (https://articl.net/resource/dose-calculator-for-radioembolization), "BSA Method":
/// "Activity (GBq) ≈ (BSA – 0.2) + Tumour Involvement (%)". Tumour involvement is the
/// tumour's share of the liver, V_T / (V_T + V_N), entered as a fraction (0.2 for
/// 20 %), which the crate computes as V_T / V_liver with the liver contour including
/// the tumour.
#[test]
fn bsa_method_follows_the_printed_formula() {
    let (h, w) = (Centimetres(168.0), Kilograms(64.0));
    let bsa = dubois_bsa(h, w).unwrap().0;
    for (liver_ml, tumour_ml) in [(1500.0, 0.0), (1500.0, 300.0), (2200.0, 880.0)] {
        let r = bsa_method(&BsaInput {
            height: h,
            weight: w,
            liver: Millilitres(liver_ml),
            tumour: Millilitres(tumour_ml),
            perfused: None,
            lsf: lsf(4.0),
            lung_mass: Kilograms(1.0),
            density: GramsPerMl(1.03),
            sphere: Sphere::Resin,
            limits: Limits::for_sphere(Sphere::Resin),
        })
        .unwrap();
        let normal_ml = liver_ml - tumour_ml;
        let printed = (bsa - 0.2) + tumour_ml / (tumour_ml + normal_ml);
        assert!((r.whole_liver_activity_gbq.0 - printed).abs() < 1e-12);
        assert_eq!(r.prescribed_activity_gbq, Some(r.whole_liver_activity_gbq), "LSF 4 %: no reduction");
    }
}

/// Partition model, formula and T/N convention as printed (no worked patient found).
///
/// * Ho S et al., "Partition model for estimating radiation doses from yttrium-90
///   microspheres in treating hepatic tumours", Eur J Nucl Med 1996;23(8):947-952,
///   abstract: "The intrahepatic activity was partitioned between the tumour and the
///   normal liver based on the T/N and their masses determined from computerized
///   tomography slices".
/// * articl.net (above), "Partition Model": "Dₜ (Gy) = (50 × A × (1 – LSF) × TNR) /
///   (TNR × Mₜ + Mₙₗ)".
#[test]
fn partition_model_follows_the_printed_formula() {
    let (tn, m_t, m_n, f) = (4.0, 0.35, 1.4, 0.07);
    for a in [1.0, 2.5, 4.0] {
        let r = partition_method(&PartitionInput {
            tn: TnRatio::new(tn).unwrap(),
            tumour_mass: Kilograms(m_t),
            normal_mass: Kilograms(m_n),
            lsf: ShuntFraction::from_fraction(f).unwrap(),
            lung_mass: Kilograms(1.0),
            target: PartitionTarget::ActivityGbq(Gbq(a)),
            limits: Limits::for_sphere(Sphere::Resin),
        })
        .unwrap();
        let printed_50 = 50.0 * a * (1.0 - f) * tn / (tn * m_t + m_n);
        // Same expression; only the constant differs (49.67 vs 50, see above).
        assert!((r.tumour_dose_gy.0 / printed_50 - 49.67 / 50.0).abs() < 1e-12);
        assert!((r.normal_liver_dose_gy.0 * tn - r.tumour_dose_gy.0).abs() < 1e-9);
        // Ho: the intrahepatic activity A (1 - LSF) is shared by T/N and mass.
        let a_t = Y90_GY_KG_PER_GBQ.recip() * r.tumour_dose_gy.0 * m_t;
        let a_n = Y90_GY_KG_PER_GBQ.recip() * r.normal_liver_dose_gy.0 * m_n;
        assert!((a_t + a_n - a * (1.0 - f)).abs() < 1e-9);
        assert!(((a_t / m_t) / (a_n / m_n) - tn).abs() < 1e-9);
    }
}

/// T/N is a ratio of concentrations, not of activities. Cardiovasc Intervent Radiol
/// (Springer), doi:10.1007/s00270-013-0783-z, section defining R (eq. 3): "R is
/// a ratio of activities, not of mean radioconcentrations and, therefore, is
/// conceptually different from the 'tumor-to-normal liver ratio' defined by the
/// original partition model [8]." The crate's T/N follows the original partition
/// model: equal counts in a tumour ten times smaller than the normal liver is
/// T/N = 10, not 1.
#[test]
fn tn_is_the_partition_model_concentration_ratio() {
    let tn = tn_from_counts(Counts(5.0e4), Millilitres(150.0), Counts(5.0e4), Millilitres(1500.0)).unwrap();
    assert!((tn.value() - 10.0).abs() < 1e-12);
}

/// Local deposition per voxel uses the same factor: a concentration of 1 MBq/ml in
/// tissue of 1 g/ml is 1 GBq/kg, "the equivalent of 50 Gy" (Sirtex, above); the crate
/// gives 49.67 Gy, and 48.22 Gy at the 1.03 g/ml liver density.
#[test]
fn local_deposition_factor_is_the_published_gy_per_gbq_per_kg() {
    let unit_density = gray_per_bq_per_ml(GramsPerMl(1.0)) * 1e6;
    assert!(rel(unit_density, 50.0) < 7e-3, "{unit_density}");
    assert!((unit_density - Y90_GY_KG_PER_GBQ).abs() < 1e-9);
    let liver = gray_per_bq_per_ml(GramsPerMl(1.03)) * 1e6;
    assert!((liver - 49.67 / 1.03).abs() < 1e-9);
}

/// The report tells the reader which constant it used and how far a 50-based vendor
/// sheet (TheraSphere insert, Sirtex; see above) will be from it.
#[test]
fn report_names_the_factor_and_the_vendor_difference() {
    use liverseg_dose::plan::{self, Method, PlanInput};
    use liverseg_dose::regions::RegionVolumes;
    let input = PlanInput {
        methods: vec![Method::Mird],
        skip_unavailable: false,
        regions: None,
        volumes: RegionVolumes {
            liver_ml: Millilitres(1500.0),
            tumour_ml: Millilitres(0.0),
            normal_liver_ml: Millilitres(1500.0),
            treated_liver_ml: Millilitres(1500.0),
            treated_tumour_ml: Millilitres(0.0),
            treated_normal_liver_ml: Millilitres(1500.0),
        },
        height: None,
        weight: None,
        lsf: Some(lsf(5.0)),
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
    };
    let (summary, _) = plan::run(&input).unwrap();
    let md = liverseg_dose::report::markdown(&summary, &[], &[], &[]);
    assert!(md.contains("D [Gy] = 49.67 x A [GBq] / M [kg]"), "{md}");
    assert!(md.contains("round it to 50, so for the same dose their activities are 0.66 % lower"), "{md}");
}
