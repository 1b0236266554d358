//! The three-pathway DeepMedic network (METHOD.md), in burn.
//!
//! Every layer after a pathway's first is BN -> PReLU -> 3x3x3 valid conv, as
//! in DeepMedic (the first sees the normalised image directly). Coarse
//! pathways run on average-pooled inputs (see `liverseg_preprocess::patches`) and
//! their outputs are up-sampled to the fine output grid by repetition (burn's
//! flex backend has no 3-D interpolate, and DeepMedic repeats anyway), then
//! concatenated with the fine pathway. 1x1x1 convolutions act as the fully
//! connected layers; a last 1x1x1 convolution gives one logit per voxel.

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, PRelu, PReluConfig};
use burn::tensor::{Device, Tensor};

use crate::config::NetworkConfig;

/// BN -> PReLU -> dropout -> conv; the normalisation and activation are absent
/// on a pathway's first layer.
#[derive(Module, Debug)]
pub struct Block {
    pub norm: Option<BatchNorm>,
    pub act: Option<PRelu>,
    pub dropout: Option<Dropout>,
    pub conv: Conv3d,
}

impl Block {
    fn new(cin: usize, cout: usize, kernel: usize, pre_activation: bool, dropout: f64, device: &Device) -> Self {
        Self {
            norm: pre_activation.then(|| BatchNormConfig::new(cin).init(device)),
            act: pre_activation.then(|| PReluConfig::new().with_num_parameters(cin).init(device)),
            dropout: (dropout > 0.0).then(|| DropoutConfig::new(dropout).init()),
            conv: Conv3dConfig::new([cin, cout], [kernel; 3]).init(device),
        }
    }

    fn forward(&self, mut x: Tensor<5>) -> Tensor<5> {
        x = match (&self.norm, &self.act) {
            (Some(n), Some(a)) => crate::ops::bn_prelu(n, a, x),
            (Some(n), None) => n.forward(x),
            (None, Some(a)) => crate::ops::prelu(a, x),
            (None, None) => x,
        };
        if let Some(d) = &self.dropout {
            x = crate::ops::dropout(d, x);
        }
        crate::ops::conv3d(&self.conv, x)
    }
}

#[derive(Module, Debug)]
pub struct Pathway {
    pub layers: Vec<Block>,
    pub factor: usize,
    /// 0-based indices of layers that receive a residual from two layers back.
    pub residual: Vec<usize>,
}

impl Pathway {
    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let mut outputs: Vec<Tensor<5>> = Vec::with_capacity(self.layers.len());
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let mut y = layer.forward(x);
            if self.residual.contains(&i) && i >= 2 {
                y = crate::ops::residual_add(y, outputs[i - 2].clone());
            }
            outputs.push(y.clone());
            x = y;
        }
        x
    }
}

/// DeepMedic's residual with burn's operations (`ops::residual_add` is the
/// same through the network's kernels): the earlier output, centre-cropped to
/// the later spatial size, is added to its first channels (zero-padded when
/// narrower).
pub(crate) fn add_residual_burn(y: Tensor<5>, earlier: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = y.dims();
    let [_, ce, de, he, we] = earlier.dims();
    let (oz, oy, ox) = ((de - d) / 2, (he - h) / 2, (we - w) / 2);
    let cropped = earlier.slice([0..b, 0..ce.min(c), oz..oz + d, oy..oy + h, ox..ox + w]);
    if ce >= c {
        y + cropped
    } else {
        let zeros = Tensor::zeros([b, c - ce, d, h, w], &y.device());
        y + Tensor::cat(vec![cropped, zeros], 1)
    }
}

/// Up-sample the three spatial axes by repetition.
pub fn upsample_repeat(x: Tensor<5>, f: usize) -> Tensor<5> {
    if f == 1 {
        return x;
    }
    let [b, c, d, h, w] = x.dims();
    let x = x.reshape([b * c * d * h, w, 1]).repeat_dim(2, f).reshape([b * c * d, h, 1, w * f]);
    let x = x.repeat_dim(2, f).reshape([b * c, d, 1, h * f * w * f]);
    x.repeat_dim(2, f).reshape([b, c, d * f, h * f, w * f])
}

#[derive(Module, Debug)]
pub struct DeepMedic {
    pub pathways: Vec<Pathway>,
    pub fc: Vec<Block>,
    pub classifier: Block,
}

impl DeepMedic {
    pub fn new(config: &NetworkConfig, device: &Device) -> Self {
        let residual: Vec<usize> = config.residual.iter().map(|r| r - 1).collect();
        let pathways = config
            .pathways
            .iter()
            .map(|p| {
                let mut cin = 1;
                let layers = p
                    .features
                    .iter()
                    .enumerate()
                    .map(|(i, &cout)| {
                        let block = Block::new(cin, cout, config.kernel, i > 0, 0.0, device);
                        cin = cout;
                        block
                    })
                    .collect();
                Pathway { layers, factor: p.factor, residual: residual.clone() }
            })
            .collect();
        let mut cin = config.merged_features();
        let fc = config
            .fc
            .iter()
            .map(|&w| {
                let block = Block::new(cin, w, 1, true, config.dropout, device);
                cin = w;
                block
            })
            .collect();
        let classifier = Block::new(cin, 1, 1, true, config.dropout, device);
        Self { pathways, fc, classifier }
    }

    /// `inputs[p]`: `[batch, 1, n_p, n_p, n_p]` for pathway p (sizes from
    /// `NetworkConfig::pathway_inputs`). Returns logits `[batch, 1, s, s, s]`.
    pub fn forward(&self, inputs: Vec<Tensor<5>>) -> Tensor<5> {
        let outputs: Vec<Tensor<5>> = self.pathways.iter().zip(inputs).map(|(pathway, x)| pathway.forward(x)).collect();
        let factors: Vec<usize> = self.pathways.iter().map(|p| p.factor).collect();
        debug_assert!(
            outputs.iter().zip(&factors).all(|(y, f)| y.dims()[2] * f == outputs[0].dims()[2] * factors[0]),
            "pathway outputs must cover the same patch"
        );
        let mut x = crate::ops::upsample_cat(outputs, &factors);
        for layer in &self.fc {
            x = layer.forward(x);
        }
        self.classifier.forward(x)
    }
}

/// Binary cross entropy on logits, mean over voxels, in the numerically stable
/// form `max(x, 0) - x y + log(1 + exp(-|x|))`.
pub fn bce_with_logits(logits: Tensor<5>, targets: Tensor<5>) -> Tensor<1> {
    let relu = logits.clone().clamp_min(0.0);
    let softplus = logits.clone().abs().neg().exp().log1p();
    (relu - logits * targets + softplus).mean()
}

/// Soft Dice loss over the whole batch, `1 - (2 sum(p y) + 1) / (sum(p) +
/// sum(y) + 1)` with `p = sigmoid(logit)` (nnU-Net's "batch Dice": one
/// overlap for all patches, so a patch without liver does not count as a
/// failed Dice of its own). Unlike the voxel-mean cross entropy it weighs
/// missed and false liver by the liver's size, not by how many voxels the
/// patch sampler happened to centre on each class.
pub fn soft_dice_loss(logits: Tensor<5>, targets: Tensor<5>) -> Tensor<1> {
    let p = burn::tensor::activation::sigmoid(logits);
    let overlap = (p.clone() * targets.clone()).sum();
    let sizes = p.sum() + targets.sum();
    (overlap.mul_scalar(2.0).add_scalar(1.0) / sizes.add_scalar(1.0)).neg().add_scalar(1.0)
}

/// The training loss a recipe names (`TrainConfig::loss`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Voxel-mean binary cross entropy (every model up to 2026-12-06).
    #[default]
    Bce,
    /// Cross entropy plus batch soft Dice, weight 1 each (nnU-Net's default).
    BceDice,
}

impl Loss {
    pub fn of(self, logits: Tensor<5>, targets: Tensor<5>) -> Tensor<1> {
        match self {
            Loss::Bce => bce_with_logits(logits, targets),
            Loss::BceDice => bce_with_logits(logits.clone(), targets.clone()) + soft_dice_loss(logits, targets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn device() -> Device {
        Device::flex()
    }

    fn tiny() -> NetworkConfig {
        let mut c = NetworkConfig::fast();
        for p in &mut c.pathways {
            p.features = vec![2, 2, 3, 3];
        }
        c.pathways[1].factor = 3;
        c.pathways[2].factor = 5;
        c.residual = vec![4];
        c.fc = vec![4];
        c.train_patch = 15;
        c.infer_patch = 15;
        c
    }

    #[test]
    fn output_shapes_follow_the_config() {
        for config in [NetworkConfig::fast(), tiny()] {
            let net = DeepMedic::new(&config, &device()).valid();
            for patch in [config.patch_multiple(), 2 * config.patch_multiple()] {
                let inputs = config.pathway_inputs(patch).unwrap();
                let tensors = inputs.iter().map(|p| Tensor::zeros([2, 1, p.input, p.input, p.input], &device())).collect();
                let out = net.forward(tensors);
                assert_eq!(out.dims(), [2, 1, patch, patch, patch], "{} patch {patch}", config.name);
            }
        }
    }

    #[test]
    fn upsampling_repeats_each_voxel_into_a_block() {
        let data: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let x = Tensor::<5>::from_data(TensorData::new(data, [1, 1, 2, 2, 2]), &device());
        let y = upsample_repeat(x, 3).into_data().try_to_vec::<f32>().unwrap();
        for z in 0..6 {
            for yy in 0..6 {
                for xx in 0..6 {
                    let want = ((z / 3) * 4 + (yy / 3) * 2 + xx / 3) as f32;
                    assert_eq!(y[(z * 6 + yy) * 6 + xx], want);
                }
            }
        }
    }

    #[test]
    fn bce_matches_the_formula() {
        let logits = [-3.0f32, -0.5, 0.0, 0.7, 4.0];
        let targets = [0.0f32, 1.0, 1.0, 0.0, 1.0];
        let want: f64 = logits
            .iter()
            .zip(&targets)
            .map(|(&x, &y)| {
                let p = 1.0 / (1.0 + (-f64::from(x)).exp());
                -(f64::from(y) * p.ln() + (1.0 - f64::from(y)) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / 5.0;
        let l = Tensor::<5>::from_data(TensorData::new(logits.to_vec(), [1, 1, 1, 1, 5]), &device());
        let t = Tensor::<5>::from_data(TensorData::new(targets.to_vec(), [1, 1, 1, 1, 5]), &device());
        let got = bce_with_logits(l, t).into_scalar::<f32>();
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn soft_dice_matches_the_formula() {
        let logits = [-3.0f32, -0.5, 0.0, 0.7, 4.0, 2.0];
        let targets = [0.0f32, 1.0, 1.0, 0.0, 1.0, 1.0];
        let p: Vec<f64> = logits.iter().map(|&x| 1.0 / (1.0 + (-f64::from(x)).exp())).collect();
        let overlap: f64 = p.iter().zip(&targets).map(|(p, &y)| p * f64::from(y)).sum();
        let sizes: f64 = p.iter().sum::<f64>() + targets.iter().map(|&y| f64::from(y)).sum::<f64>();
        let want = 1.0 - (2.0 * overlap + 1.0) / (sizes + 1.0);
        // Two patches of three: the overlap is the batch's, not a mean of patches.
        let l = Tensor::<5>::from_data(TensorData::new(logits.to_vec(), [2, 1, 1, 1, 3]), &device());
        let t = Tensor::<5>::from_data(TensorData::new(targets.to_vec(), [2, 1, 1, 1, 3]), &device());
        let got = soft_dice_loss(l.clone(), t.clone()).into_scalar::<f32>();
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
        let both = Loss::BceDice.of(l.clone(), t.clone()).into_scalar::<f32>();
        let bce = Loss::Bce.of(l, t).into_scalar::<f32>();
        assert!((both - bce - got).abs() < 1e-5, "{both} != {bce} + {got}");
    }

    #[test]
    fn soft_dice_is_near_zero_for_a_sure_right_answer_and_near_one_for_a_sure_wrong_one() {
        let targets = [0.0f32, 1.0, 1.0, 0.0];
        let right: Vec<f32> = targets.iter().map(|&y| if y > 0.5 { 20.0 } else { -20.0 }).collect();
        let wrong: Vec<f32> = right.iter().map(|x| -x).collect();
        let t = Tensor::<5>::from_data(TensorData::new(targets.to_vec(), [1, 1, 1, 1, 4]), &device());
        let loss = |x: &[f32]| soft_dice_loss(Tensor::<5>::from_data(TensorData::new(x.to_vec(), [1, 1, 1, 1, 4]), &device()), t.clone()).into_scalar::<f32>();
        assert!(loss(&right) < 1e-4, "{}", loss(&right));
        assert!(loss(&wrong) > 0.6, "{}", loss(&wrong));
    }

    /// Gradient of one small 3-D convolution layer against central finite
    /// differences of the same loss.
    #[test]
    fn conv_gradient_matches_finite_differences() {
        let dev = device().autodiff();
        let conv = Conv3dConfig::new([2, 2], [3, 3, 3]).init(&dev);
        let input_data: Vec<f32> = (0..2 * 125).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.05).collect();
        let input = Tensor::<5>::from_data(TensorData::new(input_data.clone(), [1, 2, 5, 5, 5]), &dev);
        let loss = |conv: &Conv3d, input: Tensor<5>| conv.forward(input).powf_scalar(2.0).sum();
        let grads = loss(&conv, input.clone()).backward();
        let analytic = conv.weight.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let weights = conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let plain = Device::flex();
        let input_plain = Tensor::<5>::from_data(TensorData::new(input_data, [1, 2, 5, 5, 5]), &plain);
        let eps = 1e-2f32;
        for idx in [0usize, 7, 20, 53, 107] {
            let eval = |delta: f32| {
                let mut w = weights.clone();
                w[idx] += delta;
                let mut c = Conv3dConfig::new([2, 2], [3, 3, 3]).init(&plain);
                c.weight = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(w, [2, 2, 3, 3, 3]), &plain));
                c.bias = conv.bias.as_ref().map(|b| burn::module::Param::from_tensor(Tensor::from_data(b.val().into_data(), &plain)));
                f64::from(loss(&c, input_plain.clone()).into_scalar::<f32>())
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * f64::from(eps));
            let a = f64::from(analytic[idx]);
            assert!((a - numeric).abs() <= 1e-2 * a.abs().max(1.0), "weight {idx}: analytic {a} vs numeric {numeric}");
        }
    }
}
