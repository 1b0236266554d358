//! Tiled whole-volume inference: the prepared grid is covered by unit tiles
//! of [`tile_unit`] voxels (half `infer_patch`); tiles whose output region
//! holds no body voxel are not computed (their probability is 0). The tiles
//! to compute are run in boxes of neighbouring tiles (no box needing more
//! input than one `infer_patch^3` tile), each box's pathway inputs cut from
//! one summed-volume table, so the context margin is computed once per box.
//!
//! By default only the tiles that can hold the liver are computed
//! ([`TileStrategy::Grow`], coarse-to-fine): a small probe patch at the
//! centre of every cell of 2x2x2 body tiles finds where the network sees
//! liver (the coarse pathways give each probe 30x its size of context), the
//! tiles its liver voxels fall in are computed, and the computed region
//! grows, wave by wave, across every tile face that the thresholded
//! probability touches. Post-processing keeps only the
//! largest 6-connected component, and a 6-connected path cannot leave a tile
//! except through a face, so every component that touches a probed liver
//! voxel is computed exactly as a full pass would; what is skipped is
//! background that no liver region reaches. If the probes find no liver, or
//! the grown region is smaller than a plausible liver, the remaining tiles
//! are computed too, so a miss costs time, not the liver.
//!
//! Another grid of the same CT (scale averaging: the factor-1 grid's liver
//! for the 0.9 and 1.1 grids) can replace the probes ([`predict_seeded`]):
//! growth starts from every tile that liver touches, on finer units
//! ([`seeded_tile_unit`]), so the first wave is nearly the whole region.
//!
//! A box may also hold tiles outside its wave where one larger box costs
//! less than the smaller ones without them (each box pays its context
//! margin; [`crate::NetworkConfig::box_multiply_adds`] ranks them); those
//! tiles' outputs are thrown away, so the map is the grown region's whatever
//! the boxes.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_preprocess::patches::PatchSource;
use liverseg_preprocess::Prepared;
use liverseg_volume::Volume;

use crate::checkpoint::{self, ModelInfo};
use crate::network::DeepMedic;
use crate::{Error, Result};

/// A loaded model ready to segment a CT: one network, or an ensemble of
/// networks of one config whose probabilities are averaged.
pub struct Segmenter {
    nets: Vec<DeepMedic>,
    info: ModelInfo,
    device: Device,
    strategy: Option<TileStrategy>,
    flips: FlipAverage,
}

/// The model committed with liverseg (see the README: what it was trained on).
pub static BUILTIN_MODEL: &[u8] = include_bytes!("../../../models/liverseg-default.lsm");

impl Segmenter {
    pub fn new(net: DeepMedic, info: ModelInfo, device: Device) -> Self {
        Self { nets: vec![net.valid()], info, device, strategy: None, flips: FlipAverage::Off }
    }

    pub fn load(path: &std::path::Path, device: Device) -> Result<Self> {
        let (net, info) = checkpoint::load(path, &device)?;
        Ok(Self::new(net, info, device))
    }

    /// An ensemble of model files (one file: that model alone). The liver
    /// probability is the mean of the members' (one network pass each), so
    /// they must read the CT alike: the same grid, pre-processing, tile and
    /// receptive fields; their widths may differ. The ensemble's default threshold is the mean of the
    /// members' own; its id names every member, so a report says which
    /// models made a mask.
    pub fn load_ensemble(paths: &[std::path::PathBuf], device: Device) -> Result<Self> {
        let mut members = checkpoint::load_same_inputs(paths, &device, "an ensemble averages models that read the CT alike")?;
        if members.len() == 1 {
            let (net, info) = members.remove(0);
            return Ok(Self::new(net, info, device));
        }
        let ids: Vec<&str> = members.iter().map(|(_, i)| i.id.as_str()).collect();
        // The tiles are cut for the first member's config; every member reads
        // them alike (checked above). The name says which networks took part.
        let mut network = members[0].1.network.clone();
        let mut names: Vec<&str> = Vec::new();
        for (_, i) in &members {
            if !names.contains(&i.network.name.as_str()) {
                names.push(&i.network.name);
            }
        }
        network.name = names.join("+");
        let info = ModelInfo {
            id: format!("ensemble({})", ids.join("+")),
            network,
            threshold: members.iter().map(|(_, i)| i.threshold).sum::<f32>() / members.len() as f32,
            training: serde_json::json!({ "ensemble": ids }),
        };
        let nets = members.into_iter().map(|(n, _)| n.valid()).collect();
        Ok(Self { nets, info, device, strategy: None, flips: FlipAverage::Off })
    }

    /// The built-in default model.
    pub fn builtin(device: Device) -> Result<Self> {
        let (net, info) = checkpoint::from_bytes(BUILTIN_MODEL, "built-in model", &device)?;
        Ok(Self::new(net, info, device))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// How many networks are averaged (1 unless an ensemble).
    pub fn members(&self) -> usize {
        self.nets.len()
    }

    /// Liver probability on the prepared grid. `input` is the normalised image
    /// on that grid. `progress(done, total)` is called after each tile.
    /// Tiles: the strategy set, else grown at the model's own threshold.
    pub fn probability(&self, prepared: &Prepared, input: &Volume<f32>, progress: &mut dyn FnMut(usize, usize)) -> Result<(Volume<f32>, TileStats)> {
        let strategy = self.strategy.unwrap_or(TileStrategy::Grow { threshold: self.info.threshold, min_ml: DEFAULT_MIN_GROWN_ML });
        self.probability_with(prepared, input, strategy, progress)
    }

    /// Liver probability computing the tiles `strategy` picks.
    pub fn probability_with(&self, prepared: &Prepared, input: &Volume<f32>, strategy: TileStrategy, progress: &mut dyn FnMut(usize, usize)) -> Result<(Volume<f32>, TileStats)> {
        predict(&self.nets, &self.info.network, &self.device, prepared, input, self.info.network.infer_patch, strategy, self.flips, progress)
    }

    /// [`probability_with`](Self::probability_with), growing from `seeds`
    /// (see [`predict_seeded`]) instead of probes.
    pub fn probability_seeded(&self, prepared: &Prepared, input: &Volume<f32>, strategy: TileStrategy, seeds: Option<&Volume<u8>>, progress: &mut dyn FnMut(usize, usize)) -> Result<(Volume<f32>, TileStats)> {
        predict_seeded(&self.nets, &self.info.network, &self.device, prepared, input, self.info.network.infer_patch, strategy, self.flips, seeds, progress)
    }

    /// Average the probability over mirrored views (test-time augmentation).
    pub fn set_flip_average(&mut self, flips: FlipAverage) {
        self.flips = flips;
    }

    pub fn flip_average(&self) -> FlipAverage {
        self.flips
    }

    /// Which tiles to compute (default: grow from probes at the threshold
    /// the result is cut at).
    pub fn set_strategy(&mut self, strategy: TileStrategy) {
        self.strategy = Some(strategy);
    }

    /// The strategy set with [`set_strategy`](Self::set_strategy), if any.
    pub fn strategy(&self) -> Option<TileStrategy> {
        self.strategy
    }
}

/// Below this many ml of grown liver the coarse-to-fine pass computes the rest
/// of the body too: far under any adult liver (about 1000-2500 ml), so only a
/// missed liver triggers it.
pub const DEFAULT_MIN_GROWN_ML: f64 = 300.0;

/// Which tiles [`predict`] computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TileStrategy {
    /// Every tile with a body voxel.
    All,
    /// Coarse-to-fine (see the module docs): probes, then growth across tile
    /// faces where probability >= `threshold` (use the lowest threshold the
    /// result will be cut at), then everything if fewer than `min_ml`
    /// millilitres reached it.
    Grow { threshold: f32, min_ml: f64 },
}

/// Test-time flip averaging: the probability is the mean over the views the
/// network sees mirrored along voxel axes x (left-right) and y
/// (anterior-posterior), the flips training augments with; each view costs
/// one more network pass.
///
/// Mirroring each tile's pathway inputs about the tile's centre is exactly
/// mirroring the whole volume: every pathway's input is centred on the output
/// patch (its margin `(input * factor - patch) / 2` is whole, since the
/// receptive fields are odd), and the pooled cells of the coarse pathways
/// tile that span symmetrically. So tiling and growth are unchanged: they
/// see the averaged map (the probes, which only pick the tiles to start
/// from, run unmirrored).
///
/// The default is [`FlipAverage::XY`], what `segment` runs unless told
/// otherwise: on the five leave-one-out folds of the wide network it raised
/// the median DSC from 0.911 to 0.926 and lowered no fold by more than
/// 0.0004, by a rule written before the result (README, *Flip averaging*).
/// [`Segmenter::new`] and training's validation run one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlipAverage {
    /// One pass, no mirroring.
    Off,
    /// Two views: as is, and mirrored left-right.
    X,
    /// Four views: as is, mirrored along x, along y, along both.
    #[default]
    XY,
}

impl FlipAverage {
    /// The views as (mirror x, mirror y).
    pub fn views(self) -> &'static [(bool, bool)] {
        match self {
            FlipAverage::Off => &[(false, false)],
            FlipAverage::X => &[(false, false), (true, false)],
            FlipAverage::XY => &[(false, false), (true, false), (false, true), (true, true)],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FlipAverage::Off => "off",
            FlipAverage::X => "x",
            FlipAverage::XY => "xy",
        }
    }
}

impl std::str::FromStr for FlipAverage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" | "none" => Ok(FlipAverage::Off),
            "x" => Ok(FlipAverage::X),
            "xy" => Ok(FlipAverage::XY),
            other => Err(Error::Config(format!("flip averaging {other:?}: expected off, x or xy"))),
        }
    }
}

/// Mirror a `[batch, channel, z, y, x]` tensor along x and/or y.
fn mirrored(t: Tensor<5>, (x, y): (bool, bool)) -> Tensor<5> {
    match (x, y) {
        (false, false) => t,
        (true, false) => t.flip([4]),
        (false, true) => t.flip([3]),
        (true, true) => t.flip([3, 4]),
    }
}

/// What [`predict`] computed, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileStats {
    /// Unit tiles holding a body voxel.
    pub body_tiles: usize,
    /// Unit tiles computed.
    pub computed_tiles: usize,
    /// Network runs that computed them (each a box of whole unit tiles).
    pub boxes: usize,
    pub probes: usize,
    pub fell_back_to_all: bool,
}

/// The edge of the unit tiles that growth decides on, for boxes of at most
/// about `patch`^3: half the box edge (rounded down to a multiple of the
/// factors' lcm `multiple`), so the computed region follows the liver twice
/// as closely as whole `patch` tiles would, while boxes merged from
/// neighbouring units keep the context margin about as cheap as one
/// `patch` tile does. Measured on a 512x512x129 CT with the wide network
/// (2026-12-07): units of 30 computed 50 of 85 body units in 25 boxes
/// against 11 of 14 tiles of 60, 11.0 s against 16.4 s.
pub fn tile_unit(patch: usize, multiple: usize) -> usize {
    multiple * (patch / multiple / 2).max(1)
}

/// [`tile_unit`] when growth starts from seeds ([`predict_seeded`]): a
/// quarter of the patch (in whole multiples). The seeds already outline the
/// liver, so the first wave is nearly all of it; the finer units follow its
/// surface more closely and the boxes merge them back. Measured on a
/// 512x512x129 CT, the two scaled grids of `--scale-average 0.9,1,1.1`
/// seeded from the factor-1 grid (wide network, 2026-12-07): units of 15
/// took 0.51 T multiply-adds in boxes (the three grids, one view), units of
/// 30 0.63 T, the same mask.
pub fn seeded_tile_unit(patch: usize, multiple: usize) -> usize {
    multiple * (patch / multiple / 4).max(1)
}

/// The unit tile origins covering `dims` with tiles of `s` whose output
/// region holds a body voxel.
fn tiles(body: &[u8], dims: [usize; 3], s: usize) -> Vec<[usize; 3]> {
    let n = dims.map(|d| d.div_ceil(s));
    let mut out = Vec::new();
    for tz in 0..n[2] {
        for ty in 0..n[1] {
            for tx in 0..n[0] {
                let o = [tx * s, ty * s, tz * s];
                let e: [usize; 3] = std::array::from_fn(|a| (o[a] + s).min(dims[a]));
                let has_body = (o[2]..e[2])
                    .any(|z| (o[1]..e[1]).any(|y| body[(z * dims[1] + y) * dims[0] + o[0]..(z * dims[1] + y) * dims[0] + e[0]].iter().any(|&b| b != 0)));
                if has_body {
                    out.push(o);
                }
            }
        }
    }
    out
}

/// Copy the unit tile at `tile` (clipped to `dims`) from the output `out` of
/// the box of `size` at `origin`, which holds it.
fn paste_tile(probability: &mut [f32], dims: [usize; 3], origin: [usize; 3], size: [usize; 3], out: &[f32], tile: [usize; 3], unit: usize) {
    let end: [usize; 3] = std::array::from_fn(|a| (tile[a] + unit).min(dims[a]));
    for z in tile[2]..end[2] {
        for y in tile[1]..end[1] {
            let row = &out[((z - origin[2]) * size[1] + (y - origin[1])) * size[0]..][..size[0]];
            let base = (z * dims[1] + y) * dims[0];
            probability[base + tile[0]..base + end[0]].copy_from_slice(&row[tile[0] - origin[0]..end[0] - origin[0]]);
        }
    }
}

/// Which faces of the tile at `origin` (clipped to `dims`) carry a voxel with
/// probability >= `threshold`: [-x, +x, -y, +y, -z, +z].
fn hot_faces(probability: &[f32], dims: [usize; 3], origin: [usize; 3], patch: usize, threshold: f32) -> [bool; 6] {
    let end: [usize; 3] = std::array::from_fn(|a| (origin[a] + patch).min(dims[a]));
    let at = |x: usize, y: usize, z: usize| probability[(z * dims[1] + y) * dims[0] + x] >= threshold;
    let mut faces = [false; 6];
    for z in origin[2]..end[2] {
        for y in origin[1]..end[1] {
            for x in origin[0]..end[0] {
                let on = [x == origin[0], x + 1 == end[0], y == origin[1], y + 1 == end[1], z == origin[2], z + 1 == end[2]];
                if on.iter().any(|&b| b) && at(x, y, z) {
                    for (f, o) in faces.iter_mut().zip(on) {
                        *f |= o;
                    }
                }
            }
        }
    }
    faces
}

/// Run the network, or the mean of several of one config, over a whole
/// prepared volume (see [`Segmenter::probability`]); also says how many tiles
/// it computed. `patch` bounds the boxes: none needs more input voxels than
/// a `patch`^3 tile (so memory stays that of one such tile); growth decides
/// on unit tiles of [`tile_unit`]`(patch, ..)`.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    nets: &[DeepMedic],
    config: &crate::NetworkConfig,
    device: &Device,
    prepared: &Prepared,
    input: &Volume<f32>,
    patch: usize,
    strategy: TileStrategy,
    flips: FlipAverage,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Volume<f32>, TileStats)> {
    predict_seeded(nets, config, device, prepared, input, patch, strategy, flips, None, progress)
}

/// [`predict`], growing ([`TileStrategy::Grow`]) from the unit tiles that
/// hold a voxel of `seeds` (a mask on the prepared grid: where another view
/// of the same CT saw liver) instead of from probes. Growth, and the
/// fall-back to every tile, are as from probes; with no seed voxel in the
/// body, the probes run.
#[allow(clippy::too_many_arguments)]
pub fn predict_seeded(
    nets: &[DeepMedic],
    config: &crate::NetworkConfig,
    device: &Device,
    prepared: &Prepared,
    input: &Volume<f32>,
    patch: usize,
    strategy: TileStrategy,
    flips: FlipAverage,
    seeds: Option<&Volume<u8>>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Volume<f32>, TileStats)> {
    if !input.geometry().same_grid(prepared.hu.geometry()) {
        return Err(Error::Config("the network input is not on the prepared grid".into()));
    }
    if seeds.is_some_and(|m| !m.geometry().same_grid(prepared.hu.geometry())) {
        return Err(Error::Config("the seed mask is not on the prepared grid".into()));
    }
    let budget: usize = config.pathway_inputs(patch)?.iter().map(|p| p.input.pow(3)).sum();
    let multiple = config.patch_multiple();
    // Boxes within the memory budget (input voxels), ranked by their work.
    let cost = |size: [usize; 3]| -> Option<f64> {
        let voxels: usize = config.box_inputs(size).ok()?.iter().map(|p| p.input.iter().product::<usize>()).sum();
        if voxels > budget {
            return None;
        }
        config.box_multiply_adds(size).ok()
    };
    let source = PatchSource::new(input, config.preprocess.normalise(-1024.0));
    let mut run = |origin: [i64; 3], size: [usize; 3], probe: bool| -> Result<Vec<f32>> {
        let inputs = config.box_inputs(size)?;
        // Probes only choose where to start computing; the mean map of every
        // view decides what is grown and kept. So they run unmirrored: with
        // `xy`, the mirrored probes were 7 % of the predict stage (28.0 s to
        // 26.1 s on a 512x512x129 CT) and changed no mask (the five wide
        // folds' held-out CTs, 2026-12-05).
        let views = if probe { FlipAverage::Off.views() } else { flips.views() };
        let tensors: Vec<Tensor<5>> = inputs
            .iter()
            .map(|&p| {
                let mut buf = vec![0.0f32; p.input.iter().product()];
                source.extract_box(origin, size, p, &mut buf);
                Tensor::from_data(TensorData::new(buf, [1, 1, p.input[2], p.input[1], p.input[0]]), device)
            })
            .collect();
        // One view at a time, not the views in one batch: a batch of four
        // bought no speed (about 4x one view's time either way) and held four
        // times the activations (`xy` peaked at 1.29 GB on a 512x512x129 CT;
        // one view at a time, 471 MB).
        let mut sum: Option<Tensor<5>> = None;
        for &view in views {
            let seen: Vec<Tensor<5>> = tensors.iter().map(|t| mirrored(t.clone(), view)).collect();
            for net in nets {
                // Un-mirrored (a mirror is its own inverse) and averaged
                // before any threshold, so tiling and growth see the mean map
                // of every view and network.
                let p = mirrored(sigmoid(net.forward(seen.clone())), view);
                sum = Some(match sum {
                    None => p,
                    Some(acc) => acc + p,
                });
            }
        }
        let out = sum.ok_or_else(|| Error::Config("no network to run".into()))?;
        // One network, one view: no division, so its output stays bit for bit what it was.
        let passes = views.len() * nets.len();
        let out = if passes > 1 { out / passes as f32 } else { out };
        out.into_data().try_to_vec::<f32>().map_err(|e| Error::Model(format!("{e:?}")))
    };
    let voxel_ml = prepared.hu.geometry().voxel_volume_mm3() / 1000.0;
    // From seeds, the first wave is nearly the whole liver and one shape:
    // finer units follow it more closely, and the boxes merge them anyway.
    // Seeds with no body voxel seed nothing: the probes run, on the usual
    // units.
    let body = prepared.body.data();
    let seeds = seeds.filter(|m| matches!(strategy, TileStrategy::Grow { .. }) && m.data().iter().zip(body).any(|(&s, &b)| s != 0 && b != 0));
    let unit = if seeds.is_some() { seeded_tile_unit(patch, multiple) } else { tile_unit(patch, multiple) };
    let plan = TilePlan { dims: input.dims(), unit, probe: multiple, multiple, voxel_ml };
    let (probability, stats) = plan.run(body, strategy, seeds.map(|m| m.data()), &cost, &mut run, progress)?;
    Ok((Volume::new(input.geometry().clone(), probability)?, stats))
}

/// A box [`TilePlan::boxes`] chose: its first unit tile, its count of units
/// along x, y, z, and the wave's tiles it computes (the rest are thrown away).
type PlannedBox = ([usize; 3], [usize; 3], Vec<[usize; 3]>);

/// The tiling of one volume, apart from the network (so the growth logic can
/// be tested with an oracle in its place).
struct TilePlan {
    dims: [usize; 3],
    /// Edge of the unit tiles growth decides on.
    unit: usize,
    /// Edge of the probe patches.
    probe: usize,
    /// Every box edge is a multiple of this (the pathway factors' lcm).
    multiple: usize,
    voxel_ml: f64,
}

impl TilePlan {
    /// The box of `count` unit tiles from unit tile index `first`: its origin
    /// and size, the last units cut to the volume (rounded up to a multiple
    /// of `multiple`), since outputs beyond the volume are thrown away.
    fn box_at(&self, first: [usize; 3], count: [usize; 3]) -> ([usize; 3], [usize; 3]) {
        let origin = first.map(|t| t * self.unit);
        let size = std::array::from_fn(|a| (count[a] * self.unit).min((self.dims[a] - origin[a]).next_multiple_of(self.multiple)));
        (origin, size)
    }

    /// Boxes that cover the unit tiles `wave` (indices), greedily: for the
    /// first wave tile not yet covered (z, then y, then x order), of all
    /// boxes holding it that `cost` accepts, the one with the least cost per
    /// wave tile it covers first (then the one covering more). A box may
    /// hold tiles outside the wave when that is cheaper than leaving them
    /// out (a smaller box pays more context margin per output voxel); only
    /// its own wave tiles (the third element, unit indices) are kept from
    /// its output, so what is computed into the map does not depend on the
    /// boxes. `cost(size)`: the box's work, `None` over the budget.
    fn boxes(&self, wave: &[[usize; 3]], cost: &dyn Fn([usize; 3]) -> Option<f64>) -> Vec<PlannedBox> {
        let n = self.dims.map(|d| d.div_ceil(self.unit));
        let at = |t: [usize; 3]| (t[2] * n[1] + t[1]) * n[0] + t[0];
        let mut free = vec![false; n.iter().product()];
        for &t in wave {
            free[at(t)] = true;
        }
        let mut order = wave.to_vec();
        order.sort_by_key(|t| (t[2], t[1], t[0]));
        let mut costs: std::collections::HashMap<[usize; 3], Option<f64>> = std::collections::HashMap::new();
        let mut cost_of = |size: [usize; 3]| *costs.entry(size).or_insert_with(|| cost(size));
        // Free wave tiles in [0, i) x [0, j) x [0, k), so a box's count is
        // eight lookups; rebuilt after each box (a few thousand tiles).
        let m = n.map(|e| e + 1);
        let mut prefix = vec![0u32; m.iter().product()];
        let pat = |i: usize, j: usize, k: usize| (k * m[1] + j) * m[0] + i;
        let mut out = Vec::new();
        for t in order {
            if !free[at(t)] {
                continue;
            }
            for k in 1..m[2] {
                for j in 1..m[1] {
                    for i in 1..m[0] {
                        prefix[pat(i, j, k)] = u32::from(free[at([i - 1, j - 1, k - 1])]) + prefix[pat(i - 1, j, k)] + prefix[pat(i, j - 1, k)] + prefix[pat(i, j, k - 1)]
                            - prefix[pat(i - 1, j - 1, k)]
                            - prefix[pat(i - 1, j, k - 1)]
                            - prefix[pat(i, j - 1, k - 1)]
                            + prefix[pat(i - 1, j - 1, k - 1)];
                    }
                }
            }
            let covered = |f: [usize; 3], c: [usize; 3]| -> u32 {
                let (a, b) = (f, [f[0] + c[0], f[1] + c[1], f[2] + c[2]]);
                (prefix[pat(b[0], b[1], b[2])] + prefix[pat(a[0], a[1], b[2])] + prefix[pat(a[0], b[1], a[2])] + prefix[pat(b[0], a[1], a[2])])
                    - (prefix[pat(a[0], b[1], b[2])] + prefix[pat(b[0], a[1], b[2])] + prefix[pat(b[0], b[1], a[2])] + prefix[pat(a[0], a[1], a[2])])
            };
            // (cost per covered tile, covered, first, count); a box of this
            // tile alone is always within the budget.
            let mut best: Option<(f64, u32, [usize; 3], [usize; 3])> = None;
            let u = self.unit;
            // Within the budget fails for every larger count once it fails
            // (sizes before clipping at the volume's end), so each loop stops
            // at the first failure.
            for cz in 1..=n[2] {
                if cost_of([u, u, cz * u]).is_none() {
                    break;
                }
                for cy in 1..=n[1] {
                    if cost_of([u, cy * u, cz * u]).is_none() {
                        break;
                    }
                    for cx in 1..=n[0] {
                        if cost_of([cx * u, cy * u, cz * u]).is_none() {
                            break;
                        }
                        let c = [cx, cy, cz];
                        let lo: [usize; 3] = std::array::from_fn(|a| (t[a] + 1).saturating_sub(c[a]));
                        let hi: [usize; 3] = std::array::from_fn(|a| t[a].min(n[a] - c[a]));
                        for fz in lo[2]..=hi[2] {
                            for fy in lo[1]..=hi[1] {
                                for fx in lo[0]..=hi[0] {
                                    let first = [fx, fy, fz];
                                    let Some(work) = cost_of(self.box_at(first, c).1) else { continue };
                                    let k = covered(first, c);
                                    let score = work / f64::from(k);
                                    if best.is_none_or(|b| score < b.0 || (score == b.0 && k > b.1)) {
                                        best = Some((score, k, first, c));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let (first, count) = best.map_or((t, [1; 3]), |b| (b.2, b.3));
            let mut tiles = Vec::new();
            for z in first[2]..first[2] + count[2] {
                for y in first[1]..first[1] + count[1] {
                    for x in first[0]..first[0] + count[0] {
                        if std::mem::take(&mut free[at([x, y, z])]) {
                            tiles.push([x, y, z]);
                        }
                    }
                }
            }
            out.push((first, count, tiles));
        }
        out
    }

    /// `run(origin, size, probe)` returns the probability of the output box
    /// of `size` at `origin` (x fastest); `probe` says it is a probe.
    /// `seeds` (nonzero: start there), when it marks a body tile, replaces
    /// the probes.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        body: &[u8],
        strategy: TileStrategy,
        seeds: Option<&[u8]>,
        cost: &dyn Fn([usize; 3]) -> Option<f64>,
        run: &mut dyn FnMut([i64; 3], [usize; 3], bool) -> Result<Vec<f32>>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<f32>, TileStats)> {
        let (dims, unit, probe) = (self.dims, self.unit, self.probe);
        let body_tiles = tiles(body, dims, unit);
        let n = dims.map(|d| d.div_ceil(unit));
        let mut index = vec![usize::MAX; n.iter().product()];
        for (i, o) in body_tiles.iter().enumerate() {
            index[((o[2] / unit) * n[1] + o[1] / unit) * n[0] + o[0] / unit] = i;
        }
        let index_of = |o: [usize; 3]| Some(index[((o[2] / unit) * n[1] + o[1] / unit) * n[0] + o[0] / unit]).filter(|&i| i != usize::MAX);
        let mut probability = vec![0.0f32; dims.iter().product()];
        let mut stats = TileStats { body_tiles: body_tiles.len(), ..Default::default() };
        let mut computed = vec![false; body_tiles.len()];
        let (threshold, min_ml) = match strategy {
            TileStrategy::All => (None, 0.0),
            TileStrategy::Grow { threshold, min_ml } => (Some(threshold), min_ml),
        };
        // Progress in tenths of a tile (a probe costs about that much); the
        // total is re-estimated as the region grows.
        let mut queue = Vec::new();
        if let (Some(_), Some(seeds)) = (threshold, seeds) {
            // The body tiles holding a seed voxel, in the body tiles' order.
            for i in tiles(seeds, dims, unit).into_iter().filter_map(index_of) {
                computed[i] = true;
                queue.push(i);
            }
        }
        if let (Some(threshold), true) = (threshold, queue.is_empty()) {
            // One probe per cell of 2x2x2 units (the tiles before boxes), at
            // its centre: it seeds the units its liver voxels fall in. A
            // probe per unit gave the same mask on a 512x512x129 CT at 8x
            // the probes (`--scale-average 0.9,1,1.1`: 36.7 s against 30.4).
            let cell = 2 * unit;
            let cells = tiles(body, dims, cell);
            for (c, origin) in cells.iter().enumerate() {
                let corner: [i64; 3] = std::array::from_fn(|a| {
                    let end = (origin[a] + cell).min(dims[a]);
                    ((origin[a] + end) / 2) as i64 - (probe / 2) as i64
                });
                let out = run(corner, [probe; 3], true)?;
                stats.probes += 1;
                for (v, &p) in out.iter().enumerate() {
                    if p < threshold {
                        continue;
                    }
                    let at = [v % probe, (v / probe) % probe, v / (probe * probe)];
                    let pos: [i64; 3] = std::array::from_fn(|a| corner[a] + at[a] as i64);
                    if (0..3).any(|a| pos[a] < 0 || pos[a] as usize >= dims[a]) {
                        continue;
                    }
                    let tile = pos.map(|q| q as usize / unit * unit);
                    if let Some(i) = index_of(tile) {
                        if !computed[i] {
                            computed[i] = true;
                            queue.push(i);
                        }
                    }
                }
                progress(c + 1, cells.len() * 11);
            }
        } else if threshold.is_none() {
            queue.extend(0..body_tiles.len());
            computed.iter_mut().for_each(|c| *c = true);
        }
        let mut fallback_checked = threshold.is_none();
        loop {
            // In waves: the tiles found so far are computed in as few boxes
            // as they allow, then the faces their liver touches give the next.
            while !queue.is_empty() {
                let wave: Vec<[usize; 3]> = queue.drain(..).map(|i| body_tiles[i].map(|o| o / unit)).collect();
                let boxes = self.boxes(&wave, cost);
                let mut left = wave.len();
                for (first, count, own) in boxes {
                    let (origin, size) = self.box_at(first, count);
                    let out = run(origin.map(|o| o as i64), size, false)?;
                    for t in &own {
                        paste_tile(&mut probability, dims, origin, size, &out, t.map(|i| i * unit), unit);
                    }
                    stats.boxes += 1;
                    stats.computed_tiles += own.len();
                    if let Some(threshold) = threshold {
                        for t in &own {
                            let tile = t.map(|i| i * unit);
                            let faces = hot_faces(&probability, dims, tile, unit, threshold);
                            for (f, &hot) in faces.iter().enumerate() {
                                let axis = f / 2;
                                if !hot || (f % 2 == 0 && tile[axis] == 0) {
                                    continue;
                                }
                                let mut next = tile;
                                next[axis] = if f % 2 == 0 { tile[axis] - unit } else { tile[axis] + unit };
                                if next[axis] >= dims[axis] {
                                    continue;
                                }
                                if let Some(j) = index_of(next) {
                                    if !computed[j] {
                                        computed[j] = true;
                                        queue.push(j);
                                    }
                                }
                            }
                        }
                    }
                    left -= own.len();
                    let pending = stats.computed_tiles + left + queue.len();
                    progress(stats.probes + stats.computed_tiles * 10, stats.probes + pending.max(1) * 10);
                }
            }
            if fallback_checked {
                break;
            }
            fallback_checked = true;
            let t = threshold.unwrap_or(0.5);
            let grown_ml = probability.iter().filter(|&&p| p >= t).count() as f64 * self.voxel_ml;
            if grown_ml < min_ml {
                stats.fell_back_to_all = true;
                for (i, c) in computed.iter_mut().enumerate() {
                    if !*c {
                        *c = true;
                        queue.push(i);
                    }
                }
            }
        }
        Ok((probability, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_skip_regions_without_body() {
        let dims = [10, 10, 10];
        let mut body = vec![0u8; 1000];
        body[(7 * 10 + 2) * 10 + 8] = 1; // voxel (8, 2, 7)
        let t = tiles(&body, dims, 5);
        assert_eq!(t, vec![[5, 0, 5]]);
        assert_eq!(tiles(&vec![1u8; 1000], dims, 4).len(), 27);
    }

    /// An oracle "network": probability 0.9 inside `truth`, 0.01 outside.
    fn oracle(dims: [usize; 3], truth: &[bool]) -> impl FnMut([i64; 3], [usize; 3], bool) -> Result<Vec<f32>> + '_ {
        move |origin, size, _probe| {
            let mut out = vec![0.0f32; size.iter().product()];
            for k in 0..size[2] {
                for j in 0..size[1] {
                    for i in 0..size[0] {
                        let p = [origin[0] + i as i64, origin[1] + j as i64, origin[2] + k as i64];
                        let inside = (0..3).all(|a| p[a] >= 0 && (p[a] as usize) < dims[a])
                            && truth[(p[2] as usize * dims[1] + p[1] as usize) * dims[0] + p[0] as usize];
                        out[(k * size[1] + j) * size[0] + i] = if inside { 0.9 } else { 0.01 };
                    }
                }
            }
            Ok(out)
        }
    }

    fn ball(dims: [usize; 3], centre: [f64; 3], radius: f64, truth: &mut [bool]) {
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let d2: f64 = [x, y, z].iter().zip(centre).map(|(&v, c)| (v as f64 - c).powi(2)).sum();
                    if d2 <= radius * radius {
                        truth[(z * dims[1] + y) * dims[0] + x] = true;
                    }
                }
            }
        }
    }

    /// Boxes of one unit tile of 10 at most.
    fn one_tile(size: [usize; 3]) -> Option<f64> {
        size.iter().all(|&e| e <= 10).then(|| margined(size))
    }

    /// A box's work with a context margin of 4 voxels: larger boxes cost
    /// less per output voxel, as the network's do.
    fn margined(size: [usize; 3]) -> f64 {
        size.iter().map(|&e| (e + 4) as f64).product()
    }

    /// 6 x 6 x 3 tiles of 10, all body: a "liver" ball across several
    /// tiles that no probe centre sees except one, and a small far blob no
    /// probe sees. Returns the plan, the truth, and its full pass.
    fn ball_and_far_blob() -> (TilePlan, Vec<bool>, Vec<f32>) {
        let dims = [60, 60, 30];
        let mut truth = vec![false; 60 * 60 * 30];
        ball(dims, [25.0, 25.0, 14.0], 9.0, &mut truth);
        ball(dims, [55.0, 55.0, 28.0], 1.5, &mut truth);
        let plan = TilePlan { dims, unit: 10, probe: 5, multiple: 5, voxel_ml: 0.001 };
        let (all, all_stats) = plan.run(&vec![1u8; truth.len()], TileStrategy::All, None, &one_tile, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert_eq!(all_stats.computed_tiles, 108);
        assert_eq!(all[BLOB], 0.9);
        (plan, truth, all)
    }

    /// The far blob's centre in [`ball_and_far_blob`].
    const BLOB: usize = (28 * 60 + 55) * 60 + 55;

    /// The ball's voxels of `grown` are the full pass's; the far blob
    /// (never probed or seeded, never reached) is not computed.
    fn assert_ball_exact_and_blob_skipped(grown: &[f32], all: &[f32]) {
        let mut liver = vec![false; all.len()];
        ball([60, 60, 30], [25.0, 25.0, 14.0], 9.0, &mut liver);
        for (i, &l) in liver.iter().enumerate() {
            if l {
                assert_eq!(grown[i], all[i]);
            }
        }
        assert_eq!(grown[BLOB], 0.0);
    }

    #[test]
    fn growing_from_probes_computes_the_liver_exactly_and_skips_far_tiles() {
        let (plan, truth, all) = ball_and_far_blob();
        let body = vec![1u8; truth.len()];
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 1.0 };
        let (grown, stats) = plan.run(&body, grow, None, &one_tile, &mut oracle(plan.dims, &truth), &mut |_, _| {}).unwrap();
        // One probe per cell of 2x2x2 units.
        assert_eq!(stats.probes, 18);
        assert!(!stats.fell_back_to_all);
        assert!(stats.computed_tiles < 40, "computed {} tiles", stats.computed_tiles);
        assert_ball_exact_and_blob_skipped(&grown, &all);
    }

    #[test]
    fn growing_falls_back_to_every_tile_when_the_probes_miss() {
        // A ball that lies between probe centres (at 10 and 30 along every
        // axis): no probe sees it, so the grown region is empty and every
        // tile is computed.
        let dims = [40, 40, 20];
        let mut truth = vec![false; 40 * 40 * 20];
        ball(dims, [4.0, 4.0, 4.0], 2.0, &mut truth);
        let body = vec![1u8; truth.len()];
        let plan = TilePlan { dims, unit: 10, probe: 5, multiple: 5, voxel_ml: 1.0 };
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 10.0 };
        let (p, stats) = plan.run(&body, grow, None, &one_tile, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert!(stats.fell_back_to_all);
        assert_eq!(stats.computed_tiles, 32);
        assert_eq!(p[(4 * 40 + 4) * 40 + 4], 0.9);
    }

    #[test]
    fn merged_boxes_grow_the_same_region_as_single_tiles() {
        // The same "liver" as above, but a grid that is not whole tiles
        // (the last units are cut) and boxes of up to 8 units: the same
        // tiles are computed, into the same map, by fewer network runs.
        let dims = [57, 53, 28];
        let mut truth = vec![false; dims.iter().product()];
        ball(dims, [25.0, 40.0, 14.0], 12.0, &mut truth);
        let body = vec![1u8; truth.len()];
        let plan = TilePlan { dims, unit: 10, probe: 5, multiple: 5, voxel_ml: 0.001 };
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 1.0 };
        let eight = |size: [usize; 3]| (size.iter().product::<usize>() <= 8000).then(|| margined(size));
        let mut sizes = Vec::new();
        let mut recording = |origin: [i64; 3], size: [usize; 3], probe: bool| {
            if !probe {
                sizes.push(size);
            }
            oracle(dims, &truth)(origin, size, probe)
        };
        let (merged, merged_stats) = plan.run(&body, grow, None, &eight, &mut recording, &mut |_, _| {}).unwrap();
        let (single, single_stats) = plan.run(&body, grow, None, &one_tile, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert_eq!(merged, single);
        assert_eq!(merged_stats.computed_tiles, single_stats.computed_tiles);
        assert_eq!(single_stats.boxes, single_stats.computed_tiles);
        assert!(merged_stats.boxes < single_stats.boxes, "{merged_stats:?} vs {single_stats:?}");
        // Every box within the budget, a multiple of 5 along each axis, and
        // cut where the grid ends (57 -> 60 at most: the last unit is 10 but
        // only 7 remain, rounded up to 10; 53 -> 55; 28 -> 30).
        for s in &sizes {
            assert!(eight(*s).is_some() && s.iter().all(|e| e % 5 == 0), "{s:?}");
        }
        assert!(sizes.iter().any(|s| s[1] % 10 == 5), "no box cut at y's end: {sizes:?}");
    }

    #[test]
    fn boxes_cover_each_wave_tile_once() {
        let plan = TilePlan { dims: [80, 70, 40], unit: 10, probe: 5, multiple: 5, voxel_ml: 1.0 };
        let fits = |size: [usize; 3]| (size.iter().product::<usize>() <= 12_000).then(|| margined(size));
        // A scattered wave: every tile whose index hash is odd, and a block.
        let mut wave = Vec::new();
        for z in 0..4 {
            for y in 0..7 {
                for x in 0..8 {
                    if (x * 7 + y * 13 + z * 5) % 3 != 0 || (x < 4 && y < 3) {
                        wave.push([x, y, z]);
                    }
                }
            }
        }
        let boxes = plan.boxes(&wave, &fits);
        let mut owned = std::collections::HashMap::new();
        for (first, count, own) in &boxes {
            assert!(fits(plan.box_at(*first, *count).1).is_some());
            assert!(!own.is_empty());
            for t in own {
                assert!((0..3).all(|a| t[a] >= first[a] && t[a] < first[a] + count[a]), "{t:?} outside its box");
                *owned.entry(*t).or_insert(0) += 1;
            }
        }
        assert_eq!(owned.len(), wave.len());
        assert!(wave.iter().all(|t| owned.get(t) == Some(&1)));
        assert!(boxes.len() < wave.len(), "nothing merged");
        assert_eq!(plan.box_at([7, 6, 3], [1, 1, 1]), ([70, 60, 30], [10, 10, 10]));
        let cut = TilePlan { dims: [73, 62, 36], ..plan };
        assert_eq!(cut.box_at([6, 5, 2], [2, 2, 2]), ([60, 50, 20], [15, 15, 20]));
    }

    #[test]
    fn a_box_takes_a_tile_outside_the_wave_when_that_is_cheaper() {
        // A 2x2x2 block of tiles but its far corner: with a margin of 4, the
        // whole block costs 24^3 / 7 per wave tile, a 2x2x1 slab 24*24*14 / 4
        // and a lone tile 14^3, so one box computes all eight and keeps seven.
        let plan = TilePlan { dims: [40, 40, 40], unit: 10, probe: 5, multiple: 5, voxel_ml: 1.0 };
        let fits = |size: [usize; 3]| (size.iter().product::<usize>() <= 8000).then(|| margined(size));
        let wave: Vec<[usize; 3]> = (0..8).map(|i| [1 + i % 2, 1 + (i / 2) % 2, 1 + i / 4]).filter(|t| *t != [2, 2, 2]).collect();
        let boxes = plan.boxes(&wave, &fits);
        assert_eq!(boxes.len(), 1, "{boxes:?}");
        assert_eq!((boxes[0].0, boxes[0].1, boxes[0].2.len()), ([1, 1, 1], [2, 2, 2], 7));
        assert!(!boxes[0].2.contains(&[2, 2, 2]));
        // Two far tiles are not worth the box between them.
        let apart = plan.boxes(&[[0, 0, 0], [2, 0, 0]], &fits);
        assert_eq!(apart.len(), 2, "{apart:?}");
    }

    #[test]
    fn growing_from_seeds_needs_no_probe_and_keeps_the_liver_exact() {
        // One seed voxel inside the ball stands in for another grid's liver.
        let (plan, truth, all) = ball_and_far_blob();
        let body = vec![1u8; truth.len()];
        let mut seeds = vec![0u8; truth.len()];
        seeds[(14 * 60 + 25) * 60 + 25] = 1;
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 1.0 };
        let (grown, stats) = plan.run(&body, grow, Some(&seeds), &one_tile, &mut oracle(plan.dims, &truth), &mut |_, _| {}).unwrap();
        assert_eq!(stats.probes, 0);
        assert!(!stats.fell_back_to_all);
        assert_ball_exact_and_blob_skipped(&grown, &all);
        // Seeds outside the body are no seeds: the probes run.
        let mut inside = vec![0u8; truth.len()];
        inside[..60 * 60 * 5].fill(1);
        let mut far = vec![0u8; truth.len()];
        far[BLOB] = 1;
        let (_, probed) = plan.run(&inside, grow, Some(&far), &one_tile, &mut oracle(plan.dims, &truth), &mut |_, _| {}).unwrap();
        assert!(probed.probes > 0);
    }

    #[test]
    fn tile_unit_is_half_the_patch_in_whole_multiples() {
        assert_eq!(tile_unit(60, 15), 30);
        assert_eq!(tile_unit(45, 15), 15);
        assert_eq!(tile_unit(15, 15), 15);
        assert_eq!(tile_unit(12, 3), 6);
        assert_eq!(seeded_tile_unit(60, 15), 15);
        assert_eq!(seeded_tile_unit(120, 15), 30);
        assert_eq!(seeded_tile_unit(12, 3), 3);
    }
}
