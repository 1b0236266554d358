//! Tiled whole-volume inference: the prepared grid is covered by output
//! segments of `infer_segment^3` voxels; tiles whose output region holds no
//! body voxel are not computed (their probability is 0), and each computed
//! tile gets its pathway inputs cut from one summed-volume table.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_data::patches::{PathwayInput, PatchSource};
use liverseg_data::Prepared;
use liverseg_volume::Volume;

use crate::checkpoint::{self, ModelInfo};
use crate::network::DeepMedic;
use crate::{Error, Result};

/// A loaded model ready to segment.
pub struct Segmenter {
    net: DeepMedic,
    info: ModelInfo,
    device: Device,
}

/// The model committed with liverseg (see the README: what it was trained on).
pub static BUILTIN_MODEL: &[u8] = include_bytes!("../../../models/liverseg-default.lsm");

impl Segmenter {
    pub fn new(net: DeepMedic, info: ModelInfo, device: Device) -> Self {
        Self { net: net.valid(), info, device }
    }

    pub fn load(path: &std::path::Path, device: Device) -> Result<Self> {
        let (net, info) = checkpoint::load(path, &device)?;
        Ok(Self::new(net, info, device))
    }

    /// The built-in default model.
    pub fn builtin(device: Device) -> Result<Self> {
        let (net, info) = checkpoint::from_bytes(BUILTIN_MODEL, "built-in model", &device)?;
        Ok(Self::new(net, info, device))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn net(&self) -> &DeepMedic {
        &self.net
    }

    /// Liver probability on the prepared grid. `input` is the normalised image
    /// on that grid. `progress(done, total)` is called after each tile.
    pub fn probability(&self, prepared: &Prepared, input: &Volume<f32>, progress: &mut dyn FnMut(usize, usize)) -> Result<Volume<f32>> {
        predict(&self.net, &self.info.network, &self.device, prepared, input, self.info.network.infer_segment, progress)
    }
}

/// The tile origins covering `dims` with segments of `s`, and whether each
/// one's output region holds a body voxel.
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

/// Run the network over a whole prepared volume (see [`Segmenter::probability`]).
pub fn predict(
    net: &DeepMedic,
    config: &crate::NetworkConfig,
    device: &Device,
    prepared: &Prepared,
    input: &Volume<f32>,
    segment: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Volume<f32>> {
    if !input.geometry().same_grid(prepared.hu.geometry()) {
        return Err(Error::Config("the network input is not on the prepared grid".into()));
    }
    let pathways: Vec<PathwayInput> = config.pathway_inputs(segment)?;
    let pad = config.preprocess.normalise(-1024.0);
    let source = PatchSource::new(input, pad);
    let dims = input.dims();
    let tiles = tiles(prepared.body.data(), dims, segment);
    let mut probability = vec![0.0f32; input.len()];
    let total = tiles.len();
    for (done, origin) in tiles.iter().enumerate() {
        let tensors: Vec<Tensor<5>> = pathways
            .iter()
            .map(|&p| {
                let mut buf = vec![0.0f32; p.input.pow(3)];
                source.extract(origin.map(|o| o as i64), segment, p, &mut buf);
                Tensor::from_data(TensorData::new(buf, [1, 1, p.input, p.input, p.input]), device)
            })
            .collect();
        let out = sigmoid(net.forward(tensors)).into_data().try_to_vec::<f32>().map_err(|e| Error::Model(format!("{e:?}")))?;
        for k in 0..segment {
            let z = origin[2] + k;
            if z >= dims[2] {
                break;
            }
            for j in 0..segment {
                let y = origin[1] + j;
                if y >= dims[1] {
                    break;
                }
                let row = &out[(k * segment + j) * segment..][..segment];
                let x_end = (origin[0] + segment).min(dims[0]);
                let base = (z * dims[1] + y) * dims[0];
                probability[base + origin[0]..base + x_end].copy_from_slice(&row[..x_end - origin[0]]);
            }
        }
        progress(done + 1, total);
    }
    Ok(Volume::new(input.geometry().clone(), probability)?)
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
}
