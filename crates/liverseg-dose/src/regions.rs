//! Dosimetric compartments from the contours.
//!
//! Conventions (decided here, used everywhere): the liver mask is the whole liver
//! *including* tumour; tumour = union of the tumour masks clipped to the liver;
//! normal liver = liver minus tumour. With a perfused-territory mask the treated
//! compartments are its intersection with those; without one the whole liver is
//! treated. All masks must share one grid: the contours come from the same CT, and
//! silently resampling a mask changes the volumes the prescription rests on.

use crate::units::{CubicMillimetres, GramsPerMl, Kilograms, Millilitres};
use crate::{formulas, DoseError, Result, Warning};
use liverseg_volume::{Geometry, Mask, Volume};
use serde::Serialize;

/// Error unless `geometry` is the reference grid; names the input.
pub fn require_same_grid(input: &str, reference: &Geometry, geometry: &Geometry) -> Result<()> {
    if reference.same_grid(geometry) {
        return Ok(());
    }
    Err(DoseError::input(
        input,
        format!(
            "not on the CT grid (dims {:?} vs {:?}, spacing {:?} vs {:?} mm, origin {:?} vs {:?} mm); resample it onto the CT first",
            geometry.dims(),
            reference.dims(),
            geometry.spacing(),
            reference.spacing(),
            geometry.origin(),
            reference.origin()
        ),
    ))
}

#[derive(Debug, Clone)]
pub struct Regions {
    pub liver: Mask,
    pub tumour: Mask,
    pub normal: Mask,
    /// Liver within the perfused territory (= liver without one).
    pub treated: Mask,
    pub treated_tumour: Mask,
    pub treated_normal: Mask,
    pub perfused_given: bool,
    pub warnings: Vec<Warning>,
}

/// Volumes of each compartment, in ml.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RegionVolumes {
    pub liver_ml: Millilitres,
    pub tumour_ml: Millilitres,
    pub normal_liver_ml: Millilitres,
    pub treated_liver_ml: Millilitres,
    pub treated_tumour_ml: Millilitres,
    pub treated_normal_liver_ml: Millilitres,
}

impl RegionVolumes {
    /// Compartments from volumes typed in by hand (no masks): the liver
    /// (which includes the tumour), the tumour (0 when unknown) and the
    /// perfused territory (None: the whole liver). `names` are how the caller
    /// calls the three inputs in errors (e.g. the command-line flags).
    ///
    /// Without masks the tumour's share of the perfused territory is unknown:
    /// it is taken as proportional to the territory's share of the liver
    /// (treated tumour = tumour x perfused / liver). When that assumption
    /// matters (a territory and a tumour both given) the returned note says so
    /// for the report.
    pub fn from_volumes(liver_ml: f64, tumour_ml: f64, perfused_ml: Option<f64>, names: [&str; 3]) -> Result<(Self, Option<String>)> {
        let [liver_name, tumour_name, perfused_name] = names;
        if !(liver_ml.is_finite() && liver_ml > 0.0) {
            return Err(DoseError::input(liver_name, format!("{liver_ml} ml must be positive")));
        }
        let (liver, tumour) = (liver_ml, tumour_ml);
        if !(tumour.is_finite() && tumour >= 0.0 && tumour < liver) {
            return Err(DoseError::input(
                tumour_name,
                format!("{tumour} ml must be zero or positive and smaller than the liver volume ({liver} ml; the liver includes the tumour)"),
            ));
        }
        let perfused = match perfused_ml {
            Some(p) if !(p.is_finite() && p > 0.0 && p <= liver) => {
                return Err(DoseError::input(perfused_name, format!("{p} ml must be positive and at most the liver volume ({liver} ml)")))
            }
            Some(p) => p,
            None => liver,
        };
        let treated_tumour = tumour * perfused / liver;
        let note = (perfused_ml.is_some() && tumour > 0.0)
            .then(|| "without masks, the tumour is assumed spread evenly over the liver (treated tumour = tumour x perfused / liver)".to_string());
        let volumes = RegionVolumes {
            liver_ml: Millilitres(liver),
            tumour_ml: Millilitres(tumour),
            normal_liver_ml: Millilitres(liver - tumour),
            treated_liver_ml: Millilitres(perfused),
            treated_tumour_ml: Millilitres(treated_tumour),
            treated_normal_liver_ml: Millilitres(perfused - treated_tumour),
        };
        Ok((volumes, note))
    }

    /// Error naming the first compartment that is not a finite, non-negative volume
    /// or that does not nest as the conventions above require (tumour and treated
    /// liver inside the liver, normal = liver - tumour). Volumes from masks always
    /// pass; volumes typed in by hand may not.
    pub fn validate(&self) -> Result<()> {
        let v = self;
        for (input, x) in [
            ("liver volume", v.liver_ml),
            ("tumour volume", v.tumour_ml),
            ("normal-liver volume", v.normal_liver_ml),
            ("treated liver volume", v.treated_liver_ml),
            ("treated tumour volume", v.treated_tumour_ml),
            ("treated normal-liver volume", v.treated_normal_liver_ml),
        ] {
            formulas::non_negative(input, x.0, "ml")?;
        }
        // Relative slack for volumes summed from voxel counts.
        let tol = 1e-9 * v.liver_ml.0.max(1.0);
        let nested = |input: &str, part: Millilitres, whole: Millilitres, of: &str| -> Result<()> {
            if part.0 > whole.0 + tol {
                return Err(DoseError::input(input, format!("{} ml is larger than the {of} ({} ml)", part.0, whole.0)));
            }
            Ok(())
        };
        nested("tumour volume", v.tumour_ml, v.liver_ml, "liver, which includes the tumour")?;
        nested("treated liver volume", v.treated_liver_ml, v.liver_ml, "liver")?;
        nested("treated tumour volume", v.treated_tumour_ml, v.treated_liver_ml, "treated liver")?;
        nested("treated tumour volume", v.treated_tumour_ml, v.tumour_ml, "tumour")?;
        for (input, sum, whole, of) in [
            ("normal-liver volume", v.normal_liver_ml.0 + v.tumour_ml.0, v.liver_ml.0, "liver"),
            ("treated normal-liver volume", v.treated_normal_liver_ml.0 + v.treated_tumour_ml.0, v.treated_liver_ml.0, "treated liver"),
        ] {
            if (sum - whole).abs() > tol.max(1e-9 * whole) {
                return Err(DoseError::input(input, format!("plus the tumour gives {sum} ml, not the {of} volume ({whole} ml)")));
            }
        }
        Ok(())
    }
}

pub fn mask_volume(mask: &Mask) -> Millilitres {
    CubicMillimetres(mask.count_foreground() as f64 * mask.geometry().voxel_volume_mm3()).to_ml()
}

pub fn mask_mass(mask: &Mask, density: GramsPerMl, input: &str) -> Result<Kilograms> {
    let v = mask_volume(mask);
    if v.0 <= 0.0 {
        return Err(DoseError::input(input, "is empty (no voxels)"));
    }
    formulas::tissue_mass(v, density)
}

fn combine(geometry: &Geometry, a: &[u8], b: &[u8], f: impl Fn(bool, bool) -> bool) -> Mask {
    let data = a.iter().zip(b).map(|(&x, &y)| u8::from(f(x != 0, y != 0))).collect();
    Volume::new(geometry.clone(), data).expect("same length by construction")
}

impl Regions {
    /// `tumours` and `perfused` carry the names the user gave them (file names),
    /// used in error messages.
    pub fn new(liver: &Mask, tumours: &[(String, &Mask)], perfused: Option<(String, &Mask)>) -> Result<Self> {
        let g = liver.geometry();
        if liver.count_foreground() == 0 {
            return Err(DoseError::input("liver mask", "is empty (no foreground voxels)"));
        }
        let liver = liver.map(|&v| u8::from(v != 0));
        let mut warnings = Vec::new();
        let mut tumour = Volume::filled(g.clone(), 0u8);
        for (name, t) in tumours {
            require_same_grid(&format!("tumour mask {name}"), g, t.geometry())?;
            let outside = t.data().iter().zip(liver.data()).filter(|(&t, &l)| t != 0 && l == 0).count();
            if outside > 0 {
                warnings.push(Warning::new(
                    "tumour-outside-liver",
                    format!("tumour mask {name}: {outside} voxels lie outside the liver contour and are ignored"),
                ));
            }
            if t.count_foreground() == 0 {
                warnings.push(Warning::new("empty-tumour", format!("tumour mask {name} is empty")));
            }
            tumour = combine(g, tumour.data(), t.data(), |a, b| a || b);
        }
        let tumour = combine(g, tumour.data(), liver.data(), |t, l| t && l);
        let normal = combine(g, liver.data(), tumour.data(), |l, t| l && !t);
        let (treated, perfused_given) = match perfused {
            None => (liver.clone(), false),
            Some((name, p)) => {
                require_same_grid(&format!("perfused mask {name}"), g, p.geometry())?;
                let treated = combine(g, liver.data(), p.data(), |l, p| l && p);
                if treated.count_foreground() == 0 {
                    return Err(DoseError::input(format!("perfused mask {name}"), "does not overlap the liver contour"));
                }
                (treated, true)
            }
        };
        let treated_tumour = combine(g, treated.data(), tumour.data(), |a, b| a && b);
        let treated_normal = combine(g, treated.data(), tumour.data(), |a, b| a && !b);
        Ok(Self { liver, tumour, normal, treated, treated_tumour, treated_normal, perfused_given, warnings })
    }

    pub fn geometry(&self) -> &Geometry {
        self.liver.geometry()
    }

    pub fn volumes(&self) -> RegionVolumes {
        RegionVolumes {
            liver_ml: mask_volume(&self.liver),
            tumour_ml: mask_volume(&self.tumour),
            normal_liver_ml: mask_volume(&self.normal),
            treated_liver_ml: mask_volume(&self.treated),
            treated_tumour_ml: mask_volume(&self.treated_tumour),
            treated_normal_liver_ml: mask_volume(&self.treated_normal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_typed_in_nest_and_note_the_even_spread() {
        let names = ["--liver-ml", "--tumour-ml", "--perfused-ml"];
        let (v, note) = RegionVolumes::from_volumes(1500.0, 150.0, Some(600.0), names).unwrap();
        assert_eq!(v.normal_liver_ml.0, 1350.0);
        assert!((v.treated_tumour_ml.0 - 60.0).abs() < 1e-12);
        assert!((v.treated_normal_liver_ml.0 - 540.0).abs() < 1e-12);
        v.validate().unwrap();
        assert!(note.unwrap().contains("spread evenly"));
        let (v, note) = RegionVolumes::from_volumes(1500.0, 0.0, None, names).unwrap();
        assert_eq!(v.treated_liver_ml.0, 1500.0);
        assert!(note.is_none());
        let e = RegionVolumes::from_volumes(1500.0, 2000.0, None, names).unwrap_err().to_string();
        assert!(e.starts_with("--tumour-ml: 2000 ml"), "{e}");
        let e = RegionVolumes::from_volumes(1500.0, 0.0, Some(1600.0), names).unwrap_err().to_string();
        assert!(e.starts_with("--perfused-ml"), "{e}");
        assert!(RegionVolumes::from_volumes(f64::NAN, 0.0, None, names).is_err());
    }

    fn geometry() -> Geometry {
        Geometry::identity([10, 10, 10], [2.0, 2.0, 5.0]).unwrap()
    }
    fn boxed(g: &Geometry, lo: [usize; 3], hi: [usize; 3]) -> Mask {
        Volume::from_fn(g.clone(), |[i, j, k]| u8::from((lo[0]..hi[0]).contains(&i) && (lo[1]..hi[1]).contains(&j) && (lo[2]..hi[2]).contains(&k)))
    }

    #[test]
    fn compartments_partition_the_liver() {
        let g = geometry();
        let liver = boxed(&g, [0, 0, 0], [10, 10, 8]); // 800 voxels x 20 mm^3 = 16 ml
        let tumour = boxed(&g, [0, 0, 7], [2, 2, 10]); // 12 voxels, 4 inside the liver
        let perfused = boxed(&g, [0, 0, 0], [5, 10, 10]); // left half
        let r = Regions::new(&liver, &[("t.nii".into(), &tumour)], Some(("p.nii".into(), &perfused))).unwrap();
        let v = r.volumes();
        assert!((v.liver_ml.0 - 16.0).abs() < 1e-9);
        assert!((v.tumour_ml.0 - 0.08).abs() < 1e-9);
        assert!((v.normal_liver_ml.0 - 15.92).abs() < 1e-9);
        assert!((v.treated_liver_ml.0 - 8.0).abs() < 1e-9);
        assert!((v.treated_tumour_ml.0 - 0.08).abs() < 1e-9);
        assert!((v.treated_normal_liver_ml.0 - 7.92).abs() < 1e-9);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].message.contains("t.nii: 8 voxels"), "{:?}", r.warnings);
        v.validate().unwrap();
    }

    #[test]
    fn hand_typed_volumes_must_nest() {
        let ok = RegionVolumes {
            liver_ml: Millilitres(1500.0),
            tumour_ml: Millilitres(300.0),
            normal_liver_ml: Millilitres(1200.0),
            treated_liver_ml: Millilitres(900.0),
            treated_tumour_ml: Millilitres(300.0),
            treated_normal_liver_ml: Millilitres(600.0),
        };
        ok.validate().unwrap();
        let err = |v: RegionVolumes| v.validate().unwrap_err().to_string();
        let e = err(RegionVolumes { tumour_ml: Millilitres(-1.0), ..ok });
        assert!(e.starts_with("tumour volume: -1 ml must be zero or positive"), "{e}");
        let e = err(RegionVolumes { treated_liver_ml: Millilitres(1600.0), ..ok });
        assert!(e.starts_with("treated liver volume: 1600 ml is larger than the liver"), "{e}");
        let e = err(RegionVolumes { treated_tumour_ml: Millilitres(400.0), treated_normal_liver_ml: Millilitres(500.0), ..ok });
        assert!(e.starts_with("treated tumour volume: 400 ml is larger than the tumour"), "{e}");
        let e = err(RegionVolumes { normal_liver_ml: Millilitres(1500.0), ..ok });
        assert!(e.starts_with("normal-liver volume: plus the tumour gives 1800 ml"), "{e}");
        let e = err(RegionVolumes { liver_ml: Millilitres(f64::NAN), ..ok });
        assert!(e.starts_with("liver volume: NaN ml"), "{e}");
    }

    #[test]
    fn bad_masks_are_named() {
        let g = geometry();
        let empty = Volume::filled(g.clone(), 0u8);
        assert_eq!(Regions::new(&empty, &[], None).unwrap_err().to_string(), "liver mask: is empty (no foreground voxels)");
        let liver = boxed(&g, [0, 0, 0], [10, 10, 8]);
        let other = Volume::filled(Geometry::identity([10, 10, 10], [1.0, 1.0, 1.0]).unwrap(), 1u8);
        let e = Regions::new(&liver, &[("lesion2.nii.gz".into(), &other)], None).unwrap_err().to_string();
        assert!(e.starts_with("tumour mask lesion2.nii.gz: not on the CT grid"), "{e}");
        let away = boxed(&g, [0, 0, 9], [10, 10, 10]);
        let e = Regions::new(&liver, &[], Some(("p.nii".into(), &away))).unwrap_err().to_string();
        assert!(e.contains("perfused mask p.nii") && e.contains("overlap"), "{e}");
    }
}
