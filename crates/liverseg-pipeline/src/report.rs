//! `report.json`: what `segment` measured, how long it took and what looks
//! wrong. Every field is documented here; the README's "report.json" section
//! repeats the list for users.

use serde::{Deserialize, Serialize};

/// Liver tissue density used for `liver_mass_g` (g/ml; ICRP 23 soft-tissue
/// liver value, the one SIRT partition-model worksheets use).
pub const LIVER_DENSITY_G_PER_ML: f64 = 1.03;

/// The report of one segmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Software that produced it (`liverseg-pipeline <version>`).
    pub software: String,
    /// The model's id (name and checksum of its weights).
    pub model_id: String,
    /// Probability threshold used (the `--threshold` given, else the model's default).
    pub threshold: f32,
    /// Radius (mm) of the ball of the erosion / largest component / dilation step.
    pub postprocess_radius_mm: f64,
    /// How the surface was placed on the CT grid: `mask` or `probability`
    /// (reports written before this field existed: `mask`).
    #[serde(default)]
    pub boundary: crate::Boundary,
    /// Which enclosed holes were filled: `3d` or `axial` (reports written
    /// before this field existed: `3d`).
    #[serde(default)]
    pub fill_holes: crate::HoleFill,
    /// Grid-spacing factors the probability was averaged over (`[1.0]`: one
    /// grid, and in reports written before this field existed).
    #[serde(default = "one_scale")]
    pub scale_average: Vec<f64>,
    /// The input CT's grid (the masks are written on exactly this grid).
    pub grid: GridInfo,
    /// Liver volume: voxel count times voxel volume on the CT grid, ml.
    pub liver_volume_ml: f64,
    /// `liver_volume_ml` x `liver_density_g_per_ml`, g.
    pub liver_mass_g: f64,
    /// The density used for the mass, g/ml (1.03).
    pub liver_density_g_per_ml: f64,
    /// Mean CT value inside the liver mask on the CT grid, HU (`null` when empty).
    pub liver_hu_mean: Option<f64>,
    /// Median CT value inside the liver mask on the CT grid, HU (`null` when empty).
    pub liver_hu_median: Option<f64>,
    /// Bounding box of the liver mask (`null` when empty).
    pub bounding_box: Option<BoundingBox>,
    /// Liver centroid in patient LPS coordinates, mm (`null` when empty).
    pub centroid_lps_mm: Option<[f64; 3]>,
    /// Connected components of the eroded thresholded mask (before the largest is kept).
    pub components: ComponentSummary,
    /// The numbers the quality flags are decided on (see [`crate::quality`]).
    pub measurements: Measurements,
    /// Quality flags raised (empty when nothing looked wrong). None blocks output.
    pub flags: Vec<Flag>,
    /// Tiles the model computed (tiled models; absent for others and in
    /// reports written before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles: Option<TileWork>,
    /// Wall-clock time per stage, in order, seconds.
    pub timings_s: Vec<StageTime>,
    /// What was read and what the reader noticed (set by the caller that read
    /// the CT, e.g. the CLI; absent in reports written before this field
    /// existed and when `segment` is called on a volume in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputInfo>,
}

/// The input block of `report.json` (format, DICOM series chosen and others
/// found, reader warnings) is liverseg-io's [`liverseg_io::InputInfo`], so
/// `segment`, `review` and the DICOM node describe a read the same way.
pub use liverseg_io::input_info::{InputInfo, InputSeries, OtherSeriesSummary};

/// The grid of the input CT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridInfo {
    /// Voxels per axis (i, j, k).
    pub dims: [usize; 3],
    /// Voxel size per axis, mm.
    pub spacing_mm: [f64; 3],
    /// World (LPS) position of voxel (0, 0, 0), mm.
    pub origin_lps_mm: [f64; 3],
    /// Direction cosines, row-major 3x3; column j is voxel axis j in LPS.
    pub direction: [f64; 9],
    /// Three-letter orientation code (e.g. "LPS" = axes point to patient left, posterior, superior).
    pub orientation: String,
}

/// Axis-aligned bounding box of the mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// First voxel index (i, j, k) holding liver.
    pub voxel_min: [usize; 3],
    /// Last voxel index (i, j, k) holding liver (inclusive).
    pub voxel_max: [usize; 3],
    /// Smallest LPS coordinate of the liver voxel centres per axis, mm.
    pub lps_min_mm: [f64; 3],
    /// Largest LPS coordinate of the liver voxel centres per axis, mm.
    pub lps_max_mm: [f64; 3],
}

/// What the largest-component step kept and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSummary {
    /// Regions the thresholded mask was split into: the eroded mask's
    /// components, each regrown over its territory (all sizes).
    pub count: usize,
    /// Regions of at least `large_min_ml` (the one kept included).
    pub large: usize,
    /// Size rule for `large`, ml.
    pub large_min_ml: f64,
    /// Sizes of the largest regions (at most 5), ml, largest first, measured
    /// after regrowth (before hole filling).
    pub largest_ml: Vec<f64>,
    /// Thresholded volume that post-processing removed, ml.
    pub removed_ml: f64,
    /// Enclosed holes filled after the largest component was kept (tumours
    /// and vessels inside the liver belong to the whole liver), ml.
    #[serde(default)]
    pub holes_filled_ml: f64,
}

/// Quality measurements (`null` when they cannot be measured, e.g. empty mask).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// Median liver HU minus the soft-tissue (muscle) reference HU, both on the
    /// pre-processed grid (median-filtered).
    pub liver_contrast_hu: Option<f64>,
    /// Soft-tissue reference: mode of the HU histogram of body voxels outside
    /// the liver between 20 and 100 HU (muscle, bowel wall; fat and fluid excluded).
    pub soft_tissue_hu: Option<f64>,
    /// Volume of enhanced soft tissue (aorta, IVC, kidneys, spleen in arterial
    /// phase): body voxels of 150..400 HU outside bone, ml.
    pub enhanced_tissue_ml: Option<f64>,
    /// Noise: robust standard deviation of CT values inside the liver on the CT
    /// grid, from neighbour differences, HU.
    pub noise_hu: Option<f64>,
    /// Area of the liver mask lying on the faces of the cropped volume, mm².
    pub crop_border_contact_mm2: Option<f64>,
    /// Mean of |2p - 1| over the voxels on either side of the mask surface (1 =
    /// the model is sure where the border is, 0 = p is 0.5 everywhere on it).
    pub border_confidence: Option<f64>,
    /// Head-foot (LPS z) extent of the CT, mm (absent in reports written
    /// before this field existed).
    #[serde(default)]
    pub scan_length_mm: Option<f64>,
    /// The liver's dominant HU: mode (4 HU bins) of the mask's pre-processed HU.
    #[serde(default)]
    pub liver_mode_hu: Option<f64>,
    /// Fraction of the mask darker than halfway between `liver_mode_hu` and
    /// `soft_tissue_hu`; absent when those are less than the contrast rule's
    /// minimum apart (HU cannot then tell liver from muscle).
    #[serde(default)]
    pub darker_than_liver_fraction: Option<f64>,
}

/// One quality flag: a name, what it means for this case, the measured value
/// and the rule's threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Machine-readable name (see [`crate::quality`] for the list and rules).
    pub name: String,
    /// One sentence for a person.
    pub message: String,
    /// The measured value the rule tested (`null` for `empty_result`).
    pub value: Option<f64>,
    /// The rule's threshold, in the value's unit.
    pub threshold: f64,
    /// Unit of `value` and `threshold`.
    pub unit: String,
}

/// How much of the pre-processed volume a tiled model computed (summed over
/// the grids with scale averaging; a model may use other unit tiles on a
/// grid it was told where to start, so counts compare between reports of
/// one configuration only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileWork {
    /// Output tiles holding a body voxel (what a full pass computes).
    pub body_tiles: usize,
    /// Output tiles computed in full.
    pub computed_tiles: usize,
    /// Network runs that computed them (boxes of neighbouring tiles; absent
    /// in reports written before boxes, read as 0).
    #[serde(default)]
    pub boxes: usize,
    /// Small probe segments run to find the liver (coarse-to-fine only).
    pub probes: usize,
    /// The probes found too little liver, so every body tile was computed.
    pub fell_back_to_all: bool,
}

/// Time spent in one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
}

impl Report {
    /// Whether a flag of this name was raised.
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f.name == name)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Add (or replace) the time of a stage measured outside `segment` (e.g. reading).
    pub fn set_time(&mut self, stage: &str, seconds: f64) {
        match self.timings_s.iter_mut().find(|t| t.stage == stage) {
            Some(t) => t.seconds = seconds,
            None => self.timings_s.insert(
                0,
                StageTime {
                    stage: stage.into(),
                    seconds,
                },
            ),
        }
    }
}

fn one_scale() -> Vec<f64> {
    vec![1.0]
}
