//! Physical quantities as distinct types.
//!
//! A prescription error of a factor 1000 (MBq read as GBq, g read as kg) is the
//! classic dosimetry mistake, so no public formula in this crate takes a bare
//! `f64`: every quantity carries its unit in its type, conversions are explicit
//! methods, and JSON output names the unit in the field (`activity_gbq`).

use serde::Serialize;

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl $name {
            /// The number in this type's unit.
            pub fn value(self) -> f64 {
                self.0
            }
            pub const UNIT: &'static str = $unit;
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*} {}", p, self.0, $unit),
                    None => write!(f, "{} {}", self.0, $unit),
                }
            }
        }
    };
}

quantity!(/// Activity in becquerel.
    Bq, "Bq");
quantity!(/// Activity in megabecquerel.
    Mbq, "MBq");
quantity!(/// Activity in gigabecquerel (the unit of every prescription formula here).
    Gbq, "GBq");
quantity!(/// Activity in millicurie, the unit of US vial labels and prescriptions
    /// (1 mCi = 37 MBq exactly). Only converted, never computed with: every formula
    /// takes [`Gbq`].
    Millicuries, "mCi");
quantity!(/// Activity concentration in Bq per millilitre (calibrated PET / SPECT voxels).
    BqPerMl, "Bq/ml");
quantity!(/// Absorbed dose in gray (J/kg).
    Gray, "Gy");
quantity!(/// Absorbed dose in milligray.
    MilliGray, "mGy");
quantity!(/// Mass in kilograms.
    Kilograms, "kg");
quantity!(/// Mass in grams.
    Grams, "g");
quantity!(/// Volume in millilitres (= cm^3).
    Millilitres, "ml");
quantity!(/// Volume in cubic millimetres (voxel volumes).
    CubicMillimetres, "mm^3");
quantity!(/// Mass density in g/ml.
    GramsPerMl, "g/ml");
quantity!(/// Length in centimetres (patient height).
    Centimetres, "cm");
quantity!(/// Length in metres.
    Metres, "m");
quantity!(/// Area in square metres (body surface area).
    SquareMetres, "m^2");
quantity!(/// Detector counts (planar scintigraphy, SPECT voxels): arbitrary but linear in activity.
    Counts, "counts");

impl Bq {
    pub fn to_mbq(self) -> Mbq {
        Mbq(self.0 * 1e-6)
    }
    pub fn to_gbq(self) -> Gbq {
        Gbq(self.0 * 1e-9)
    }
}
impl Mbq {
    pub fn to_gbq(self) -> Gbq {
        Gbq(self.0 * 1e-3)
    }
    pub fn to_bq(self) -> Bq {
        Bq(self.0 * 1e6)
    }
}
/// MBq per mCi, exact by the definition of the curie (3.7e10 Bq).
pub const MBQ_PER_MCI: f64 = 37.0;

impl Millicuries {
    pub fn to_mbq(self) -> Mbq {
        Mbq(self.0 * MBQ_PER_MCI)
    }
    pub fn to_gbq(self) -> Gbq {
        Gbq(self.0 * MBQ_PER_MCI * 1e-3)
    }
}
impl Gbq {
    pub fn to_mci(self) -> Millicuries {
        Millicuries(self.0 * 1e3 / MBQ_PER_MCI)
    }
    pub fn to_mbq(self) -> Mbq {
        Mbq(self.0 * 1e3)
    }
    pub fn to_bq(self) -> Bq {
        Bq(self.0 * 1e9)
    }
}
impl Gray {
    pub fn to_mgy(self) -> MilliGray {
        MilliGray(self.0 * 1e3)
    }
}
impl MilliGray {
    pub fn to_gray(self) -> Gray {
        Gray(self.0 * 1e-3)
    }
}
impl Kilograms {
    pub fn to_grams(self) -> Grams {
        Grams(self.0 * 1e3)
    }
}
impl Grams {
    pub fn to_kg(self) -> Kilograms {
        Kilograms(self.0 * 1e-3)
    }
}
impl CubicMillimetres {
    pub fn to_ml(self) -> Millilitres {
        Millilitres(self.0 * 1e-3)
    }
}
impl Millilitres {
    pub fn to_mm3(self) -> CubicMillimetres {
        CubicMillimetres(self.0 * 1e3)
    }
    /// Mass of this volume of tissue: ml x g/ml = g.
    pub fn mass(self, density: GramsPerMl) -> Grams {
        Grams(self.0 * density.0)
    }
}
impl Centimetres {
    pub fn to_metres(self) -> Metres {
        Metres(self.0 * 1e-2)
    }
}
impl Metres {
    pub fn to_cm(self) -> Centimetres {
        Centimetres(self.0 * 1e2)
    }
}
impl BqPerMl {
    /// Activity held by `volume` at this concentration.
    pub fn times(self, volume: Millilitres) -> Bq {
        Bq(self.0 * volume.0)
    }
}

/// A fraction in [0, 1] reported as such (and as a percentage where people read it).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Fraction(pub f64);

impl Fraction {
    pub fn value(self) -> f64 {
        self.0
    }
    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }
}

/// Lung shunt fraction: the share of injected activity that reaches the lungs.
/// Only constructible in [0, 1): at LSF = 1 nothing reaches the liver and every
/// `1 / (1 - LSF)` formula diverges.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct ShuntFraction(f64);

impl ShuntFraction {
    /// From a fraction (0.12 for 12 %).
    pub fn from_fraction(value: f64) -> Result<Self, crate::DoseError> {
        if !(value.is_finite() && (0.0..1.0).contains(&value)) {
            return Err(crate::DoseError::input(
                "lung shunt fraction",
                format!("{value} is not a fraction in [0, 1) (give 0.12 for 12 %)"),
            ));
        }
        Ok(Self(value))
    }
    /// From a percentage (12 for 12 %).
    pub fn from_percent(percent: f64) -> Result<Self, crate::DoseError> {
        Self::from_fraction(percent / 100.0).map_err(|_| {
            crate::DoseError::input("lung shunt fraction", format!("{percent} % is not in [0, 100) %"))
        })
    }
    pub fn value(self) -> f64 {
        self.0
    }
    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }
    /// The share that stays in the liver, 1 - LSF.
    pub fn liver_share(self) -> f64 {
        1.0 - self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_factors_of_1000() {
        assert_eq!(Mbq(1500.0).to_gbq(), Gbq(1.5));
        assert_eq!(Gbq(2.0).to_mbq(), Mbq(2000.0));
        assert_eq!(Gbq(1.0).to_bq(), Bq(1e9));
        assert!((Bq(3.7e9).to_gbq().value() - 3.7).abs() < 1e-12);
        assert!((Bq(2.5e6).to_mbq().value() - 2.5).abs() < 1e-12);
        assert_eq!(Gray(0.5).to_mgy(), MilliGray(500.0));
        assert_eq!(MilliGray(30_000.0).to_gray(), Gray(30.0));
        assert_eq!(Grams(1030.0).to_kg(), Kilograms(1.03));
        assert_eq!(Kilograms(1.5).to_grams(), Grams(1500.0));
        assert_eq!(CubicMillimetres(2500.0).to_ml(), Millilitres(2.5));
        assert_eq!(Centimetres(175.0).to_metres(), Metres(1.75));
        // 1000 ml of tissue at 1.03 g/ml weighs 1030 g.
        assert_eq!(Millilitres(1000.0).mass(GramsPerMl(1.03)), Grams(1030.0));
        assert_eq!(BqPerMl(2.0e6).times(Millilitres(10.0)), Bq(2.0e7));
        // 1 Ci = 3.7e10 Bq, so 1 mCi = 37 MBq and 100 mCi = 3.7 GBq.
        assert_eq!(Millicuries(1.0).to_mbq(), Mbq(37.0));
        assert!((Millicuries(100.0).to_gbq().value() - 3.7).abs() < 1e-12);
        assert!((Gbq(3.7).to_mci().value() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn display_names_the_unit() {
        assert_eq!(format!("{:.2}", Gbq(1.23456)), "1.23 GBq");
        assert_eq!(format!("{}", Gray(30.0)), "30 Gy");
    }

    #[test]
    fn shunt_fraction_rejects_values_outside_0_1() {
        assert!(ShuntFraction::from_fraction(0.0).is_ok());
        assert_eq!(ShuntFraction::from_percent(12.0).unwrap().value(), 0.12);
        for bad in [1.0, 1.5, -0.01, f64::NAN, f64::INFINITY] {
            let e = ShuntFraction::from_fraction(bad).unwrap_err().to_string();
            assert!(e.contains("lung shunt fraction"), "{e}");
        }
        assert!(ShuntFraction::from_percent(100.0).unwrap_err().to_string().contains("100 %"));
    }
}
