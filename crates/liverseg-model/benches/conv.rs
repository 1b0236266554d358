//! The 3x3x3 convolution's forward pass on every layer shape of a preset,
//! by im2col + gemm, the direct kernel, the three shifted products and
//! Winograd's F(4x4x4, 3x3x3), in
//! the same run: the measurement behind `ops::conv::auto_algo`.
//!
//! `cargo bench -p liverseg-model --bench conv [-- --presets fast,paper,models/wide/network.json --repeats 3]`
//!
//! A preset is a name (`fast`, `paper`) or a network config file.
//!
//! Training shapes are batch 16 at the preset's training patch, inference
//! shapes batch 1 at its inference tile. Times are the best of `--repeats`.

use std::time::Instant;

use liverseg_model::ops::conv::{backward, forward_with, Algo, ConvShape};
use liverseg_model::NetworkConfig;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn best_of(repeats: usize, mut f: impl FnMut() -> Vec<f32>) -> (f64, Vec<f32>) {
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out)
}

fn main() {
    // As the liverseg binary does (the bench measures what it runs).
    liverseg_model::memory::keep_freed_memory();
    let presets = arg("--presets", "fast,paper");
    let repeats: usize = arg("--repeats", "3").parse().expect("--repeats: a number");
    println!("threads: {}", rayon::current_num_threads());
    println!("{:<6} {:<5} {:>5} {:>4} {:>4} {:>4} {:>10} {:>10} {:>6} {:>10} {:>6} {:>10} {:>6}", "preset", "use", "batch", "cin", "cout", "in", "im2col ms", "direct ms", "ratio", "shifted ms", "ratio", "winograd ms", "ratio");
    for name in presets.split(',') {
        let config = if name.ends_with(".json") {
            serde_json::from_str::<NetworkConfig>(&std::fs::read_to_string(name).expect("the network file")).expect("a network config")
        } else {
            NetworkConfig::preset(name).expect("a known preset")
        };
        config.validate().expect("a valid network config");
        let name = config.name.clone();
        for (use_, batch, patch) in [("train", 16, config.train_patch), ("infer", 1, config.infer_patch)] {
            let (mut sum_i, mut sum_d, mut sum_s, mut sum_w) = (0.0, 0.0, 0.0, 0.0);
            for (p, input) in config.pathway_inputs(patch).expect("preset patch").iter().enumerate() {
                let mut cin = 1;
                for (l, &cout) in config.pathways[p].features.iter().enumerate() {
                    let n = input.input - l * (config.kernel - 1);
                    let s = ConvShape::new(batch, cin, cout, config.kernel, [n; 3]).expect("layer shape");
                    let (x, w, b) = (data(s.x_len(), 1), data(s.w_len(), 2), data(cout, 3));
                    let (ti, yi) = best_of(repeats, || forward_with(&s, &x, &w, Some(&b), Algo::Im2col));
                    let (td, yd) = best_of(repeats, || forward_with(&s, &x, &w, Some(&b), Algo::Direct));
                    let worst = yi.iter().zip(&yd).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
                    assert!(worst < 1e-4, "direct and im2col differ by {worst} on {s:?}");
                    let (ts, ys) = best_of(repeats, || forward_with(&s, &x, &w, Some(&b), Algo::Shifted));
                    let worst = yi.iter().zip(&ys).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
                    assert!(worst < 1e-4, "shifted and im2col differ by {worst} on {s:?}");
                    let (twg, yw) = best_of(repeats, || forward_with(&s, &x, &w, Some(&b), Algo::Winograd));
                    let worst = yi.iter().zip(&yw).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
                    assert!(worst < 1e-3, "winograd and im2col differ by {worst} on {s:?}");
                    let dy = data(s.y_len(), 4);
                    let (tb, _) = best_of(repeats, || backward(&s, &x, &w, &dy, true).1);
                    let (tw, _) = best_of(repeats, || backward(&s, &x, &w, &dy, false).1);
                    let t = ConvShape::new(batch, cout, cin, 3, [n + 2; 3]).unwrap();
                    let (dyp, wt) = (data(t.x_len(), 5), data(t.w_len(), 6));
                    let (tt, _) = best_of(repeats, || forward_with(&t, &dyp, &wt, None, Algo::Im2col));
                    println!("{name:<6} {use_:<5} {batch:>5} {cin:>4} {cout:>4} {n:>4} {:>10.2} {:>10.2} {:>6.2} {:>10.2} {:>6.2} {:>10.2} {:>6.2}   bwd {:.2} dw {:.2} dx {:.2} dx-as-conv {:.2}", ti * 1e3, td * 1e3, td / ti, ts * 1e3, ts / ti, twg * 1e3, twg / ti, tb * 1e3, tw * 1e3, (tb - tw) * 1e3, tt * 1e3);
                    sum_i += ti;
                    sum_d += td;
                    sum_s += ts;
                    sum_w += twg;
                    cin = cout;
                }
            }
            println!("{name:<6} {use_:<5} all 3x3x3 layers: im2col {:.1} ms, direct {:.1} ms, shifted {:.1} ms, winograd {:.1} ms; direct/im2col {:.2}, shifted/im2col {:.2}, winograd/im2col {:.2}", sum_i * 1e3, sum_d * 1e3, sum_s * 1e3, sum_w * 1e3, sum_d / sum_i, sum_s / sum_i, sum_w / sum_i);
        }
    }
}
