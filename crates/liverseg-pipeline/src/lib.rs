//! `liverseg segment` without the deep-learning framework: pre-processing,
//! the model behind a trait, threshold, erosion / largest component /
//! dilation, the way back onto the original CT grid, measurements, quality
//! flags ([`quality`]), the report ([`report`]) and the output files
//! ([`write`]: NIfTI, DICOM-SEG, RTSTRUCT, report.json, overview.png).
//!
//! The burn network implements [`ProbabilityModel`] in `liverseg-model`; tests
//! here use [`testing::HuWindowModel`], a stand-in that is not a segmentation
//! method.

pub mod batch;
mod error;
pub mod overview;
pub mod quality;
pub mod report;
pub mod testing;
pub mod write;

pub use error::{Error, Result};
pub use liverseg_preprocess::{Prepared, PreprocessConfig};
pub use quality::QualityRules;
pub use report::{Flag, InputInfo, Report, TileWork, LIVER_DENSITY_G_PER_ML};
pub use write::{write_outputs, OutputFormats, OutputSource};

use liverseg_imgproc::morphology::{
    bounding_box, fill_holes, fill_holes_slicewise, keep_largest_after_erosion, Connectivity,
};
use liverseg_imgproc::resample::{resample_level_set, resample_linear};
use liverseg_imgproc::Scalar;
use rayon::prelude::*;
use liverseg_volume::{dyn_dispatch, DynVolume, Mask, Volume};
use report::{BoundingBox, ComponentSummary, GridInfo, Measurements, StageTime};
use std::time::Instant;
use serde::{Deserialize, Serialize};

/// A model that gives a liver probability per voxel of the pre-processed grid.
pub trait ProbabilityModel: Send + Sync {
    /// Name and weights checksum, e.g. "liverseg-fast-3f2a9c1e" (goes into the report).
    fn id(&self) -> String;
    /// The pre-processing the model was trained with.
    fn preprocess_config(&self) -> &PreprocessConfig;
    /// Threshold from training's threshold search, else 0.5.
    fn default_threshold(&self) -> f32;
    /// Liver probability on `prepared.hu`'s grid. `input` is the normalised
    /// image (`prepared.normalised(config, 0.0)`). `threshold` is the level
    /// the result will be cut at, decided once by [`segment`] (the option,
    /// else [`default_threshold`](Self::default_threshold)): a model that
    /// skips work where the map stays below it (the burn network's
    /// coarse-to-fine tiling) must use exactly this level to give the same
    /// mask as a full pass. `progress(done, total)` reports work units (e.g.
    /// tiles).
    fn predict(
        &self,
        prepared: &Prepared,
        input: &Volume<f32>,
        threshold: f32,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Prediction, ModelError>;

    /// [`predict`](Self::predict), told where another grid of the same CT
    /// (when scale averaging, the first grid computed: the factor-1 one
    /// when it is among the factors) saw liver: `seen`, a mask
    /// on `prepared.hu`'s grid. A model that searches for the liver before
    /// computing (the burn network's probes) may start from it instead; the
    /// default ignores it.
    fn predict_seen(
        &self,
        prepared: &Prepared,
        input: &Volume<f32>,
        threshold: f32,
        seen: &Mask,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Prediction, ModelError> {
        let _ = seen;
        self.predict(prepared, input, threshold, progress)
    }
}

/// A model's own error, kept whole as the cause of [`Error::ModelFailed`].
pub type ModelError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`ProbabilityModel`] returns: the map, and for tiled models how much
/// of the volume it computed (goes into the report, so a slow case can be
/// told apart from a model that grew into the whole body).
#[derive(Debug, Clone)]
pub struct Prediction {
    pub probability: Volume<f32>,
    pub tiles: Option<TileWork>,
}

impl From<Volume<f32>> for Prediction {
    fn from(probability: Volume<f32>) -> Self {
        Self { probability, tiles: None }
    }
}

/// The post-processing's erosion radius. 9 mm cuts necks up to 18 mm wide:
/// the leave-one-out folds' leaks into the spleen join the liver through its
/// left lobe's tip, which the former 3 mm left joined. Regrowing through the
/// mask (not dilating back) keeps the thin parts of the liver that so large
/// a ball erodes away (liverseg-imgproc's `keep_largest_after_erosion`).
/// Measured on the folds' checkpoints (README, *Post-processing*).
pub const DEFAULT_POSTPROCESS_RADIUS_MM: f64 = 9.0;

/// Options of [`segment`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOptions {
    /// Probability threshold; `None` = the model's default.
    pub threshold: Option<f32>,
    /// Ball radius of the erosion / largest component / regrowth step, mm
    /// (0 = keep the largest component only).
    pub postprocess_radius_mm: f64,
    /// Also bring the probability map back onto the CT grid.
    pub probability: bool,
    /// How the liver's surface is placed on the CT grid.
    pub boundary: Boundary,
    /// Which holes the kept liver encloses become liver.
    pub fill_holes: HoleFill,
    /// Grid-spacing factors the CT is read at, probabilities averaged on the
    /// factor-1 grid (test-time scale averaging; `[1.0]`: one grid).
    pub scale_average: Vec<f64>,
    pub rules: QualityRules,
}

/// [`SegmentOptions::scale_average`]'s default: the CT read on grids 10 %
/// finer and coarser than the model's too, the three probabilities
/// averaged. Adopted 2026-12-07 by rules 1-5 of
/// `models/scale-average/README.md` (written before any result, for two
/// other configurations; that this one was a candidate was written after its
/// results, see there): on the five leave-one-out folds it raised every
/// fold's DSC (median 0.9189 -> 0.9233, worst 0.863 -> 0.873), on ten fold
/// models of other recipes eight of ten, and with inference in boxes it
/// took 27-30 s on a 512x512x129 CT on 2 cores (the `segment` bench and by
/// hand, 2026-12-07 morning), at the 30 s budget; with the Winograd run
/// gather of that afternoon ~11 % less work, but 29-32 s on the then slower
/// host; since the 0.9 and 1.1 grids grow from the factor-1 grid's liver
/// (`ProbabilityModel::predict_seen`), 21.7 s in the bench (the top README).
/// `[1.0]` is one grid, about 2.5x faster.
pub const DEFAULT_SCALE_AVERAGE: [f64; 3] = [0.9, 1.0, 1.1];

/// The factors [`SegmentOptions::scale_average`] accepts. Only a sanity
/// bound: the training scales by +-15 %, so factors far beyond that read
/// anatomy at sizes the network never saw, and a grid twice as fine costs
/// eight times the time and memory; measured: 0.9 and 1.1
/// (`models/scale-average/README.md`).
pub const SCALE_FACTOR_RANGE: std::ops::RangeInclusive<f64> = 0.5..=2.0;

/// Which background regions enclosed by the post-processed liver become
/// liver (tumours and vessels inside it belong to the SIRT "whole liver").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoleFill {
    /// Regions enclosed in 3-D (background 26-connected): a notch open to
    /// the outside, such as the vena cava's groove, stays open.
    #[default]
    #[serde(rename = "3d")]
    ThreeD,
    /// Also regions enclosed within an axial slice of the network grid
    /// (background 8-connected in plane): vessels entering the liver and
    /// tumours touching its surface, but also the vena cava where the liver
    /// wraps round it (`models/axial-holes/README.md`).
    Axial,
}

impl HoleFill {
    pub fn name(self) -> &'static str {
        match self {
            HoleFill::ThreeD => "3d",
            HoleFill::Axial => "axial",
        }
    }
}

impl std::str::FromStr for HoleFill {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "3d" => Ok(HoleFill::ThreeD),
            "axial" => Ok(HoleFill::Axial),
            other => Err(format!("hole filling {other:?}: expected 3d or axial")),
        }
    }
}

/// How the post-processed mask on the network's grid becomes the mask on the
/// CT grid (finer in plane, usually): the same voxels can be liver either
/// way, only where the surface runs between two network-grid voxels differs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Boundary {
    /// The mask as a 0/1 image, interpolated and cut at 0.5: the surface runs
    /// half-way between a liver and a background voxel centre.
    #[default]
    Mask,
    /// The probability interpolated and cut at the threshold, within what the
    /// post-processing kept (`models/soft-boundary/README.md`).
    Probability,
}

impl Boundary {
    pub fn name(self) -> &'static str {
        match self {
            Boundary::Mask => "mask",
            Boundary::Probability => "probability",
        }
    }
}

impl std::str::FromStr for Boundary {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mask" => Ok(Boundary::Mask),
            "probability" => Ok(Boundary::Probability),
            other => Err(format!("boundary {other:?}: expected mask or probability")),
        }
    }
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self {
            threshold: None,
            postprocess_radius_mm: DEFAULT_POSTPROCESS_RADIUS_MM,
            probability: false,
            boundary: Boundary::default(),
            fill_holes: HoleFill::default(),
            scale_average: DEFAULT_SCALE_AVERAGE.to_vec(),
            rules: QualityRules::default(),
        }
    }
}

/// Stages reported to the progress callback, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Preprocess,
    Predict,
    Postprocess,
    ToOriginalGrid,
    Measure,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Preprocess => "preprocess",
            Stage::Predict => "predict",
            Stage::Postprocess => "postprocess",
            Stage::ToOriginalGrid => "to_original_grid",
            Stage::Measure => "measure",
        }
    }
}

/// The result of [`segment`], on the input CT's grid.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// 0/1 liver mask, same dims/spacing/origin/direction as the CT.
    pub liver: Mask,
    /// Liver probability on the CT grid (when asked for; 0 outside the crop).
    pub probability: Option<Volume<f32>>,
    pub report: Report,
}

/// The post-processed mask on the network grid and what was removed.
struct PostProcessed {
    mask: Mask,
    components: ComponentSummary,
}

/// The paper's post-processing with the dilation replaced by regrowth
/// (`keep_largest_after_erosion`: erode, keep the largest 6-connected
/// component, regrow it through the thresholded mask up to where another
/// component's territory begins), then fill the holes it encloses (in 3-D,
/// or also slice by slice: `holes`); the regions' sizes go to the report.
fn postprocess(raw: &Mask, radius_mm: f64, large_min_ml: f64, holes: HoleFill) -> Result<PostProcessed> {
    let voxel_ml = raw.geometry().voxel_volume_mm3() / 1000.0;
    let kept = keep_largest_after_erosion(raw, radius_mm, Connectivity::Six)?;
    let count = kept.component_sizes.len();
    let mut sizes: Vec<f64> = kept.component_sizes.iter().map(|&s| s as f64 * voxel_ml).collect();
    sizes.sort_by(|a, b| b.total_cmp(a));
    let large = sizes.iter().filter(|&&s| s >= large_min_ml).count();
    let mask = kept.mask;
    let removed_ml = (raw.count_foreground() - mask.count_foreground()) as f64 * voxel_ml;
    // The whole liver of the paper and of SIRT includes its tumours and
    // vessels: a region the liver encloses in 3-D is liver. Background is
    // 26-connected, the dual of the 6-connected component kept, so a notch
    // open to the outside through an edge or a corner (the vena cava's groove,
    // a tumour at the border) is left alone. Per-slice filling is an option:
    // a notch closed in one axial slice is often open in 3-D.
    let before = mask.count_foreground();
    let mut mask = fill_holes(&mask, Connectivity::TwentySix);
    if holes == HoleFill::Axial {
        mask = fill_holes_slicewise(&mask, Connectivity::TwentySix);
    }
    let holes_filled_ml = (mask.count_foreground() - before) as f64 * voxel_ml;
    Ok(PostProcessed {
        mask,
        components: ComponentSummary {
            count,
            large,
            large_min_ml,
            largest_ml: sizes.into_iter().take(5).collect(),
            removed_ml,
            holes_filled_ml,
        },
    })
}

fn grid_info(g: &liverseg_volume::Geometry) -> GridInfo {
    GridInfo {
        dims: g.dims(),
        spacing_mm: g.spacing(),
        origin_lps_mm: g.origin(),
        direction: g.direction_flat(),
        orientation: g.orientation_code(),
    }
}

/// Bounding box, centroid, mean and median HU of `mask` on the CT grid.
fn liver_stats<T: Scalar>(
    ct: &Volume<T>,
    mask: &Mask,
) -> (
    Option<BoundingBox>,
    Option<[f64; 3]>,
    Option<f64>,
    Option<f64>,
) {
    let g = mask.geometry();
    let Some((lo, hi)) = bounding_box(mask) else {
        return (None, None, None, None);
    };
    let mut sum_idx = [0.0f64; 3];
    let mut values = Vec::with_capacity(mask.count_foreground());
    for k in lo[2]..hi[2] {
        for j in lo[1]..hi[1] {
            for i in lo[0]..hi[0] {
                let o = g.offset(i, j, k);
                if mask.data()[o] == 0 {
                    continue;
                }
                values.push(ct.data()[o].to_f64());
                sum_idx[0] += i as f64;
                sum_idx[1] += j as f64;
                sum_idx[2] += k as f64;
            }
        }
    }
    // Box of the extreme voxel centres (`hi` is exclusive).
    let (lps_min, lps_max) = g.world_box(lo.map(|v| v as f64), hi.map(|v| (v - 1) as f64));
    let n = values.len() as f64;
    let centroid = g.index_to_world(sum_idx.map(|s| s / n));
    let mean = values.iter().sum::<f64>() / n;
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    };
    let bbox = BoundingBox {
        voxel_min: lo,
        voxel_max: hi.map(|h| h - 1),
        lps_min_mm: lps_min,
        lps_max_mm: lps_max,
    };
    (Some(bbox), Some(centroid), Some(mean), Some(median))
}

/// Enhanced-tissue volume on the pre-processed grid; above 4 M voxels the
/// distance-based steps run on every second voxel per axis (on the full
/// 1.4 mm grid of a 512² CT they cost several seconds).
fn enhanced_ml(prepared: &Prepared, rules: &QualityRules) -> f64 {
    let stride = if prepared.hu.len() > 4_000_000 { 2 } else { 1 };
    quality::enhanced_tissue_ml(&prepared.hu, &prepared.body, rules.enhanced_hu, stride)
}

/// The voxels of `grid` where `probability` (on another grid of the same CT)
/// reaches `threshold`, grown by one voxel (26-connected).
fn seen_mask(probability: &Volume<f32>, grid: &liverseg_volume::Geometry, threshold: f32) -> Result<Mask> {
    let seen = resample_level_set(probability, grid, threshold);
    // A ball just over sqrt(3) voxels holds the 26 neighbours and no more.
    let radius = grid.spacing().iter().cloned().fold(0.0, f64::max) * 1.75;
    Ok(liverseg_imgproc::morphology::dilate(&seen, radius)?)
}

/// `model.predict` on one pre-processed grid, its answer checked: on that
/// grid, every value a probability.
fn predict_checked(
    model: &dyn ProbabilityModel,
    prepared: &Prepared,
    input: &Volume<f32>,
    threshold: f32,
    seen: Option<&Mask>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Prediction> {
    let model_err = |message: String| Error::Model {
        model: model.id(),
        message,
    };
    let prediction = match seen {
        Some(seen) => model.predict_seen(prepared, input, threshold, seen, progress),
        None => model.predict(prepared, input, threshold, progress),
    };
    let prediction = prediction
        .map_err(|source| Error::ModelFailed {
            model: model.id(),
            source,
        })?;
    if !prediction.probability.geometry().same_grid(prepared.hu.geometry()) {
        return Err(model_err(
            "returned a probability map that is not on the pre-processed grid".into(),
        ));
    }
    if let Some(bad) = prediction
        .probability
        .data()
        .iter()
        .find(|p| !(0.0..=1.0).contains(*p))
    {
        return Err(model_err(format!(
            "returned {bad}, not a probability in [0, 1]"
        )));
    }
    Ok(prediction)
}

/// Segment the liver of a CT (values in HU) with `model`.
///
/// prepare (crop, 1.4 mm, median filter) -> model probability -> threshold ->
/// erode / keep largest / dilate -> back onto the CT grid -> measurements and
/// quality flags. `progress(stage, done, total)` is called at stage starts
/// and ends, and with the model's own progress during `Predict`.
pub fn segment<T: Scalar>(
    ct: &Volume<T>,
    model: &dyn ProbabilityModel,
    options: &SegmentOptions,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<Segmentation> {
    let threshold = options
        .threshold
        .unwrap_or_else(|| model.default_threshold());
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(Error::param(
            "threshold",
            format!("{threshold} is not strictly between 0 and 1"),
        ));
    }
    let r = options.postprocess_radius_mm;
    if !(r.is_finite() && (0.0..=50.0).contains(&r)) {
        return Err(Error::param(
            "postprocess_radius_mm",
            format!("{r} is not in 0..=50 mm"),
        ));
    }
    let factors = &options.scale_average;
    if factors.is_empty() || factors.iter().any(|f| !SCALE_FACTOR_RANGE.contains(f)) {
        return Err(Error::param(
            "scale_average",
            format!("{factors:?}: give one or more grid-spacing factors in {}..={}", SCALE_FACTOR_RANGE.start(), SCALE_FACTOR_RANGE.end()),
        ));
    }
    let mut timings = Vec::new();
    let mut timed = |stage: Stage, t0: Instant| {
        timings.push(StageTime {
            stage: stage.name().into(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    };

    progress(Stage::Preprocess, 0, 1);
    let t0 = Instant::now();
    let config = model.preprocess_config();
    // The factor-1 grid first (post-processing runs on it, whether or not
    // its map is averaged), then the other factors' grids, all from one crop.
    let mut configs = vec![config.clone()];
    configs.extend(factors.iter().filter(|&&f| f != 1.0).map(|&f| PreprocessConfig { spacing_mm: config.spacing_mm * f, ..config.clone() }));
    let mut grids = liverseg_preprocess::prepare_grids(ct, &configs)?.into_iter();
    let prepared = grids.next().expect("one configuration at least");
    let input = prepared.normalised(config, 0.0);
    timed(Stage::Preprocess, t0);
    progress(Stage::Preprocess, 1, 1);

    let t0 = Instant::now();
    let n = factors.len();
    // The factor-1 grid is computed first (when it is among the factors),
    // so the others can start from the liver it saw (`predict_seen`)
    // instead of searching for it; the maps are still summed in the order
    // of `factors`, so the sum is what it was.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&k| factors[k] != 1.0);
    let mut scaled_grids: Vec<Option<Prepared>> = factors.iter().map(|&f| if f == 1.0 { None } else { grids.next() }).collect();
    let mut maps: Vec<Option<Volume<f32>>> = vec![None; n];
    // The first grid's own map (on its grid), where the others start from.
    let mut first: Option<Volume<f32>> = None;
    let mut tiles: Option<TileWork> = None;
    for (done, &k) in order.iter().enumerate() {
        let mut pass_progress = |d: usize, t: usize| progress(Stage::Predict, done * t + d, n * t);
        let scaled = scaled_grids[k].take();
        let (grid, grid_input) = match &scaled {
            None => (&prepared, None),
            Some(g) => (g, Some(g.normalised(config, 0.0))),
        };
        // Where the first grid computed reached the threshold, on this grid
        // and one voxel wider (its 26 neighbours). Every voxel of this grid
        // that the interpolation back onto the factor-1 grid's liver reads
        // then lies in a computed tile, and this grid's own liver is grown
        // from there as from probes.
        let seen = match &first {
            Some(p1) => Some(seen_mask(p1, grid.hu.geometry(), threshold)?),
            None => None,
        };
        let prediction = predict_checked(model, grid, grid_input.as_ref().unwrap_or(&input), threshold, seen.as_ref(), &mut pass_progress)?;
        if first.is_none() {
            first = Some(prediction.probability.clone());
        }
        let Prediction { probability: p, tiles: work } = match scaled {
            None => prediction,
            // Outside the scaled grid (a voxel at most at the crop's edge)
            // the map reads 0, as outside the crop.
            Some(_) => Prediction { probability: resample_linear(&prediction.probability, prepared.hu.geometry(), 0.0), tiles: prediction.tiles },
        };
        tiles = match (tiles, work) {
            (Some(a), Some(b)) => Some(TileWork {
                body_tiles: a.body_tiles + b.body_tiles,
                computed_tiles: a.computed_tiles + b.computed_tiles,
                boxes: a.boxes + b.boxes,
                probes: a.probes + b.probes,
                fell_back_to_all: a.fell_back_to_all || b.fell_back_to_all,
            }),
            (a, b) => a.or(b),
        };
        maps[k] = Some(p);
    }
    drop(first);
    let mut sum: Option<Volume<f32>> = None;
    for p in maps.into_iter().flatten() {
        sum = Some(match sum {
            None => p,
            Some(mut acc) => {
                acc.data_mut().par_iter_mut().zip(p.data().par_iter()).for_each(|(a, &b)| *a += b);
                acc
            }
        });
    }
    drop(input);
    let mut probability = sum.expect("scale_average is checked non-empty");
    if n > 1 {
        let w = 1.0 / n as f32;
        probability.data_mut().par_iter_mut().for_each(|v| *v = (*v * w).clamp(0.0, 1.0));
    }
    timed(Stage::Predict, t0);

    progress(Stage::Postprocess, 0, 1);
    let t0 = Instant::now();
    let raw = probability.map(|&p| u8::from(p >= threshold));
    let post = postprocess(&raw, r, options.rules.large_component_ml, options.fill_holes)?;
    drop(raw);
    timed(Stage::Postprocess, t0);

    progress(Stage::ToOriginalGrid, 0, 1);
    let t0 = Instant::now();
    let liver = match options.boundary {
        Boundary::Mask => prepared.to_original_grid(&post.mask)?,
        Boundary::Probability => prepared.to_original_grid_following(&post.mask, &probability, threshold)?,
    };
    let probability_out = if options.probability {
        Some(prepared.probability_to_original_grid(&probability)?)
    } else {
        None
    };
    timed(Stage::ToOriginalGrid, t0);

    progress(Stage::Measure, 0, 1);
    let t0 = Instant::now();
    let liver_ml = liver.foreground_ml();
    let (bounding_box, centroid, hu_mean, hu_median) = liver_stats(ct, &liver);
    let nonempty = post.mask.count_foreground() > 0 && liver_ml > 0.0;
    let tissue = if nonempty {
        quality::liver_tissue(
            &prepared.hu,
            &prepared.body,
            &post.mask,
            options.rules.min_liver_contrast_hu,
        )
    } else {
        quality::LiverTissue::default()
    };
    let measurements = Measurements {
        liver_contrast_hu: tissue.liver_contrast_hu,
        soft_tissue_hu: tissue.soft_tissue_hu,
        enhanced_tissue_ml: Some(enhanced_ml(&prepared, &options.rules)),
        noise_hu: if nonempty {
            quality::noise_hu(ct, &liver)
        } else {
            None
        },
        crop_border_contact_mm2: nonempty.then(|| quality::border_contact_mm2(&post.mask)),
        border_confidence: if nonempty {
            quality::border_confidence(&post.mask, &probability)
        } else {
            None
        },
        scan_length_mm: Some(quality::scan_length_mm(ct.geometry())),
        liver_mode_hu: tissue.liver_mode_hu,
        darker_than_liver_fraction: tissue.darker_than_liver_fraction,
    };
    let flags = quality::flags(
        &options.rules,
        &measurements,
        if nonempty { liver_ml } else { 0.0 },
        post.components.large,
    );
    timed(Stage::Measure, t0);
    progress(Stage::Measure, 1, 1);

    let report = Report {
        software: format!("liverseg-pipeline {}", env!("CARGO_PKG_VERSION")),
        model_id: model.id(),
        threshold,
        postprocess_radius_mm: r,
        boundary: options.boundary,
        fill_holes: options.fill_holes,
        scale_average: options.scale_average.clone(),
        grid: grid_info(ct.geometry()),
        liver_volume_ml: liver_ml,
        liver_mass_g: liver_ml * LIVER_DENSITY_G_PER_ML,
        liver_density_g_per_ml: LIVER_DENSITY_G_PER_ML,
        liver_hu_mean: hu_mean,
        liver_hu_median: hu_median,
        bounding_box,
        centroid_lps_mm: centroid,
        components: post.components,
        measurements,
        flags,
        tiles,
        timings_s: timings,
        input: None,
    };
    Ok(Segmentation {
        liver,
        probability: probability_out,
        report,
    })
}

/// [`segment`] for a CT of any stored type.
pub fn segment_dyn(
    ct: &DynVolume,
    model: &dyn ProbabilityModel,
    options: &SegmentOptions,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<Segmentation> {
    dyn_dispatch!(ct, v => segment(v, model, options, progress))
}

#[cfg(test)]
mod tests;
