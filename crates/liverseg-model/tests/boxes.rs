//! Inference boxes: the tiles growth picks are computed in boxes merged from
//! neighbouring unit tiles, not cubes; a box's map must be the map its unit
//! tiles give one by one (the network is valid convolutions, and each
//! pathway's input is centred on the box along every axis). A random,
//! untrained network: only the cutting and pasting is under test.

use burn::tensor::Device;
use liverseg_model::infer::{predict, FlipAverage, TileStrategy};

mod common;
use common::seeded_net_on_block;

#[test]
fn merged_boxes_give_the_map_of_single_tiles() {
    let (network, net, prepared, input) = seeded_net_on_block();
    let m = network.patch_multiple();
    for flips in [FlipAverage::Off, FlipAverage::XY] {
        let run = |patch: usize| predict(std::slice::from_ref(&net), &network, &Device::flex(), &prepared, &input, patch, TileStrategy::All, flips, &mut |_, _| {}).unwrap();
        // Tiles of the factors' lcm: the budget holds one unit, no merging.
        let (single, single_stats) = run(m);
        let (merged, merged_stats) = run(network.infer_patch);
        assert_eq!(single_stats.boxes, single_stats.computed_tiles);
        assert!(merged_stats.boxes < single_stats.boxes / 4, "{merged_stats:?} vs {single_stats:?}");
        let worst = single.data().iter().zip(merged.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{flips:?}: largest difference {worst}");
        // The map is not constant (else any cutting would pass).
        let (lo, hi) = single.data().iter().fold((1.0f32, 0.0f32), |(l, h), &p| (l.min(p), h.max(p)));
        assert!(hi - lo > 1e-3, "{lo}..{hi}");
    }
}
