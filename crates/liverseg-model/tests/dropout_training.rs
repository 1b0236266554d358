//! A seeded training step with dropout repeats exactly, on 1 and on 3
//! threads: dropout's masks come from a seed drawn from burn's seeded
//! generator (`ops::dropout`). In a test binary of its own, because the
//! generator is global to the process.

use burn::tensor::{Device, Distribution, Tensor};
use liverseg_model::network::{bce_with_logits, DeepMedic};
use liverseg_model::NetworkConfig;

#[test]
fn a_seeded_step_with_dropout_repeats_on_any_thread_count() {
    let mut config = NetworkConfig::fast();
    for p in &mut config.pathways {
        p.features = vec![3, 4, 4, 5];
    }
    config.pathways[1].factor = 3;
    config.pathways[2].factor = 5;
    config.residual = vec![4];
    config.fc = vec![6, 5];
    config.dropout = 0.5;
    let dev = Device::flex().autodiff();
    let step = || {
        dev.seed(7);
        let model = DeepMedic::new(&config, &dev);
        let inputs: Vec<Tensor<5>> =
            config.pathway_inputs(15).unwrap().iter().map(|p| Tensor::random([2, 1, p.input, p.input, p.input], Distribution::Normal(0.0, 1.0), &dev)).collect();
        let target = Tensor::<5>::random([2, 1, 15, 15, 15], Distribution::Bernoulli(0.5), &dev);
        let loss = bce_with_logits(model.forward(inputs), target);
        let grads = loss.backward();
        let mut out = vec![loss.inner().into_data().try_to_vec::<f32>().unwrap()];
        for layer in model.fc.iter().chain([&model.classifier]) {
            out.push(layer.conv.weight.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap());
        }
        out
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let (a, b, c) = (pool(1).install(step), pool(3).install(step), pool(3).install(step));
    assert_eq!(a, b);
    assert_eq!(b, c);
}
