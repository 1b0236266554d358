//! Test-time flip averaging: mirroring every tile's pathway inputs about the
//! tile centre must be exactly the same as mirroring the whole volume (on a
//! grid whose dims are whole tiles, so the tile grid is its own mirror), and
//! averaging the views. A random, untrained network: only the arithmetic of
//! the views is under test.

use burn::tensor::Device;
use liverseg_imgproc::filters::{flip_data, Axis};
use liverseg_model::infer::{predict, FlipAverage, TileStrategy};
use liverseg_model::{DeepMedic, NetworkConfig};
use liverseg_preprocess::Prepared;
use liverseg_volume::Volume;

mod common;
use common::{block, tiny_network};

fn run(net: &DeepMedic, network: &NetworkConfig, prepared: &Prepared, flips: FlipAverage) -> Vec<f32> {
    let input = prepared.normalised(&network.preprocess, 0.0);
    let (p, stats) = predict(std::slice::from_ref(net), network, &Device::flex(), prepared, &input, network.infer_patch, TileStrategy::All, flips, &mut |_, _| {}).unwrap();
    assert_eq!(stats.computed_tiles, 32);
    p.data().to_vec()
}

fn mirrored(prepared: &Prepared, axes: &[Axis]) -> Prepared {
    let mut m = prepared.clone();
    for &a in axes {
        m.hu = flip_data(&m.hu, a);
    }
    m
}

fn unmirror(data: Vec<f32>, like: &Volume<f32>, axes: &[Axis]) -> Vec<f32> {
    let mut v = Volume::new(like.geometry().clone(), data).unwrap();
    for &a in axes {
        v = flip_data(&v, a);
    }
    v.data().to_vec()
}

fn assert_close(a: &[f32], b: &[f32]) {
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "largest difference {worst}");
}

#[test]
fn per_tile_mirroring_equals_mirroring_the_volume() {
    let network = tiny_network();
    let net = DeepMedic::new(&network, &Device::flex());
    let prepared = block(&network);
    let views: Vec<Vec<f32>> = [vec![], vec![Axis::X], vec![Axis::Y], vec![Axis::X, Axis::Y]]
        .iter()
        .map(|axes| unmirror(run(&net, &network, &mirrored(&prepared, axes), FlipAverage::Off), &prepared.hu, axes))
        .collect();
    let plain = &views[0];
    // The views differ (else the test could not see a wrong mirroring).
    let spread = plain.iter().zip(&views[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(spread > 1e-4, "a random network should not be mirror-symmetric ({spread})");

    let x: Vec<f32> = plain.iter().zip(&views[1]).map(|(a, b)| (a + b) / 2.0).collect();
    assert_close(&run(&net, &network, &prepared, FlipAverage::X), &x);
    let xy: Vec<f32> = (0..plain.len()).map(|i| views.iter().map(|v| v[i]).sum::<f32>() / 4.0).collect();
    assert_close(&run(&net, &network, &prepared, FlipAverage::XY), &xy);
    assert_close(&run(&net, &network, &prepared, FlipAverage::Off), plain);
}

#[test]
fn flip_averaging_parses_and_refuses_unknown_values() {
    assert_eq!("x".parse::<FlipAverage>().unwrap(), FlipAverage::X);
    assert_eq!("xy".parse::<FlipAverage>().unwrap(), FlipAverage::XY);
    assert_eq!("off".parse::<FlipAverage>().unwrap(), FlipAverage::Off);
    let e = "z".parse::<FlipAverage>().unwrap_err().to_string();
    assert!(e.contains("expected off, x or xy"), "{e}");
}
