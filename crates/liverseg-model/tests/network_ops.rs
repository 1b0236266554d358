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
        (2, 12, 18, 3, [6, 9, 23]),
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
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    // 5 -> 6 channels take the direct forward kernel, 12 -> 14 on rows of 8
    // the shifted products (`ops::conv::auto_algo`).
    for (cin, cout, x_dims, y_dims) in [(5, 6, [7, 5, 9, 8, 7], [7, 6, 7, 6, 5]), (12, 14, [3, 12, 9, 6, 10], [3, 14, 7, 4, 8])] {
        let conv = Conv3dConfig::new([cin, cout], [3, 3, 3]).init(&dev);
        let x = Tensor::<5>::random(x_dims, Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<5>::random(y_dims, Distribution::Normal(0.0, 1.0), &dev);
        let one = pool(1).install(|| run(&conv, &x, &v, true));
        let three = pool(3).install(|| run(&conv, &x, &v, true));
        assert_eq!(one.y, three.y);
        assert_eq!(one.dx, three.dx);
        assert_eq!(one.dw, three.dw);
        assert_eq!(one.db, three.db);
    }
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
/// statistics) and PReLU, one operation in the kernels, equal burn's
/// BatchNorm then PReLU: slopes 1 (the batch norm alone), random slopes per
/// channel (both signs, so both branches), and one shared slope.
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
    let slopes = [vec![1.0f32; channels], vec![0.25, -0.3, 0.0, 0.7, 0.1], vec![0.2]];
    for (batch, dims) in [(3, [3, 4, 5]), (16, [2, 3, 5]), (1, [7, 1, 9])] {
        let x = Tensor::<5>::random([batch, channels, dims[0], dims[1], dims[2]], Distribution::Normal(1.5, 2.0), &dev);
        let v = Tensor::<5>::random([batch, channels, dims[0], dims[1], dims[2]], Distribution::Normal(0.0, 1.0), &dev);
        for alpha in &slopes {
            let act = PReluConfig::new().with_num_parameters(alpha.len()).init(&dev);
            let act = burn::nn::PRelu { alpha: Param::from_tensor(Tensor::from_data(TensorData::new(alpha.clone(), [alpha.len()]), &dev)), ..act };
            let run = |ours: bool| {
                let norm = make();
                let x = x.clone().require_grad();
                let y = if ours { ops::bn_prelu(&norm, &act, x.clone()) } else { act.forward(norm.forward(x.clone())) };
                let grads = (y.clone() * v.clone()).sum().backward();
                (
                    values(y.inner()),
                    values(x.grad(&grads).unwrap()),
                    values_n(norm.gamma.grad(&grads).unwrap()),
                    values_n(norm.beta.grad(&grads).unwrap()),
                    values_n(act.alpha.grad(&grads).unwrap()),
                    values_n(norm.running_mean.value().inner()),
                    values_n(norm.running_var.value().inner()),
                )
            };
            let (a, b) = (run(true), run(false));
            for (name, x, y) in [
                ("y", &a.0, &b.0),
                ("dx", &a.1, &b.1),
                ("dgamma", &a.2, &b.2),
                ("dbeta", &a.3, &b.3),
                ("dalpha", &a.4, &b.4),
                ("running mean", &a.5, &b.5),
                ("running var", &a.6, &b.6),
            ] {
                let e = rel_err(x, y);
                assert!(e <= 1e-4, "batch {batch}, slopes {alpha:?}: {name} relative error {e:.2e}");
            }
        }
    }
}

/// The fused training batch norm + PReLU gives the same values and
/// gradients, bit for bit, on 1 and on 3 threads.
#[test]
fn training_batch_norm_does_not_depend_on_the_thread_count() {
    use burn::nn::{BatchNormConfig, PReluConfig};
    let dev = Device::flex().autodiff();
    let x = Tensor::<5>::random([7, 6, 9, 8, 7], Distribution::Normal(0.5, 2.0), &dev);
    let v = Tensor::<5>::random([7, 6, 9, 8, 7], Distribution::Normal(0.0, 1.0), &dev);
    let act = PReluConfig::new().with_num_parameters(6).init(&dev);
    let act = burn::nn::PRelu { alpha: Param::from_tensor(Tensor::random([6], Distribution::Normal(0.0, 0.5), &dev)), ..act };
    let run = || {
        let norm = BatchNormConfig::new(6).init(&dev);
        let x = x.clone().require_grad();
        let y = ops::bn_prelu(&norm, &act, x.clone());
        let grads = (y.clone() * v.clone()).sum().backward();
        (values(y.inner()), values(x.grad(&grads).unwrap()), values_n(norm.gamma.grad(&grads).unwrap()), values_n(act.alpha.grad(&grads).unwrap()))
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    assert_eq!(pool(1).install(run), pool(3).install(run));
}

/// burn's merge of pathways: each output repeated by its factor, then `cat`.
fn burn_merge(xs: &[Tensor<5>], factors: &[usize]) -> Tensor<5> {
    Tensor::cat(xs.iter().zip(factors).map(|(x, &f)| liverseg_model::network::upsample_repeat(x.clone(), f)).collect(), 1)
}

/// The merge of the pathways (up-sampling by repetition and concatenation)
/// and its gradients equal burn's `repeat_dim` + `cat`, on odd shapes (the
/// kernel takes three pathways; one or four take burn's operations).
#[test]
fn merge_of_pathways_and_its_gradients_equal_burns() {
    let dev = Device::flex().autodiff();
    // (batch, [(channels, factor)], output d/h/w)
    type Case<'a> = (usize, &'a [(usize, usize)], [usize; 3]);
    let cases: [Case; 5] = [
        (1, &[(7, 1), (1, 3), (30, 3)], [6, 9, 3]),
        (16, &[(8, 1), (16, 5), (16, 15)], [15, 15, 15]),
        (2, &[(60, 2), (7, 1), (1, 2)], [4, 2, 6]),
        // Other pathway counts take burn's operations.
        (3, &[(1, 1)], [5, 7, 3]),
        (1, &[(3, 1), (2, 5), (1, 5), (4, 1)], [5, 10, 5]),
    ];
    for (i, &(batch, parts, out)) in cases.iter().enumerate() {
        let xs: Vec<Tensor<5>> = parts
            .iter()
            .map(|&(c, f)| Tensor::<5>::random([batch, c, out[0] / f, out[1] / f, out[2] / f], Distribution::Normal(0.0, 1.0), &dev))
            .collect();
        let factors: Vec<usize> = parts.iter().map(|p| p.1).collect();
        let channels: usize = parts.iter().map(|p| p.0).sum();
        let v = Tensor::<5>::random([batch, channels, out[0], out[1], out[2]], Distribution::Normal(0.0, 1.0), &dev);
        let run = |ours: bool| {
            let xs: Vec<Tensor<5>> = xs.iter().map(|x| x.clone().require_grad()).collect();
            let y = if ours { ops::upsample_cat(xs.clone(), &factors) } else { burn_merge(&xs, &factors) };
            let grads = (y.clone() * v.clone()).sum().backward();
            (values(y.inner()), xs.iter().map(|x| values(x.grad(&grads).unwrap())).collect::<Vec<_>>())
        };
        let (ours, burn) = (run(true), run(false));
        assert_eq!(ours.0, burn.0, "case {i}: y");
        for (p, (a, b)) in ours.1.iter().zip(&burn.1).enumerate() {
            let e = rel_err(a, b);
            assert!(e <= 1e-4, "case {i}: d pathway {p} relative error {e:.2e}");
        }
    }
}

/// burn's residual (as `network` built it before the kernels).
fn burn_residual(later: Tensor<5>, earlier: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = later.dims();
    let [_, ce, de, he, we] = earlier.dims();
    let (oz, oy, ox) = ((de - d) / 2, (he - h) / 2, (we - w) / 2);
    let cropped = earlier.slice([0..b, 0..ce.min(c), oz..oz + d, oy..oy + h, ox..ox + w]);
    if ce >= c {
        later + cropped
    } else {
        let zeros = Tensor::zeros([b, c - ce, d, h, w], &later.device());
        later + Tensor::cat(vec![cropped, zeros], 1)
    }
}

/// The residual connection (narrower, as wide and wider earlier outputs,
/// odd crops) and its gradients equal burn's slice + cat + add.
#[test]
fn residual_and_its_gradients_equal_burns() {
    let dev = Device::flex().autodiff();
    // (batch, channels, dims, earlier channels, earlier dims)
    let cases = [(1, 12, [5, 6, 7], 8, [9, 10, 11]), (16, 7, [3, 4, 5], 7, [5, 6, 7]), (2, 30, [1, 2, 3], 60, [4, 4, 4]), (3, 1, [3, 3, 3], 1, [3, 3, 3])];
    for (i, &(batch, c, dims, ce, edims)) in cases.iter().enumerate() {
        let later = Tensor::<5>::random([batch, c, dims[0], dims[1], dims[2]], Distribution::Normal(0.0, 1.0), &dev);
        let earlier = Tensor::<5>::random([batch, ce, edims[0], edims[1], edims[2]], Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<5>::random([batch, c, dims[0], dims[1], dims[2]], Distribution::Normal(0.0, 1.0), &dev);
        let run = |ours: bool| {
            // `later` is the output of an operation, as in the network, so
            // the kernel may add in place.
            let (l, e) = (later.clone().require_grad(), earlier.clone().require_grad());
            let lo = l.clone() * 1.0;
            let y = if ours { ops::residual_add(lo, e.clone()) } else { burn_residual(lo, e.clone()) };
            let grads = (y.clone() * v.clone()).sum().backward();
            (values(y.inner()), values(l.grad(&grads).unwrap()), values(e.grad(&grads).unwrap()))
        };
        let (ours, burn) = (run(true), run(false));
        assert_eq!(ours.0, burn.0, "case {i}: y");
        assert_eq!(ours.1, burn.1, "case {i}: d later");
        assert_eq!(ours.2, burn.2, "case {i}: d earlier");
    }
}

/// Inputs that others still hold are not written by the in-place residual.
#[test]
fn residual_leaves_shared_inputs_alone() {
    let dev = Device::flex();
    let later = Tensor::<5>::random([2, 3, 2, 3, 4], Distribution::Normal(0.0, 1.0), &dev);
    let earlier = Tensor::<5>::random([2, 3, 4, 5, 6], Distribution::Normal(0.0, 1.0), &dev);
    let before = values(later.clone());
    let y = ops::residual_add(later.clone(), earlier.clone());
    assert_eq!(values(later), before);
    assert_eq!(values(y), values(burn_residual(Tensor::from_data(TensorData::new(before, [2, 3, 2, 3, 4]), &dev), earlier)));
}

/// Central differences of `sum(f(x) · v)` through the merge and the
/// residual, on the plain backend, against the kernels' gradients.
#[test]
fn merge_and_residual_gradients_match_finite_differences() {
    let dev = Device::flex().autodiff();
    let plain = Device::flex();
    let fine = Tensor::<5>::random([2, 2, 6, 3, 9], Distribution::Normal(0.0, 1.0), &dev);
    let coarse = Tensor::<5>::random([2, 3, 2, 1, 3], Distribution::Normal(0.0, 1.0), &dev);
    let (f, c) = (fine.clone().require_grad(), coarse.clone().require_grad());
    let third = Tensor::<5>::random([2, 1, 2, 1, 3], Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random([2, 6, 6, 3, 9], Distribution::Normal(0.0, 1.0), &dev);
    let grads = (ops::upsample_cat(vec![f.clone(), c.clone(), third.clone()], &[1, 3, 3]) * v.clone()).sum().backward();
    let analytic = values(c.grad(&grads).unwrap());
    let (fp, vp) = (Tensor::<5>::from_data(fine.into_data(), &plain), Tensor::<5>::from_data(v.into_data(), &plain));
    let tp = Tensor::<5>::from_data(third.into_data(), &plain);
    let cv = values(coarse.inner());
    let eps = 1e-2f32;
    for idx in [0usize, 5, 17, 35] {
        let eval = |delta: f32| {
            let mut x = cv.clone();
            x[idx] += delta;
            let cp = Tensor::<5>::from_data(TensorData::new(x, [2, 3, 2, 1, 3]), &plain);
            f64::from((ops::upsample_cat(vec![fp.clone(), cp, tp.clone()], &[1, 3, 3]) * vp.clone()).sum().into_scalar::<f32>())
        };
        let numeric = (eval(eps) - eval(-eps)) / (2.0 * f64::from(eps));
        let a = f64::from(analytic[idx]);
        assert!((a - numeric).abs() <= 2e-3 * a.abs().max(1.0), "merge {idx}: analytic {a} vs numeric {numeric}");
    }
    let later = Tensor::<5>::random([2, 4, 2, 3, 2], Distribution::Normal(0.0, 1.0), &dev);
    let earlier = Tensor::<5>::random([2, 3, 4, 5, 4], Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random([2, 4, 2, 3, 2], Distribution::Normal(0.0, 1.0), &dev);
    let e = earlier.clone().require_grad();
    let grads = (ops::residual_add(later.clone() * 1.0, e.clone()) * v.clone()).sum().backward();
    let analytic = values(e.grad(&grads).unwrap());
    let (lp, vp) = (Tensor::<5>::from_data(later.into_data(), &plain), Tensor::<5>::from_data(v.into_data(), &plain));
    let ev = values(earlier.inner());
    for idx in [0usize, 26, 45, 100, 150] {
        let eval = |delta: f32| {
            let mut x = ev.clone();
            x[idx] += delta;
            let ep = Tensor::<5>::from_data(TensorData::new(x, [2, 3, 4, 5, 4]), &plain);
            f64::from((ops::residual_add(lp.clone(), ep) * vp.clone()).sum().into_scalar::<f32>())
        };
        let numeric = (eval(eps) - eval(-eps)) / (2.0 * f64::from(eps));
        let a = f64::from(analytic[idx]);
        assert!((a - numeric).abs() <= 2e-3 * a.abs().max(1.0), "residual {idx}: analytic {a} vs numeric {numeric}");
    }
}

/// Dropout through the kernels is `x · mask / keep` with the mask of its
/// seed, forward and backward (burn's own products with that mask), keeps
/// about `1 - prob` of the values, and is off outside training.
#[test]
fn dropout_equals_burns_products_with_its_mask() {
    let dev = Device::flex().autodiff();
    let (shape, prob, seed) = ([3, 7, 5, 6, 7], 0.2, 0x0123_4567_89ab_cdefu64);
    let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let n: usize = shape.iter().product();
    let mask_values: Vec<f32> = (0..n).map(|i| if ops::dropout::Mask::new(seed, prob).keeps(i) { 1.0 } else { 0.0 }).collect();
    let mask = Tensor::<5>::from_data(TensorData::new(mask_values.clone(), shape), &dev);
    let run = |ours: bool| {
        let xg = x.clone().require_grad();
        let xo = xg.clone() * 1.0;
        let y = if ours { ops::dropout_seeded(xo, seed, prob) } else { xo * mask.clone() * (1.0 / (1.0 - prob)) };
        let grads = (y.clone() * v.clone()).sum().backward();
        (values(y.inner()), values(xg.grad(&grads).unwrap()))
    };
    let (ours, burn) = (run(true), run(false));
    assert_eq!(ours.0, burn.0, "y");
    assert_eq!(ours.1, burn.1, "dx");
    let kept = mask_values.iter().filter(|&&m| m == 1.0).count() as f64 / n as f64;
    assert!((kept - 0.8).abs() < 0.03, "kept {kept}");
    // Outside training (no autodiff) dropout is the identity, as burn's.
    let d = burn::nn::DropoutConfig::new(prob).init();
    let xp = Tensor::<5>::from_data(x.clone().into_data(), &Device::flex());
    assert_eq!(values(ops::dropout(&d, xp.clone())), values(xp));
}

/// The merge, the residual and dropout give the same values and gradients,
/// bit for bit, on 1 and on 3 threads.
#[test]
fn merge_residual_and_dropout_do_not_depend_on_the_thread_count() {
    let dev = Device::flex().autodiff();
    let fine = Tensor::<5>::random([5, 4, 15, 15, 15], Distribution::Normal(0.0, 1.0), &dev);
    let coarse = Tensor::<5>::random([5, 6, 3, 3, 3], Distribution::Normal(0.0, 1.0), &dev);
    let earlier = Tensor::<5>::random([5, 3, 17, 17, 17], Distribution::Normal(0.0, 1.0), &dev);
    let coarser = Tensor::<5>::random([5, 2, 1, 1, 1], Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<5>::random([5, 12, 15, 15, 15], Distribution::Normal(0.0, 1.0), &dev);
    let run = || {
        let (f, c, e) = (fine.clone().require_grad(), coarse.clone().require_grad(), earlier.clone().require_grad());
        let y = ops::upsample_cat(vec![f.clone(), c.clone(), coarser.clone()], &[1, 5, 15]);
        let y = ops::residual_add(y, e.clone());
        let y = ops::dropout_seeded(y, 42, 0.3);
        let grads = (y.clone() * v.clone()).sum().backward();
        (values(y.inner()), values(f.grad(&grads).unwrap()), values(c.grad(&grads).unwrap()), values(e.grad(&grads).unwrap()))
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let (one, three) = (pool(1).install(run), pool(3).install(run));
    assert_eq!(one, three);
}
