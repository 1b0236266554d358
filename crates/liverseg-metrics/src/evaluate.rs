//! One comparison of two masks: overlap, volumes and surface distances.
//!
//! Order matters: `a` is the first mask (the reference), `b` the second.
//! Definitions (volumes and distances in ml and mm, with the voxel spacing):
//! - `dice` = 2|a∩b| / (|a| + |b|) on voxel counts;
//! - `volume_ratio` = V_b / V_a (the paper's RV of a segmentation b against a
//!   reference a; note that MedPy's `1 + ravd(a, b)` and SimpleITK's ratio are
//!   V_a / V_b, the reciprocal);
//! - `volume_similarity` = 2 (V_a − V_b) / (V_a + V_b), positive when a is larger;
//! - MedPy convention (default, [`crate::voxel_surface`]): `asd_ab`, `asd_ba` =
//!   directed mean surface distances a→b and b→a; `assd` = mean of the pooled
//!   list of both directions; `hd` = its maximum; `hd95` = its 95th percentile
//!   with linear interpolation (`numpy.percentile`);
//! - surfel convention ([`crate::surfel`]): `surfel_asd_ab`, `surfel_asd_ba` =
//!   directed area-weighted means; `surfel_assd` = their plain mean;
//!   `surfel_assd_pooled` = the area-weighted mean of both lists; `surfel_hd` =
//!   max of the directed maxima; `surfel_hd95` = max of the two directed
//!   area-weighted nearest-rank 95th percentiles; `surface_dice_at_<τ>mm`.
//!
//! Empty masks never give a number that looks like a measurement: a metric that
//! is undefined is `None` (JSON `null`) and its key is listed under `undefined`
//! with the reason. Dice of two empty masks is undefined (0/0), Dice of one empty
//! and one non-empty mask is 0; V_b/V_a is undefined when a is empty; every
//! surface distance is undefined when either mask is empty (there is no surface
//! to measure from or to); surface Dice is 0 when exactly one mask is empty.

use crate::grid::counts;
use liverseg_imgproc::resample::resample_nearest;
use crate::stats::percentile_linear;
use crate::surfel::{area_weighted_mean, area_weighted_percentile, area_within, surfel_distances};
use crate::voxel_surface::voxel_surface_distances;
use liverseg_volume::Mask;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Which surface definition the distances use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SurfaceConvention {
    /// MedPy 0.5.2: boundary voxels, voxel-centre distances, unweighted.
    Medpy,
    /// DeepMind surface-distance: corner surfels, area-weighted.
    Surfel,
    /// Both sets of keys.
    Both,
}

impl SurfaceConvention {
    pub fn medpy(self) -> bool {
        matches!(self, Self::Medpy | Self::Both)
    }
    pub fn surfel(self) -> bool {
        matches!(self, Self::Surfel | Self::Both)
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Medpy => "medpy",
            Self::Surfel => "surfel",
            Self::Both => "both",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub convention: SurfaceConvention,
    /// Tolerances (mm) for surface Dice (surfel convention).
    pub tolerances_mm: Vec<f64>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { convention: SurfaceConvention::Medpy, tolerances_mm: vec![1.0, 2.0] }
    }
}

/// MedPy-convention surface metrics (mm).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoxelSurfaceMetrics {
    pub surface_voxels_a: usize,
    pub surface_voxels_b: usize,
    pub asd_ab: Option<f64>,
    pub asd_ba: Option<f64>,
    pub assd: Option<f64>,
    pub hd: Option<f64>,
    pub hd95: Option<f64>,
}

/// DeepMind-convention surface metrics (mm, mm²).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurfelMetrics {
    pub surfels_a: usize,
    pub surfels_b: usize,
    pub area_a_mm2: f64,
    pub area_b_mm2: f64,
    pub asd_ab: Option<f64>,
    pub asd_ba: Option<f64>,
    pub assd: Option<f64>,
    pub assd_pooled: Option<f64>,
    pub hd: Option<f64>,
    pub hd95: Option<f64>,
    /// (tolerance mm, surface Dice)
    pub surface_dice: Vec<(f64, Option<f64>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub voxels_a: usize,
    pub voxels_b: usize,
    pub voxels_intersection: usize,
    pub dice: Option<f64>,
    pub volume_a_ml: f64,
    pub volume_b_ml: f64,
    pub volume_ratio: Option<f64>,
    pub volume_similarity: Option<f64>,
    pub convention: SurfaceConvention,
    pub medpy: Option<VoxelSurfaceMetrics>,
    pub surfel: Option<SurfelMetrics>,
    /// JSON key -> why it has no value.
    pub undefined: BTreeMap<String, String>,
    /// True when b was resampled onto a's grid.
    pub resampled: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("the masks are on different grids ({0}); resample first or use evaluate_resampling")]
    GridMismatch(String),
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    #[error("{0}")]
    Invalid(String),
}

fn surface_tolerance_key(t: f64) -> String {
    format!("surface_dice_at_{}mm", t)
}

/// Evaluate `b` against `a`; both must be on the same grid.
pub fn evaluate(a: &Mask, b: &Mask, options: &EvalOptions) -> Result<Evaluation, MetricsError> {
    if !a.geometry().same_grid(b.geometry()) {
        return Err(MetricsError::GridMismatch(format!("{:?} vs {:?}", a.dims(), b.dims())));
    }
    let overlap = counts(a.data(), b.data());
    let (na, nb, ni) = (overlap.a, overlap.b, overlap.both);
    let voxel_ml = a.geometry().voxel_volume_mm3() / 1000.0;
    let (va, vb) = (na as f64 * voxel_ml, nb as f64 * voxel_ml);
    let mut undefined = BTreeMap::new();
    let mut undef = |key: &str, why: &str| {
        undefined.insert(key.to_string(), why.to_string());
    };
    let both_empty = na == 0 && nb == 0;
    let dice = overlap.dice();
    if dice.is_none() {
        undef("dice", "both masks are empty (0/0)");
    }
    let volume_ratio = if na == 0 {
        undef("volume_ratio", "mask a is empty: V_b / V_a divides by 0");
        None
    } else {
        Some(vb / va)
    };
    let volume_similarity = if both_empty {
        undef("volume_similarity", "both masks are empty (0/0)");
        None
    } else {
        Some(2.0 * (va - vb) / (va + vb))
    };
    let no_surface = match (na == 0, nb == 0) {
        (true, true) => Some("both masks are empty: no surface"),
        (true, false) => Some("mask a is empty: no surface to measure from or to"),
        (false, true) => Some("mask b is empty: no surface to measure from or to"),
        _ => None,
    };

    let medpy = options.convention.medpy().then(|| {
        let keys = ["asd_ab", "asd_ba", "assd", "hd", "hd95"];
        if let Some(why) = no_surface {
            keys.iter().for_each(|k| undef(k, why));
            return VoxelSurfaceMetrics::default();
        }
        let d = voxel_surface_distances(a, b);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let mut pooled: Vec<f64> = d.ab.iter().chain(&d.ba).copied().collect();
        let hd = pooled.iter().copied().fold(0.0, f64::max);
        VoxelSurfaceMetrics {
            surface_voxels_a: d.ab.len(),
            surface_voxels_b: d.ba.len(),
            asd_ab: Some(mean(&d.ab)),
            asd_ba: Some(mean(&d.ba)),
            assd: Some(mean(&pooled)),
            hd: Some(hd),
            hd95: percentile_linear(&mut pooled, 95.0),
        }
    });

    let surfel = options.convention.surfel().then(|| {
        let d = surfel_distances(a, b);
        let area = |v: &[(f64, f64)]| v.iter().map(|p| p.1).sum::<f64>();
        let mut m = SurfelMetrics {
            surfels_a: d.ab.len(),
            surfels_b: d.ba.len(),
            area_a_mm2: area(&d.ab),
            area_b_mm2: area(&d.ba),
            ..Default::default()
        };
        m.surface_dice = options
            .tolerances_mm
            .iter()
            .map(|&t| {
                if both_empty {
                    undef(&surface_tolerance_key(t), "both masks are empty (0/0)");
                    return (t, None);
                }
                let (wa, ta) = area_within(&d.ab, t);
                let (wb, tb) = area_within(&d.ba, t);
                (t, Some((wa + wb) / (ta + tb)))
            })
            .collect();
        if let Some(why) = no_surface {
            for k in ["surfel_asd_ab", "surfel_asd_ba", "surfel_assd", "surfel_assd_pooled", "surfel_hd", "surfel_hd95"] {
                undef(k, why);
            }
            return m;
        }
        m.asd_ab = area_weighted_mean(&d.ab);
        m.asd_ba = area_weighted_mean(&d.ba);
        m.assd = m.asd_ab.zip(m.asd_ba).map(|(x, y)| 0.5 * (x + y));
        let total = m.area_a_mm2 + m.area_b_mm2;
        m.assd_pooled = Some(d.ab.iter().chain(&d.ba).map(|p| p.0 * p.1).sum::<f64>() / total);
        let max = |v: &[(f64, f64)]| v.last().map_or(0.0, |p| p.0);
        m.hd = Some(max(&d.ab).max(max(&d.ba)));
        m.hd95 = area_weighted_percentile(&d.ab, 95.0).zip(area_weighted_percentile(&d.ba, 95.0)).map(|(x, y)| x.max(y));
        m
    });

    Ok(Evaluation {
        voxels_a: na,
        voxels_b: nb,
        voxels_intersection: ni,
        dice,
        volume_a_ml: va,
        volume_b_ml: vb,
        volume_ratio,
        volume_similarity,
        convention: options.convention,
        medpy,
        surfel,
        undefined,
        resampled: false,
        warnings: Vec::new(),
    })
}

/// Like [`evaluate`], but when `b` is on another grid it is first resampled onto
/// a's grid with nearest neighbour, and the result says so.
pub fn evaluate_resampling(a: &Mask, b: &Mask, options: &EvalOptions) -> Evaluation {
    if a.geometry().same_grid(b.geometry()) {
        return evaluate(a, b, options).expect("same grid");
    }
    let before = b.count_foreground();
    // Outside b's field of view is background.
    let rb = resample_nearest(b, a.geometry(), 0u8).map(|&v| u8::from(v != 0));
    let mut e = evaluate(a, &rb, options).expect("resampled onto a's grid");
    e.resampled = true;
    e.warnings.push(format!(
        "b is on another grid ({:?} at {:?} mm) than a ({:?} at {:?} mm): b was resampled onto a's grid with nearest neighbour ({} -> {} foreground voxels)",
        b.dims(),
        b.geometry().spacing(),
        a.dims(),
        a.geometry().spacing(),
        before,
        rb.count_foreground()
    ));
    e
}

fn num(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, |x| json!(x))
}

impl Evaluation {
    /// The metrics in a fixed order (the keys first), `None` = undefined.
    pub fn metric_rows(&self) -> Vec<(String, Option<f64>)> {
        let fin = |v: Option<f64>| v.filter(|x| x.is_finite());
        let mut m: Vec<(String, Option<f64>)> = vec![
            ("dice".into(), fin(self.dice)),
            ("volume_a_ml".into(), Some(self.volume_a_ml)),
            ("volume_b_ml".into(), Some(self.volume_b_ml)),
            ("volume_ratio".into(), fin(self.volume_ratio)),
            ("volume_similarity".into(), fin(self.volume_similarity)),
        ];
        if let Some(s) = &self.medpy {
            for (k, v) in [("asd_ab", s.asd_ab), ("asd_ba", s.asd_ba), ("assd", s.assd), ("hd", s.hd), ("hd95", s.hd95)] {
                m.push((k.into(), fin(v)));
            }
        }
        if let Some(s) = &self.surfel {
            for (k, v) in [
                ("surfel_asd_ab", s.asd_ab),
                ("surfel_asd_ba", s.asd_ba),
                ("surfel_assd", s.assd),
                ("surfel_assd_pooled", s.assd_pooled),
                ("surfel_hd", s.hd),
                ("surfel_hd95", s.hd95),
            ] {
                m.push((k.into(), fin(v)));
            }
            for &(t, v) in &s.surface_dice {
                m.push((surface_tolerance_key(t), fin(v)));
            }
        }
        m
    }

    /// The flat JSON object of `liverseg evaluate --json`: the metrics (null =
    /// undefined), then counts, the convention, `undefined` reasons and warnings.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in self.metric_rows() {
            m.insert(k, num(v));
        }
        m.insert("surface_convention".into(), json!(self.convention.name()));
        m.insert("voxels_a".into(), json!(self.voxels_a));
        m.insert("voxels_b".into(), json!(self.voxels_b));
        m.insert("voxels_intersection".into(), json!(self.voxels_intersection));
        if let Some(s) = &self.medpy {
            m.insert("surface_voxels_a".into(), json!(s.surface_voxels_a));
            m.insert("surface_voxels_b".into(), json!(s.surface_voxels_b));
        }
        if let Some(s) = &self.surfel {
            m.insert("surfels_a".into(), json!(s.surfels_a));
            m.insert("surfels_b".into(), json!(s.surfels_b));
            m.insert("surfel_area_a_mm2".into(), json!(s.area_a_mm2));
            m.insert("surfel_area_b_mm2".into(), json!(s.area_b_mm2));
        }
        m.insert("resampled_b_onto_a".into(), json!(self.resampled));
        m.insert("undefined".into(), json!(self.undefined));
        m.insert("warnings".into(), json!(self.warnings));
        Value::Object(m)
    }

    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let unit = |k: &str| {
            if k.contains("volume_a") || k.contains("volume_b") {
                "ml"
            } else if k.starts_with("asd") || k.starts_with("assd") || k.starts_with("hd") || k.starts_with("surfel_") {
                "mm"
            } else {
                ""
            }
        };
        for (k, v) in self.metric_rows() {
            let val = match v {
                Some(x) => format!("{x:.4}"),
                None => format!("undefined ({})", self.undefined.get(&k).map_or("no value", String::as_str)),
            };
            s.push_str(&format!("{k:<24} {val:>12} {}\n", unit(&k)));
        }
        s.push_str(&format!(
            "{:<24} {:>12}\n{:<24} {:>12}\n{:<24} {:>12}\n",
            "voxels_a", self.voxels_a, "voxels_b", self.voxels_b, "voxels_intersection", self.voxels_intersection
        ));
        s.push_str(&format!("surface convention: {}\n", self.convention.name()));
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}
