//! The elementary Y-90 formulas, each validating its inputs by name.

use crate::units::*;
use crate::{DoseError, Result, Y90_GY_KG_PER_GBQ};
use serde::Serialize;

pub(crate) fn positive(input: &str, value: f64, unit: &str) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DoseError::input(input, format!("{value} {unit} must be a positive number")))
    }
}

pub(crate) fn non_negative(input: &str, value: f64, unit: &str) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(DoseError::input(input, format!("{value} {unit} must be zero or positive")))
    }
}

/// Y-90 dose factor from first principles, in Gy kg / GBq: complete decay of
/// 1 GBq releases N = A T_1/2 / ln 2 decays, each depositing the mean beta energy
/// locally (beta range ~ mm, photons negligible):
/// `D [Gy] = 1e9 Bq x (T_1/2 [s] / ln 2) x E [J] / 1 kg`.
pub fn y90_dose_factor_from_physics(half_life_hours: f64, mean_beta_energy_mev: f64) -> f64 {
    const JOULE_PER_MEV: f64 = 1.602_176_634e-13;
    let decays_per_gbq = 1e9 * half_life_hours * 3600.0 / std::f64::consts::LN_2;
    decays_per_gbq * mean_beta_energy_mev * JOULE_PER_MEV
}

/// Y-90 physical half-life, hours (2.67 days).
pub const Y90_HALF_LIFE_HOURS: f64 = 64.1;

/// Factor taking Y-90 activity measured `hours` after administration back to the
/// administration time, 2^(t / T_1/2): the complete-decay formulas need the
/// activity present at administration.
pub fn y90_decay_correction(hours: f64) -> Result<f64> {
    non_negative("decay time", hours, "h")?;
    Ok((hours / Y90_HALF_LIFE_HOURS).exp2())
}

/// Tissue mass of a volume: ml x g/ml, in kg.
pub fn tissue_mass(volume: Millilitres, density: GramsPerMl) -> Result<Kilograms> {
    positive("volume", volume.0, "ml")?;
    positive("density", density.0, "g/ml")?;
    Ok(volume.mass(density).to_kg())
}

/// Mean absorbed dose from complete decay of `activity` retained uniformly in
/// `mass`: D [Gy] = 49.67 x A [GBq] / M [kg].
pub fn complete_decay_dose(activity: Gbq, mass: Kilograms) -> Result<Gray> {
    non_negative("activity", activity.0, "GBq")?;
    positive("mass", mass.0, "kg")?;
    Ok(Gray(Y90_GY_KG_PER_GBQ * activity.0 / mass.0))
}

/// Activity that gives mean dose `dose` in `mass` (inverse of [`complete_decay_dose`]).
pub fn activity_for_dose(dose: Gray, mass: Kilograms) -> Result<Gbq> {
    non_negative("target dose", dose.0, "Gy")?;
    positive("mass", mass.0, "kg")?;
    Ok(Gbq(dose.0 * mass.0 / Y90_GY_KG_PER_GBQ))
}

/// Lung dose: D_L [Gy] = 49.67 x A [GBq] x LSF / M_lung [kg].
pub fn lung_dose(activity: Gbq, lsf: ShuntFraction, lung_mass: Kilograms) -> Result<Gray> {
    non_negative("activity", activity.0, "GBq")?;
    positive("lung mass", lung_mass.0, "kg")?;
    Ok(Gray(Y90_GY_KG_PER_GBQ * activity.0 * lsf.value() / lung_mass.0))
}

/// DuBois & DuBois (1916) body surface area:
/// BSA [m^2] = 0.20247 x H[m]^0.725 x W[kg]^0.425 (= 0.007184 x H[cm]^0.725 x W^0.425).
pub fn dubois_bsa(height: Centimetres, weight: Kilograms) -> Result<SquareMetres> {
    let h = positive("height", height.0, "cm")?;
    let w = positive("weight", weight.0, "kg")?;
    if !(50.0..=272.0).contains(&h) {
        return Err(DoseError::input("height", format!("{h} cm is not a plausible adult height (give centimetres)")));
    }
    if w > 650.0 {
        return Err(DoseError::input("weight", format!("{w} kg is not a plausible weight (give kilograms)")));
    }
    Ok(SquareMetres(0.20247 * height.to_metres().0.powf(0.725) * w.powf(0.425)))
}

/// Counts from one planar region, anterior and (optionally) posterior view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanarCounts {
    pub anterior: Counts,
    pub posterior: Option<Counts>,
}

impl PlanarCounts {
    /// Geometric mean sqrt(ant x post), which cancels first-order depth attenuation;
    /// the anterior counts alone when no posterior view was given.
    pub fn conjugate(&self, input: &str) -> Result<Counts> {
        positive(&format!("{input} (anterior)"), self.anterior.0, "counts")?;
        match self.posterior {
            Some(p) => {
                positive(&format!("{input} (posterior)"), p.0, "counts")?;
                Ok(Counts((self.anterior.0 * p.0).sqrt()))
            }
            None => Ok(self.anterior),
        }
    }
}

/// Lung shunt fraction from planar Tc-99m MAA counts:
/// LSF = C_lung / (C_lung + C_liver), with geometric means where both views exist.
pub fn lsf_from_planar(lung: PlanarCounts, liver: PlanarCounts) -> Result<ShuntFraction> {
    if lung.posterior.is_some() != liver.posterior.is_some() {
        return Err(DoseError::input(
            "planar counts",
            "give anterior and posterior counts for both lung and liver, or anterior only for both",
        ));
    }
    let l = lung.conjugate("lung counts")?.0;
    let h = liver.conjugate("liver counts")?.0;
    ShuntFraction::from_fraction(l / (l + h))
}

/// Tumour-to-normal uptake ratio (dimensionless, > 0).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct TnRatio(f64);

impl TnRatio {
    pub fn new(value: f64) -> Result<Self> {
        positive("tumour-to-normal ratio", value, "")?;
        Ok(Self(value))
    }
    pub fn value(self) -> f64 {
        self.0
    }
}

/// T/N from MAA SPECT counts summed inside the tumour and normal-liver masks: the
/// ratio of count densities (counts per ml); with one tissue density for both this
/// equals the ratio of activity per unit mass.
pub fn tn_from_counts(tumour: Counts, tumour_volume: Millilitres, normal: Counts, normal_volume: Millilitres) -> Result<TnRatio> {
    positive("tumour counts", tumour.0, "counts")?;
    positive("normal-liver counts", normal.0, "counts")?;
    positive("tumour volume", tumour_volume.0, "ml")?;
    positive("normal-liver volume", normal_volume.0, "ml")?;
    TnRatio::new((tumour.0 / tumour_volume.0) / (normal.0 / normal_volume.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn dose_factor_follows_from_half_life_and_beta_energy() {
        // Y-90: T1/2 = 64.1 h; mean beta energy quoted between 0.9267 MeV (ENSDF) and
        // 0.9367 MeV in dosimetry texts. Hand computation: 1e9 x 64.1 x 3600 / ln 2
        // = 3.3291e14 decays; x 0.9267 MeV x 1.6022e-13 J/MeV = 49.43 J (per kg: Gy);
        // with 0.9367 MeV: 49.96 Gy. The conventional 49.67 lies in between (< 0.6 %).
        let lo = y90_dose_factor_from_physics(64.1, 0.9267);
        let hi = y90_dose_factor_from_physics(64.1, 0.9367);
        assert!(close(lo, 49.43, 0.01), "{lo}");
        assert!(close(hi, 49.96, 0.01), "{hi}");
        assert!(lo < Y90_GY_KG_PER_GBQ && Y90_GY_KG_PER_GBQ < hi);
        // TheraSphere's instructions round the same factor to 50 Gy kg/GBq.
        assert!((Y90_GY_KG_PER_GBQ - 50.0).abs() / 50.0 < 0.01);
    }

    #[test]
    fn decay_correction_doubles_per_half_life() {
        assert_eq!(y90_decay_correction(0.0).unwrap(), 1.0);
        assert!(close(y90_decay_correction(64.1).unwrap(), 2.0, 1e-12));
        // 24 h: 2^(24 / 64.1) = 1.29631 (hand-computed).
        assert!(close(y90_decay_correction(24.0).unwrap(), 1.29631, 1e-5));
        assert!(y90_decay_correction(-1.0).unwrap_err().to_string().starts_with("decay time"));
    }

    #[test]
    fn liver_mass_is_volume_times_density() {
        // 1500 ml x 1.03 g/ml = 1545 g = 1.545 kg (hand-computed).
        let m = tissue_mass(Millilitres(1500.0), GramsPerMl(1.03)).unwrap();
        assert!(close(m.0, 1.545, 1e-12));
        assert!(tissue_mass(Millilitres(0.0), GramsPerMl(1.03)).unwrap_err().to_string().starts_with("volume"));
        assert!(tissue_mass(Millilitres(10.0), GramsPerMl(-1.0)).unwrap_err().to_string().starts_with("density"));
    }

    #[test]
    fn complete_decay_dose_and_its_inverse() {
        // 2 GBq in 1.545 kg: 49.67 x 2 / 1.545 = 64.298 Gy (hand-computed).
        let d = complete_decay_dose(Gbq(2.0), Kilograms(1.545)).unwrap();
        assert!(close(d.0, 64.2977, 1e-4), "{d}");
        // 1 GBq per kg is 49.67 Gy by definition of the factor.
        assert_eq!(complete_decay_dose(Gbq(1.0), Kilograms(1.0)).unwrap(), Gray(49.67));
        let a = activity_for_dose(d, Kilograms(1.545)).unwrap();
        assert!(close(a.0, 2.0, 1e-12));
        // MBq must be converted explicitly: 1500 MBq in 1 kg is 74.505 Gy.
        let d = complete_decay_dose(Mbq(1500.0).to_gbq(), Kilograms(1.0)).unwrap();
        assert!(close(d.0, 74.505, 1e-9));
        let e = complete_decay_dose(Gbq(-1.0), Kilograms(1.0)).unwrap_err().to_string();
        assert!(e.starts_with("activity:") && e.contains("-1 GBq"), "{e}");
        assert!(complete_decay_dose(Gbq(1.0), Kilograms(0.0)).unwrap_err().to_string().starts_with("mass"));
    }

    #[test]
    fn lung_dose_formula() {
        // 3 GBq, LSF 10 %, lung 1 kg: 49.67 x 3 x 0.1 / 1 = 14.901 Gy (hand-computed).
        let lsf = ShuntFraction::from_fraction(0.10).unwrap();
        let d = lung_dose(Gbq(3.0), lsf, Kilograms(1.0)).unwrap();
        assert!(close(d.0, 14.901, 1e-9));
        // Activity reaching the 30 Gy limit at LSF 10 %, 1 kg: 30 / (49.67 x 0.1) = 6.0399 GBq.
        let d = lung_dose(Gbq(30.0 / (49.67 * 0.1)), lsf, Kilograms(1.0)).unwrap();
        assert!(close(d.0, 30.0, 1e-9));
        assert!(lung_dose(Gbq(1.0), lsf, Kilograms(0.0)).unwrap_err().to_string().starts_with("lung mass"));
    }

    #[test]
    fn dubois_bsa_matches_both_published_forms() {
        // DuBois & DuBois (1916): BSA = 0.007184 x W^0.425 x H[cm]^0.725. The metre
        // form's constant is 0.007184 x 100^0.725 = 0.20247.
        assert!(close(0.007184 * 100f64.powf(0.725), 0.20247, 5e-5));
        // 175 cm, 75 kg: 0.007184 x 75^0.425 x 175^0.725 = 1.9031 m^2 (hand-computed).
        let bsa = dubois_bsa(Centimetres(175.0), Kilograms(75.0)).unwrap();
        assert!(close(bsa.0, 0.007184 * 75f64.powf(0.425) * 175f64.powf(0.725), 2e-4));
        assert!(close(bsa.0, 1.9031, 5e-4), "{bsa}");
        // 160 cm, 60 kg: 1.6220 m^2 (hand-computed).
        assert!(close(dubois_bsa(Centimetres(160.0), Kilograms(60.0)).unwrap().0, 1.6220, 5e-4));
        assert!(dubois_bsa(Centimetres(175.0), Kilograms(0.0)).unwrap_err().to_string().starts_with("weight"));
        // Height in metres by mistake is refused rather than giving a tiny BSA.
        assert!(dubois_bsa(Centimetres(1.75), Kilograms(75.0)).unwrap_err().to_string().contains("centimetres"));
    }

    #[test]
    fn lsf_from_geometric_means() {
        // Lung ant 1e5 / post 1.6e5 -> GM 126491; liver ant 9e5 / post 1.0e6 -> GM 948683;
        // LSF = 126491 / (126491 + 948683) = 0.117647 (hand-computed).
        let lung = PlanarCounts { anterior: Counts(1.0e5), posterior: Some(Counts(1.6e5)) };
        let liver = PlanarCounts { anterior: Counts(9.0e5), posterior: Some(Counts(1.0e6)) };
        let lsf = lsf_from_planar(lung, liver).unwrap();
        assert!(close(lsf.value(), 0.117647, 1e-6), "{lsf:?}");
        let ant_only = lsf_from_planar(
            PlanarCounts { anterior: Counts(1.0e5), posterior: None },
            PlanarCounts { anterior: Counts(9.0e5), posterior: None },
        )
        .unwrap();
        assert!(close(ant_only.value(), 0.1, 1e-12));
        let mixed = lsf_from_planar(lung, PlanarCounts { anterior: Counts(9.0e5), posterior: None });
        assert!(mixed.is_err());
        let e = lsf_from_planar(PlanarCounts { anterior: Counts(-5.0), posterior: None }, PlanarCounts { anterior: Counts(1.0), posterior: None })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lung counts (anterior)"), "{e}");
    }

    #[test]
    fn tn_is_a_ratio_of_count_densities() {
        // Tumour 60000 counts in 100 ml (600/ml); normal 150000 in 1500 ml (100/ml): T/N = 6.
        let tn = tn_from_counts(Counts(60000.0), Millilitres(100.0), Counts(150000.0), Millilitres(1500.0)).unwrap();
        assert!(close(tn.value(), 6.0, 1e-12));
        assert!(tn_from_counts(Counts(1.0), Millilitres(0.0), Counts(1.0), Millilitres(1.0)).is_err());
        assert!(TnRatio::new(0.0).is_err());
    }
}
