//! The network's configuration: saved inside every checkpoint, so a model file
//! alone says how it was built and how CTs must be prepared for it.

use liverseg_preprocess::patches::{PathwayBox, PathwayInput};
use liverseg_preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One convolutional pathway: it sees the image average-pooled by `factor`
/// (1 = full resolution) and has one 3x3x3 valid convolution per entry of
/// `features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwayConfig {
    pub factor: usize,
    pub features: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Preset name or a label of the user's choosing.
    pub name: String,
    /// The first pathway must have factor 1 (it defines the output grid).
    pub pathways: Vec<PathwayConfig>,
    /// Convolution kernel size (odd).
    pub kernel: usize,
    /// 1-based layer numbers whose output gets the output of two layers
    /// earlier added (DeepMedic: 4, 6, 8).
    pub residual: Vec<usize>,
    /// Widths of the 1x1x1 "fully connected" layers after the pathways merge.
    pub fc: Vec<usize>,
    /// Dropout probability before each FC layer and the classifier.
    pub dropout: f64,
    /// Output patch edge in training, fine voxels (paper: 15).
    // Aliases: model files and configs written before the rename (issue 19:
    // "segment" named both the command and this patch) still load.
    #[serde(alias = "train_segment")]
    pub train_patch: usize,
    /// Output patch edge at inference (tiles), fine voxels.
    #[serde(alias = "infer_segment")]
    pub infer_patch: usize,
    pub preprocess: PreprocessConfig,
}

impl NetworkConfig {
    /// The paper's network (METHOD.md): 1.4 mm, pathways at 1, 5 and 15, ten
    /// layers each, DeepMedic's feature counts (the coarse pathways wider), FC
    /// 150-150 with dropout 0.5, residuals at 4, 6, 8.
    pub fn paper() -> Self {
        let fine = vec![30, 30, 40, 40, 40, 40, 50, 50, 50, 50];
        let coarse = vec![40, 40, 50, 50, 50, 50, 60, 60, 60, 60];
        Self {
            name: "paper".into(),
            pathways: vec![
                PathwayConfig { factor: 1, features: fine },
                PathwayConfig { factor: 5, features: coarse.clone() },
                PathwayConfig { factor: 15, features: coarse },
            ],
            kernel: 3,
            residual: vec![4, 6, 8],
            fc: vec![150, 150],
            dropout: 0.5,
            train_patch: 15,
            infer_patch: 45,
            preprocess: PreprocessConfig::default(),
        }
    }

    /// A lighter network for CPUs: the same three pathways and depth (so the
    /// same receptive fields in voxels), on a 2.0 mm grid (0.34x the voxels of
    /// 1.4 mm; the pathways then see 2, 10 and 30 mm cells) with 8-16
    /// features per layer (the paper: 30-60) and FC 64-64. Fewer operations
    /// per output voxel than `paper` (see `macs_per_output_voxel`; the test
    /// requires at least 5x) and 3x fewer voxels per CT.
    pub fn fast() -> Self {
        let fine = vec![8, 8, 12, 12, 12, 12, 16, 16, 16, 16];
        let coarse = fine.clone();
        Self {
            name: "fast".into(),
            pathways: vec![
                PathwayConfig { factor: 1, features: fine },
                PathwayConfig { factor: 5, features: coarse.clone() },
                PathwayConfig { factor: 15, features: coarse },
            ],
            kernel: 3,
            residual: vec![4, 6, 8],
            fc: vec![64, 64],
            dropout: 0.2,
            train_patch: 15,
            infer_patch: 60,
            preprocess: PreprocessConfig { spacing_mm: 2.0, ..PreprocessConfig::default() },
        }
    }

    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "fast" => Ok(Self::fast()),
            other => Err(Error::Config(format!("unknown preset '{other}' (known: paper, fast)"))),
        }
    }

    /// Receptive field of pathway `p` in its own voxels: `1 + layers (kernel - 1)`.
    pub fn receptive_field(&self, p: usize) -> usize {
        1 + self.pathways[p].features.len() * (self.kernel - 1)
    }

    /// Receptive field of the whole network in fine voxels (the widest pathway).
    pub fn receptive_field_fine(&self) -> usize {
        (0..self.pathways.len()).map(|p| self.receptive_field(p) * self.pathways[p].factor).max().unwrap_or(1)
    }

    /// Patch sizes must be a multiple of every factor so that each coarse
    /// output voxel up-samples onto whole fine voxels.
    pub fn patch_multiple(&self) -> usize {
        self.pathways.iter().map(|p| p.factor).fold(1, lcm)
    }

    /// Per pathway, the input size for an output patch of `patch` fine
    /// voxels per axis: `patch / factor + receptive_field - 1`.
    pub fn pathway_inputs(&self, patch: usize) -> Result<Vec<PathwayInput>> {
        let m = self.patch_multiple();
        if patch == 0 || !patch.is_multiple_of(m) {
            return Err(Error::Config(format!("patch size {patch} is not a positive multiple of {m} (the pathway factors' lcm)")));
        }
        Ok((0..self.pathways.len())
            .map(|p| PathwayInput { factor: self.pathways[p].factor, input: patch / self.pathways[p].factor + self.receptive_field(p) - 1 })
            .collect())
    }

    /// [`pathway_inputs`](Self::pathway_inputs) for an output box of
    /// `size` fine voxels along x, y, z, each a multiple of the factors' lcm.
    pub fn box_inputs(&self, size: [usize; 3]) -> Result<Vec<PathwayBox>> {
        let m = self.patch_multiple();
        if size.iter().any(|&s| s == 0 || !s.is_multiple_of(m)) {
            return Err(Error::Config(format!("box {size:?} is not a positive multiple of {m} (the pathway factors' lcm) along every axis")));
        }
        Ok((0..self.pathways.len())
            .map(|p| {
                let f = self.pathways[p].factor;
                PathwayBox { factor: f, input: size.map(|s| s / f + self.receptive_field(p) - 1) }
            })
            .collect())
    }

    /// How many multiply-adds the network spends on an output box of
    /// `size` (as [`box_inputs`](Self::box_inputs)): every pathway's
    /// convolutions (valid, each layer `kernel - 1` smaller than its input)
    /// and the FC layers on the output voxels. It ranks box shapes against
    /// each other (a box's context margin costs more, per output voxel, the
    /// smaller the box); up-sampling, normalisation and the convolution
    /// algorithm are left out.
    pub fn box_multiply_adds(&self, size: [usize; 3]) -> Result<f64> {
        let inputs = self.box_inputs(size)?;
        let k3 = self.kernel.pow(3) as f64;
        let mut total = 0.0;
        for (p, b) in self.pathways.iter().zip(&inputs) {
            let mut c_in = 1;
            for (l, &c_out) in p.features.iter().enumerate() {
                let voxels: f64 = b.input.iter().map(|&e| (e - (self.kernel - 1) * (l + 1)) as f64).product();
                total += voxels * (c_in * c_out) as f64 * k3;
                c_in = c_out;
            }
        }
        let mut c_in = self.merged_features();
        let mut per_voxel = 0;
        for &c_out in self.fc.iter().chain(std::iter::once(&1)) {
            per_voxel += c_in * c_out;
            c_in = c_out;
        }
        Ok(total + size.iter().product::<usize>() as f64 * per_voxel as f64)
    }

    /// Whether `other` reads a CT exactly as this network does: the same
    /// grid and pre-processing, inference tile, and per pathway the same
    /// factor and receptive field (kernel x depth). Feature widths, FC layers,
    /// residuals and dropout are inside each network and may differ, so
    /// models of such networks can be run on the same tiles and their
    /// probabilities averaged (an ensemble); weight averaging still needs
    /// identical networks.
    pub fn reads_like(&self, other: &NetworkConfig) -> bool {
        let geometry = |c: &NetworkConfig| -> Vec<(usize, usize)> { (0..c.pathways.len()).map(|p| (c.pathways[p].factor, c.receptive_field(p))).collect() };
        self.preprocess == other.preprocess && self.infer_patch == other.infer_patch && geometry(self) == geometry(other)
    }

    /// Features entering the FC layers: the last layer of every pathway.
    pub fn merged_features(&self) -> usize {
        self.pathways.iter().map(|p| *p.features.last().unwrap_or(&0)).sum()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.pathways.is_empty() {
            return bad("at least one pathway is needed".into());
        }
        if self.pathways[0].factor != 1 {
            return bad(format!("the first pathway must have factor 1, not {}", self.pathways[0].factor));
        }
        if self.kernel.is_multiple_of(2) {
            return bad(format!("kernel {} must be odd", self.kernel));
        }
        for (i, p) in self.pathways.iter().enumerate() {
            if p.factor == 0 || p.features.is_empty() || p.features.contains(&0) {
                return bad(format!("pathway {i}: factor and every feature count must be positive, with at least one layer"));
            }
            if !(self.receptive_field(i) - 1).is_multiple_of(2) {
                return bad(format!("pathway {i}: receptive field {} is not odd", self.receptive_field(i)));
            }
        }
        for &r in &self.residual {
            if r < 3 || self.pathways.iter().any(|p| r > p.features.len()) {
                return bad(format!("residual layer {r} must be between 3 and every pathway's layer count"));
            }
        }
        if self.fc.contains(&0) || !(0.0..1.0).contains(&self.dropout) {
            return bad("FC widths must be positive and dropout in [0, 1)".into());
        }
        self.pathway_inputs(self.train_patch)?;
        self.pathway_inputs(self.infer_patch)?;
        Ok(())
    }

    /// Multiply-accumulates per output voxel of one `patch`-sized forward
    /// pass (for benchmarks and choosing presets).
    pub fn macs_per_output_voxel(&self, patch: usize) -> Result<f64> {
        Ok(self.box_multiply_adds([patch; 3])? / (patch as f64).powi(3))
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_have_the_deepmedic_receptive_field() {
        for c in [NetworkConfig::paper(), NetworkConfig::fast()] {
            c.validate().unwrap();
            // Ten 3x3x3 valid layers: 21 voxels in every pathway.
            assert!((0..3).all(|p| c.receptive_field(p) == 21));
            assert_eq!(c.receptive_field_fine(), 315);
            assert_eq!(c.patch_multiple(), 15);
            let inputs = c.pathway_inputs(15).unwrap();
            let sizes: Vec<usize> = inputs.iter().map(|p| p.input).collect();
            // 15 + 20, 3 + 20, 1 + 20.
            assert_eq!(sizes, vec![35, 23, 21]);
        }
        let paper = NetworkConfig::paper();
        // In 1.4 mm voxels the coarsest pathway sees 21 x 21 mm = 441 mm.
        assert!((paper.receptive_field(2) as f64 * 15.0 * paper.preprocess.spacing_mm - 441.0).abs() < 1e-9);
        assert!(NetworkConfig::fast().macs_per_output_voxel(60).unwrap() * 5.0 < paper.macs_per_output_voxel(60).unwrap());
    }

    #[test]
    fn box_work_counts_every_layer_and_prefers_larger_boxes() {
        // One pathway of two 3x3x3 layers (1 -> 2 -> 3 features), FC 4, on a
        // 1x2x3 box: input 5x6x7, layer outputs 3x4x5 and 1x2x3.
        let mut c = NetworkConfig::fast();
        c.pathways = vec![PathwayConfig { factor: 1, features: vec![2, 3] }];
        c.fc = vec![4];
        let expected = (60.0 * 2.0 + 6.0 * 6.0) * 27.0 + 6.0 * (3.0 * 4.0 + 4.0);
        assert_eq!(c.box_multiply_adds([1, 2, 3]).unwrap(), expected);
        assert_eq!(c.macs_per_output_voxel(2).unwrap(), c.box_multiply_adds([2; 3]).unwrap() / 8.0);
        // The context margin: a 30^3 box costs more per output
        // voxel than a 60^3 one.
        let w = NetworkConfig::fast();
        let per_voxel = |e: usize| w.box_multiply_adds([e; 3]).unwrap() / (e as f64).powi(3);
        assert!(per_voxel(30) > 1.2 * per_voxel(60), "{} vs {}", per_voxel(30), per_voxel(60));
        assert!(w.box_multiply_adds([15, 15, 20]).is_err());
    }

    #[test]
    fn patch_sizes_must_fit_the_factors() {
        let c = NetworkConfig::paper();
        assert!(c.pathway_inputs(20).is_err());
        assert!(c.pathway_inputs(0).is_err());
        assert_eq!(c.pathway_inputs(45).unwrap()[1].input, 9 + 20);
        let mut bad = c.clone();
        bad.pathways[0].factor = 5;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.residual = vec![12];
        assert!(bad.validate().is_err());
        assert!(NetworkConfig::preset("nope").is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = NetworkConfig::fast();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<NetworkConfig>(&s).unwrap(), c);
    }

    #[test]
    fn configs_written_before_the_patch_rename_still_load() {
        let c = NetworkConfig::fast();
        let old = serde_json::to_string(&c).unwrap().replace("\"train_patch\"", "\"train_segment\"").replace("\"infer_patch\"", "\"infer_segment\"");
        assert!(old.contains("infer_segment"));
        assert_eq!(serde_json::from_str::<NetworkConfig>(&old).unwrap(), c);
    }
}
