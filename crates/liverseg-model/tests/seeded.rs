//! Growth from seeds (another grid's liver, `predict_seeded`) with a real,
//! random network. Its own test binary: the device's seed is shared by the
//! tests of one process, which run at once.

use burn::tensor::Device;
use liverseg_model::infer::{predict, predict_seeded, FlipAverage, TileStrategy};
use liverseg_volume::Volume;

mod common;
use common::seeded_net_on_block;

/// Growth from seeds (another grid's liver) instead of probes: where the
/// full map reaches the threshold the seeded map is the same, with finer
/// units and no probe.
#[test]
fn growth_from_seeds_gives_the_full_map_where_it_reaches_the_threshold() {
    let (network, net, prepared, input) = seeded_net_on_block();
    let device = Device::flex();
    let nets = std::slice::from_ref(&net);
    let (full, _) = predict(nets, &network, &device, &prepared, &input, network.infer_patch, TileStrategy::All, FlipAverage::Off, &mut |_, _| {}).unwrap();
    // A threshold that a fifth of the block reaches, the seeds a corner of it.
    let mut sorted = full.data().to_vec();
    sorted.sort_by(f32::total_cmp);
    let threshold = sorted[sorted.len() * 4 / 5];
    let seeds = Volume::from_fn(full.geometry().clone(), |[i, j, k]| u8::from(i < 12 && j < 12 && k < 6 && *full.get(i, j, k) >= threshold));
    assert!(seeds.data().iter().any(|&s| s != 0));
    let grow = TileStrategy::Grow { threshold, min_ml: 0.0 };
    let (seeded, stats) = predict_seeded(nets, &network, &device, &prepared, &input, network.infer_patch, grow, FlipAverage::Off, Some(&seeds), &mut |_, _| {}).unwrap();
    assert_eq!(stats.probes, 0);
    // Units of a quarter patch (3), not half (6): 8 x 8 x 4 of them.
    assert!(stats.body_tiles == 256, "{stats:?}");
    let mut reached = 0;
    for ((s, f), &seed) in seeded.data().iter().zip(full.data()).zip(seeds.data()) {
        if *s >= threshold || seed != 0 {
            reached += 1;
            assert!((s - f).abs() < 1e-5, "{s} vs {f}");
        }
    }
    assert!(reached > 0);
    // A seed mask on another grid is refused, not misread.
    let other = Volume::filled(liverseg_volume::Geometry::identity([5, 5, 5], [6.0; 3]).unwrap(), 1u8);
    assert!(predict_seeded(nets, &network, &device, &prepared, &input, network.infer_patch, grow, FlipAverage::Off, Some(&other), &mut |_, _| {}).is_err());
}
