//! Activity prescription methods: BSA (resin), mono-compartment MIRD, partition model.
//! Each returns its numbers plus the warnings for every limit crossed.

use crate::formulas::{self, non_negative, positive, TnRatio};
use crate::units::*;
use crate::{check_lsf, DoseError, Limits, Result, Sphere, Warning, Y90_GY_KG_PER_GBQ};
use serde::Serialize;

/// SIR-Spheres' activity reduction for lung shunting (SIR-Spheres instructions for
/// use; Kennedy et al. 2007, REBOC consensus, Int J Radiat Oncol Biol Phys 68:13-23):
/// LSF < 10 %: none; 10-15 %: reduce by 20 %; 15-20 %: reduce by 40 %; > 20 %: do not
/// treat. Band edges are read as [10, 15) -> 20 %, [15, 20] -> 40 %, > 20 % -> none.
/// Published wordings leave the exact edges open ("if the LSF exceeds 10%, 15% or
/// 20%" would leave 10 % and 15 % in the milder band); the stricter band is taken at
/// 10 % and 15 % so the crate never prescribes more than either reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LsfAdjustment {
    None,
    Reduce20,
    Reduce40,
    DoNotTreat,
}

impl LsfAdjustment {
    pub fn for_lsf(lsf: ShuntFraction) -> Self {
        let p = lsf.percent();
        if p < 10.0 {
            LsfAdjustment::None
        } else if p < 15.0 {
            LsfAdjustment::Reduce20
        } else if p <= 20.0 {
            LsfAdjustment::Reduce40
        } else {
            LsfAdjustment::DoNotTreat
        }
    }
    /// Multiplier on the activity; `None` when treatment is contraindicated.
    pub fn factor(self) -> Option<f64> {
        match self {
            LsfAdjustment::None => Some(1.0),
            LsfAdjustment::Reduce20 => Some(0.8),
            LsfAdjustment::Reduce40 => Some(0.6),
            LsfAdjustment::DoNotTreat => None,
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            LsfAdjustment::None => "LSF < 10 %: no reduction",
            LsfAdjustment::Reduce20 => "LSF 10-15 %: reduce by 20 %",
            LsfAdjustment::Reduce40 => "LSF 15-20 %: reduce by 40 %",
            LsfAdjustment::DoNotTreat => "LSF > 20 %: do not treat",
        }
    }
}

/// Inputs of the BSA method. Volumes come from the contours: `liver` is the whole
/// liver including tumour, `tumour` the tumour inside it, `perfused` the part of the
/// liver in the treated territory (None: whole-liver treatment).
#[derive(Debug, Clone, Copy)]
pub struct BsaInput {
    pub height: Centimetres,
    pub weight: Kilograms,
    pub liver: Millilitres,
    pub tumour: Millilitres,
    pub perfused: Option<Millilitres>,
    pub lsf: ShuntFraction,
    pub lung_mass: Kilograms,
    pub density: GramsPerMl,
    pub sphere: Sphere,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct BsaResult {
    pub bsa_m2: SquareMetres,
    /// V_tumour / (V_tumour + V_normal) = V_tumour / V_liver.
    pub tumour_involvement: Fraction,
    /// (BSA - 0.2) + tumour involvement: the whole-liver activity.
    pub whole_liver_activity_gbq: Gbq,
    /// Perfused share of the liver volume (1 for whole-liver treatment).
    pub perfused_fraction: Fraction,
    pub activity_before_lsf_gbq: Gbq,
    pub lsf_adjustment: LsfAdjustment,
    /// None when the LSF contraindicates treatment.
    pub prescribed_activity_gbq: Option<Gbq>,
    pub lung_dose_gy: Option<Gray>,
    /// 49.67 A (1 - LSF) / M_perfused: mean dose to the treated liver, tumour included.
    pub mean_treated_liver_dose_gy: Option<Gray>,
    pub warnings: Vec<Warning>,
}

/// BSA method (resin spheres): A = (BSA - 0.2) + V_T / (V_T + V_N), scaled by the
/// perfused fraction of the liver (lobar / segmental treatment: A x V_perfused / V_liver,
/// as in the SIR-Spheres instructions) and reduced for lung shunting.
pub fn bsa_method(input: &BsaInput) -> Result<BsaResult> {
    input.limits.validate()?;
    let bsa = formulas::dubois_bsa(input.height, input.weight)?;
    positive("liver volume", input.liver.0, "ml")?;
    non_negative("tumour volume", input.tumour.0, "ml")?;
    positive("density", input.density.0, "g/ml")?;
    if input.tumour.0 > input.liver.0 {
        return Err(DoseError::input(
            "tumour volume",
            format!("{} ml is larger than the whole liver ({} ml); the liver volume must include the tumour", input.tumour.0, input.liver.0),
        ));
    }
    let involvement = input.tumour.0 / input.liver.0;
    let whole = Gbq(bsa.0 - 0.2 + involvement);
    if whole.0 <= 0.0 {
        return Err(DoseError::input("height/weight", format!("BSA {:.3} m^2 gives no positive activity", bsa.0)));
    }
    let perfused_fraction = match input.perfused {
        None => 1.0,
        Some(p) => {
            positive("perfused volume", p.0, "ml")?;
            if p.0 > input.liver.0 * (1.0 + 1e-9) {
                return Err(DoseError::input("perfused volume", format!("{} ml is larger than the liver ({} ml)", p.0, input.liver.0)));
            }
            p.0 / input.liver.0
        }
    };
    let before_lsf = Gbq(whole.0 * perfused_fraction);
    let adjustment = LsfAdjustment::for_lsf(input.lsf);
    let mut warnings = check_lsf(input.lsf);
    if input.sphere == Sphere::Glass {
        warnings.push(Warning::new("bsa-glass", "the BSA method is defined for resin spheres; its activity does not apply to glass spheres"));
    }
    let prescribed = adjustment.factor().map(|f| Gbq(before_lsf.0 * f));
    let (lung, mean_liver) = match prescribed {
        Some(a) => {
            let lung = formulas::lung_dose(a, input.lsf, input.lung_mass)?;
            warnings.extend(input.limits.check_lung(lung));
            let treated_mass = formulas::tissue_mass(Millilitres(input.liver.0 * perfused_fraction), input.density)?;
            let mean = formulas::complete_decay_dose(Gbq(a.0 * input.lsf.liver_share()), treated_mass)?;
            (Some(lung), Some(mean))
        }
        None => (None, None),
    };
    Ok(BsaResult {
        bsa_m2: bsa,
        tumour_involvement: Fraction(involvement),
        whole_liver_activity_gbq: whole,
        perfused_fraction: Fraction(perfused_fraction),
        activity_before_lsf_gbq: before_lsf,
        lsf_adjustment: adjustment,
        prescribed_activity_gbq: prescribed,
        lung_dose_gy: lung,
        mean_treated_liver_dose_gy: mean_liver,
        warnings,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct MirdInput {
    /// Target mean dose to the treated liver (tumour included).
    pub target: Gray,
    /// Mass of the treated liver (perfused territory, or whole liver).
    pub treated_mass: Kilograms,
    pub lsf: ShuntFraction,
    pub lung_mass: Kilograms,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct MirdResult {
    pub target_dose_gy: Gray,
    pub treated_mass_kg: Kilograms,
    pub activity_gbq: Gbq,
    pub lung_dose_gy: Gray,
    /// Highest activity that keeps the lung under its limits (None without shunting).
    pub max_activity_lung_gbq: Option<Gbq>,
    pub warnings: Vec<Warning>,
}

/// Highest activity within both lung limits, or None when LSF = 0.
fn max_activity_for_lung(lsf: ShuntFraction, lung_mass: Kilograms, limits: &Limits) -> Option<Gbq> {
    if lsf.value() <= 0.0 {
        return None;
    }
    let allowed = limits.lung_per_treatment_gy.0.min(limits.lung_cumulative_gy.0 - limits.prior_lung_gy.0).max(0.0);
    Some(Gbq(allowed * lung_mass.0 / (Y90_GY_KG_PER_GBQ * lsf.value())))
}

/// Mono-compartment MIRD: A = D M / (49.67 (1 - LSF)).
pub fn mird_method(input: &MirdInput) -> Result<MirdResult> {
    input.limits.validate()?;
    positive("target dose", input.target.0, "Gy")?;
    positive("treated liver mass", input.treated_mass.0, "kg")?;
    positive("lung mass", input.lung_mass.0, "kg")?;
    let activity = Gbq(input.target.0 * input.treated_mass.0 / (Y90_GY_KG_PER_GBQ * input.lsf.liver_share()));
    let lung = formulas::lung_dose(activity, input.lsf, input.lung_mass)?;
    let mut warnings = check_lsf(input.lsf);
    warnings.extend(input.limits.check_lung(lung));
    warnings.extend(input.limits.check_normal_liver("mono-compartment mean liver dose (normal liver assumed to receive it)", input.target));
    Ok(MirdResult {
        target_dose_gy: input.target,
        treated_mass_kg: input.treated_mass,
        activity_gbq: activity,
        lung_dose_gy: lung,
        max_activity_lung_gbq: max_activity_for_lung(input.lsf, input.lung_mass, &input.limits),
        warnings,
    })
}

/// What the partition-model prescription aims at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum PartitionTarget {
    NormalLiverGy(Gray),
    TumourGy(Gray),
    /// Evaluate a given activity (e.g. the one BSA or MIRD proposed).
    ActivityGbq(Gbq),
}

#[derive(Debug, Clone, Copy)]
pub struct PartitionInput {
    pub tn: TnRatio,
    pub tumour_mass: Kilograms,
    pub normal_mass: Kilograms,
    pub lsf: ShuntFraction,
    pub lung_mass: Kilograms,
    pub target: PartitionTarget,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionResult {
    pub tn_ratio: TnRatio,
    pub tumour_mass_kg: Kilograms,
    pub normal_liver_mass_kg: Kilograms,
    pub target: PartitionTarget,
    pub activity_gbq: Gbq,
    pub tumour_dose_gy: Gray,
    pub normal_liver_dose_gy: Gray,
    pub lung_dose_gy: Gray,
    /// Activity at which the normal liver reaches its advisory limit.
    pub max_activity_normal_liver_gbq: Gbq,
    /// Activity at which the lung reaches its limit (None without shunting).
    pub max_activity_lung_gbq: Option<Gbq>,
    pub warnings: Vec<Warning>,
}

/// Partition model (Ho et al. 1996; Gulec et al. 2006): with T/N the ratio of
/// activity per unit mass in tumour and normal liver,
/// A = D_N (T/N M_T + M_N) / (49.67 (1 - LSF)), D_T = T/N D_N,
/// D_L = 49.67 A LSF / M_lung.
pub fn partition_method(input: &PartitionInput) -> Result<PartitionResult> {
    input.limits.validate()?;
    positive("tumour mass", input.tumour_mass.0, "kg")?;
    positive("normal-liver mass", input.normal_mass.0, "kg")?;
    positive("lung mass", input.lung_mass.0, "kg")?;
    let tn = input.tn.value();
    // Activity-weighted mass: the mass that, at normal-liver concentration, holds
    // all intrahepatic activity.
    let weighted = tn * input.tumour_mass.0 + input.normal_mass.0;
    let share = input.lsf.liver_share();
    let activity_for_normal = |d_n: f64| d_n * weighted / (Y90_GY_KG_PER_GBQ * share);
    let (activity, d_n) = match input.target {
        PartitionTarget::NormalLiverGy(d) => {
            positive("target normal-liver dose", d.0, "Gy")?;
            (activity_for_normal(d.0), d.0)
        }
        PartitionTarget::TumourGy(d) => {
            positive("target tumour dose", d.0, "Gy")?;
            (activity_for_normal(d.0 / tn), d.0 / tn)
        }
        PartitionTarget::ActivityGbq(a) => {
            non_negative("activity", a.0, "GBq")?;
            (a.0, Y90_GY_KG_PER_GBQ * a.0 * share / weighted)
        }
    };
    let activity = Gbq(activity);
    let lung = formulas::lung_dose(activity, input.lsf, input.lung_mass)?;
    let mut warnings = check_lsf(input.lsf);
    warnings.extend(input.limits.check_lung(lung));
    warnings.extend(input.limits.check_normal_liver("partition-model normal-liver dose", Gray(d_n)));
    if tn < 1.0 {
        warnings.push(Warning::new("tn-below-one", format!("T/N {tn:.2} < 1: the tumour takes up less than the normal liver")));
    }
    Ok(PartitionResult {
        tn_ratio: input.tn,
        tumour_mass_kg: input.tumour_mass,
        normal_liver_mass_kg: input.normal_mass,
        target: input.target,
        activity_gbq: activity,
        tumour_dose_gy: Gray(tn * d_n),
        normal_liver_dose_gy: Gray(d_n),
        lung_dose_gy: lung,
        max_activity_normal_liver_gbq: Gbq(activity_for_normal(input.limits.normal_liver_gy.0)),
        max_activity_lung_gbq: max_activity_for_lung(input.lsf, input.lung_mass, &input.limits),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }
    fn lsf(p: f64) -> ShuntFraction {
        ShuntFraction::from_percent(p).unwrap()
    }
    fn codes(w: &[Warning]) -> Vec<&str> {
        w.iter().map(|w| w.code).collect()
    }
    fn bsa_input() -> BsaInput {
        BsaInput {
            height: Centimetres(175.0),
            weight: Kilograms(75.0),
            liver: Millilitres(1500.0),
            tumour: Millilitres(150.0),
            perfused: None,
            lsf: lsf(5.0),
            lung_mass: Kilograms(1.0),
            density: GramsPerMl(1.03),
            sphere: Sphere::Resin,
            limits: Limits::for_sphere(Sphere::Resin),
        }
    }

    #[test]
    fn lsf_bands_follow_the_sir_spheres_ifu() {
        // Source: SIR-Spheres instructions for use; Kennedy et al. 2007 (REBOC).
        assert_eq!(LsfAdjustment::for_lsf(lsf(0.0)), LsfAdjustment::None);
        assert_eq!(LsfAdjustment::for_lsf(lsf(9.99)), LsfAdjustment::None);
        assert_eq!(LsfAdjustment::for_lsf(lsf(10.0)), LsfAdjustment::Reduce20);
        assert_eq!(LsfAdjustment::for_lsf(lsf(14.9)), LsfAdjustment::Reduce20);
        assert_eq!(LsfAdjustment::for_lsf(lsf(15.0)), LsfAdjustment::Reduce40);
        assert_eq!(LsfAdjustment::for_lsf(lsf(20.0)), LsfAdjustment::Reduce40);
        assert_eq!(LsfAdjustment::for_lsf(lsf(20.1)), LsfAdjustment::DoNotTreat);
        assert_eq!(LsfAdjustment::Reduce20.factor(), Some(0.8));
        assert_eq!(LsfAdjustment::Reduce40.factor(), Some(0.6));
        assert_eq!(LsfAdjustment::DoNotTreat.factor(), None);
    }

    #[test]
    fn bsa_whole_liver_hand_computed() {
        // 175 cm / 75 kg: BSA = 1.903112 m^2; tumour 150 of 1500 ml -> 0.1;
        // A = 1.903112 - 0.2 + 0.1 = 1.803112 GBq; LSF 5 % -> no reduction.
        // Lung: 49.67 x 1.803112 x 0.05 / 1 = 4.47803 Gy; mean liver dose:
        // 49.67 x 1.803112 x 0.95 / 1.545 = 55.0696 Gy (all hand-computed).
        let r = bsa_method(&bsa_input()).unwrap();
        assert!(close(r.bsa_m2.0, 1.903112, 1e-5));
        assert!(close(r.tumour_involvement.0, 0.1, 1e-12));
        assert!(close(r.whole_liver_activity_gbq.0, 1.803112, 1e-5));
        assert_eq!(r.prescribed_activity_gbq.unwrap(), r.whole_liver_activity_gbq);
        assert!(close(r.lung_dose_gy.unwrap().0, 4.47803, 1e-4));
        assert!(close(r.mean_treated_liver_dose_gy.unwrap().0, 55.0696, 1e-3));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn bsa_lobar_scaling_and_lsf_reduction() {
        // Right lobe 900 of 1500 ml: 1.803112 x 0.6 = 1.081867 GBq; LSF 12 % -> x 0.8
        // = 0.865494 GBq; lung 49.67 x 0.865494 x 0.12 = 5.15868 Gy (hand-computed).
        let r = bsa_method(&BsaInput { perfused: Some(Millilitres(900.0)), lsf: lsf(12.0), ..bsa_input() }).unwrap();
        assert!(close(r.perfused_fraction.0, 0.6, 1e-12));
        assert!(close(r.activity_before_lsf_gbq.0, 1.081867, 1e-5));
        assert_eq!(r.lsf_adjustment, LsfAdjustment::Reduce20);
        assert!(close(r.prescribed_activity_gbq.unwrap().0, 0.865494, 1e-5));
        assert!(close(r.lung_dose_gy.unwrap().0, 5.15868, 1e-4));
        // LSF 18 %: x 0.6.
        let r = bsa_method(&BsaInput { lsf: lsf(18.0), ..bsa_input() }).unwrap();
        assert!(close(r.prescribed_activity_gbq.unwrap().0, 1.803112 * 0.6, 1e-5));
    }

    #[test]
    fn bsa_refuses_to_prescribe_above_20_percent_shunt() {
        let r = bsa_method(&BsaInput { lsf: lsf(25.0), ..bsa_input() }).unwrap();
        assert_eq!(r.prescribed_activity_gbq, None);
        assert_eq!(r.lung_dose_gy, None);
        assert_eq!(codes(&r.warnings), ["lsf-contraindication"]);
    }

    #[test]
    fn bsa_bad_inputs_name_themselves() {
        let e = bsa_method(&BsaInput { tumour: Millilitres(2000.0), ..bsa_input() }).unwrap_err().to_string();
        assert!(e.starts_with("tumour volume"), "{e}");
        let e = bsa_method(&BsaInput { weight: Kilograms(0.0), ..bsa_input() }).unwrap_err().to_string();
        assert!(e.starts_with("weight"), "{e}");
        let e = bsa_method(&BsaInput { liver: Millilitres(0.0), tumour: Millilitres(0.0), ..bsa_input() }).unwrap_err().to_string();
        assert!(e.starts_with("liver volume"), "{e}");
        let e = bsa_method(&BsaInput { perfused: Some(Millilitres(1600.0)), ..bsa_input() }).unwrap_err().to_string();
        assert!(e.starts_with("perfused volume"), "{e}");
        let glass = bsa_method(&BsaInput { sphere: Sphere::Glass, ..bsa_input() }).unwrap();
        assert_eq!(codes(&glass.warnings), ["bsa-glass"]);
    }

    #[test]
    fn mird_hand_computed() {
        // 120 Gy to 1.545 kg at LSF 5 %: A = 120 x 1.545 / (49.67 x 0.95) = 3.929090 GBq;
        // lung 49.67 x 3.929090 x 0.05 = 9.75789 Gy (hand-computed). 120 Gy exceeds
        // the resin 40 Gy normal-liver advisory, which is reported.
        let r = mird_method(&MirdInput {
            target: Gray(120.0),
            treated_mass: Kilograms(1.545),
            lsf: lsf(5.0),
            lung_mass: Kilograms(1.0),
            limits: Limits::for_sphere(Sphere::Resin),
        })
        .unwrap();
        assert!(close(r.activity_gbq.0, 3.929090, 1e-5));
        assert!(close(r.lung_dose_gy.0, 9.75789, 1e-4));
        assert_eq!(codes(&r.warnings), ["normal-liver-dose"]);
        // Max activity for the lung: 30 x 1 / (49.67 x 0.05) = 12.0797 GBq.
        assert!(close(r.max_activity_lung_gbq.unwrap().0, 12.0797, 1e-4));
        // Round trip: the complete-decay dose of the liver share is the target.
        let d = formulas::complete_decay_dose(Gbq(r.activity_gbq.0 * 0.95), Kilograms(1.545)).unwrap();
        assert!(close(d.0, 120.0, 1e-9));
    }

    #[test]
    fn mird_lung_limits() {
        // 150 Gy (glass) to 2 kg at LSF 15 %: A = 300 / (49.67 x 0.85) = 7.10572 GBq;
        // lung 49.67 x 7.10572 x 0.15 = 52.941 Gy > 30 Gy (hand-computed).
        let mut limits = Limits::for_sphere(Sphere::Glass);
        limits.prior_lung_gy = Gray(10.0);
        let r = mird_method(&MirdInput { target: Gray(150.0), treated_mass: Kilograms(2.0), lsf: lsf(15.0), lung_mass: Kilograms(1.0), limits }).unwrap();
        assert!(close(r.activity_gbq.0, 7.10572, 1e-4));
        assert!(close(r.lung_dose_gy.0, 52.941, 1e-3));
        assert_eq!(codes(&r.warnings), ["lung-dose", "lung-dose-cumulative", "normal-liver-dose"]);
        // With 10 Gy prior, 40 Gy remain of the 50 Gy cumulative, but 30 Gy per treatment binds.
        assert!(close(r.max_activity_lung_gbq.unwrap().0, 30.0 / (49.67 * 0.15), 1e-9));
        let e = mird_method(&MirdInput { target: Gray(-1.0), treated_mass: Kilograms(2.0), lsf: lsf(1.0), lung_mass: Kilograms(1.0), limits })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("target dose"), "{e}");
    }

    fn partition_input(target: PartitionTarget) -> PartitionInput {
        PartitionInput {
            tn: TnRatio::new(5.0).unwrap(),
            tumour_mass: Kilograms(0.2),
            normal_mass: Kilograms(1.3),
            lsf: lsf(8.0),
            lung_mass: Kilograms(1.0),
            target,
            limits: Limits::for_sphere(Sphere::Resin),
        }
    }

    #[test]
    fn partition_hand_computed() {
        // T/N 5, M_T 0.2 kg, M_N 1.3 kg, LSF 8 %, D_N 40 Gy:
        // A = 40 x (5 x 0.2 + 1.3) / (49.67 x 0.92) = 92 / 45.6964 = 2.013288 GBq;
        // D_T = 200 Gy; D_L = 49.67 x 2.013288 x 0.08 = 8.0 Gy (since 49.67 A = 100).
        let r = partition_method(&partition_input(PartitionTarget::NormalLiverGy(Gray(40.0)))).unwrap();
        assert!(close(r.activity_gbq.0, 2.013288, 1e-6));
        assert!(close(r.tumour_dose_gy.0, 200.0, 1e-9));
        assert!(close(r.normal_liver_dose_gy.0, 40.0, 1e-9));
        assert!(close(r.lung_dose_gy.0, 8.0, 1e-9));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(close(r.max_activity_normal_liver_gbq.0, r.activity_gbq.0, 1e-9));
        // Consistency: tumour and normal activities add up to A (1 - LSF), each giving
        // its dose by the complete-decay formula.
        let a_liver = r.activity_gbq.0 * 0.92;
        let a_t = a_liver * 5.0 * 0.2 / 2.3;
        assert!(close(formulas::complete_decay_dose(Gbq(a_t), Kilograms(0.2)).unwrap().0, 200.0, 1e-9));
        assert!(close(formulas::complete_decay_dose(Gbq(a_liver - a_t), Kilograms(1.3)).unwrap().0, 40.0, 1e-9));
    }

    #[test]
    fn partition_other_targets_agree() {
        let by_tumour = partition_method(&partition_input(PartitionTarget::TumourGy(Gray(200.0)))).unwrap();
        assert!(close(by_tumour.activity_gbq.0, 2.013288, 1e-6));
        let by_activity = partition_method(&partition_input(PartitionTarget::ActivityGbq(Gbq(3.0)))).unwrap();
        // D_N = 49.67 x 3 x 0.92 / 2.3 = 59.604 Gy > 40 Gy advisory (hand-computed).
        assert!(close(by_activity.normal_liver_dose_gy.0, 59.604, 1e-9));
        assert!(close(by_activity.tumour_dose_gy.0, 298.02, 1e-9));
        assert_eq!(codes(&by_activity.warnings), ["normal-liver-dose"]);
        let e = partition_method(&PartitionInput { tumour_mass: Kilograms(0.0), ..partition_input(PartitionTarget::TumourGy(Gray(200.0))) })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tumour mass"), "{e}");
    }
}
