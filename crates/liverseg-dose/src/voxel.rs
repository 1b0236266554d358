//! Voxel dosimetry by local deposition, and dose-volume statistics.
//!
//! Local deposition: every decay's beta energy is absorbed in the voxel where it
//! occurs (Y-90 mean range in tissue ~2.5 mm, comparable to PET/SPECT voxels), so
//! D_v = 49.67 A_v / m_v. With the voxel's activity concentration c [Bq/ml]:
//! A_v [GBq] = c V_v [ml] 1e-9 and m_v [kg] = rho [g/ml] V_v [ml] 1e-3, so
//! D_v [Gy] = 49.67 x 1e-6 x c / rho: the voxel volume cancels. The map must hold
//! the activity present at administration (decay-corrected to that time).
//!
//! Statistics (stated because tools differ):
//! * mean dose: mean over the region's voxels (equal mass per voxel at one density),
//!   equal to 49.67 A_region / M_region;
//! * V_x: fraction of the region's volume receiving at least x Gy (dose >= x);
//! * D_x: the minimum dose received by the hottest x % of the region: with the n
//!   voxel doses sorted in decreasing order, the value at rank ceil(x n / 100);
//! * DVH: cumulative, fraction of volume with dose >= each bin's lower edge.

use crate::regions::mask_volume;
use crate::units::*;
use crate::{DoseError, Result, Warning, Y90_GY_KG_PER_GBQ};
use liverseg_volume::{Mask, Volume};
use serde::Serialize;

/// An activity-concentration map on the CT grid, in Bq/ml.
#[derive(Debug, Clone)]
pub struct ActivityMap {
    bq_per_ml: Volume<f64>,
}

fn check_finite(input: &str, v: &Volume<f64>) -> Result<()> {
    if let Some(o) = v.data().iter().position(|x| !x.is_finite()) {
        return Err(DoseError::input(input, format!("voxel {:?} is not a finite number", v.geometry().index_of(o))));
    }
    Ok(())
}

/// Negative voxels (reconstruction noise in low-count PET) carry no activity:
/// clip them, and say how much was clipped.
fn clip_negative(input: &str, v: &mut Volume<f64>) -> Vec<Warning> {
    let (mut n, mut sum) = (0usize, 0.0);
    for x in v.data_mut() {
        if *x < 0.0 {
            n += 1;
            sum += *x;
            *x = 0.0;
        }
    }
    if n == 0 {
        return Vec::new();
    }
    vec![Warning::new("negative-activity-voxels", format!("{input}: {n} negative voxels (sum {sum:.3e}) set to zero"))]
}

impl ActivityMap {
    /// A calibrated map already in Bq/ml (e.g. Y-90 PET, or a quantitative SPECT).
    pub fn from_bq_per_ml(input: &str, mut concentration: Volume<f64>) -> Result<(Self, Vec<Warning>)> {
        check_finite(input, &concentration)?;
        let warnings = clip_negative(input, &mut concentration);
        Ok((Self { bq_per_ml: concentration }, warnings))
    }

    /// A counts map (e.g. Tc-99m MAA SPECT as a predictor), scaled so that the counts
    /// inside `region` hold `total` activity; counts elsewhere get the same scale.
    /// The caller chooses the region (the treated liver: all intrahepatic activity,
    /// i.e. the administered activity x (1 - LSF), is assumed to stay in it).
    pub fn from_counts(input: &str, mut counts: Volume<f64>, total: Gbq, region: &Mask, region_name: &str) -> Result<(Self, Vec<Warning>)> {
        check_finite(input, &counts)?;
        if !(total.0.is_finite() && total.0 > 0.0) {
            return Err(DoseError::input("total activity", format!("{} GBq must be a positive number", total.0)));
        }
        crate::regions::require_same_grid(input, region.geometry(), counts.geometry())?;
        let warnings = clip_negative(input, &mut counts);
        let in_region: f64 = counts.data().iter().zip(region.data()).filter(|(_, &m)| m != 0).map(|(&c, _)| c).sum();
        if in_region <= 0.0 {
            return Err(DoseError::input(input, format!("holds no counts inside the {region_name}; cannot scale it to an activity")));
        }
        let voxel_ml = CubicMillimetres(counts.geometry().voxel_volume_mm3()).to_ml().0;
        let bq_per_count = total.to_bq().0 / in_region;
        for c in counts.data_mut() {
            *c = *c * bq_per_count / voxel_ml;
        }
        Ok((Self { bq_per_ml: counts }, warnings))
    }

    pub fn concentration(&self) -> &Volume<f64> {
        &self.bq_per_ml
    }

    /// Activity inside a mask on the same grid.
    pub fn activity_in(&self, mask: &Mask) -> Gbq {
        let voxel_ml = CubicMillimetres(self.bq_per_ml.geometry().voxel_volume_mm3()).to_ml();
        let sum: f64 = self.bq_per_ml.data().iter().zip(mask.data()).filter(|(_, &m)| m != 0).map(|(&c, _)| c).sum();
        BqPerMl(sum).times(voxel_ml).to_gbq()
    }
}

/// How the values of an activity map are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityUnit {
    /// Calibrated Y-90 activity concentration (Y-90 PET, quantitative SPECT).
    BqPerMl,
    KbqPerMl,
    MbqPerMl,
    /// Relative counts, scaled to the administered activity by the plan.
    Counts,
}

impl ActivityUnit {
    /// Bq/ml per unit of the map (1 for counts: they are scaled later).
    pub fn bq_per_ml(self) -> f64 {
        match self {
            ActivityUnit::BqPerMl | ActivityUnit::Counts => 1.0,
            ActivityUnit::KbqPerMl => 1e3,
            ActivityUnit::MbqPerMl => 1e6,
        }
    }
}

/// Bring a calibrated activity map (`name` in notes) to Bq/ml at
/// administration, in place: the unit's scale, and with `decay_hours` (scan
/// time after administration) Y-90's decay correction 2^(t / 64.1 h). A
/// counts map is left as it is (the plan scales it to the administered
/// activity, which already is the activity at administration), so a decay
/// time is ignored for it. Returns the notes for the report.
pub fn calibrate_activity_map(map: &mut Volume<f64>, name: &str, unit: ActivityUnit, decay_hours: Option<f64>) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut scale = unit.bq_per_ml();
    if let Some(h) = decay_hours {
        let f = crate::formulas::y90_decay_correction(h)?;
        if unit == ActivityUnit::Counts {
            notes.push("--decay-hours is ignored for a counts map (it is scaled to the administered activity)".into());
        } else {
            scale *= f;
            notes.push(format!("{name}: decay-corrected to administration, {h} h x 2^(t/64.1 h) = factor {f:.4}"));
        }
    }
    if scale != 1.0 {
        map.data_mut().iter_mut().for_each(|v| *v *= scale);
    }
    Ok(notes)
}

/// T/N from a SPECT counts map on the CT grid: summed counts in the tumour and
/// normal-liver masks, divided by their volumes ([`crate::formulas::tn_from_counts`]).
pub fn tn_from_count_map(input: &str, counts: &Volume<f64>, tumour: &Mask, normal: &Mask) -> Result<crate::formulas::TnRatio> {
    crate::regions::require_same_grid(input, tumour.geometry(), counts.geometry())?;
    check_finite(input, counts)?;
    let sum = |m: &Mask| -> f64 { counts.data().iter().zip(m.data()).filter(|(_, &k)| k != 0).map(|(&c, _)| c.max(0.0)).sum() };
    let (ct, cn) = (sum(tumour), sum(normal));
    if ct <= 0.0 || cn <= 0.0 {
        return Err(DoseError::input(input, format!("no counts in the {} mask: cannot form T/N", if ct <= 0.0 { "tumour" } else { "normal-liver" })));
    }
    crate::formulas::tn_from_counts(Counts(ct), mask_volume(tumour), Counts(cn), mask_volume(normal))
}

/// Gy per (Bq/ml) under local deposition: 49.67 x 1e-6 / rho (see the module doc).
pub fn gray_per_bq_per_ml(density: GramsPerMl) -> f64 {
    // 49.67 Gy kg/GBq x 1e-9 GBq/Bq / (1e-3 kg/g x rho g/ml)
    Y90_GY_KG_PER_GBQ * 1e-9 / (1e-3 * density.0)
}

/// A dose map in Gy on the CT grid.
#[derive(Debug, Clone)]
pub struct DoseMap {
    pub gray: Volume<f32>,
}

pub fn local_deposition(activity: &ActivityMap, density: GramsPerMl) -> Result<DoseMap> {
    crate::formulas::positive("density", density.0, "g/ml")?;
    let k = gray_per_bq_per_ml(density);
    Ok(DoseMap { gray: activity.bq_per_ml.map(|&c| (c * k) as f32) })
}

#[derive(Debug, Clone, Serialize)]
pub struct DxEntry {
    pub percent: f64,
    pub dose_gy: Gray,
}

#[derive(Debug, Clone, Serialize)]
pub struct VxEntry {
    pub dose_gy: Gray,
    pub volume_fraction: Fraction,
}

/// Cumulative DVH: `volume_fraction[i]` = fraction of the region with dose >= i x bin width.
#[derive(Debug, Clone, Serialize)]
pub struct Dvh {
    pub bin_width_gy: Gray,
    pub volume_fraction: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionDose {
    pub region: String,
    pub voxels: usize,
    pub volume_ml: Millilitres,
    pub activity_gbq: Gbq,
    pub mean_gy: Gray,
    pub min_gy: Gray,
    pub max_gy: Gray,
    pub d: Vec<DxEntry>,
    pub v: Vec<VxEntry>,
    pub dvh: Dvh,
}

impl RegionDose {
    pub fn d_at(&self, percent: f64) -> Option<Gray> {
        self.d.iter().find(|e| e.percent == percent).map(|e| e.dose_gy)
    }
    pub fn v_at(&self, gy: f64) -> Option<Fraction> {
        self.v.iter().find(|e| e.dose_gy.0 == gy).map(|e| e.volume_fraction)
    }
}

/// D_x as defined in the module doc, on doses sorted in decreasing order.
pub fn d_x(sorted_desc: &[f32], percent: f64) -> Gray {
    let n = sorted_desc.len();
    let rank = ((percent / 100.0) * n as f64).ceil().clamp(1.0, n as f64) as usize;
    Gray(sorted_desc[rank - 1] as f64)
}

/// Default D and V levels reported.
pub const D_LEVELS: [f64; 4] = [10.0, 50.0, 70.0, 90.0];
pub const V_LEVELS_GY: [f64; 5] = [20.0, 40.0, 70.0, 100.0, 120.0];

/// Statistics of `dose` inside `mask` (same grid). `bin_width` of the DVH is chosen
/// by the caller; it is widened if the DVH would need more than 100 000 bins.
pub fn region_dose(
    name: &str,
    dose: &DoseMap,
    activity: &ActivityMap,
    mask: &Mask,
    d_levels: &[f64],
    v_levels: &[Gray],
    bin_width: Gray,
) -> Result<RegionDose> {
    crate::regions::require_same_grid(name, dose.gray.geometry(), mask.geometry())?;
    let mut doses: Vec<f32> = dose.gray.data().iter().zip(mask.data()).filter(|(_, &m)| m != 0).map(|(&d, _)| d).collect();
    if doses.is_empty() {
        return Err(DoseError::input(name, "is empty (no voxels): no dose statistics"));
    }
    crate::formulas::positive("DVH bin width", bin_width.0, "Gy")?;
    for &p in d_levels {
        if !(p > 0.0 && p <= 100.0) {
            return Err(DoseError::input("D level", format!("{p} % must be in (0, 100]")));
        }
    }
    doses.sort_unstable_by(|a, b| b.total_cmp(a));
    let n = doses.len();
    let mean = doses.iter().map(|&d| d as f64).sum::<f64>() / n as f64;
    let max = doses[0] as f64;
    let fraction_at_least = |x: f64| -> f64 {
        // doses are descending: count of d >= x is the first index where d < x.
        doses.partition_point(|&d| d as f64 >= x) as f64 / n as f64
    };
    let mut width = bin_width.0;
    while max / width > 100_000.0 {
        width *= 10.0;
    }
    let bins = (max / width).floor() as usize + 2;
    let dvh = Dvh { bin_width_gy: Gray(width), volume_fraction: (0..bins).map(|i| fraction_at_least(i as f64 * width)).collect() };
    Ok(RegionDose {
        region: name.to_string(),
        voxels: n,
        volume_ml: mask_volume(mask),
        activity_gbq: activity.activity_in(mask),
        mean_gy: Gray(mean),
        min_gy: Gray(doses[n - 1] as f64),
        max_gy: Gray(max),
        d: d_levels.iter().map(|&p| DxEntry { percent: p, dose_gy: d_x(&doses, p) }).collect(),
        v: v_levels.iter().map(|&g| VxEntry { dose_gy: g, volume_fraction: Fraction(fraction_at_least(g.0)) }).collect(),
        dvh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_maps_are_scaled_and_decay_corrected_counts_are_not() {
        let g = liverseg_volume::Geometry::identity([2, 1, 1], [1.0, 1.0, 1.0]).unwrap();
        let mut map = Volume::new(g.clone(), vec![1.0, 2.0]).unwrap();
        let notes = calibrate_activity_map(&mut map, "pet", ActivityUnit::KbqPerMl, Some(64.1)).unwrap();
        assert!((map.data()[1] - 4000.0).abs() < 1e-9, "{:?}", map.data());
        assert!(notes[0].starts_with("pet: decay-corrected") && notes[0].contains("factor 2.0000"), "{notes:?}");
        let mut counts = Volume::new(g, vec![1.0, 2.0]).unwrap();
        let notes = calibrate_activity_map(&mut counts, "spect", ActivityUnit::Counts, Some(10.0)).unwrap();
        assert_eq!(counts.data(), &[1.0, 2.0]);
        assert!(notes[0].contains("ignored for a counts map"));
        assert!(calibrate_activity_map(&mut counts, "spect", ActivityUnit::MbqPerMl, Some(-1.0)).is_err());
    }
    use liverseg_volume::Geometry;

    #[test]
    fn conversion_factor_is_derived_from_the_mass_formula() {
        // 1 MBq/ml at 1.03 g/ml: a 1 ml voxel holds 1e-3 GBq in 1.03e-3 kg, so
        // D = 49.67 x 1e-3 / 1.03e-3 = 48.2233 Gy (hand-computed).
        let k = gray_per_bq_per_ml(GramsPerMl(1.03));
        assert!((k * 1e6 - 48.2233).abs() < 1e-4, "{k}");
        let via_formula = crate::formulas::complete_decay_dose(Gbq(1e-3), Grams(1.03).to_kg()).unwrap();
        assert!((k * 1e6 - via_formula.0).abs() < 1e-9);
    }

    #[test]
    fn dx_and_vx_definitions_on_a_known_list() {
        // Doses 1..=10 Gy, one voxel each.
        let g = Geometry::identity([10, 1, 1], [1.0; 3]).unwrap();
        let k = gray_per_bq_per_ml(GramsPerMl(1.0));
        let act = Volume::from_fn(g.clone(), |[i, _, _]| (i + 1) as f64 / k);
        let (map, w) = ActivityMap::from_bq_per_ml("pet", act).unwrap();
        assert!(w.is_empty());
        let dose = local_deposition(&map, GramsPerMl(1.0)).unwrap();
        let all = Volume::filled(g, 1u8);
        let r = region_dose("liver", &dose, &map, &all, &[10.0, 50.0, 70.0, 90.0, 100.0], &[Gray(3.0), Gray(7.5), Gray(11.0)], Gray(1.0)).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        assert!(close(r.mean_gy.0, 5.5));
        // Hottest 10 % = {10}: D10 = 10; hottest 50 % = {10..6}: D50 = 6; D70 = 4; D90 = 2; D100 = min = 1.
        for (p, want) in [(10.0, 10.0), (50.0, 6.0), (70.0, 4.0), (90.0, 2.0), (100.0, 1.0)] {
            assert!(close(r.d_at(p).unwrap().0, want), "D{p} = {:?}", r.d_at(p));
        }
        // V3 = 8/10 (doses 3..10), V7.5 = 3/10, V11 = 0.
        assert!(close(r.v_at(3.0).unwrap().0, 0.8));
        assert!(close(r.v_at(7.5).unwrap().0, 0.3));
        assert_eq!(r.v_at(11.0).unwrap().0, 0.0);
        // DVH at 0, 1, ..., 11 Gy: 1, 1, 0.9, ..., 0.1, 0.
        assert_eq!(r.dvh.volume_fraction.len(), 12);
        assert!(close(r.dvh.volume_fraction[0], 1.0) && close(r.dvh.volume_fraction[1], 1.0) && close(r.dvh.volume_fraction[2], 0.9));
        assert!(close(r.dvh.volume_fraction[10], 0.1) && close(r.dvh.volume_fraction[11], 0.0));
    }

    #[test]
    fn counts_are_scaled_to_the_total_in_the_region() {
        let g = Geometry::identity([4, 4, 4], [2.0, 2.0, 2.0]).unwrap(); // 8 mm^3 voxels
        let counts = Volume::from_fn(g.clone(), |[i, _, _]| if i < 2 { 10.0 } else { 30.0 });
        let region = Volume::from_fn(g.clone(), |[i, _, _]| u8::from(i >= 2));
        let (map, _) = ActivityMap::from_counts("spect", counts, Gbq(2.0), &region, "liver").unwrap();
        assert!((map.activity_in(&region).0 - 2.0).abs() < 1e-12);
        let outside = region.map(|&m| 1 - m);
        assert!((map.activity_in(&outside).0 - 2.0 / 3.0).abs() < 1e-12);
        let e = ActivityMap::from_counts("spect.nii", Volume::filled(g.clone(), 0.0), Gbq(2.0), &region, "liver").unwrap_err().to_string();
        assert!(e.starts_with("spect.nii: holds no counts"), "{e}");
        let e = ActivityMap::from_counts("spect.nii", Volume::filled(g.clone(), 1.0), Gbq(-2.0), &region, "liver").unwrap_err().to_string();
        assert!(e.starts_with("total activity"), "{e}");
    }

    #[test]
    fn negative_voxels_are_clipped_with_a_warning_and_nan_is_an_error() {
        let g = Geometry::identity([2, 1, 1], [1.0; 3]).unwrap();
        let (map, w) = ActivityMap::from_bq_per_ml("pet.nii", Volume::new(g.clone(), vec![-5.0, 10.0]).unwrap()).unwrap();
        assert_eq!(map.concentration().data(), &[0.0, 10.0]);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.starts_with("pet.nii: 1 negative voxels"));
        let e = ActivityMap::from_bq_per_ml("pet.nii", Volume::new(g, vec![f64::NAN, 10.0]).unwrap()).unwrap_err().to_string();
        assert!(e.starts_with("pet.nii: voxel [0, 0, 0]"), "{e}");
    }
}
