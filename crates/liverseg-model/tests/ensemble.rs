//! Ensembles (`segment --model a.lsm --model b.lsm`): the probability is the
//! mean of the members', the default threshold the mean of theirs, one model
//! alone is unchanged, members may differ in width but not in how they read
//! the CT (grid, pre-processing, tile, receptive fields: refused with the file
//! named). Random, untrained networks: only the arithmetic of
//! the averaging is under test.

use burn::tensor::Device;
use liverseg_model::checkpoint::{self, ModelInfo};
use liverseg_model::infer::TileStrategy;
use liverseg_model::{DeepMedic, NetworkConfig, Segmenter};
use liverseg_preprocess::Prepared;

mod common;
use common::{block, tiny_network};

fn save(dir: &std::path::Path, name: &str, network: &NetworkConfig, threshold: f32) -> std::path::PathBuf {
    let net = DeepMedic::new(network, &Device::flex());
    let info = ModelInfo { id: format!("tiny-{name}"), network: network.clone(), threshold, training: serde_json::Value::Null };
    let path = dir.join(format!("{name}.lsm"));
    checkpoint::save(&path, &net, &info).unwrap();
    path
}

fn probability(s: &Segmenter, network: &NetworkConfig, prepared: &Prepared) -> Vec<f32> {
    let input = prepared.normalised(&network.preprocess, 0.0);
    let (p, stats) = s.probability_with(prepared, &input, TileStrategy::All, &mut |_, _| {}).unwrap();
    assert_eq!(stats.computed_tiles, 32);
    p.data().to_vec()
}

#[test]
fn an_ensemble_averages_its_members_probabilities_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let network = tiny_network();
    let prepared = block(&network);
    let (a, b) = (save(dir.path(), "a", &network, 0.4), save(dir.path(), "b", &network, 0.7));
    let pa = probability(&Segmenter::load(&a, Device::flex()).unwrap(), &network, &prepared);
    let pb = probability(&Segmenter::load(&b, Device::flex()).unwrap(), &network, &prepared);
    // Two differently initialised networks (else a wrong average could pass).
    let spread = pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(spread > 1e-4, "the two random networks should differ ({spread})");

    let both = Segmenter::load_ensemble(&[a.clone(), b.clone()], Device::flex()).unwrap();
    assert_eq!(both.members(), 2);
    assert!((both.info().threshold - 0.55).abs() < 1e-6, "{}", both.info().threshold);
    assert_eq!(both.info().id, "ensemble(tiny-a+tiny-b)");
    let mean = probability(&both, &network, &prepared);
    let worst = mean.iter().zip(pa.iter().zip(&pb)).map(|(m, (x, y))| (m - (x + y) / 2.0).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "largest difference from the mean {worst}");

    // A wider network that reads the CT alike joins the mean too.
    let wide = NetworkConfig {
        name: "tiny-wide".into(),
        pathways: network.pathways.iter().map(|p| liverseg_model::PathwayConfig { factor: p.factor, features: p.features.iter().map(|f| f + 2).collect() }).collect(),
        fc: vec![12, 6],
        residual: vec![3],
        ..network.clone()
    };
    let w = save(dir.path(), "w", &wide, 0.5);
    let pw = probability(&Segmenter::load(&w, Device::flex()).unwrap(), &wide, &prepared);
    let mixed = Segmenter::load_ensemble(&[a.clone(), w], Device::flex()).unwrap();
    assert_eq!((mixed.members(), mixed.info().network.name.as_str()), (2, "tiny+tiny-wide"));
    let mean = probability(&mixed, &network, &prepared);
    let worst = mean.iter().zip(pa.iter().zip(&pw)).map(|(m, (x, y))| (m - (x + y) / 2.0).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "mixed widths: largest difference from the mean {worst}");

    // One file is that model alone, bit for bit, with its own id and threshold.
    let one = Segmenter::load_ensemble(std::slice::from_ref(&a), Device::flex()).unwrap();
    assert_eq!((one.members(), one.info().id.as_str(), one.info().threshold), (1, "tiny-a", 0.4));
    assert_eq!(probability(&one, &network, &prepared), pa);
}

#[test]
fn models_that_read_the_ct_differently_or_none_at_all_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let network = tiny_network();
    let a = save(dir.path(), "a", &network, 0.5);
    let deeper = {
        let mut n = tiny_network();
        n.pathways[1].features.push(6);
        n
    };
    let finer = NetworkConfig { preprocess: liverseg_preprocess::PreprocessConfig { spacing_mm: 4.0, ..network.preprocess.clone() }, ..tiny_network() };
    let other_tile = NetworkConfig { infer_patch: 6, ..tiny_network() };
    for (name, other) in [("deeper", deeper), ("finer", finer), ("tile", other_tile)] {
        let c = save(dir.path(), name, &other, 0.5);
        let e = Segmenter::load_ensemble(&[a.clone(), c.clone()], Device::flex()).err().expect("refused").to_string();
        assert!(e.contains(&c.display().to_string()) && e.contains("reads the CT differently"), "{name}: {e}");
    }
    let e = Segmenter::load_ensemble(&[], Device::flex()).err().expect("refused").to_string();
    assert!(e.contains("no model file given"), "{e}");
    let missing = dir.path().join("missing.lsm");
    let e = Segmenter::load_ensemble(&[a, missing.clone()], Device::flex()).err().expect("refused").to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
}
