//! The whole network, forward and backward, through the network's own
//! operations against burn's (`ops::use_burn_ops`). In a test binary of its
//! own: the switch is global to the process, and the tests of
//! `network_ops.rs` run beside each other.

use burn::tensor::{Device, Distribution, Tensor};
use liverseg_model::network::{bce_with_logits, DeepMedic};
use liverseg_model::{ops, NetworkConfig};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-12);
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs()) / scale).fold(0.0, f64::max)
}

/// A small three-pathway network (residuals from narrower, equal and wider
/// layers) without dropout, whose masks differ by design: the loss agrees to
/// 1e-4 and every convolution's weight gradient to 5e-3 of its largest value.
/// The gradients are f32 sums of tens of thousands of terms, after batch
/// norm's backward has taken means out of them, summed in another order by
/// each implementation: on unseeded random inputs the first layer's differed
/// by up to 1.1e-3 (about one run in seven), while a wrong gradient is off by
/// order 1. Seeded, so a run is repeatable.
#[test]
fn training_step_gradients_equal_burns() {
    let mut config = NetworkConfig::fast();
    for p in &mut config.pathways {
        p.features = vec![3, 5, 5, 5, 6, 4];
    }
    config.pathways[1].factor = 3;
    config.pathways[2].factor = 5;
    config.residual = vec![4, 5, 6];
    config.fc = vec![9];
    config.dropout = 0.0;
    config.train_patch = 15;
    let dev = Device::flex().autodiff();
    dev.seed(2024);
    let model = DeepMedic::new(&config, &dev);
    let batch = 3;
    let inputs: Vec<Tensor<5>> = config
        .pathway_inputs(15)
        .unwrap()
        .iter()
        .map(|p| Tensor::random([batch, 1, p.input, p.input, p.input], Distribution::Normal(0.0, 1.0), &dev))
        .collect();
    let target = Tensor::<5>::random([batch, 1, 15, 15, 15], Distribution::Bernoulli(0.5), &dev);
    let run = |burn_ops: bool| {
        ops::use_burn_ops(burn_ops);
        let loss = bce_with_logits(model.forward(inputs.clone()), target.clone());
        let grads = loss.backward();
        let mut out = vec![values(loss.inner())];
        for layer in model.pathways.iter().flat_map(|p| &p.layers).chain(&model.fc).chain([&model.classifier]) {
            out.push(values(layer.conv.weight.grad(&grads).unwrap()));
        }
        ops::use_burn_ops(false);
        out
    };
    let (ours, burn) = (run(false), run(true));
    for (i, (a, b)) in ours.iter().zip(&burn).enumerate() {
        let e = rel_err(a, b);
        let tolerance = if i == 0 { 1e-4 } else { 5e-3 };
        assert!(e <= tolerance, "{}: relative error {e:.2e}", if i == 0 { "loss".to_string() } else { format!("conv {}", i - 1) });
    }
}
