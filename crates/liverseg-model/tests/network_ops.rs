//! The network's own operations (`liverseg_model::ops`) against burn flex's:
//! conv3d forward and all three gradients through burn's autodiff, on shapes
//! that are not multiples of any SIMD width, PReLU likewise, and their
//! determinism across thread counts.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use liverseg_model::ops;

fn values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn values_n<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Largest |a - b| / max(|b|, scale), scale being the largest |b|: a relative
/// error that does not blow up on values that are zero by cancellation.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-12);
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs()) / scale).fold(0.0, f64::max)
}

struct Run {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// Forward `conv` on `x`, then the gradients of `sum(y · v)`, with either
/// implementation.
fn run(conv: &Conv3d, x: &Tensor<5>, v: &Tensor<5>, ours: bool) -> Run {
    let x = x.clone().require_grad();
    let y = if ours { ops::conv3d(conv, x.clone()) } else { conv.forward(x.clone()) };
    let loss = (y.clone() * v.clone()).sum();
    let grads = loss.backward();
    Run {
        y: values(y.inner()),
        dx: values(x.grad(&grads).unwrap()),
        dw: values(conv.weight.grad(&grads).unwrap()),
        db: values_n(conv.bias.as_ref().unwrap().grad(&grads).unwrap()),
    }
}

#[test]
fn forward_and_gradients_equal_burns_conv3d() {
    let dev = Device::flex().autodiff();
    // (batch, cin, cout, kernel, input d/h/w)
    let cases = [
        (1, 1, 7, 3, [9, 10, 11]),
        (16, 1, 30, 3, [5, 6, 7]),
        (2, 7, 30, 3, [7, 5, 9]),
        (1, 30, 60, 3, [5, 7, 6]),
        (16, 60, 7, 3, [3, 4, 5]),
        (16, 30, 60, 1, [3, 5, 7]),
        (1, 60, 1, 1, [6, 5, 4]),
        (3, 7, 7, 3, [3, 3, 3]),
    ];
    for (i, &(batch, cin, cout, kernel, [d, h, w])) in cases.iter().enumerate() {
        let conv = Conv3dConfig::new([cin, cout], [kernel; 3]).init(&dev);
        let x = Tensor::<5>::random([batch, cin, d, h, w], Distribution::Normal(0.0, 1.0), &dev);
        let o = [d - kernel + 1, h - kernel + 1, w - kernel + 1];
        let v = Tensor::<5>::random([batch, cout, o[0], o[1], o[2]], Distribution::Normal(0.0, 1.0), &dev);
        let ours = run(&conv, &x, &v, true);
        let burn = run(&conv, &x, &v, false);
        for (name, a, b) in [("y", &ours.y, &burn.y), ("dx", &ours.dx, &burn.dx), ("dw", &ours.dw, &burn.dw), ("db", &ours.db, &burn.db)] {
            let e = rel_err(a, b);
            assert!(e <= 1e-4, "case {i} ({batch}x{cin}->{cout}, k{kernel}, {d}x{h}x{w}): {name} relative error {e:.2e}");
        }
    }
}

/// Central differences of `sum(conv(x) · v)` by weight, on the plain backend.
#[test]
fn weight_gradient_matches_finite_differences() {
    let dev = Device::flex().autodiff();
    let conv = Conv3dConfig::new([3, 2], [3, 3, 3]).init(&dev);
    let x = Tensor::<5>::random([2, 3, 4, 5, 6], Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random([2, 2, 2, 3, 4], Distribution::Normal(0.0, 1.0), &dev);
    let analytic = run(&conv, &x, &v, true).dw;
    let plain = Device::flex();
    let (xp, vp) = (Tensor::<5>::from_data(x.clone().into_data(), &plain), Tensor::<5>::from_data(v.clone().into_data(), &plain));
    let weights = values(conv.weight.val().inner());
    let bias = conv.bias.as_ref().unwrap().val().inner().into_data();
    let eps = 1e-2f32;
    for idx in [0usize, 13, 26, 40, 77, 161] {
        let eval = |delta: f32| {
            let mut wv = weights.clone();
            wv[idx] += delta;
            let mut c = Conv3dConfig::new([3, 2], [3, 3, 3]).init(&plain);
            c.weight = Param::from_tensor(Tensor::from_data(TensorData::new(wv, [2, 3, 3, 3, 3]), &plain));
            c.bias = Some(Param::from_tensor(Tensor::from_data(bias.clone(), &plain)));
            f64::from((ops::conv3d(&c, xp.clone()) * vp.clone()).sum().into_scalar::<f32>())
        };
        let numeric = (eval(eps) - eval(-eps)) / (2.0 * f64::from(eps));
        let a = f64::from(analytic[idx]);
        assert!((a - numeric).abs() <= 2e-3 * a.abs().max(1.0), "weight {idx}: analytic {a} vs numeric {numeric}");
    }
}

/// The same gradients, bit for bit, on 1 and on 3 threads: training repeats
/// for a seed whatever the machine.
#[test]
fn gradients_do_not_depend_on_the_thread_count() {
    let dev = Device::flex().autodiff();
    let conv = Conv3dConfig::new([5, 6], [3, 3, 3]).init(&dev);
    let x = Tensor::<5>::random([7, 5, 9, 8, 7], Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random([7, 6, 7, 6, 5], Distribution::Normal(0.0, 1.0), &dev);
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(|| run(&conv, &x, &v, true));
    let three = pool(3).install(|| run(&conv, &x, &v, true));
    assert_eq!(one.y, three.y);
    assert_eq!(one.dx, three.dx);
    assert_eq!(one.dw, three.dw);
    assert_eq!(one.db, three.db);
}

/// Inference (no autodiff) goes through the same kernels and agrees with burn.
#[test]
fn inference_without_autodiff_equals_burn() {
    let dev = Device::flex();
    let conv = Conv3dConfig::new([4, 5], [3, 3, 3]).init(&dev).valid();
    let x = Tensor::<5>::random([1, 4, 13, 11, 12], Distribution::Normal(0.0, 1.0), &dev);
    let e = rel_err(&values(ops::conv3d(&conv, x.clone())), &values(conv.forward(x)));
    assert!(e <= 1e-4, "relative error {e:.2e}");
}

#[test]
fn prelu_and_its_gradients_equal_burns() {
    use burn::nn::PReluConfig;
    let dev = Device::flex().autodiff();
    for (batch, channels, dims) in [(1, 1, [3, 4, 5]), (16, 7, [2, 3, 5]), (2, 30, [5, 5, 1])] {
        let act = PReluConfig::new().with_num_parameters(channels).with_alpha(0.0).init(&dev);
        // Random slopes, positive and negative, so both branches are tested.
        let alpha = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), &dev);
        let act = burn::nn::PRelu { alpha: Param::from_tensor(alpha), ..act };
        let x = Tensor::<5>::random([batch, channels, dims[0], dims[1], dims[2]], Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<5>::random([batch, channels, dims[0], dims[1], dims[2]], Distribution::Normal(0.0, 1.0), &dev);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours { ops::prelu(&act, x.clone()) } else { act.forward(x.clone()) };
            let grads = (y.clone() * v.clone()).sum().backward();
            (values(y.inner()), values(x.grad(&grads).unwrap()), values_n(act.alpha.grad(&grads).unwrap()))
        };
        let (ours, burn) = (run(true), run(false));
        assert!(rel_err(&ours.0, &burn.0) <= 1e-6, "y");
        assert!(rel_err(&ours.1, &burn.1) <= 1e-6, "dx");
        assert!(rel_err(&ours.2, &burn.2) <= 1e-4, "dalpha {:?} vs {:?}", ours.2, burn.2);
    }
}

/// Inference batch norm folded into PReLU equals burn's BatchNorm then PReLU
/// with the same (non-trivial) running statistics.
#[test]
fn folded_inference_batch_norm_equals_burns() {
    use burn::nn::{BatchNormConfig, PReluConfig};
    let train_dev = Device::flex().autodiff();
    let channels = 7;
    let mut norm = BatchNormConfig::new(channels).init(&train_dev);
    // A few training-mode passes move the running statistics off 0 and 1.
    for _ in 0..3 {
        let x = Tensor::<5>::random([4, channels, 3, 4, 5], Distribution::Normal(2.0, 3.0), &train_dev);
        let _ = norm.forward(x);
    }
    norm.gamma = Param::from_tensor(Tensor::random([channels], Distribution::Normal(1.0, 0.3), &train_dev));
    norm.beta = Param::from_tensor(Tensor::random([channels], Distribution::Normal(0.0, 0.3), &train_dev));
    let act = PReluConfig::new().with_num_parameters(channels).init(&train_dev);
    let act = burn::nn::PRelu { alpha: Param::from_tensor(Tensor::random([channels], Distribution::Normal(0.2, 0.2), &train_dev)), ..act };
    let (norm, act) = (norm.valid(), act.valid());
    let x = Tensor::<5>::random([2, channels, 5, 6, 7], Distribution::Normal(2.0, 3.0), &Device::flex());
    let ours = values(ops::bn_prelu(&norm, &act, x.clone()));
    let burn = values(act.forward(norm.forward(x)));
    let e = rel_err(&ours, &burn);
    assert!(e <= 1e-5, "relative error {e:.2e}");
}

/// Training batch norm (batch statistics, gradients through them, running
/// statistics) through the kernels equals burn's BatchNorm.
#[test]
fn training_batch_norm_equals_burns() {
    use burn::nn::{BatchNormConfig, PReluConfig};
    let dev = Device::flex().autodiff();
    let channels = 5;
    let make = || {
        let mut n = BatchNormConfig::new(channels).init(&dev);
        n.gamma = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.2f32, 0.8, -0.5, 1.0, 2.0], [channels]), &dev));
        n.beta = Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.1f32, -0.2, 0.0, 0.3, 0.5], [channels]), &dev));
        n
    };
    let act = PReluConfig::new().with_num_parameters(channels).with_alpha(1.0).init(&dev);
    let x = Tensor::<5>::random([3, channels, 3, 4, 5], Distribution::Normal(1.5, 2.0), &dev);
    let v = Tensor::<5>::random([3, channels, 3, 4, 5], Distribution::Normal(0.0, 1.0), &dev);
    let run = |ours: bool| {
        let norm = make();
        let x = x.clone().require_grad();
        // alpha 1: PReLU is the identity, so the batch norm alone is compared.
        let y = if ours { ops::bn_prelu(&norm, &act, x.clone()) } else { act.forward(norm.forward(x.clone())) };
        let grads = (y.clone() * v.clone()).sum().backward();
        (
            values(y.inner()),
            values(x.grad(&grads).unwrap()),
            values_n(norm.gamma.grad(&grads).unwrap()),
            values_n(norm.beta.grad(&grads).unwrap()),
            values_n(norm.running_mean.value().inner()),
            values_n(norm.running_var.value().inner()),
        )
    };
    let (a, b) = (run(true), run(false));
    for (name, x, y) in [("y", &a.0, &b.0), ("dx", &a.1, &b.1), ("dgamma", &a.2, &b.2), ("dbeta", &a.3, &b.3), ("running mean", &a.4, &b.4), ("running var", &a.5, &b.5)] {
        let e = rel_err(x, y);
        assert!(e <= 1e-4, "{name}: relative error {e:.2e}");
    }
}
