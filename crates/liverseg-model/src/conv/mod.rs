//! The network's 3-D convolution, as a burn backend extension.
//!
//! `conv3d` runs [`kernels`] on burn's flex CPU backend, with and without
//! autodiff (a hand-written backward pass registered with burn's autodiff
//! graph, so the optimizer sees ordinary parameter gradients). Any other
//! device (wgpu), dtype or convolution option falls back to burn's own
//! `conv3d`, so the module's weights, files and results are the same either way.

pub mod kernels;

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
use burn::nn::PaddingConfig3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use kernels::ConvShape;

/// The convolution of the network: valid, stride 1, bias always present.
#[backend_extension(Flex, Autodiff)]
pub trait NetworkConv: burn::backend::Backend {
    fn liverseg_conv3d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
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

fn flex_tensor(values: Vec<f32>, shape: [usize; 5]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl NetworkConv for Flex {
    fn liverseg_conv3d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let Some(s) = shape_of(&x, &weight) else {
            return <Flex as ModuleOps<Flex>>::conv3d(x, weight, Some(bias), burn_options());
        };
        let y = kernels::forward(&s, &contiguous_f32(&x), &contiguous_f32(&weight), Some(&contiguous_f32(&bias)));
        let [od, oh, ow] = s.output();
        flex_tensor(y, [s.batch, s.cout, od, oh, ow])
    }
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
                let bias = FlexTensor::from_data(TensorData::new(vec![0.0f32; weight_shape[0]], [weight_shape[0]]));
                grads.register::<Flex>(node.id, <Flex as ModuleOps<Flex>>::conv3d_bias_backward(x, bias, dy));
            }
            return;
        };
        let (dx, dw, db) = kernels::backward(&s, &contiguous_f32(&x), &contiguous_f32(&w), &contiguous_f32(&dy), node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, [s.batch, s.cin, s.input[0], s.input[1], s.input[2]]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex_tensor(dw, [s.cout, s.cin, s.kernel, s.kernel, s.kernel]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [s.cout])));
        }
    }
}

impl<C: CheckpointStrategy> NetworkConv for Autodiff<Flex, C> {
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

/// `conv.forward(x)`, through the kernels on the flex CPU backend.
pub fn forward(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    let on_flex = matches!(x.device().as_dispatch().clone().inner(), DispatchDevice::Flex(_));
    if !on_flex || !kernels_apply(conv) || burn_conv_forced() {
        return conv.forward(x);
    }
    let bias = conv.bias.as_ref().expect("checked by kernels_apply").val();
    let y = Dispatch::liverseg_conv3d(x.into_dispatch(), conv.weight.val().into_dispatch(), bias.into_dispatch());
    Tensor::from_dispatch(y)
}

/// `LIVERSEG_BURN_CONV=1` runs burn's own conv3d instead: for comparing the
/// two in one build (benches, the unchanged-output check), not for users.
fn burn_conv_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("LIVERSEG_BURN_CONV").is_some_and(|v| v == "1"))
}
