//! Set-up shared by the inference tests: a tiny random network and a block
//! of a phantom's prepared CT that is whole tiles of it.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use liverseg_model::config::PathwayConfig;
use burn::tensor::Device;
use liverseg_model::{DeepMedic, NetworkConfig};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_preprocess::{prepare, PreprocessConfig, Prepared};
use liverseg_volume::{Geometry, Volume};

pub fn tiny_network() -> NetworkConfig {
    NetworkConfig {
        name: "tiny".into(),
        pathways: vec![PathwayConfig { factor: 1, features: vec![4, 4, 6] }, PathwayConfig { factor: 3, features: vec![4, 4, 6] }],
        kernel: 3,
        residual: vec![],
        fc: vec![8],
        dropout: 0.0,
        train_patch: 9,
        infer_patch: 12,
        preprocess: PreprocessConfig { spacing_mm: 6.0, ..PreprocessConfig::default() },
    }
}

/// A 24x24x12 block of a phantom's prepared CT (two tiles by two by one),
/// with the whole block counted as body so every tile is computed.
pub fn block(network: &NetworkConfig) -> Prepared {
    let p = generate(&PhantomConfig { seed: 4, ..PhantomConfig::default() });
    let mut prepared = prepare(&p.ct, None, &network.preprocess).unwrap();
    let d = prepared.hu.dims();
    let (dims, start) = ([24, 24, 12], [d[0] / 2 - 12, d[1] / 2 - 12, d[2] / 2 - 6]);
    let g = Geometry::identity(dims, [6.0; 3]).unwrap();
    let hu = Volume::from_fn(g.clone(), |[i, j, k]| *prepared.hu.get(start[0] + i, start[1] + j, start[2] + k));
    prepared.hu = hu;
    prepared.body = Volume::filled(g, 1u8);
    prepared
}

/// The tiny network drawn from seed 7 (some draws of so small a network
/// give a nearly constant map, which could not show a misplaced tile), the
/// block, and its normalised input. The device's seed is shared by the
/// tests of one process, so a file using this holds one such test.
pub fn seeded_net_on_block() -> (NetworkConfig, DeepMedic, Prepared, Volume<f32>) {
    let network = tiny_network();
    let device = Device::flex();
    device.seed(7);
    let net = DeepMedic::new(&network, &device);
    let prepared = block(&network);
    let input = prepared.normalised(&network.preprocess, 0.0);
    (network, net, prepared, input)
}
