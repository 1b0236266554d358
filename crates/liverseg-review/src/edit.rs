//! The editable mask of one open case: edit operations, undo/redo and live
//! statistics.
//!
//! The mask is binary, so every edit is stored as the sorted list of voxel
//! offsets it flipped; undo and redo flip the same list back. A step costs 4
//! bytes per changed voxel, never a copy of the volume, so history is unbounded
//! while the case is open. Volume and DSC vs the starting mask are kept as
//! running counts updated per flipped voxel.

use crate::ReviewError;
use liverseg_imgproc::geodesic::{geodesic_competition, GeodesicParams};
use liverseg_imgproc::morphology::{closing, largest_component, opening, Connectivity};
use liverseg_volume::{Geometry, Mask, Volume};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Slice orientation: the axis held fixed. `Z` = axial (i, j), `Y` = coronal
/// (i, k), `X` = sagittal (j, k); views use voxel axes of the CT grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub fn parse(s: &str) -> Option<Axis> {
        match s {
            "x" | "sagittal" => Some(Axis::X),
            "y" | "coronal" => Some(Axis::Y),
            "z" | "axial" => Some(Axis::Z),
            _ => None,
        }
    }
    fn index(self) -> usize {
        match self {
            Axis::X => 0,
            Axis::Y => 1,
            Axis::Z => 2,
        }
    }
    /// The view's name in messages.
    pub fn view_name(self) -> &'static str {
        match self {
            Axis::X => "sagittal",
            Axis::Y => "coronal",
            Axis::Z => "axial",
        }
    }
    /// The two voxel axes spanning the slice: (horizontal u, vertical v).
    pub fn plane(self) -> (usize, usize) {
        match self {
            Axis::X => (1, 2),
            Axis::Y => (0, 2),
            Axis::Z => (0, 1),
        }
    }
}

/// Limits that keep one request from stalling the server.
const MAX_RADIUS_MM: f64 = 100.0;
const MAX_POINTS: usize = 20_000;

/// A fill larger than this (ml) is refused unless the request sets its own
/// limit: a whole liver is 1-3 l, but a fill that is meant to close a gap is
/// far smaller, while one that leaks through the body wall is litres (issue
/// 21: +3.6 l from one click on the dome).
pub const DEFAULT_FILL_MAX_ML: f64 = 300.0;

/// One edit, as the browser sends it. Points are voxel coordinates in the
/// slice plane (u, v), fractional allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EditOp {
    /// Paint (`value` 1) or erase (0) along a stroke: discs in the slice, or
    /// spheres (`sphere`) through neighbouring slices; only voxels with HU in
    /// [hu_min, hu_max] when given.
    Brush {
        axis: Axis,
        slice: usize,
        points: Vec<[f64; 2]>,
        radius_mm: f64,
        value: u8,
        #[serde(default)]
        sphere: bool,
        hu_min: Option<f64>,
        hu_max: Option<f64>,
    },
    /// Flood from `seed` through voxels whose HU is in [hu_min, hu_max] and
    /// whose label differs from `value`; in one slice when `axis` is given
    /// (4-connected), else in 3-D (6-connected). Refused as a whole when the
    /// region is larger than `max_ml` ([`DEFAULT_FILL_MAX_ML`] when absent) or
    /// reaches further than `max_mm` from the seed (no distance limit when
    /// absent).
    Fill {
        seed: [usize; 3],
        hu_min: f64,
        hu_max: f64,
        value: u8,
        axis: Option<Axis>,
        #[serde(default)]
        max_ml: Option<f64>,
        #[serde(default)]
        max_mm: Option<f64>,
    },
    /// Shape-based interpolation (linear in signed distance) of the slices
    /// strictly between `from` and `to` along `axis`, within the in-plane
    /// bounding rectangle of the two key slices' shapes. Refused when a key
    /// slice is empty (the shape would shrink to nothing towards it).
    Interpolate { axis: Axis, from: usize, to: usize },
    /// Morphological closing then opening with a ball of `radius_mm`.
    Smooth { radius_mm: f64 },
    /// Keep only the largest 6-connected component.
    RemoveIslands,
    /// Changed-voxel runs: (first offset, length, value).
    Runs { runs: Vec<[u64; 3]> },
    /// Grow from seeds: liver (`value` 1) and not-liver (0) strokes compete
    /// over the CT by geodesic distance ([`liverseg_imgproc::geodesic`]).
    /// Voxels a front reaches below `reach_mm` (default
    /// [`DEFAULT_GROW_REACH_MM`]) take its label; every other voxel keeps its
    /// current label, so mask far from any seed is never touched.
    Grow {
        seeds: Vec<SeedStroke>,
        #[serde(default)]
        reach_mm: Option<f64>,
        #[serde(default)]
        sigma_hu: Option<f64>,
    },
    /// Probability brush: within the brush footprint the mask becomes
    /// `p >= threshold`, `p` the model's probability map (`probability.nii.gz`
    /// beside `liverseg segment`'s `liver.nii.gz`).
    ProbBrush {
        axis: Axis,
        slice: usize,
        points: Vec<[f64; 2]>,
        radius_mm: f64,
        #[serde(default)]
        sphere: bool,
        threshold: f64,
    },
    /// Fill holes: background not connected to the border becomes mask; in
    /// one slice (`axis` + `slice`, 4-connected background) or in 3-D
    /// (6-connected background) when both are absent.
    FillHoles {
        #[serde(default)]
        axis: Option<Axis>,
        #[serde(default)]
        slice: Option<usize>,
    },
}

/// One seed stroke of a grow: discs of `radius_mm` along `points` in one slice.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SeedStroke {
    pub axis: Axis,
    pub slice: usize,
    pub points: Vec<[f64; 2]>,
    pub radius_mm: f64,
    pub value: u8,
}

/// How far (geodesic cost, mm in homogeneous tissue) seeds reach by default:
/// far enough that strokes on every third to fifth slice of a 5 mm CT cover
/// the slices between, short enough that a forgotten not-liver stroke cannot
/// eat the far side of the liver.
pub const DEFAULT_GROW_REACH_MM: f64 = 40.0;
const NO_PROBABILITY: &str = "no probability map for this case: the probability brush needs probability.nii.gz beside the mask's liver.nii.gz (liverseg segment -o DIR --probability)";
/// Seed strokes are lines, not areas: a wide one would be a paint stroke.
const MAX_SEED_RADIUS_MM: f64 = 20.0;
/// Longest reach of a grow: 150 mm covers a whole liver from one stroke,
/// and the fronts' box (and the time) grows with its cube.
const MAX_GROW_REACH_MM: f64 = 150.0;
/// Most strokes in one grow.
const MAX_SEED_STROKES: usize = 500;

impl EditOp {
    pub fn name(&self) -> &'static str {
        match self {
            EditOp::Brush { value: 0, .. } => "erase",
            EditOp::Brush { .. } => "paint",
            EditOp::Fill { .. } => "fill",
            EditOp::Interpolate { .. } => "interpolate",
            EditOp::Smooth { .. } => "smooth",
            EditOp::RemoveIslands => "remove_islands",
            EditOp::Runs { .. } => "runs",
            EditOp::Grow { .. } => "grow",
            EditOp::ProbBrush { .. } => "prob_brush",
            EditOp::FillHoles { .. } => "fill_holes",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stats {
    pub volume_ml: f64,
    pub start_volume_ml: f64,
    /// DSC of the current mask vs the starting mask (1 when both are empty).
    pub dsc_vs_start: f64,
    /// Voxels that differ from the starting mask.
    pub changed_voxels: u64,
    pub voxels: u64,
}

struct Step {
    op: &'static str,
    /// Sorted, distinct voxel offsets flipped by the step.
    flipped: Vec<u32>,
    /// Who made the step (a browser tab's id): only they may undo or redo it,
    /// so one tab never takes back another's work.
    author: Box<str>,
}

/// What a fill would do, computed without changing the mask.
#[derive(Debug, Clone, Serialize)]
pub struct FillPreview {
    /// Voxels the flood reaches (all of them, also when it is refused, unless
    /// `stopped_early`).
    pub voxels: u64,
    /// Counting stopped at four times the limit: the region is larger still.
    pub stopped_early: bool,
    pub volume_ml: f64,
    /// Largest distance (mm) of a reached voxel centre from the seed's.
    pub max_distance_mm: f64,
    pub limit_ml: f64,
    pub limit_mm: Option<f64>,
    /// Why the fill is refused (over a limit); nothing is changed then.
    pub refused: Option<String>,
    /// Why the fill changes nothing (seed outside the HU range, or already
    /// labelled as the fill would label it).
    pub noop: Option<String>,
    /// The voxels it would flip, sorted; empty when refused or a no-op.
    #[serde(skip)]
    pub offsets: Vec<u32>,
}

impl FillPreview {
    /// The offsets as runs `[first, length]` (a region is mostly rows along
    /// x, so this is far smaller than the list).
    pub fn runs(&self) -> Vec<[u32; 2]> {
        runs_of(self.offsets.iter().copied())
    }
}

pub struct EditSession {
    pub ct: Volume<i16>,
    pub start: Mask,
    mask: Mask,
    undo: Vec<Step>,
    redo: Vec<Step>,
    fg: u64,
    start_fg: u64,
    intersection: u64,
    /// Edit operations applied (undo and redo are not edits).
    pub edits: u64,
    /// Incremented on every change of the mask (edits, undo, redo).
    pub revision: u64,
    /// The model's liver probability on the CT grid, as round(255 p): the
    /// probability brush's boundary. A byte per voxel (a 512x512x300 CT costs
    /// 79 MB instead of 315 as f32); thresholds are set in steps of 0.05, far
    /// coarser than 1/255.
    probability: Option<Vec<u8>>,
    /// The last grow computed: its request (seeds and parameters, as JSON),
    /// the mask revision it was computed on, and the voxels it flips. The
    /// page previews a grow and then applies the same one; on a 512x512 CT
    /// that is a second or more each, so the apply reuses the preview.
    last_grow: std::sync::Mutex<Option<(String, u64, Vec<u32>)>>,
}

/// What an edit other than a fill would change, computed without changing the mask.
#[derive(Debug, Clone, Serialize)]
pub struct ChangePreview {
    pub added: u64,
    pub removed: u64,
    pub added_ml: f64,
    pub removed_ml: f64,
    /// Why it changes nothing, when it does not.
    pub noop: Option<String>,
    /// Voxels to add and to remove as runs `[first offset, length]`.
    pub runs_add: Vec<[u32; 2]>,
    pub runs_remove: Vec<[u32; 2]>,
}

fn runs_of(offsets: impl Iterator<Item = u32>) -> Vec<[u32; 2]> {
    let mut runs: Vec<[u32; 2]> = vec![];
    for o in offsets {
        match runs.last_mut() {
            Some(r) if r[0] + r[1] == o => r[1] += 1,
            _ => runs.push([o, 1]),
        }
    }
    runs
}

fn bad(msg: impl Into<String>) -> ReviewError {
    ReviewError::BadRequest(msg.into())
}

impl EditSession {
    /// `mask` is where editing starts (a previous save of this reviewer, or the
    /// starting mask); `start` is the mask the DSC is computed against.
    pub fn new(ct: Volume<i16>, start: Mask, mask: Mask) -> Result<Self, ReviewError> {
        if !ct.geometry().same_grid(start.geometry()) || !ct.geometry().same_grid(mask.geometry()) {
            return Err(ReviewError::Input(
                "the mask is not on the CT's grid".into(),
            ));
        }
        if ct.len() > u32::MAX as usize {
            return Err(ReviewError::Input(format!(
                "{} voxels: more than the editor supports (2^32)",
                ct.len()
            )));
        }
        let start = start.map(|&v| u8::from(v != 0));
        let mask = mask.map(|&v| u8::from(v != 0));
        let start_fg = start.data().iter().map(|&v| v as u64).sum();
        let fg = mask.data().iter().map(|&v| v as u64).sum();
        let intersection = start
            .data()
            .iter()
            .zip(mask.data())
            .map(|(&a, &b)| (a & b) as u64)
            .sum();
        Ok(EditSession {
            ct,
            start,
            mask,
            undo: vec![],
            redo: vec![],
            fg,
            start_fg,
            intersection,
            edits: 0,
            revision: 0,
            probability: None,
            last_grow: std::sync::Mutex::new(None),
        })
    }

    /// Attach the model's probability map (on the CT grid; values outside
    /// 0..1 are clamped, NaN counts as 0).
    pub fn set_probability(&mut self, p: &Volume<f32>) -> Result<(), ReviewError> {
        if !p.geometry().same_grid(self.geometry()) {
            return Err(ReviewError::Input(
                "the probability map is not on the CT's grid".into(),
            ));
        }
        self.probability = Some(
            p.data()
                .iter()
                .map(|&v| if v.is_nan() { 0 } else { (v.clamp(0.0, 1.0) * 255.0).round() as u8 })
                .collect(),
        );
        Ok(())
    }

    pub fn has_probability(&self) -> bool {
        self.probability.is_some()
    }

    pub fn mask(&self) -> &Mask {
        &self.mask
    }
    pub fn geometry(&self) -> &Geometry {
        self.ct.geometry()
    }
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
    /// Bytes held by the undo and redo history.
    pub fn history_bytes(&self) -> usize {
        self.undo
            .iter()
            .chain(&self.redo)
            .map(|s| s.flipped.len() * 4)
            .sum()
    }

    pub fn stats(&self) -> Stats {
        let ml = self.geometry().voxel_volume_mm3() / 1000.0;
        let denom = self.fg + self.start_fg;
        Stats {
            volume_ml: self.fg as f64 * ml,
            start_volume_ml: self.start_fg as f64 * ml,
            dsc_vs_start: if denom == 0 {
                1.0
            } else {
                2.0 * self.intersection as f64 / denom as f64
            },
            changed_voxels: self.fg + self.start_fg - 2 * self.intersection,
            voxels: self.fg,
        }
    }

    fn flip(&mut self, offsets: &[u32]) {
        let (m, s) = (self.mask.data_mut(), self.start.data());
        for &o in offsets {
            let o = o as usize;
            m[o] ^= 1;
            if m[o] == 1 {
                self.fg += 1;
                self.intersection += s[o] as u64;
            } else {
                self.fg -= 1;
                self.intersection -= s[o] as u64;
            }
        }
        self.revision += 1;
    }

    /// Apply an edit; returns the number of voxels it changed (0: nothing is
    /// recorded in the history).
    pub fn apply(&mut self, op: &EditOp) -> Result<usize, ReviewError> {
        self.apply_by(op, "")
    }

    /// [`apply`](Self::apply) on behalf of `author` (see [`undo_by`](Self::undo_by)).
    pub fn apply_by(&mut self, op: &EditOp, author: &str) -> Result<usize, ReviewError> {
        let mut flipped = self.changes(op)?;
        flipped.sort_unstable();
        flipped.dedup();
        if flipped.is_empty() {
            return Ok(0);
        }
        self.flip(&flipped);
        self.edits += 1;
        self.redo.clear();
        let n = flipped.len();
        self.undo.push(Step {
            op: op.name(),
            flipped,
            author: author.into(),
        });
        Ok(n)
    }

    /// Undo the last step; returns its operation name.
    pub fn undo(&mut self) -> Option<&'static str> {
        self.undo_by("").ok().flatten()
    }

    pub fn redo(&mut self) -> Option<&'static str> {
        self.redo_by("").ok().flatten()
    }

    /// Undo the last step if `author` made it; a Conflict when someone else
    /// did (the history is one list per case, shared by every tab).
    pub fn undo_by(&mut self, author: &str) -> Result<Option<&'static str>, ReviewError> {
        self.move_step(author, true)
    }

    pub fn redo_by(&mut self, author: &str) -> Result<Option<&'static str>, ReviewError> {
        self.move_step(author, false)
    }

    /// Take the last step of the undo (or redo) list, flip its voxels back and
    /// push it onto the other list, if `author` made it.
    fn move_step(&mut self, author: &str, undo: bool) -> Result<Option<&'static str>, ReviewError> {
        let (from, what) = if undo { (&self.undo, "edit") } else { (&self.redo, "undo") };
        let Some(step) = from.last() else {
            return Ok(None);
        };
        if *step.author != *author {
            let again = if undo { "undo" } else { "redo" };
            return Err(ReviewError::Conflict(format!(
                "the last {what} ({}) was made in another tab or window: {again} it there",
                step.op
            )));
        }
        let step = if undo { self.undo.pop() } else { self.redo.pop() }.expect("checked above");
        self.flip(&step.flipped);
        let name = step.op;
        if undo { self.redo.push(step) } else { self.undo.push(step) }
        Ok(Some(name))
    }

    /// What a fill would add or remove, without changing anything.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_preview(
        &self,
        seed: [usize; 3],
        hu_min: f64,
        hu_max: f64,
        value: u8,
        axis: Option<Axis>,
        max_ml: Option<f64>,
        max_mm: Option<f64>,
    ) -> Result<FillPreview, ReviewError> {
        let g = self.geometry();
        let dims = g.dims();
        if (0..3).any(|a| seed[a] >= dims[a]) {
            return Err(bad(format!("seed {seed:?} outside the grid {dims:?}")));
        }
        if !(hu_min.is_finite() && hu_max.is_finite()) || hu_min > hu_max {
            return Err(bad(format!(
                "HU range {hu_min} to {hu_max}: give two numbers, the first not above the second"
            )));
        }
        let limit_ml = max_ml.unwrap_or(DEFAULT_FILL_MAX_ML);
        if !(limit_ml.is_finite() && limit_ml > 0.0) {
            return Err(bad(format!("fill limit {limit_ml} ml: use a number > 0")));
        }
        if max_mm.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
            return Err(bad(format!(
                "fill distance limit {} mm: use a number > 0 (or none)",
                max_mm.unwrap_or_default()
            )));
        }
        let voxel_ml = g.voxel_volume_mm3() / 1000.0;
        let mut p = FillPreview {
            voxels: 0,
            stopped_early: false,
            volume_ml: 0.0,
            max_distance_mm: 0.0,
            limit_ml,
            limit_mm: max_mm,
            refused: None,
            noop: None,
            offsets: vec![],
        };
        let value = u8::from(value != 0);
        let (m, ct) = (self.mask.data(), self.ct.data());
        // Whole-HU bounds, so the walk compares integers (CT values are i16).
        let (lo, hi) = (
            hu_min.ceil().clamp(-1e6, 1e6) as i32,
            hu_max.floor().clamp(-1e6, 1e6) as i32,
        );
        let in_range = |o: usize| (lo..=hi).contains(&(ct[o] as i32));
        let s = g.offset(seed[0], seed[1], seed[2]);
        if m[s] == value {
            p.noop = Some(if value == 1 {
                format!("the seed {seed:?} is already in the mask")
            } else {
                format!("the seed {seed:?} is not in the mask: nothing to remove")
            });
            return Ok(p);
        }
        if !in_range(s) {
            p.noop = Some(format!(
                "the seed's HU ({}) is outside the range {hu_min} to {hu_max}",
                ct[s]
            ));
            return Ok(p);
        }
        let max_voxels = (limit_ml / voxel_ml).floor() as u64;
        let sp = g.spacing();
        let dist2 = |[i, j, k]: [usize; 3]| -> f64 {
            let d = [
                (i as f64 - seed[0] as f64) * sp[0],
                (j as f64 - seed[1] as f64) * sp[1],
                (k as f64 - seed[2] as f64) * sp[2],
            ];
            d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        };
        let (nx, nxy) = (dims[0], dims[0] * dims[1]);
        let index = |o: usize| [o % nx, (o / nx) % dims[1], o / nxy];
        // A bitset: a 512x512x300 grid costs 10 MB instead of 79.
        let mut seen = vec![0u64; g.len().div_ceil(64)];
        let mut mark = |o: usize| {
            let (w, b) = (o / 64, 1u64 << (o % 64));
            let fresh = seen[w] & b == 0;
            seen[w] |= b;
            fresh
        };
        // The flood is walked past a limit, so a refusal can say how large the
        // region would have been, up to four times the limit: a flood of the
        // whole body (10^7 voxels, seconds) need not be counted to the end.
        // Offsets are kept only while the region is within the limits.
        let walk_cap = max_voxels.saturating_mul(4).max(100_000);
        let mut queue = VecDeque::from([s as u32]);
        mark(s);
        let mut keep = true;
        let mut max_d2 = 0.0f64;
        while let Some(o) = queue.pop_front() {
            if p.voxels >= walk_cap {
                p.stopped_early = true;
                break;
            }
            let o = o as usize;
            let p_ijk = index(o);
            p.voxels += 1;
            max_d2 = max_d2.max(dist2(p_ijk));
            if keep {
                p.offsets.push(o as u32);
                if p.voxels > max_voxels || max_mm.is_some_and(|d| max_d2 > d * d) {
                    keep = false;
                    p.offsets = vec![];
                }
            }
            for a in 0..3 {
                if axis.is_some_and(|ax| ax.index() == a) {
                    continue;
                }
                let stride = [1, nx, nxy][a];
                if p_ijk[a] > 0 {
                    let q = o - stride;
                    if m[q] != value && in_range(q) && mark(q) {
                        queue.push_back(q as u32);
                    }
                }
                if p_ijk[a] + 1 < dims[a] {
                    let q = o + stride;
                    if m[q] != value && in_range(q) && mark(q) {
                        queue.push_back(q as u32);
                    }
                }
            }
        }
        p.volume_ml = p.voxels as f64 * voxel_ml;
        p.max_distance_mm = max_d2.sqrt();
        let action = if value == 1 { "add" } else { "remove" };
        if p.stopped_early {
            p.refused = Some(format!(
                "fill refused: it would {action} more than {:.0} ml (over {} voxels; counting stopped there), more than the limit of {limit_ml} ml; it leaks out of the liver: narrow the HU range, fill in 2-D, or raise the limit",
                p.volume_ml, p.voxels
            ));
        } else if p.voxels > max_voxels {
            p.refused = Some(format!(
                "fill refused: it would {action} {:.1} ml ({} voxels), more than the limit of {limit_ml} ml; it probably leaks out of the liver: narrow the HU range, fill in 2-D, or raise the limit",
                p.volume_ml, p.voxels
            ));
        } else if let Some(d) = max_mm.filter(|&d| p.max_distance_mm > d) {
            p.refused = Some(format!(
                "fill refused: it would {action} {:.1} ml reaching {:.0} mm from the seed, beyond the limit of {d} mm",
                p.volume_ml, p.max_distance_mm
            ));
        }
        if p.refused.is_some() {
            p.offsets = vec![];
        } else {
            p.offsets.sort_unstable();
        }
        Ok(p)
    }

    /// Why an edit that changed nothing did so, where there is more to say
    /// than "0 voxels" (a fill's seed, a grow, no holes).
    pub fn noop_reason(&self, op: &EditOp) -> Option<String> {
        match op {
            EditOp::Fill { .. } => self.preview(op).ok().and_then(|p| p.noop),
            // A grow that changed nothing is still the cached one: no recompute.
            EditOp::Grow { .. } | EditOp::FillHoles { .. } => {
                self.change_preview(op).ok().and_then(|p| p.noop)
            }
            _ => None,
        }
    }

    /// [`fill_preview`](Self::fill_preview) of a fill op; the other ops have
    /// no preview.
    pub fn preview(&self, op: &EditOp) -> Result<FillPreview, ReviewError> {
        match *op {
            EditOp::Fill { seed, hu_min, hu_max, value, axis, max_ml, max_mm } => {
                self.fill_preview(seed, hu_min, hu_max, value, axis, max_ml, max_mm)
            }
            _ => Err(bad(format!("{} has no preview (only fill)", op.name()))),
        }
    }

    fn dims(&self) -> [usize; 3] {
        self.ct.dims()
    }

    fn check_slice(&self, axis: Axis, slice: usize) -> Result<(), ReviewError> {
        let n = self.dims()[axis.index()];
        if slice >= n {
            return Err(bad(format!("slice {slice} outside 0..{n} along {axis:?}")));
        }
        Ok(())
    }

    /// Every voxel under a brush stroke (discs in the slice, or spheres), with
    /// duplicates: the footprint the brush-like tools filter.
    fn footprint(
        &self,
        axis: Axis,
        slice: usize,
        points: &[[f64; 2]],
        radius_mm: f64,
        sphere: bool,
    ) -> Result<Vec<u32>, ReviewError> {
        let g = self.geometry();
        let dims = g.dims();
        self.check_slice(axis, slice)?;
        if !(radius_mm.is_finite() && radius_mm > 0.0 && radius_mm <= MAX_RADIUS_MM) {
            return Err(bad(format!(
                "brush radius {radius_mm} mm outside (0, {MAX_RADIUS_MM}]"
            )));
        }
        if points.is_empty()
            || points.len() > MAX_POINTS
            || points.iter().flatten().any(|v| !v.is_finite())
        {
            return Err(bad(format!("a stroke needs 1-{MAX_POINTS} finite points")));
        }
        let (ua, va) = axis.plane();
        let w = axis.index();
        let sp = g.spacing();
        let r = radius_mm;
        // Half-extent of the brush in voxels along each axis.
        let ext = [
            (r / sp[0]).floor() as i64,
            (r / sp[1]).floor() as i64,
            (r / sp[2]).floor() as i64,
        ];
        let ext_w = if sphere { ext[w] } else { 0 };
        // Stamp centres: the stroke resampled at a quarter of the smallest in-plane spacing.
        let step = 0.25 * r.min(sp[ua].min(sp[va]));
        let mut centres: Vec<[f64; 2]> = vec![points[0]];
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let len_mm = ((b[0] - a[0]) * sp[ua]).hypot((b[1] - a[1]) * sp[va]);
            let n = ((len_mm / step).ceil() as usize).max(1);
            if centres.len() + n > 200_000 {
                return Err(bad("stroke too long"));
            }
            centres.extend((1..=n).map(|t| {
                let t = t as f64 / n as f64;
                [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
            }));
        }
        let mut out = Vec::new();
        for c in centres {
            let mut centre = [0.0; 3];
            centre[ua] = c[0];
            centre[va] = c[1];
            centre[w] = slice as f64;
            let lo_i = |a: usize, e: i64| (centre[a].round() as i64 - e).max(0);
            let hi_i =
                |a: usize, e: i64| (centre[a].round() as i64 + e).min(dims[a] as i64 - 1);
            let mut range = [[0i64; 2]; 3];
            for a in 0..3 {
                let e = if a == w { ext_w } else { ext[a] };
                range[a] = [lo_i(a, e), hi_i(a, e)];
            }
            for k in range[2][0]..=range[2][1] {
                for j in range[1][0]..=range[1][1] {
                    for i in range[0][0]..=range[0][1] {
                        let idx = [i, j, k];
                        let d2: f64 = (0..3)
                            .map(|a| ((idx[a] as f64 - centre[a]) * sp[a]).powi(2))
                            .sum();
                        if d2 > r * r {
                            continue;
                        }
                        out.push(g.offset(i as usize, j as usize, k as usize) as u32);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Grow from seeds (see [`EditOp::Grow`]): the voxels whose label the
    /// competition changes.
    fn grow(
        &self,
        seeds: &[SeedStroke],
        reach_mm: Option<f64>,
        sigma_hu: Option<f64>,
    ) -> Result<Vec<u32>, ReviewError> {
        if seeds.is_empty() {
            return Err(bad("grow: no seed strokes: mark liver (and not-liver) strokes first"));
        }
        if seeds.len() > MAX_SEED_STROKES {
            return Err(bad(format!("grow: {} seed strokes, more than {MAX_SEED_STROKES}", seeds.len())));
        }
        let defaults = GeodesicParams::default();
        let params = GeodesicParams {
            reach_mm: reach_mm.unwrap_or(DEFAULT_GROW_REACH_MM),
            sigma: sigma_hu.unwrap_or(defaults.sigma),
            ..defaults
        };
        let key = serde_json::json!([seeds, params.reach_mm, params.sigma]).to_string();
        let mut cache = self.last_grow.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, rev, flips)) = cache.as_ref() {
            if *k == key && *rev == self.revision {
                return Ok(flips.clone());
            }
        }
        if !(params.reach_mm > 0.0 && params.reach_mm <= MAX_GROW_REACH_MM) {
            return Err(bad(format!(
                "grow: reach {} mm outside (0, {MAX_GROW_REACH_MM}]",
                params.reach_mm
            )));
        }
        let mut voxels: Vec<(usize, u8)> = vec![];
        for st in seeds {
            if !(st.radius_mm > 0.0 && st.radius_mm <= MAX_SEED_RADIUS_MM) {
                return Err(bad(format!(
                    "grow: seed stroke radius {} mm outside (0, {MAX_SEED_RADIUS_MM}]",
                    st.radius_mm
                )));
            }
            let value = u8::from(st.value != 0);
            let fp = self.footprint(st.axis, st.slice, &st.points, st.radius_mm, false)?;
            voxels.extend(fp.into_iter().map(|o| (o as usize, value)));
            if voxels.len() > liverseg_imgproc::geodesic::MAX_SEEDS {
                return Err(bad("grow: the seed strokes cover too many voxels: draw thinner or fewer strokes"));
            }
        }
        let c = geodesic_competition(&self.ct, &voxels, &params)
            .map_err(|e| bad(format!("grow: {e}")))?;
        let m = self.mask.data();
        let flips: Vec<u32> = c
            .labels
            .into_iter()
            .filter(|&(o, l)| m[o] != l)
            .map(|(o, _)| o as u32)
            .collect();
        *cache = Some((key, self.revision, flips.clone()));
        Ok(flips)
    }

    /// Fill holes in one slice (`axis` + `slice`) or in 3-D (neither).
    fn fill_holes(&self, axis: Option<Axis>, slice: Option<usize>) -> Result<Vec<u32>, ReviewError> {
        let internal = |e: liverseg_volume::VolumeError| ReviewError::Internal(e.to_string());
        match (axis, slice) {
            (None, None) => {
                let filled = liverseg_imgproc::morphology::fill_holes(&self.mask, Connectivity::Six);
                Ok(diff(self.mask.data(), filled.data()))
            }
            (Some(axis), Some(s)) => {
                self.check_slice(axis, s)?;
                let (w, h) = self.slice_len(axis);
                let m = self.mask.data();
                let data: Vec<u8> = (0..w * h).map(|n| m[self.slice_offset(axis, s, n)]).collect();
                let g2 = Geometry::identity([w, h, 1], [1.0; 3])
                    .map_err(|e| ReviewError::Internal(e.to_string()))?;
                let one = Mask::new(g2, data.clone()).map_err(internal)?;
                let filled = liverseg_imgproc::morphology::fill_holes_slicewise(&one, Connectivity::Six);
                Ok(diff(&data, filled.data())
                    .into_iter()
                    .map(|n| self.slice_offset(axis, s, n as usize) as u32)
                    .collect())
            }
            _ => Err(bad("fill holes: give both axis and slice (in one slice) or neither (3-D)")),
        }
    }

    /// What `op` would change, without changing anything (any op but fill,
    /// which has [`preview`](Self::preview) with its limits).
    pub fn change_preview(&self, op: &EditOp) -> Result<ChangePreview, ReviewError> {
        let mut c = self.changes(op)?;
        c.sort_unstable();
        c.dedup();
        let m = self.mask.data();
        let ml = self.geometry().voxel_volume_mm3() / 1000.0;
        let runs_add = runs_of(c.iter().copied().filter(|&o| m[o as usize] == 0));
        let runs_remove = runs_of(c.iter().copied().filter(|&o| m[o as usize] != 0));
        let count = |r: &[[u32; 2]]| r.iter().map(|r| r[1] as u64).sum::<u64>();
        let (added, removed) = (count(&runs_add), count(&runs_remove));
        Ok(ChangePreview {
            added,
            removed,
            added_ml: added as f64 * ml,
            removed_ml: removed as f64 * ml,
            noop: (added + removed == 0).then(|| match op {
                EditOp::Grow { .. } => "the seeds' regions already have the seeds' labels".to_string(),
                EditOp::FillHoles { .. } => "no holes: every background region reaches the border".to_string(),
                _ => "nothing would change".to_string(),
            }),
            runs_add,
            runs_remove,
        })
    }

    /// Offsets whose label the op changes (may contain duplicates).
    fn changes(&self, op: &EditOp) -> Result<Vec<u32>, ReviewError> {
        let g = self.geometry().clone();
        let m = self.mask.data();
        match op {
            EditOp::Brush {
                axis,
                slice,
                points,
                radius_mm,
                value,
                sphere,
                hu_min,
                hu_max,
            } => {
                let value = u8::from(*value != 0);
                let (lo, hi) = (
                    hu_min.unwrap_or(f64::NEG_INFINITY),
                    hu_max.unwrap_or(f64::INFINITY),
                );
                let ct = self.ct.data();
                let mut out = self.footprint(*axis, *slice, points, *radius_mm, *sphere)?;
                out.retain(|&o| {
                    let o = o as usize;
                    m[o] != value && (lo..=hi).contains(&(ct[o] as f64))
                });
                Ok(out)
            }
            EditOp::ProbBrush {
                axis,
                slice,
                points,
                radius_mm,
                sphere,
                threshold,
            } => {
                let Some(p) = &self.probability else {
                    return Err(bad(NO_PROBABILITY));
                };
                if !(threshold.is_finite() && (0.01..=0.99).contains(threshold)) {
                    return Err(bad(format!(
                        "probability threshold {threshold}: use a number from 0.01 to 0.99"
                    )));
                }
                // p >= t on the stored round(255 p).
                let t = (threshold * 255.0).round() as u8;
                let mut out = self.footprint(*axis, *slice, points, *radius_mm, *sphere)?;
                out.retain(|&o| m[o as usize] != u8::from(p[o as usize] >= t));
                Ok(out)
            }
            EditOp::Grow { seeds, reach_mm, sigma_hu } => self.grow(seeds, *reach_mm, *sigma_hu),
            EditOp::FillHoles { axis, slice } => self.fill_holes(*axis, *slice),
            EditOp::Fill { .. } => {
                let p = self.preview(op)?;
                match p.refused {
                    Some(why) => Err(ReviewError::Refused(why)),
                    None => Ok(p.offsets),
                }
            }
            EditOp::Interpolate { axis, from, to } => {
                self.check_slice(*axis, *from)?;
                self.check_slice(*axis, *to)?;
                let (a, b) = if from <= to {
                    (*from, *to)
                } else {
                    (*to, *from)
                };
                if b - a < 2 {
                    return Ok(vec![]);
                }
                let (w, _) = self.slice_len(*axis);
                // Only the rectangle the two key shapes span changes: other
                // parts of the slices between (a second lobe, a vessel drawn
                // apart) are not the shape being interpolated.
                let mut bbox = [usize::MAX, usize::MAX, 0, 0];
                for s in [a, b] {
                    let mut any = false;
                    for n in (0..w * self.slice_len(*axis).1).filter(|&n| m[self.slice_offset(*axis, s, n)] != 0) {
                        let (u, v) = (n % w, n / w);
                        bbox = [bbox[0].min(u), bbox[1].min(v), bbox[2].max(u), bbox[3].max(v)];
                        any = true;
                    }
                    if !any {
                        return Err(ReviewError::Refused(format!(
                            "interpolate refused: key slice {} of the {} view is empty; draw the shape on both key slices first (or pick another key slice)",
                            s + 1,
                            axis.view_name()
                        )));
                    }
                }
                let (da, db) = (
                    self.slice_distance(*axis, a)?,
                    self.slice_distance(*axis, b)?,
                );
                let mut out = Vec::new();
                for s in a + 1..b {
                    let t = (s - a) as f64 / (b - a) as f64;
                    for v in bbox[1]..=bbox[3] {
                        for u in bbox[0]..=bbox[2] {
                            let n = v * w + u;
                            let inside = u8::from((1.0 - t) * da[n] + t * db[n] <= 0.0);
                            let o = self.slice_offset(*axis, s, n);
                            if m[o] != inside {
                                out.push(o as u32);
                            }
                        }
                    }
                }
                Ok(out)
            }
            EditOp::Smooth { radius_mm } => {
                if !(radius_mm.is_finite() && *radius_mm > 0.0 && *radius_mm <= 20.0) {
                    return Err(bad(format!(
                        "smoothing radius {radius_mm} mm outside (0, 20]"
                    )));
                }
                let err = |e: liverseg_imgproc::Error| ReviewError::Internal(e.to_string());
                let smoothed = opening(&closing(&self.mask, *radius_mm).map_err(err)?, *radius_mm)
                    .map_err(err)?;
                Ok(diff(m, smoothed.data()))
            }
            EditOp::RemoveIslands => {
                let kept = largest_component(&self.mask, Connectivity::Six)
                    .map_err(|e| ReviewError::Internal(e.to_string()))?;
                Ok(diff(m, kept.data()))
            }
            EditOp::Runs { runs } => {
                let n = g.len() as u64;
                let mut out = Vec::new();
                for &[start, len, value] in runs {
                    if start.checked_add(len).is_none_or(|end| end > n) {
                        return Err(bad(format!(
                            "run {start}+{len} outside the volume ({n} voxels)"
                        )));
                    }
                    let value = u8::from(value != 0);
                    out.extend(
                        (start..start + len)
                            .filter(|&o| m[o as usize] != value)
                            .map(|o| o as u32),
                    );
                }
                Ok(out)
            }
        }
    }

    fn slice_len(&self, axis: Axis) -> (usize, usize) {
        let (u, v) = axis.plane();
        (self.dims()[u], self.dims()[v])
    }

    /// Offset of the `n`-th pixel (u fastest) of slice `s`.
    fn slice_offset(&self, axis: Axis, s: usize, n: usize) -> usize {
        let (w, _) = self.slice_len(axis);
        let (pu, pv) = (n % w, n / w);
        let g = self.geometry();
        match axis {
            Axis::X => g.offset(s, pu, pv),
            Axis::Y => g.offset(pu, s, pv),
            Axis::Z => g.offset(pu, pv, s),
        }
    }

    /// Signed distance (mm) of one slice of the mask; +inf-like where the slice is empty.
    fn slice_distance(&self, axis: Axis, s: usize) -> Result<Vec<f64>, ReviewError> {
        let (w, h) = self.slice_len(axis);
        let m = self.mask.data();
        let data: Vec<u8> = (0..w * h)
            .map(|n| m[self.slice_offset(axis, s, n)])
            .collect();
        let (u, v) = axis.plane();
        let sp = self.geometry().spacing();
        if data.iter().all(|&x| x == 0) {
            // An empty end slice: the shape shrinks to nothing towards it.
            return Ok(vec![1e9; w * h]);
        }
        let g2 = Geometry::identity([w, h, 1], [sp[u], sp[v], 1.0])
            .map_err(|e| ReviewError::Internal(e.to_string()))?;
        let mask = Mask::new(g2, data).map_err(|e| ReviewError::Internal(e.to_string()))?;
        Ok(liverseg_imgproc::edt::signed_distance(&mask).into_data())
    }

    /// One slice in voxel order (u fastest): HU and mask.
    pub fn slice(
        &self,
        axis: Axis,
        s: usize,
    ) -> Result<(usize, usize, Vec<i16>, Vec<u8>), ReviewError> {
        self.check_slice(axis, s)?;
        let (w, h) = self.slice_len(axis);
        let (ct, m) = (self.ct.data(), self.mask.data());
        let mut hu = Vec::with_capacity(w * h);
        let mut mk = Vec::with_capacity(w * h);
        for n in 0..w * h {
            let o = self.slice_offset(axis, s, n);
            hu.push(ct[o]);
            mk.push(m[o]);
        }
        Ok((w, h, hu, mk))
    }

    /// Per voxel axis (x, y, z), the slices where the mask differs from the
    /// start, each with its count of changed voxels. Taken from the volumes
    /// (not from the edits made in this session), so it survives reopening
    /// and follows undo, grows and 3-D edits.
    pub fn changed_slices(&self) -> [Vec<(usize, usize)>; 3] {
        let d = self.dims();
        let mut count = [vec![0usize; d[0]], vec![0usize; d[1]], vec![0usize; d[2]]];
        let (m, s) = (self.mask.data(), self.start.data());
        let mut o = 0;
        for k in 0..d[2] {
            for j in 0..d[1] {
                for i in 0..d[0] {
                    if (m[o] != 0) != (s[o] != 0) {
                        count[0][i] += 1;
                        count[1][j] += 1;
                        count[2][k] += 1;
                    }
                    o += 1;
                }
            }
        }
        count.map(|c| c.into_iter().enumerate().filter(|&(_, n)| n > 0).collect())
    }

    /// One slice of the mask the review started from (u fastest), for the
    /// page's "starting mask" outline.
    pub fn start_slice(&self, axis: Axis, s: usize) -> Result<(usize, usize, Vec<u8>), ReviewError> {
        self.check_slice(axis, s)?;
        let (w, h) = self.slice_len(axis);
        let m = self.start.data();
        Ok((w, h, (0..w * h).map(|n| m[self.slice_offset(axis, s, n)]).collect()))
    }
}

fn diff(a: &[u8], b: &[u8]) -> Vec<u32> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| (**x != 0) != (**y != 0))
        .map(|(o, _)| o as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_slices_follow_the_mask_not_the_edit_log() {
        let mut s = session();
        assert_eq!(s.changed_slices(), [vec![], vec![], vec![]]);
        // Two voxels of axial slice 1 and one of slice 4 become mask.
        let m = s.mask().clone();
        let g = m.geometry().clone();
        let runs = vec![[g.offset(0, 0, 1) as u64, 2, 1], [g.offset(5, 2, 4) as u64, 1, 1]];
        s.apply(&EditOp::Runs { runs }).unwrap();
        assert_eq!(
            s.changed_slices(),
            [vec![(0, 1), (1, 1), (5, 1)], vec![(0, 2), (2, 1)], vec![(1, 2), (4, 1)]]
        );
        s.undo().unwrap();
        assert_eq!(s.changed_slices(), [vec![], vec![], vec![]], "undone: nothing differs");
    }

    fn session() -> EditSession {
        let g = Geometry::identity([20, 16, 10], [1.0, 1.0, 2.0]).unwrap();
        // HU = 100 left of i = 10, -100 right of it.
        let ct = Volume::from_fn(g.clone(), |[i, _, _]| if i < 10 { 100 } else { -100 });
        let start = Volume::from_fn(g, |[i, j, k]| {
            u8::from((4..8).contains(&i) && (4..8).contains(&j) && (3..6).contains(&k))
        });
        EditSession::new(ct, start.clone(), start).unwrap()
    }

    fn brush(
        slice: usize,
        pts: &[[f64; 2]],
        r: f64,
        value: u8,
        sphere: bool,
        hu: Option<(f64, f64)>,
    ) -> EditOp {
        EditOp::Brush {
            axis: Axis::Z,
            slice,
            points: pts.to_vec(),
            radius_mm: r,
            value,
            sphere,
            hu_min: hu.map(|h| h.0),
            hu_max: hu.map(|h| h.1),
        }
    }

    #[test]
    fn brush_undo_redo_and_stats() {
        let mut s = session();
        let before = s.mask().clone();
        assert_eq!(s.stats().dsc_vs_start, 1.0);
        assert_eq!(s.stats().voxels, 48);
        // A disc of radius 1.5 mm around (15, 12) on slice 8: 9 voxels (3x3).
        let n = s
            .apply(&brush(8, &[[15.0, 12.0]], 1.5, 1, false, None))
            .unwrap();
        assert_eq!(n, 9);
        assert_eq!(*s.mask().get(15, 12, 8), 1);
        assert_eq!(*s.mask().get(16, 13, 8), 1);
        assert_eq!(*s.mask().get(17, 12, 8), 0);
        assert_eq!(
            *s.mask().get(15, 12, 7),
            0,
            "2-D brush leaks into the next slice"
        );
        let st = s.stats();
        assert_eq!(st.voxels, 57);
        assert!((st.dsc_vs_start - 2.0 * 48.0 / 105.0).abs() < 1e-12);
        assert!((st.volume_ml - 57.0 * 2.0 / 1000.0).abs() < 1e-12);
        assert_eq!(st.changed_voxels, 9);
        assert_eq!(s.history_bytes(), 36);
        assert_eq!(s.undo(), Some("paint"));
        assert_eq!(s.mask().data(), before.data());
        assert_eq!(s.stats().dsc_vs_start, 1.0);
        assert_eq!(s.redo(), Some("paint"));
        assert_eq!(s.stats().voxels, 57);
        // A new edit clears redo.
        s.undo();
        s.apply(&brush(5, &[[5.0, 5.0]], 1.0, 0, false, None))
            .unwrap();
        assert!(!s.can_redo());
        assert_eq!(s.edits, 2);
    }

    #[test]
    fn sphere_stroke_and_hu_range() {
        let mut s = session();
        // Sphere radius 2.5 mm with z spacing 2 mm reaches one slice either side.
        s.apply(&brush(2, &[[12.0, 12.0]], 2.5, 1, true, None))
            .unwrap();
        assert_eq!(*s.mask().get(12, 12, 1), 1);
        assert_eq!(*s.mask().get(12, 12, 3), 1);
        assert_eq!(*s.mask().get(12, 12, 0), 0);
        // A stroke across the HU edge only paints the 100 HU side.
        let mut s = session();
        s.apply(&brush(
            0,
            &[[2.0, 1.0], [18.0, 1.0]],
            1.0,
            1,
            false,
            Some((50.0, 200.0)),
        ))
        .unwrap();
        assert!((2..10).all(|i| *s.mask().get(i, 1, 0) == 1));
        assert!((10..20).all(|i| *s.mask().get(i, 1, 0) == 0));
    }

    #[test]
    fn fill_2d_and_3d_within_hu() {
        let mut s = session();
        let n = s
            .apply(&EditOp::Fill {
                seed: [0, 0, 0],
                hu_min: 50.0,
                hu_max: 150.0,
                value: 1,
                axis: Some(Axis::Z),
                max_ml: None,
                max_mm: None,
            })
            .unwrap();
        assert_eq!(n, 10 * 16);
        let mut s = session();
        let n = s
            .apply(&EditOp::Fill {
                seed: [0, 0, 0],
                hu_min: 50.0,
                hu_max: 150.0,
                value: 1,
                axis: None,
                max_ml: None,
                max_mm: None,
            })
            .unwrap();
        assert_eq!(n, 10 * 16 * 10 - 48);
        // Seed outside the range: nothing.
        assert_eq!(
            s.apply(&EditOp::Fill {
                seed: [15, 0, 0],
                hu_min: 50.0,
                hu_max: 150.0,
                value: 1,
                axis: None,
                max_ml: None,
                max_mm: None
            })
            .unwrap(),
            0
        );
        assert!(s
            .apply(&EditOp::Fill {
                seed: [25, 0, 0],
                hu_min: 0.0,
                hu_max: 1.0,
                value: 1,
                axis: None,
                max_ml: None,
                max_mm: None
            })
            .is_err());
    }

    fn fill(
        seed: [usize; 3],
        hu: (f64, f64),
        value: u8,
        max_ml: Option<f64>,
        max_mm: Option<f64>,
    ) -> EditOp {
        EditOp::Fill {
            seed,
            hu_min: hu.0,
            hu_max: hu.1,
            value,
            axis: None,
            max_ml,
            max_mm,
        }
    }

    #[test]
    fn fill_limits_refuse_a_flood_and_change_nothing() {
        // The 100 HU half of the grid minus the mask: 1552 voxels of 2 mm3, 3.1 ml.
        let mut s = session();
        let before = s.mask().clone();
        let e = s
            .apply(&fill([0, 0, 0], (50.0, 150.0), 1, Some(1.0), None))
            .unwrap_err();
        assert!(matches!(e, ReviewError::Refused(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("3.1 ml (1552 voxels)") && msg.contains("limit of 1 ml"),
            "{msg}"
        );
        // Farther than 5 mm from the seed: refused as well.
        let e = s
            .apply(&fill([0, 0, 0], (50.0, 150.0), 1, None, Some(5.0)))
            .unwrap_err();
        assert!(e.to_string().contains("beyond the limit of 5 mm"), "{e}");
        assert_eq!(s.mask().data(), before.data());
        assert_eq!((s.edits, s.revision, s.can_undo()), (0, 0, false));
        // The preview says the same without an error, and its size in full.
        let p = s
            .fill_preview([0, 0, 0], 50.0, 150.0, 1, None, Some(1.0), None)
            .unwrap();
        assert_eq!(p.voxels, 1552);
        assert!(p.refused.is_some() && p.offsets.is_empty() && p.runs().is_empty());
        // Within the limits (the default 300 ml, or a distance that covers it) it applies.
        let p = s
            .fill_preview([0, 0, 0], 50.0, 150.0, 1, None, None, Some(40.0))
            .unwrap();
        assert!(p.refused.is_none() && p.noop.is_none(), "{p:?}");
        assert_eq!(p.offsets.len(), 1552);
        assert_eq!(p.runs().iter().map(|r| r[1] as usize).sum::<usize>(), 1552);
        assert!((p.max_distance_mm - (81.0f64 + 225.0 + 324.0).sqrt()).abs() < 1e-9);
        assert_eq!(
            s.apply(&fill([0, 0, 0], (50.0, 150.0), 1, None, None))
                .unwrap(),
            1552
        );
    }

    #[test]
    fn a_huge_flood_is_counted_only_to_four_times_the_limit() {
        // 200^3 voxels of 1 mm3 (8 l), all in range: a limit of 10 ml stops
        // counting at 100,000 voxels (the least it counts), 0.1 l.
        let g = Geometry::identity([200, 200, 200], [1.0, 1.0, 1.0]).unwrap();
        let ct = Volume::filled(g.clone(), 40i16);
        let m = Volume::filled(g, 0u8);
        let s = EditSession::new(ct, m.clone(), m).unwrap();
        let p = s
            .fill_preview([100, 100, 100], 0.0, 100.0, 1, None, Some(10.0), None)
            .unwrap();
        assert!(p.stopped_early);
        assert_eq!(p.voxels, 100_000);
        let why = p.refused.unwrap();
        assert!(
            why.contains("more than 100 ml (over 100000 voxels; counting stopped there)"),
            "{why}"
        );
        // Non-whole HU bounds: 40 is inside [39.5, 40.5], not inside [40.2, 40.8].
        let p = s
            .fill_preview([0, 0, 0], 39.5, 40.5, 1, Some(Axis::Z), None, None)
            .unwrap();
        assert_eq!((p.voxels, p.noop), (40_000, None));
        let p = s
            .fill_preview([0, 0, 0], 40.2, 40.8, 1, Some(Axis::Z), None, None)
            .unwrap();
        assert!(p.noop.unwrap().contains("outside the range"));
    }

    #[test]
    fn fill_that_changes_nothing_says_why() {
        let s = session();
        let why = |op: EditOp| s.noop_reason(&op).unwrap_or_default();
        assert!(why(fill([5, 5, 4], (50.0, 150.0), 1, None, None)).contains("already in the mask"));
        assert!(why(fill([0, 0, 0], (50.0, 150.0), 0, None, None)).contains("not in the mask"));
        let w = why(fill([15, 0, 0], (50.0, 150.0), 1, None, None));
        assert!(
            w.contains("HU (-100) is outside the range 50 to 150"),
            "{w}"
        );
        assert_eq!(
            s.noop_reason(&fill([0, 0, 0], (50.0, 150.0), 1, None, None)),
            None
        );
        // Reversed or non-finite ranges and limits are bad requests, not no-ops.
        assert!(s
            .fill_preview([0, 0, 0], 150.0, 50.0, 1, None, None, None)
            .is_err());
        assert!(s
            .fill_preview([0, 0, 0], 0.0, f64::NAN, 1, None, None, None)
            .is_err());
        assert!(s
            .fill_preview([0, 0, 0], 0.0, 1.0, 1, None, Some(0.0), None)
            .is_err());
        assert!(s
            .fill_preview([0, 0, 0], 0.0, 1.0, 1, None, None, Some(-1.0))
            .is_err());
    }

    #[test]
    fn undo_and_redo_only_take_back_their_authors_steps() {
        let mut s = session();
        s.apply_by(&brush(0, &[[1.0, 1.0]], 1.0, 1, false, None), "tab-a")
            .unwrap();
        s.apply_by(&brush(9, &[[1.0, 1.0]], 1.0, 1, false, None), "tab-b")
            .unwrap();
        let rev = s.revision;
        let e = s.undo_by("tab-a").unwrap_err();
        assert!(
            matches!(e, ReviewError::Conflict(_)) && e.to_string().contains("another tab"),
            "{e}"
        );
        assert_eq!(s.revision, rev);
        assert_eq!(*s.mask().get(1, 1, 9), 1, "tab a undid tab b's paint");
        assert_eq!(s.undo_by("tab-b").unwrap(), Some("paint"));
        assert!(s.redo_by("tab-a").is_err());
        assert_eq!(s.undo_by("tab-a").unwrap(), Some("paint"));
        assert_eq!(*s.mask().get(1, 1, 0), 0);
        assert_eq!(s.undo_by("tab-a").unwrap(), None);
    }

    #[test]
    fn interpolation_between_slices() {
        let g = Geometry::identity([30, 30, 5], [1.0, 1.0, 1.0]).unwrap();
        let ct = Volume::filled(g.clone(), 0i16);
        // Slice 0: square half-width 4; slice 4: half-width 8; 1..3 empty.
        let m = Volume::from_fn(g, |[i, j, k]| {
            let h = match k {
                0 => 4,
                4 => 8,
                _ => return 0,
            };
            u8::from((15 - h..15 + h).contains(&i) && (15 - h..15 + h).contains(&j))
        });
        let mut s = EditSession::new(ct, m.clone(), m).unwrap();
        s.apply(&EditOp::Interpolate {
            axis: Axis::Z,
            from: 4,
            to: 0,
        })
        .unwrap();
        let width = |k: usize| (0..30).filter(|&i| *s.mask().get(i, 15, k) == 1).count();
        assert_eq!(width(0), 8);
        assert_eq!(width(4), 16);
        assert!(width(1) >= 9 && width(1) <= 11, "{}", width(1));
        assert!(width(2) >= 11 && width(2) <= 13, "{}", width(2));
        assert!(width(3) >= 13 && width(3) <= 15, "{}", width(3));
    }

    #[test]
    fn islands_smooth_runs() {
        let mut s = session();
        s.apply(&brush(0, &[[15.0, 2.0]], 1.0, 1, false, None))
            .unwrap();
        assert_eq!(s.stats().voxels, 53);
        s.apply(&EditOp::RemoveIslands).unwrap();
        assert_eq!(s.stats().voxels, 48);
        assert_eq!(s.stats().dsc_vs_start, 1.0);
        // Runs: set 3 voxels of row (0, 0, 0).. and clear one that was set.
        let o = s.geometry().offset(4, 4, 3) as u64;
        s.apply(&EditOp::Runs {
            runs: vec![[0, 3, 1], [o, 1, 0]],
        })
        .unwrap();
        assert_eq!(s.stats().voxels, 50);
        assert!(s
            .apply(&EditOp::Runs {
                runs: vec![[3199, 2, 1]]
            })
            .is_err());
        assert!(s
            .apply(&EditOp::Runs {
                runs: vec![[u64::MAX, 2, 1]]
            })
            .is_err());
        // Smoothing removes a thin two-voxel spike's tip and fills a one-voxel hole.
        let mut s = session();
        s.apply(&EditOp::Runs {
            runs: vec![
                [s.geometry().offset(8, 5, 4) as u64, 2, 1],
                [s.geometry().offset(5, 5, 4) as u64, 1, 0],
            ],
        })
        .unwrap();
        s.apply(&EditOp::Smooth { radius_mm: 1.0 }).unwrap();
        assert_eq!(*s.mask().get(9, 5, 4), 0);
        assert_eq!(*s.mask().get(5, 5, 4), 1);
    }

    fn seed(slice: usize, pts: &[[f64; 2]], r: f64, value: u8) -> SeedStroke {
        SeedStroke { axis: Axis::Z, slice, points: pts.to_vec(), radius_mm: r, value }
    }

    /// 40x24x8 grid of 1 mm: a 60 HU "liver" (i < 20) touching a 140 HU
    /// "organ" (20 <= i < 32) in j 4..20, in -100 HU fat. The mask misses
    /// the liver's part i < 10 and leaks into the organ up to i = 26, and
    /// holds a far island (fat at i >= 36) no seed reaches.
    fn grow_case() -> (EditSession, Mask) {
        let g = Geometry::identity([40, 24, 8], [1.0, 1.0, 1.0]).unwrap();
        let ct = Volume::from_fn(g.clone(), |[i, j, k]| {
            let body = (4..20).contains(&j) && (1..7).contains(&k);
            match (body, i) {
                (true, 2..=19) => 60,
                (true, 20..=31) => 140,
                _ => -100,
            }
        });
        let truth = Volume::from_fn(g.clone(), |[i, j, k]| {
            u8::from((2..20).contains(&i) && (4..20).contains(&j) && (1..7).contains(&k))
        });
        let mask = Volume::from_fn(g, |[i, j, k]| {
            let body = (4..20).contains(&j) && (1..7).contains(&k);
            u8::from((body && (10..27).contains(&i)) || (i >= 36 && j < 2 && k == 0))
        });
        (EditSession::new(ct, mask.clone(), mask).unwrap(), truth)
    }

    #[test]
    fn grow_from_seeds_adds_the_missed_part_and_removes_the_leak() {
        let (mut s, truth) = grow_case();
        let op = EditOp::Grow {
            seeds: vec![
                seed(3, &[[5.0, 8.0], [15.0, 8.0]], 1.0, 1),
                seed(4, &[[28.0, 12.0]], 1.0, 0),
            ],
            reach_mm: Some(30.0),
            sigma_hu: None,
        };
        // The preview says what apply will do, and changes nothing.
        let p = s.change_preview(&op).unwrap();
        assert_eq!(s.revision, 0);
        assert!(p.added > 0 && p.removed > 0 && p.noop.is_none(), "{p:?}");
        let n = s.apply(&op).unwrap();
        assert_eq!(n as u64, p.added + p.removed);
        let m = s.mask();
        let liver_ok = (0..m.len()).filter(|&o| truth.data()[o] == 1).all(|o| m.data()[o] == 1);
        assert!(liver_ok, "liver voxels missing after the grow");
        assert!((20..27).all(|i| *m.get(i, 10, 3) == 0), "leak kept");
        // The island is farther than the reach from every seed: kept as it was.
        assert_eq!(*m.get(37, 0, 0), 1);
        assert_eq!(s.undo(), Some("grow"));
        assert_eq!(s.mask().data(), s.start.data());
        // Errors, not panics.
        assert!(s.apply(&EditOp::Grow { seeds: vec![], reach_mm: None, sigma_hu: None }).is_err());
        assert!(s
            .apply(&EditOp::Grow { seeds: vec![seed(99, &[[1.0, 1.0]], 1.0, 1)], reach_mm: None, sigma_hu: None })
            .is_err());
        assert!(s
            .apply(&EditOp::Grow { seeds: vec![seed(3, &[[5.0, 8.0]], 1.0, 1)], reach_mm: Some(-3.0), sigma_hu: None })
            .is_err());
        for (reach, r, sigma) in [(Some(f64::NAN), 1.0, None), (Some(200.0), 1.0, None), (None, 50.0, None), (None, 1.0, Some(0.0))] {
            let e = s
                .apply(&EditOp::Grow { seeds: vec![seed(3, &[[5.0, 8.0]], r, 1)], reach_mm: reach, sigma_hu: sigma })
                .unwrap_err();
            assert!(matches!(e, ReviewError::BadRequest(_)), "{e}");
        }
        assert_eq!(s.edits, 1);
    }

    #[test]
    fn probability_brush_follows_the_threshold() {
        let (mut s, _) = grow_case();
        let brush = |t: f64| EditOp::ProbBrush {
            axis: Axis::Z,
            slice: 3,
            points: vec![[10.0, 12.0]],
            radius_mm: 30.0,
            sphere: false,
            threshold: t,
        };
        let e = s.apply(&brush(0.5)).unwrap_err();
        assert!(e.to_string().contains("no probability map"), "{e}");
        // p falls from 1 at i = 0 to 0 at i = 39, the same on every row.
        let p = Volume::from_fn(s.geometry().clone(), |[i, _, _]| 1.0 - i as f32 / 39.0);
        s.set_probability(&p).unwrap();
        s.apply(&brush(0.5)).unwrap();
        // On slice 3 the mask is now exactly p >= 0.5, i.e. i <= 19.
        for i in 0..40 {
            assert_eq!(*s.mask().get(i, 12, 3), u8::from(i <= 19), "i = {i}");
        }
        assert_eq!(*s.mask().get(0, 12, 2), 0, "2-D brush reached another slice");
        // A low threshold pulls the border out.
        s.apply(&brush(0.1)).unwrap();
        assert_eq!(*s.mask().get(34, 12, 3), 1);
        assert_eq!(*s.mask().get(36, 12, 3), 0);
        for t in [0.0, 1.0, f64::NAN] {
            assert!(s.apply(&brush(t)).is_err());
        }
        let wrong = Volume::filled(Geometry::identity([4, 4, 4], [1.0; 3]).unwrap(), 0.5f32);
        assert!(s.set_probability(&wrong).is_err());
    }

    #[test]
    fn fill_holes_in_a_slice_and_in_3d() {
        let g = Geometry::identity([12, 12, 5], [1.0; 3]).unwrap();
        let ct = Volume::filled(g.clone(), 0i16);
        // A hollow box: shell 2..10 in each direction of the plane, k 1..4,
        // closed at k = 1 and k = 3; slice 2 has a ring with a hole.
        let m = Volume::from_fn(g, |[i, j, k]| {
            let inb = (2..10).contains(&i) && (2..10).contains(&j) && (1..4).contains(&k);
            let inner = (4..8).contains(&i) && (4..8).contains(&j);
            u8::from(inb && !(inner && k == 2))
        });
        let mut s = EditSession::new(ct, m.clone(), m).unwrap();
        let n = s.apply(&EditOp::FillHoles { axis: Some(Axis::Z), slice: Some(2) }).unwrap();
        assert_eq!(n, 16);
        s.undo();
        // The box is closed above and below, so a coronal slice through the
        // hole shows it enclosed too (4 voxels of one row).
        assert_eq!(s.apply(&EditOp::FillHoles { axis: Some(Axis::Y), slice: Some(5) }).unwrap(), 4);
        s.undo();
        assert_eq!(s.apply(&EditOp::FillHoles { axis: None, slice: None }).unwrap(), 16);
        assert!(s.apply(&EditOp::FillHoles { axis: Some(Axis::Z), slice: None }).is_err());
        assert!(s.apply(&EditOp::FillHoles { axis: Some(Axis::Z), slice: Some(5) }).is_err());
        let p = s.change_preview(&EditOp::FillHoles { axis: None, slice: None }).unwrap();
        assert!(p.noop.unwrap().contains("no holes"));
        assert_eq!(s.apply(&EditOp::FillHoles { axis: None, slice: None }).unwrap(), 0);
        assert!(s.noop_reason(&EditOp::FillHoles { axis: None, slice: None }).unwrap().contains("no holes"));
    }

    #[test]
    fn fill_between_refuses_an_empty_key_slice_and_stays_in_the_shapes_box() {
        let g = Geometry::identity([30, 30, 5], [1.0; 3]).unwrap();
        let ct = Volume::filled(g.clone(), 0i16);
        // Squares at k = 0 and k = 4 around (10, 10); a separate blob at
        // (25, 25) on the slices between, which interpolation must not erase.
        let m = Volume::from_fn(g, |[i, j, k]| {
            let sq = (k == 0 || k == 4) && (7..13).contains(&i) && (7..13).contains(&j);
            let blob = (1..4).contains(&k) && (24..27).contains(&i) && (24..27).contains(&j);
            u8::from(sq || blob)
        });
        let mut s = EditSession::new(ct, m.clone(), m).unwrap();
        s.apply(&EditOp::Interpolate { axis: Axis::Z, from: 0, to: 4 }).unwrap();
        assert_eq!(*s.mask().get(10, 10, 2), 1);
        assert_eq!(*s.mask().get(25, 25, 2), 1, "the blob outside the shapes' box was erased");
        // Sagittal slice i = 0 is empty: refused, with the slice named.
        let e = s.apply(&EditOp::Interpolate { axis: Axis::X, from: 0, to: 10 }).unwrap_err();
        assert!(matches!(e, ReviewError::Refused(_)), "{e}");
        assert!(e.to_string().contains("key slice 1 of the sagittal view is empty"), "{e}");
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let mut s = session();
        assert!(s
            .apply(&brush(10, &[[1.0, 1.0]], 1.0, 1, false, None))
            .is_err());
        assert!(s
            .apply(&brush(0, &[[1.0, 1.0]], 0.0, 1, false, None))
            .is_err());
        assert!(s
            .apply(&brush(0, &[[f64::NAN, 1.0]], 1.0, 1, false, None))
            .is_err());
        assert!(s.apply(&brush(0, &[], 1.0, 1, false, None)).is_err());
        // Far outside the grid: nothing painted, no panic.
        assert_eq!(
            s.apply(&brush(0, &[[-1e6, 1e6]], 5.0, 1, false, None))
                .unwrap(),
            0
        );
        assert!(s
            .apply(&brush(0, &[[-1e6, 1e6], [1e6, -1e6]], 5.0, 1, false, None))
            .is_err());
        assert!(s.apply(&EditOp::Smooth { radius_mm: -1.0 }).is_err());
        assert_eq!(s.edits, 0);
    }
}
