//! Tiled whole-volume inference: the prepared grid is covered by output
//! patches of `infer_patch^3` voxels; tiles whose output region holds no
//! body voxel are not computed (their probability is 0), and each computed
//! tile gets its pathway inputs cut from one summed-volume table.
//!
//! By default only the tiles that can hold the liver are computed
//! ([`TileStrategy::Grow`], coarse-to-fine): a small probe patch at the
//! centre of every body tile finds where the network sees liver (the coarse
//! pathways give each probe 30x its size of context), those tiles are
//! computed in full, and the computed region grows across every tile face
//! that the thresholded probability touches. Post-processing keeps only the
//! largest 6-connected component, and a 6-connected path cannot leave a tile
//! except through a face, so every component that touches a probed liver
//! voxel is computed exactly as a full pass would; what is skipped is
//! background that no liver region reaches. If the probes find no liver, or
//! the grown region is smaller than a plausible liver, the remaining tiles
//! are computed too, so a miss costs time, not the liver.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_preprocess::patches::{PathwayInput, PatchSource};
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
    pub body_tiles: usize,
    pub computed_tiles: usize,
    pub probes: usize,
    pub fell_back_to_all: bool,
}

/// The tile origins covering `dims` with patches of `s` whose output
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

/// Copy a `patch`-edged output block at `origin` into the volume buffer.
fn paste(probability: &mut [f32], dims: [usize; 3], origin: [usize; 3], patch: usize, out: &[f32]) {
    let x_end = (origin[0] + patch).min(dims[0]);
    for k in 0..patch.min(dims[2] - origin[2]) {
        let z = origin[2] + k;
        for j in 0..patch.min(dims[1] - origin[1]) {
            let y = origin[1] + j;
            let row = &out[(k * patch + j) * patch..][..patch];
            let base = (z * dims[1] + y) * dims[0];
            probability[base + origin[0]..base + x_end].copy_from_slice(&row[..x_end - origin[0]]);
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
/// it computed.
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
    if !input.geometry().same_grid(prepared.hu.geometry()) {
        return Err(Error::Config("the network input is not on the prepared grid".into()));
    }
    let pathways: Vec<PathwayInput> = config.pathway_inputs(patch)?;
    let probe = config.patch_multiple();
    let probe_pathways = config.pathway_inputs(probe)?;
    let source = PatchSource::new(input, config.preprocess.normalise(-1024.0));
    let mut run = |origin: [i64; 3], size: usize| -> Result<Vec<f32>> {
        let inputs = if size == patch { &pathways } else { &probe_pathways };
        // Probes only choose where to start computing; the mean map of every
        // view decides what is grown and kept. So they run unmirrored: with
        // `xy`, the mirrored probes were 7 % of the predict stage (28.0 s to
        // 26.1 s on a 512x512x129 CT) and changed no mask (the five wide
        // folds' held-out CTs, 2026-12-05).
        let views = if size == patch { flips.views() } else { FlipAverage::Off.views() };
        let tensors: Vec<Tensor<5>> = inputs
            .iter()
            .map(|&p| {
                let mut buf = vec![0.0f32; p.input.pow(3)];
                source.extract(origin, size, p, &mut buf);
                Tensor::from_data(TensorData::new(buf, [1, 1, p.input, p.input, p.input]), device)
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
    let plan = TilePlan { dims: input.dims(), patch, probe, voxel_ml };
    let (probability, stats) = plan.run(prepared.body.data(), strategy, &mut run, progress)?;
    Ok((Volume::new(input.geometry().clone(), probability)?, stats))
}

/// The tiling of one volume, apart from the network (so the growth logic can
/// be tested with an oracle in its place).
struct TilePlan {
    dims: [usize; 3],
    patch: usize,
    probe: usize,
    voxel_ml: f64,
}

impl TilePlan {
    /// `run(origin, size)` returns the probability of the `size`^3 output
    /// patch at `origin` (x fastest).
    fn run(
        &self,
        body: &[u8],
        strategy: TileStrategy,
        run: &mut dyn FnMut([i64; 3], usize) -> Result<Vec<f32>>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<f32>, TileStats)> {
        let (dims, patch, probe) = (self.dims, self.patch, self.probe);
        let body_tiles = tiles(body, dims, patch);
        let mut probability = vec![0.0f32; dims.iter().product()];
        let mut stats = TileStats { body_tiles: body_tiles.len(), ..Default::default() };
        let mut computed = vec![false; body_tiles.len()];
        let index_of = |o: [usize; 3]| body_tiles.iter().position(|&t| t == o);
        let (threshold, min_ml) = match strategy {
            TileStrategy::All => (None, 0.0),
            TileStrategy::Grow { threshold, min_ml } => (Some(threshold), min_ml),
        };
        // Progress in tenths of a tile (a probe costs about that much); the
        // total is re-estimated as the region grows.
        let mut queue = std::collections::VecDeque::new();
        if let Some(threshold) = threshold {
            for (i, origin) in body_tiles.iter().enumerate() {
                let corner: [i64; 3] = std::array::from_fn(|a| {
                    let end = (origin[a] + patch).min(dims[a]);
                    ((origin[a] + end) / 2) as i64 - (probe / 2) as i64
                });
                let out = run(corner, probe)?;
                stats.probes += 1;
                if out.iter().any(|&p| p >= threshold) {
                    queue.push_back(i);
                    computed[i] = true;
                }
                progress(i + 1, body_tiles.len() * 11);
            }
        } else {
            queue.extend(0..body_tiles.len());
            computed.iter_mut().for_each(|c| *c = true);
        }
        let mut fallback_checked = threshold.is_none();
        loop {
            while let Some(i) = queue.pop_front() {
                let origin = body_tiles[i];
                let out = run(origin.map(|o| o as i64), patch)?;
                paste(&mut probability, dims, origin, patch, &out);
                stats.computed_tiles += 1;
                if let Some(threshold) = threshold {
                    let faces = hot_faces(&probability, dims, origin, patch, threshold);
                    for (f, &hot) in faces.iter().enumerate() {
                        let axis = f / 2;
                        if !hot || (f % 2 == 0 && origin[axis] == 0) {
                            continue;
                        }
                        let mut next = origin;
                        next[axis] = if f % 2 == 0 { origin[axis] - patch } else { origin[axis] + patch };
                        if let Some(j) = index_of(next) {
                            if !computed[j] {
                                computed[j] = true;
                                queue.push_back(j);
                            }
                        }
                    }
                }
                let pending = stats.computed_tiles + queue.len();
                progress(stats.probes + stats.computed_tiles * 10, stats.probes + pending.max(1) * 10);
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
                        queue.push_back(i);
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
    fn oracle(dims: [usize; 3], truth: &[bool]) -> impl FnMut([i64; 3], usize) -> Result<Vec<f32>> + '_ {
        move |origin, size| {
            let mut out = vec![0.0f32; size.pow(3)];
            for k in 0..size {
                for j in 0..size {
                    for i in 0..size {
                        let p = [origin[0] + i as i64, origin[1] + j as i64, origin[2] + k as i64];
                        let inside = (0..3).all(|a| p[a] >= 0 && (p[a] as usize) < dims[a])
                            && truth[(p[2] as usize * dims[1] + p[1] as usize) * dims[0] + p[0] as usize];
                        out[(k * size + j) * size + i] = if inside { 0.9 } else { 0.01 };
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

    #[test]
    fn growing_from_probes_computes_the_liver_exactly_and_skips_far_tiles() {
        // 6 x 6 x 3 tiles of 10: a "liver" ball across several tiles that no
        // probe centre sees except one, and a small far blob no probe sees.
        let dims = [60, 60, 30];
        let mut truth = vec![false; 60 * 60 * 30];
        ball(dims, [25.0, 25.0, 14.0], 9.0, &mut truth);
        ball(dims, [51.0, 51.0, 28.0], 1.5, &mut truth);
        let body = vec![1u8; truth.len()];
        let plan = TilePlan { dims, patch: 10, probe: 5, voxel_ml: 0.001 };
        let (all, all_stats) = plan.run(&body, TileStrategy::All, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert_eq!(all_stats.computed_tiles, 108);
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 1.0 };
        let (grown, stats) = plan.run(&body, grow, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert_eq!(stats.probes, 108);
        assert!(!stats.fell_back_to_all);
        assert!(stats.computed_tiles < 40, "computed {} tiles", stats.computed_tiles);
        // The ball's voxels are identical to the full pass; the far blob
        // (never probed, never reached) is not computed.
        let mut liver = vec![false; truth.len()];
        ball(dims, [25.0, 25.0, 14.0], 9.0, &mut liver);
        for (i, &l) in liver.iter().enumerate() {
            if l {
                assert_eq!(grown[i], all[i]);
            }
        }
        assert_eq!(grown[(28 * 60 + 51) * 60 + 51], 0.0);
        assert_eq!(all[(28 * 60 + 51) * 60 + 51], 0.9);
    }

    #[test]
    fn growing_falls_back_to_every_tile_when_the_probes_miss() {
        // A ball that lies between probe centres: no probe sees it, so the
        // grown region is empty and every tile is computed.
        let dims = [40, 40, 20];
        let mut truth = vec![false; 40 * 40 * 20];
        ball(dims, [10.0, 10.0, 10.0], 2.0, &mut truth);
        let body = vec![1u8; truth.len()];
        let plan = TilePlan { dims, patch: 10, probe: 5, voxel_ml: 1.0 };
        let grow = TileStrategy::Grow { threshold: 0.5, min_ml: 10.0 };
        let (p, stats) = plan.run(&body, grow, &mut oracle(dims, &truth), &mut |_, _| {}).unwrap();
        assert!(stats.fell_back_to_all);
        assert_eq!(stats.computed_tiles, 32);
        assert_eq!(p[(10 * 40 + 10) * 40 + 10], 0.9);
    }
}
