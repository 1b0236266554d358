//! Y-90 SIRT dosimetry fed by the liver contour.
//!
//! * [`formulas`]: liver mass, complete-decay dose, lung dose, DuBois BSA, lung
//!   shunt fraction from planar counts, tumour-to-normal ratio from SPECT counts.
//! * [`methods`]: the three prescription methods (BSA for resin spheres,
//!   mono-compartment MIRD, partition model), each returning its result plus
//!   warnings when a limit is crossed.
//! * [`voxel`]: local-deposition voxel dosimetry on an activity map already on the
//!   CT grid, dose-volume histograms and D_x / V_x statistics per region.
//! * [`plot`] and [`report`]: DVH plot (PNG, SVG) and a Markdown / HTML report.
//!
//! Every quantity is typed ([`units`]); the only bare numbers in public APIs are
//! dimensionless ratios (T/N) and percentages named as such.

pub mod formulas;
pub mod methods;
pub mod plan;
pub mod plot;
pub mod regions;
pub mod report;
pub mod units;
pub mod voxel;

use serde::Serialize;
use units::Gray;

/// Absorbed dose from the complete decay of 1 GBq of Y-90 deposited uniformly in
/// 1 kg of tissue, in Gy (J/kg): the value of METHOD.md and issue 8.
/// [`formulas::y90_dose_factor_from_physics`] derives it from the half-life and mean
/// beta energy. Vendor material rounds the same factor to 50 (the TheraSphere
/// package insert's dose formula; Sirtex: "1 GBq ... /kg ... 50 Gy"), and the
/// insert's own 64.1 h and 0.9367 MeV give 49.96: activities here are 0.66 % above
/// a 50-based sheet for the same dose. See `tests/published_examples.rs`.
pub const Y90_GY_KG_PER_GBQ: f64 = 49.67;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DoseError {
    /// An input is out of its valid range; `input` names it as the user gave it.
    #[error("{input}: {message}")]
    Input { input: String, message: String },
}

impl DoseError {
    pub fn input(input: impl Into<String>, message: impl Into<String>) -> Self {
        DoseError::Input { input: input.into(), message: message.into() }
    }
}

pub type Result<T, E = DoseError> = std::result::Result<T, E>;

/// A limit crossed or an assumption worth a clinician's attention. Never silent:
/// every method returns its warnings with its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// Stable machine-readable tag (`lung-dose`, `lsf-contraindication`, ...).
    pub code: &'static str,
    pub message: String,
}

impl Warning {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Which microspheres: only changes the default normal-liver advisory and whether
/// the BSA method (defined for resin spheres) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sphere {
    Resin,
    Glass,
}

/// Dose limits checked by every method. The lung limits are those of the
/// TheraSphere and SIR-Spheres instructions for use and of Ho et al. (1997): 30 Gy
/// per treatment, 50 Gy cumulative. The normal-liver value is an advisory, not a
/// hard limit: typical published tolerance figures are ~40 Gy mean normal-liver
/// dose for resin spheres and ~70 Gy for glass; configure it per local protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    pub lung_per_treatment_gy: Gray,
    pub lung_cumulative_gy: Gray,
    pub normal_liver_gy: Gray,
    /// Lung dose already received in earlier treatments (for the cumulative limit).
    pub prior_lung_gy: Gray,
}

impl Limits {
    pub fn for_sphere(sphere: Sphere) -> Self {
        Self {
            lung_per_treatment_gy: Gray(30.0),
            lung_cumulative_gy: Gray(50.0),
            normal_liver_gy: match sphere {
                Sphere::Resin => Gray(40.0),
                Sphere::Glass => Gray(70.0),
            },
            prior_lung_gy: Gray(0.0),
        }
    }

    /// Error naming the first limit that is not a usable number: a zero or negative
    /// limit would flag every plan, a NaN none, and both would pass silently.
    pub fn validate(&self) -> Result<()> {
        for (input, v) in [
            ("lung limit per treatment", self.lung_per_treatment_gy),
            ("cumulative lung limit", self.lung_cumulative_gy),
            ("normal-liver limit", self.normal_liver_gy),
        ] {
            formulas::positive(input, v.0, "Gy")?;
        }
        formulas::non_negative("prior lung dose", self.prior_lung_gy.0, "Gy")?;
        if self.lung_cumulative_gy.0 < self.lung_per_treatment_gy.0 {
            return Err(DoseError::input(
                "cumulative lung limit",
                format!("{} Gy is below the per-treatment limit of {} Gy", self.lung_cumulative_gy.0, self.lung_per_treatment_gy.0),
            ));
        }
        Ok(())
    }

    /// Warnings for a lung dose of this treatment.
    pub fn check_lung(&self, lung: Gray) -> Vec<Warning> {
        let mut w = Vec::new();
        if lung.0 > self.lung_per_treatment_gy.0 {
            w.push(Warning::new(
                "lung-dose",
                format!("lung dose {:.1} Gy exceeds the {:.0} Gy per-treatment limit", lung.0, self.lung_per_treatment_gy.0),
            ));
        }
        let total = lung.0 + self.prior_lung_gy.0;
        if self.prior_lung_gy.0 > 0.0 && total > self.lung_cumulative_gy.0 {
            w.push(Warning::new(
                "lung-dose-cumulative",
                format!(
                    "cumulative lung dose {total:.1} Gy (this treatment {:.1} Gy + prior {:.1} Gy) exceeds the {:.0} Gy cumulative limit",
                    lung.0, self.prior_lung_gy.0, self.lung_cumulative_gy.0
                ),
            ));
        }
        w
    }

    pub fn check_normal_liver(&self, what: &str, dose: Gray) -> Vec<Warning> {
        if dose.0 > self.normal_liver_gy.0 {
            vec![Warning::new(
                "normal-liver-dose",
                format!("{what} {:.1} Gy exceeds the {:.0} Gy normal-liver advisory", dose.0, self.normal_liver_gy.0),
            )]
        } else {
            Vec::new()
        }
    }
}

/// Lung shunt above which SIR-Spheres' instructions say not to treat.
pub const LSF_CONTRAINDICATION: f64 = 0.20;

pub(crate) fn check_lsf(lsf: units::ShuntFraction) -> Vec<Warning> {
    if lsf.value() > LSF_CONTRAINDICATION {
        vec![Warning::new(
            "lsf-contraindication",
            format!("lung shunt fraction {:.1} % is above 20 %: SIR-Spheres' instructions advise against treatment", lsf.percent()),
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_be_usable_numbers() {
        Limits::for_sphere(Sphere::Resin).validate().unwrap();
        Limits::for_sphere(Sphere::Glass).validate().unwrap();
        let base = Limits::for_sphere(Sphere::Glass);
        let err = |l: Limits| l.validate().unwrap_err().to_string();
        let e = err(Limits { lung_per_treatment_gy: Gray(0.0), ..base });
        assert!(e.starts_with("lung limit per treatment: 0 Gy must be a positive number"), "{e}");
        let e = err(Limits { normal_liver_gy: Gray(f64::NAN), ..base });
        assert!(e.starts_with("normal-liver limit"), "{e}");
        let e = err(Limits { prior_lung_gy: Gray(-5.0), ..base });
        assert!(e.starts_with("prior lung dose: -5 Gy must be zero or positive"), "{e}");
        let e = err(Limits { lung_cumulative_gy: Gray(20.0), ..base });
        assert!(e.starts_with("cumulative lung limit: 20 Gy is below the per-treatment limit of 30 Gy"), "{e}");
    }

    #[test]
    fn lung_warnings_at_the_limits() {
        let mut l = Limits::for_sphere(Sphere::Resin);
        assert!(l.check_lung(Gray(30.0)).is_empty(), "30 Gy is at, not above, the limit");
        assert_eq!(l.check_lung(Gray(30.01)).iter().map(|w| w.code).collect::<Vec<_>>(), ["lung-dose"]);
        l.prior_lung_gy = Gray(25.0);
        assert!(l.check_lung(Gray(25.0)).is_empty());
        assert_eq!(l.check_lung(Gray(25.5)).iter().map(|w| w.code).collect::<Vec<_>>(), ["lung-dose-cumulative"]);
    }
}
