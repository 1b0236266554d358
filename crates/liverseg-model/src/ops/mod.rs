//! The network's costliest operations on the CPU, as a burn backend
//! extension: the 3-D convolution ([`conv`]), PReLU ([`prelu`]), batch
//! norm ([`batch_norm`]), the merge of the pathways and the residual
//! connections ([`merge`]) and dropout ([`dropout`](mod@dropout)).
//!
//! [`conv3d`], [`prelu`](fn@prelu), [`bn_prelu`], [`upsample_cat`],
//! [`residual_add`] and [`dropout`](fn@dropout) run these kernels on
//! burn's flex CPU backend for f32 tensors, with and without autodiff
//! (hand-written backward passes registered with burn's autodiff graph, so
//! the optimizer sees ordinary parameter gradients). Any other device (wgpu),
//! dtype or option takes burn's own operation, so the modules' weights, files
//! and results are the same either way. That choice is made once, in
//! [`kernels_take`], before a tensor reaches the extension: the kernels below
//! it may assume f32.

pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod merge;
pub mod prelu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, DType, Dispatch, DispatchDevice, Flex, TensorMetadata};
use burn::nn::conv::Conv3d;
use burn::nn::{BatchNorm, Dropout, PRelu, PaddingConfig3d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Int, Tensor, TensorData};

use conv::ConvShape;

/// The network's operations: a valid, stride-1 convolution with bias, PReLU
/// with one slope per channel (dim 1), and batch norm.
#[backend_extension(Flex, Autodiff)]
pub trait NetworkOps: burn::backend::Backend {
    fn liverseg_conv3d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    fn liverseg_prelu(x: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Per-channel batch statistics of `x`, as `[2, channels]` (mean, biased
    /// variance): not differentiated (they feed the running statistics).
    fn liverseg_bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// PReLU (slopes `alpha`) of the training batch norm of `x` with its own
    /// batch statistics `mean` and `var` (from `liverseg_bn_stats`),
    /// differentiated through them too.
    fn liverseg_bn_train(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, alpha: FloatTensor<Self>, mean: FloatTensor<Self>, var: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self>;
    /// PReLU of `x · scale[c] + shift[c]`: inference only (a folded batch norm).
    fn liverseg_affine_prelu(x: FloatTensor<Self>, scale: FloatTensor<Self>, shift: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `a`, `b` and `c` up-sampled by repetition by `factors`, concatenated
    /// along the channels: the merge of three pathways. (Three tensors, not a
    /// `Vec`: burn's extension macro cannot carry an autodiff graph through a
    /// `Vec` of tensors.)
    fn liverseg_upsample_cat(a: FloatTensor<Self>, b: FloatTensor<Self>, c: FloatTensor<Self>, factors: [usize; 3]) -> FloatTensor<Self>;
    /// `later` plus the centre crop of `earlier` on their shared channels.
    fn liverseg_residual(later: FloatTensor<Self>, earlier: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Dropout of `x` with probability `prob` and the mask of `seed`
    /// ([`dropout::Mask`]).
    fn liverseg_dropout(x: FloatTensor<Self>, seed: u64, prob: f64) -> FloatTensor<Self>;
}

fn burn_options() -> ConvOptions<3> {
    ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
}

/// The shape of a valid conv of `x` by `weight`, when the kernels handle it.
fn shape_of(x: &FlexTensor, weight: &FlexTensor) -> Option<ConvShape> {
    let (xs, ws) = (x.shape(), weight.shape());
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || xs.num_dims() != 5 || ws.num_dims() != 5 {
        return None;
    }
    let k = ws[2];
    if ws[3] != k || ws[4] != k || ws[1] != xs[1] {
        return None;
    }
    ConvShape::new(xs[0], xs[1], ws[0], k, [xs[2], xs[3], xs[4]])
}

fn contiguous_f32(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

fn flex_tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `t` as a contiguous f32 tensor that owns its whole buffer alone, for an
/// in-place pass: `t` itself when it already is one (no copy), else a copy.
fn into_owned_f32(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    let whole = t.is_unique() && t.as_slice::<f32>().is_some_and(|s| s.len() == n) && t.storage::<f32>().len() == n;
    if whole {
        t
    } else {
        flex_tensor(contiguous_f32(&t).into_owned(), t.shape())
    }
}

fn dims5(t: &FlexTensor) -> [usize; 5] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3], s[4]]
}

/// The merge of `xs` by `factors`; the caller ([`upsample_cat`]) checked
/// that it fits.
fn merge_shape(xs: &[&FlexTensor], factors: &[usize]) -> merge::MergeShape {
    let parts = xs
        .iter()
        .zip(factors)
        .map(|(x, &factor)| {
            let [_, channels, d, h, w] = dims5(x);
            merge::Part { channels, dims: [d, h, w], factor }
        })
        .collect();
    merge::MergeShape::new(dims5(xs[0])[0], parts).expect("checked by upsample_cat")
}

fn residual_shape(later: &FlexTensor, earlier: &FlexTensor) -> merge::ResidualShape {
    let ([b, c, d, h, w], [_, ce, de, he, we]) = (dims5(later), dims5(earlier));
    merge::ResidualShape::new(b, c, [d, h, w], ce, [de, he, we]).expect("checked by residual_add")
}

impl NetworkOps for Flex {
    fn liverseg_conv3d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let Some(s) = shape_of(&x, &weight) else {
            return <Flex as ModuleOps<Flex>>::conv3d(x, weight, Some(bias), burn_options());
        };
        let y = conv::forward(&s, &contiguous_f32(&x), &contiguous_f32(&weight), Some(&contiguous_f32(&bias)));
        let [od, oh, ow] = s.output();
        flex_tensor(y, [s.batch, s.cout, od, oh, ow])
    }

    fn liverseg_prelu(x: FlexTensor, alpha: FlexTensor) -> FlexTensor {
        let Some(p) = prelu_shape(&x, &alpha) else {
            return <Flex as burn::backend::ops::ActivationOps<Flex>>::prelu(x, alpha);
        };
        let y = prelu::forward(&p, &contiguous_f32(&x), &contiguous_f32(&alpha));
        flex_tensor(y, x.shape())
    }

    fn liverseg_bn_stats(x: FlexTensor) -> FlexTensor {
        let s = bn_shape(&x).expect("f32 and non-empty: checked by kernels_take and bn_prelu");
        let (mean, var) = batch_norm::statistics(&s, &contiguous_f32(&x));
        flex_tensor([mean, var].concat(), [2, s.channels])
    }

    fn liverseg_bn_train(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, alpha: FlexTensor, mean: FlexTensor, var: FlexTensor, epsilon: f64) -> FlexTensor {
        let s = bn_shape(&x).expect("f32 and non-empty: checked by kernels_take and bn_prelu");
        let f = |t: &FlexTensor| contiguous_f32(t).into_owned();
        let y = batch_norm::normalise_prelu(&s, &contiguous_f32(&x), &f(&mean), &f(&var), &f(&gamma), &f(&beta), Some(&f(&alpha)), epsilon);
        flex_tensor(y, x.shape())
    }

    fn liverseg_affine_prelu(x: FlexTensor, scale: FlexTensor, shift: FlexTensor, alpha: FlexTensor) -> FlexTensor {
        let p = prelu_shape(&x, &alpha).expect("f32 and non-empty: checked by kernels_take and bn_prelu");
        let (scale, shift) = (contiguous_f32(&scale), contiguous_f32(&shift));
        let y = prelu::forward_affine(&p, &contiguous_f32(&x), Some((&scale, &shift)), &contiguous_f32(&alpha));
        flex_tensor(y, x.shape())
    }

    fn liverseg_upsample_cat(a: FlexTensor, b: FlexTensor, c: FlexTensor, factors: [usize; 3]) -> FlexTensor {
        let s = merge_shape(&[&a, &b, &c], &factors);
        let data = [contiguous_f32(&a), contiguous_f32(&b), contiguous_f32(&c)];
        let y = merge::upsample_cat(&s, &data.iter().map(|d| &d[..]).collect::<Vec<_>>());
        flex_tensor(y, [s.batch, s.channels(), s.out[0], s.out[1], s.out[2]])
    }

    fn liverseg_residual(later: FlexTensor, earlier: FlexTensor) -> FlexTensor {
        let s = residual_shape(&later, &earlier);
        let mut y = into_owned_f32(later);
        merge::residual_add(&s, y.storage_mut::<f32>(), &contiguous_f32(&earlier));
        y
    }

    fn liverseg_dropout(x: FlexTensor, seed: u64, prob: f64) -> FlexTensor {
        let mut y = into_owned_f32(x);
        dropout::Mask::new(seed, prob).apply(y.storage_mut::<f32>());
        y
    }
}

/// The batch-norm layout the kernels handle: f32 `[batch, channels, ...]`.
fn bn_shape(x: &FlexTensor) -> Option<batch_norm::BnShape> {
    let xs = x.shape();
    if x.dtype() != DType::F32 || xs.num_dims() < 2 || xs[0] == 0 || xs[1] == 0 {
        return None;
    }
    Some(batch_norm::BnShape { batch: xs[0], channels: xs[1], inner: xs.num_elements() / (xs[0] * xs[1]) })
}

/// The PReLU layout the kernels handle: f32 `[batch, channels, ...]` with one
/// slope per channel or one for all.
fn prelu_shape(x: &FlexTensor, alpha: &FlexTensor) -> Option<prelu::PreluShape> {
    let (xs, a) = (x.shape(), alpha.shape());
    if x.dtype() != DType::F32 || alpha.dtype() != DType::F32 || xs.num_dims() < 2 || a.num_dims() != 1 {
        return None;
    }
    let channels = xs[1];
    (a[0] == channels || a[0] == 1).then(|| prelu::PreluShape { outer: xs[0], channels, inner: xs.num_elements() / (xs[0] * channels).max(1), shared: a[0] == 1 && channels != 1 })
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_state);
        let weight_shape = w.shape();
        let Some(s) = shape_of(&x, &w) else {
            // Same fallback as the forward pass: burn's own gradients.
            let opts = burn_options();
            if let Some(node) = node_x {
                grads.register::<Flex>(node.id, <Flex as ModuleOps<Flex>>::conv3d_x_backward(x.clone(), w.clone(), dy.clone(), opts.clone()));
            }
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, <Flex as ModuleOps<Flex>>::conv3d_weight_backward(x.clone(), w.clone(), dy.clone(), opts));
            }
            if let Some(node) = node_b {
                // Read for its shape only.
                let bias = flex_tensor(vec![0.0f32; weight_shape[0]], [weight_shape[0]]);
                grads.register::<Flex>(node.id, <Flex as ModuleOps<Flex>>::conv3d_bias_backward(x, bias, dy));
            }
            return;
        };
        let (dx, dw, db) = conv::backward(&s, &contiguous_f32(&x), &contiguous_f32(&w), &contiguous_f32(&dy), node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, [s.batch, s.cin, s.input[0], s.input[1], s.input[2]]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex_tensor(dw, [s.cout, s.cin, s.kernel, s.kernel, s.kernel]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex_tensor(db, [s.cout]));
        }
    }
}

#[derive(Debug)]
struct PreluBackward;

impl Backward<Flex, 2> for PreluBackward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_a] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, a_state) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let alpha: FlexTensor = checkpointer.retrieve_node_output(a_state);
        let p = prelu_shape(&x, &alpha).expect("the forward pass used the kernels, so the shapes fit");
        let (dx, da) = prelu::backward(&p, &contiguous_f32(&x), &contiguous_f32(&alpha), &contiguous_f32(&dy), node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, x.shape()));
        }
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, flex_tensor(da, alpha.shape()));
        }
    }
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 4> for BatchNormBackward {
    /// x's checkpoint, then gamma, beta, alpha, mean, var (small: kept as
    /// they are) and epsilon.
    type State = (NodeId, [FlexTensor; 5], f64);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_g, node_b, node_a] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, small, eps) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let s = bn_shape(&x).expect("the forward pass used the kernels");
        let alpha_shape = small[2].shape();
        let [gamma, beta, alpha, mean, var] = small.map(|t| contiguous_f32(&t).into_owned());
        let (dx, dg, db, da) = batch_norm::backward_prelu(&s, &contiguous_f32(&x), &gamma, &beta, Some(&alpha), &mean, &var, eps, &contiguous_f32(&dy), node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, x.shape()));
        }
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, flex_tensor(dg, [s.channels]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex_tensor(db, [s.channels]));
        }
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, flex_tensor(da, alpha_shape));
        }
    }
}

#[derive(Debug)]
struct MergeBackward;

impl Backward<Flex, 3> for MergeBackward {
    type State = merge::MergeShape;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let parts = merge::upsample_cat_backward(&s, &contiguous_f32(&dy));
        for ((node, dx), p) in ops.parents.into_iter().zip(parts).zip(&s.parts) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex_tensor(dx, [s.batch, p.channels, p.dims[0], p.dims[1], p.dims[2]]));
            }
        }
    }
}

#[derive(Debug)]
struct ResidualBackward;

impl Backward<Flex, 2> for ResidualBackward {
    type State = merge::ResidualShape;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_later, node_earlier] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        if let Some(node) = node_earlier {
            let de = merge::residual_backward(&s, &contiguous_f32(&dy));
            grads.register::<Flex>(node.id, flex_tensor(de, [s.batch, s.earlier_channels, s.earlier_dims[0], s.earlier_dims[1], s.earlier_dims[2]]));
        }
        if let Some(node) = node_later {
            // The later output's gradient is the output's, shared, not copied.
            grads.register::<Flex>(node.id, dy);
        }
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = (u64, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let (seed, prob) = ops.state;
            // The same mask and scale on the gradient, in place.
            let mut dx = into_owned_f32(dy);
            dropout::Mask::new(seed, prob).apply(dx.storage_mut::<f32>());
            grads.register::<Flex>(node.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> NetworkOps for Autodiff<Flex, C> {
    fn liverseg_bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // bn_prelu computes the statistics on the tensor without autodiff.
        let _ = x;
        unreachable!("liverseg_bn_stats takes tensors without autodiff")
    }

    fn liverseg_bn_train(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, alpha: FloatTensor<Self>, mean: FloatTensor<Self>, var: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        let (mean, var) = (mean.into_primitive(), var.into_primitive());
        match BatchNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node(), alpha.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let (g, b, a) = (gamma.into_primitive(), beta.into_primitive(), alpha.into_primitive());
                let y = Flex::liverseg_bn_train(x.into_primitive(), g.clone(), b.clone(), a.clone(), mean.clone(), var.clone(), epsilon);
                prep.finish((x_state, [g, b, a, mean, var], epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::liverseg_bn_train(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                alpha.into_primitive(),
                mean,
                var,
                epsilon,
            )),
        }
    }

    fn liverseg_affine_prelu(x: FloatTensor<Self>, scale: FloatTensor<Self>, shift: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self> {
        // bn_prelu sends only tensors without autodiff here; a tracked graph
        // takes burn's BatchNorm (batch statistics) and `prelu` instead.
        let _ = (x, scale, shift, alpha);
        unreachable!("liverseg_affine_prelu is inference-only")
    }

    fn liverseg_upsample_cat(a: FloatTensor<Self>, b: FloatTensor<Self>, c: FloatTensor<Self>, factors: [usize; 3]) -> FloatTensor<Self> {
        let shape = merge_shape(&[a.primitive(), b.primitive(), c.primitive()], &factors);
        let nodes = [a.node(), b.node(), c.node()];
        let y = Flex::liverseg_upsample_cat(a.into_primitive(), b.into_primitive(), c.into_primitive(), factors);
        match MergeBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(shape, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn liverseg_residual(later: FloatTensor<Self>, earlier: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = residual_shape(later.primitive(), earlier.primitive());
        let nodes = [later.node(), earlier.node()];
        let y = Flex::liverseg_residual(later.into_primitive(), earlier.into_primitive());
        match ResidualBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(shape, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn liverseg_dropout(x: FloatTensor<Self>, seed: u64, prob: f64) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let y = Flex::liverseg_dropout(x.into_primitive(), seed, prob);
        match DropoutBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((seed, prob), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn liverseg_prelu(x: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self> {
        // Shapes the kernels do not handle never reach here: `prelu` checks them.
        match PreluBackward.prepare::<C>([x.node(), alpha.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let a_state = prep.checkpoint(&alpha);
                let y = Flex::liverseg_prelu(x.into_primitive(), alpha.into_primitive());
                prep.finish((x_state, a_state), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::liverseg_prelu(x.into_primitive(), alpha.into_primitive())),
        }
    }

    fn liverseg_conv3d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let y = Flex::liverseg_conv3d(x.into_primitive(), weight.into_primitive(), bias.into_primitive());
                prep.finish((x_state, w_state), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::liverseg_conv3d(x.into_primitive(), weight.into_primitive(), bias.into_primitive())),
        }
    }
}

/// Whether `conv` is the convolution the kernels implement.
fn kernels_apply(conv: &Conv3d) -> bool {
    conv.stride == [1, 1, 1] && conv.dilation == [1, 1, 1] && conv.groups == 1 && matches!(conv.padding, PaddingConfig3d::Valid) && conv.bias.is_some()
}

/// Whether `x` goes to the kernels: an f32 tensor on the flex backend, unless
/// burn's own operations were asked for.
fn kernels_take<const D: usize>(x: &Tensor<D>) -> bool {
    kernels_fit(x) && !burn_ops_forced()
}

/// Whether `x` is an f32 tensor on the flex backend.
fn kernels_fit<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(x.device().as_dispatch().clone().inner(), DispatchDevice::Flex(_)) && x.dtype() == DType::F32
}

/// `conv.forward(x)`, through the kernels on the flex CPU backend.
pub fn conv3d(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    if !kernels_take(&x) || !kernels_apply(conv) {
        return conv.forward(x);
    }
    let bias = conv.bias.as_ref().expect("checked by kernels_apply").val();
    let y = Dispatch::liverseg_conv3d(x.into_dispatch(), conv.weight.val().into_dispatch(), bias.into_dispatch());
    Tensor::from_dispatch(y)
}

/// `prelu.forward(x)`, through the kernels on the flex CPU backend.
pub fn prelu(prelu: &PRelu, x: Tensor<5>) -> Tensor<5> {
    let alpha = prelu.alpha.val();
    let channels_fit = alpha.dims()[0] == x.dims()[1] || alpha.dims()[0] == 1;
    if !kernels_take(&x) || !channels_fit {
        return prelu.forward(x);
    }
    Tensor::from_dispatch(Dispatch::liverseg_prelu(x.into_dispatch(), alpha.into_dispatch()))
}

/// `act(norm(x))` for a block's pre-activation. Without autodiff (inference,
/// validation) the batch norm uses its running statistics, an affine map per
/// channel, which is folded into PReLU's pass; in training it uses the batch
/// statistics, and batch norm and PReLU are one operation
/// ([`batch_norm_train`]).
pub fn bn_prelu(norm: &BatchNorm, act: &PRelu, x: Tensor<5>) -> Tensor<5> {
    let channels = x.dims()[1];
    let alpha = act.alpha.val();
    let fits = (alpha.dims()[0] == channels || alpha.dims()[0] == 1) && x.dims()[0] > 0 && channels > 0;
    if !kernels_take(&x) || !fits {
        return prelu(act, norm.forward(x));
    }
    if x.device().is_autodiff() {
        if norm.training.is_enabled() {
            return batch_norm_train(norm, act, x);
        }
        return prelu(act, norm.forward(x));
    }
    let dev = x.device();
    let host = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 statistics");
    let (gamma, beta) = (host(norm.gamma.val()), host(norm.beta.val()));
    let (mean, var) = (host(norm.running_mean.value()), host(norm.running_var.value()));
    // Same arithmetic as burn's inference batch norm, folded: (x - m) / sqrt(v + e) * g + b.
    let scale: Vec<f32> = gamma.iter().zip(&var).map(|(&g, &v)| g / (f64::from(v) + norm.epsilon).sqrt() as f32).collect();
    let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
    let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [channels]), &dev).into_dispatch();
    Tensor::from_dispatch(Dispatch::liverseg_affine_prelu(x.into_dispatch(), t(scale), t(shift), alpha.into_dispatch()))
}

/// `act(norm(x))` with burn's `BatchNorm::forward` in training, through the
/// kernels: batch statistics, the output differentiated through them, and
/// the running statistics moved by `momentum` exactly as burn does.
fn batch_norm_train(norm: &BatchNorm, act: &PRelu, x: Tensor<5>) -> Tensor<5> {
    let channels = x.dims()[1];
    let device = x.device();
    let stats: Tensor<2> = Tensor::from_dispatch(Dispatch::liverseg_bn_stats(x.clone().inner().into_dispatch())).autodiff();
    let mean: Tensor<1> = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let var: Tensor<1> = stats.slice([1..2, 0..channels]).reshape([channels]);
    let y = Tensor::from_dispatch(Dispatch::liverseg_bn_train(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        act.alpha.val().into_dispatch(),
        mean.clone().into_dispatch(),
        var.clone().into_dispatch(),
        norm.epsilon,
    ));
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - norm.momentum).add(mean.detach().mul_scalar(norm.momentum));
    let running_var = running_var.mul_scalar(1.0 - norm.momentum).add(var.detach().mul_scalar(norm.momentum));
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
    y
}

/// `Tensor::cat` of `upsample_repeat(xs[p], factors[p])`: the merge of the
/// pathways, through the kernels on the flex CPU backend.
pub fn upsample_cat(xs: Vec<Tensor<5>>, factors: &[usize]) -> Tensor<5> {
    assert_eq!(xs.len(), factors.len(), "one factor per pathway");
    let parts = xs.iter().zip(factors).map(|(x, &factor)| {
        let [_, channels, d, h, w] = x.dims();
        merge::Part { channels, dims: [d, h, w], factor }
    });
    let same_batch = xs.iter().all(|x| x.dims()[0] == xs[0].dims()[0]);
    let fits = xs.len() == 3 && same_batch && xs.iter().all(kernels_take) && merge::MergeShape::new(0, parts.collect()).is_some();
    if !fits {
        // Other pathway counts too: the kernel takes three (as both presets have).
        let up = xs.into_iter().zip(factors).map(|(x, &f)| crate::network::upsample_repeat(x, f)).collect();
        return Tensor::cat(up, 1);
    }
    let [a, b, c]: [Tensor<5>; 3] = xs.try_into().unwrap_or_else(|_| unreachable!("three, checked"));
    let factors = [factors[0], factors[1], factors[2]];
    Tensor::from_dispatch(Dispatch::liverseg_upsample_cat(a.into_dispatch(), b.into_dispatch(), c.into_dispatch(), factors))
}

/// DeepMedic's residual connection: `earlier`, centre-cropped to `later`'s
/// spatial size, added to `later`'s first channels (zero-padded when it has
/// fewer, cut when it has more); through the kernels on the flex backend,
/// in place on `later` when nothing else holds it.
pub fn residual_add(later: Tensor<5>, earlier: Tensor<5>) -> Tensor<5> {
    let ([b, c, d, h, w], [be, ce, de, he, we]) = (later.dims(), earlier.dims());
    let fits = b == be && kernels_take(&later) && kernels_take(&earlier) && merge::ResidualShape::new(b, c, [d, h, w], ce, [de, he, we]).is_some();
    if !fits {
        return crate::network::add_residual_burn(later, earlier);
    }
    Tensor::from_dispatch(Dispatch::liverseg_residual(later.into_dispatch(), earlier.into_dispatch()))
}

/// `dropout.forward(x)`: the same conditions (training, an autodiff device,
/// a non-zero probability), on the flex backend with a hashed mask whose
/// seed is drawn from burn's generator ([`dropout::Mask`]): a seeded run
/// repeats, with other masks than burn's.
pub fn dropout(dropout: &Dropout, x: Tensor<5>) -> Tensor<5> {
    if !dropout.training.is_enabled() || !x.device().is_autodiff() || dropout.prob == 0.0 || !kernels_take(&x) {
        return dropout.forward(x);
    }
    // Two draws of at least 32 random bits each, whatever burn's int type.
    let draws = Tensor::<1, Int>::random([2], Distribution::Default, &x.device()).into_data().convert::<i64>();
    let draws = draws.try_to_vec::<i64>().expect("i64 after convert");
    let seed = (u64::from(draws[0] as u32) << 32) | u64::from(draws[1] as u32);
    dropout_seeded(x, seed, dropout.prob)
}

/// Dropout of `x` with probability `prob` and the mask of `seed` (training:
/// `x` on an autodiff flex device), the kernel under [`dropout`](fn@dropout)
/// with the seed given, for tests: always the kernel, even when burn's
/// operations are asked for (burn's dropout takes no seed).
pub fn dropout_seeded(x: Tensor<5>, seed: u64, prob: f64) -> Tensor<5> {
    assert!(kernels_fit(&x), "dropout_seeded takes f32 tensors on the flex backend");
    Tensor::from_dispatch(Dispatch::liverseg_dropout(x.into_dispatch(), seed, prob))
}

/// 0: not yet read from the environment, 1: our kernels, 2: burn's own ops.
static BURN_OPS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Run burn's own conv3d, PReLU, batch norm, merge of the pathways, residual
/// add and dropout instead of the kernels (or back): for
/// comparing the two in one process (the network bench, the unchanged-mask
/// check), not for users. `LIVERSEG_BURN_OPS=1` sets it at start.
pub fn use_burn_ops(on: bool) {
    BURN_OPS.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
}

fn burn_ops_forced() -> bool {
    use std::sync::atomic::Ordering;
    match BURN_OPS.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("LIVERSEG_BURN_OPS").is_some_and(|v| v == "1");
            use_burn_ops(on);
            on
        }
        v => v == 2,
    }
}
