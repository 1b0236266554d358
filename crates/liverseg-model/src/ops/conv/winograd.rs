//! The forward pass of a 3x3x3 convolution by Winograd's minimal filtering,
//! F(4x4x4, 3x3x3): each 4x4x4 block of outputs (a "tile") comes from its
//! 6x6x6 input patch `d` and the kernel `g` as
//! `Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A` on every axis, so the products of one
//! (input channel, output channel) pair cost 216 multiplies a tile instead
//! of 27 x 64 = 1728 (8x fewer), and the 216 element-wise products over the
//! channels are 216 small matrix products `U_ξ (cout x cin) · V_ξ (cin x
//! tiles)`. The transforms cost adds, not multiplies, and are done once per
//! input channel and once per output channel.
//!
//! Why by hand: neither burn nor the `gemm` crate has one, and with this
//! network's 12-24 channels the 216 products are too small for a general
//! gemm call each; here they run as one register-blocked loop (6 output
//! channels x 16 tiles, twelve 8-lane accumulators) over data the input
//! transform has just written to cache.
//!
//! Points 0, ±1, ±2 and ∞ (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2016): the transforms' largest coefficient is 8, so in
//! f32 the result differs from the direct sum in the last few bits (the
//! tests bound it).
//!
//! Tiles past the output's edge read zeros and their outputs are dropped.
//!
//! Lanes hold tiles. Where a row holds eight x-adjacent tiles (a "run",
//! [`chunks`]), their patches are taken apart from adjacent values by
//! vector unpacks and their outputs put back the same way; other tiles are
//! gathered and scattered lane by lane.

use rayon::prelude::*;

use super::{madd, ConvShape, SharedMut};

/// Output tile edge, transformed tile edge, transformed tile size.
const O: usize = 4;
const E: usize = 6;
const XI: usize = E * E * E;
/// Tiles per vector (8 f32 lanes), vectors per chunk, tiles per chunk.
const L: usize = 8;
const G: usize = 2;
const TB: usize = L * G;
/// Output channels per register block.
const CO: usize = 6;

type V8 = [f32; L];

/// `Bᵀ d` on one line of six lane vectors.
#[inline(always)]
fn bt(d: [V8; E]) -> [V8; E] {
    let mut r = [[0.0; L]; E];
    for l in 0..L {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        let (t1, t2) = (d4 - 4.0 * d2, d3 - 4.0 * d1);
        let (t3, t4) = (d4 - d2, 2.0 * (d3 - d1));
        r[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        r[1][l] = t1 + t2;
        r[2][l] = t1 - t2;
        r[3][l] = t3 + t4;
        r[4][l] = t3 - t4;
        r[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    r
}

/// `Aᵀ m` on one line of six lane vectors: four outputs.
#[inline(always)]
fn at(m: [V8; E]) -> [V8; O] {
    let mut r = [[0.0; L]; O];
    for l in 0..L {
        let (a, b) = (m[1][l] + m[2][l], m[1][l] - m[2][l]);
        let (c, d) = (m[3][l] + m[4][l], m[3][l] - m[4][l]);
        r[0][l] = m[0][l] + a + c;
        r[1][l] = b + 2.0 * d;
        r[2][l] = a + 4.0 * c;
        r[3][l] = b + 8.0 * d + m[5][l];
    }
    r
}

/// `G g` on one kernel line (three taps -> six), in f64.
fn gt(g: [f64; 3]) -> [f64; E] {
    let [g0, g1, g2] = g;
    [g0 / 4.0, -(g0 + g1 + g2) / 6.0, -(g0 - g1 + g2) / 6.0, g0 / 24.0 + g1 / 12.0 + g2 / 6.0, g0 / 24.0 - g1 / 12.0 + g2 / 6.0, g2]
}

/// The transformed kernels `U_ξ`, laid out `[ξ][block][ci][CO]` (output
/// channels in blocks of `CO`, the padding channels zero): the `CO` weights
/// one input channel contributes to a register block are adjacent.
fn transform_weights(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (cin, blocks) = (s.cin, s.cout.div_ceil(CO));
    let mut u = vec![0.0f32; XI * blocks * cin * CO];
    for co in 0..s.cout {
        for ci in 0..cin {
            let g = &w[(co * cin + ci) * 27..][..27];
            // Along x, then y, then z: t[z][y][c] -> [z][b][c] -> [a][b][c].
            let mut tx = [[[0.0f64; E]; 3]; 3];
            for z in 0..3 {
                for y in 0..3 {
                    let i = (z * 3 + y) * 3;
                    tx[z][y] = gt([g[i], g[i + 1], g[i + 2]].map(f64::from));
                }
            }
            let mut ty = [[[0.0f64; E]; E]; 3];
            for z in 0..3 {
                for c in 0..E {
                    let col = gt([tx[z][0][c], tx[z][1][c], tx[z][2][c]]);
                    (0..E).for_each(|b| ty[z][b][c] = col[b]);
                }
            }
            for b in 0..E {
                for c in 0..E {
                    let col = gt([ty[0][b][c], ty[1][b][c], ty[2][b][c]]);
                    for (a, &v) in col.iter().enumerate() {
                        let xi = (a * E + b) * E + c;
                        u[((xi * blocks + co / CO) * cin + ci) * CO + co % CO] = v as f32;
                    }
                }
            }
        }
    }
    u
}

/// The transformed kernels of recent calls, each with the kernel it came
/// from: inference runs every layer's kernel over many boxes and views (a
/// three-grid `segment` about 2,500 times for nine kernels), and the
/// transform ran on the calling thread while the pool waited (perf: about
/// 2 % of such a run). Found by comparing the kernel itself, so a changed
/// kernel (training) is never served a stale transform; a miss costs a
/// comparison that stops at the first differing weight and a copy.
static TRANSFORMED: std::sync::Mutex<Vec<KeptTransform>> = std::sync::Mutex::new(Vec::new());

/// A kernel, its input channels, and its transform.
type KeptTransform = (Vec<f32>, usize, std::sync::Arc<Vec<f32>>);

/// How many kernels [`TRANSFORMED`] keeps (the wide network has nine
/// Winograd layers per pathway that takes it).
const KEPT_TRANSFORMS: usize = 32;

/// [`transform_weights`], from [`TRANSFORMED`] when this kernel was seen.
fn transformed_weights(s: &ConvShape, w: &[f32]) -> std::sync::Arc<Vec<f32>> {
    let mut kept = TRANSFORMED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, u)) = kept.iter().find(|(k, cin, _)| *cin == s.cin && k.as_slice() == w) {
        return u.clone();
    }
    let u = std::sync::Arc::new(transform_weights(s, w));
    if kept.len() == KEPT_TRANSFORMS {
        kept.remove(0);
    }
    kept.push((w.to_vec(), s.cin, u.clone()));
    u
}

/// Where one tile lies: its batch item and the origin of its output block.
#[derive(Clone, Copy)]
struct Tile {
    b: usize,
    z: usize,
    y: usize,
    x: usize,
}

/// Which tile of a run (eight tiles adjacent along x in one row, see
/// [`chunks`]) sits in each lane: the in-lane unpacks of [`gather_run`] and
/// [`scatter_run`] leave the tiles in this order, so the lanes follow it
/// rather than pay a cross-lane permute per row.
const RUN_LANES: [usize; L] = [0, 2, 4, 6, 1, 3, 5, 7];

/// The chunks of `TB` tiles over the whole output (`n` tiles per axis per
/// batch item), and for each of its `G` lane groups whether the group is a
/// run: eight tiles adjacent along x in one row, in [`RUN_LANES`] order.
/// Each row gives as many runs as it holds; its remaining tiles are packed
/// eight to a group with the next rows' remainders.
fn chunks(batch: usize, n: [usize; 3]) -> Vec<([Option<Tile>; TB], [bool; G])> {
    let mut groups: Vec<([Option<Tile>; L], bool)> = Vec::new();
    let mut rest: Vec<Tile> = Vec::with_capacity(L);
    for b in 0..batch {
        for tz in 0..n[0] {
            for ty in 0..n[1] {
                let tile = |tx: usize| Tile { b, z: tz * O, y: ty * O, x: tx * O };
                let runs = n[2] / L;
                for r in 0..runs {
                    groups.push((std::array::from_fn(|l| Some(tile(r * L + RUN_LANES[l]))), true));
                }
                for tx in runs * L..n[2] {
                    rest.push(tile(tx));
                    if rest.len() == L {
                        groups.push((std::array::from_fn(|l| Some(rest[l])), false));
                        rest.clear();
                    }
                }
            }
        }
    }
    if !rest.is_empty() {
        groups.push((std::array::from_fn(|l| rest.get(l).copied()), false));
    }
    groups
        .chunks(G)
        .map(|gs| {
            let tiles = std::array::from_fn(|i| gs.get(i / L).and_then(|g| g.0[i % L]));
            let runs = std::array::from_fn(|g| gs.get(g).is_some_and(|g| g.1));
            (tiles, runs)
        })
        .collect()
}

/// The 6x6x6 patches of a run's eight tiles into `p`, lane `l` holding
/// tile `RUN_LANES[l]`; `x` points at the first tile's patch origin, and
/// every read lies below `x + 5 * plane + 5 * wd + 36`.
///
/// Why: a patch row of the eight tiles is 34 adjacent values; eight
/// loads and twelve in-lane unpacks give its six lane vectors, where the
/// per-lane gather moved each of the 48 values on its own and read them
/// back as vectors (perf: about a quarter of the kernel's samples).
///
/// # Safety
/// The CPU has AVX2, and the reads above lie inside `x`'s allocation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gather_run(x: *const f32, plane: usize, wd: usize, p: &mut [V8; XI]) {
    use std::arch::x86_64::*;
    let pd = _mm256_castps_pd;
    let ps = _mm256_castpd_ps;
    for z in 0..E {
        for yy in 0..E {
            let r = x.add(z * plane + yy * wd);
            // Columns 0-3 of each tile: tile t's are r[4t..4t + 4].
            let [a, b, c, d] = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(r.add(o)));
            let (lo_ab, hi_ab) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
            let (lo_cd, hi_cd) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
            // Columns 4 and 5 are columns 0 and 1 of the tile after.
            let [a, b, c, d] = [4, 12, 20, 28].map(|o| _mm256_loadu_ps(r.add(o)));
            let (lo_ab4, lo_cd4) = (_mm256_unpacklo_ps(a, b), _mm256_unpacklo_ps(c, d));
            let row = [
                ps(_mm256_unpacklo_pd(pd(lo_ab), pd(lo_cd))),
                ps(_mm256_unpackhi_pd(pd(lo_ab), pd(lo_cd))),
                ps(_mm256_unpacklo_pd(pd(hi_ab), pd(hi_cd))),
                ps(_mm256_unpackhi_pd(pd(hi_ab), pd(hi_cd))),
                ps(_mm256_unpacklo_pd(pd(lo_ab4), pd(lo_cd4))),
                ps(_mm256_unpackhi_pd(pd(lo_ab4), pd(lo_cd4))),
            ];
            for (c, v) in row.into_iter().enumerate() {
                _mm256_storeu_ps(p[(z * E + yy) * E + c].as_mut_ptr(), v);
            }
        }
    }
}

/// A run's 4x4x4 output blocks (lanes as in [`RUN_LANES`]) plus `add` into
/// the output from `y`, the first tile's output origin: the inverse of
/// [`gather_run`]'s unpacks, four 8-value stores per output row of the run.
///
/// # Safety
/// The CPU has AVX2; the run's blocks lie whole inside the output, whose
/// rows are `ow` and planes `oh * ow` values apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_run(out: &[V8; O * O * O], add: f32, y: *mut f32, oh: usize, ow: usize) {
    use std::arch::x86_64::*;
    let pd = _mm256_castps_pd;
    let ps = _mm256_castpd_ps;
    let bias = _mm256_set1_ps(add);
    for z in 0..O {
        for yy in 0..O {
            let [q0, q1, q2, q3] = std::array::from_fn(|xx| _mm256_add_ps(_mm256_loadu_ps(out[(z * O + yy) * O + xx].as_ptr()), bias));
            let (lo01, hi01) = (_mm256_unpacklo_ps(q0, q1), _mm256_unpackhi_ps(q0, q1));
            let (lo23, hi23) = (_mm256_unpacklo_ps(q2, q3), _mm256_unpackhi_ps(q2, q3));
            let r = y.add((z * oh + yy) * ow);
            _mm256_storeu_ps(r, ps(_mm256_unpacklo_pd(pd(lo01), pd(lo23))));
            _mm256_storeu_ps(r.add(8), ps(_mm256_unpackhi_pd(pd(lo01), pd(lo23))));
            _mm256_storeu_ps(r.add(16), ps(_mm256_unpacklo_pd(pd(hi01), pd(hi23))));
            _mm256_storeu_ps(r.add(24), ps(_mm256_unpackhi_pd(pd(hi01), pd(hi23))));
        }
    }
}

/// `Bᵀ d B` on all three axes of one lane-vector patch, in place.
#[inline(always)]
fn input_transform(p: &mut [V8; XI]) {
    for (stride, outer) in [(1, [E * E, E]), (E, [E * E, 1]), (E * E, [E, 1])] {
        for i in 0..E {
            for j in 0..E {
                let base = i * outer[0] + j * outer[1];
                let line = bt(std::array::from_fn(|k| p[base + k * stride]));
                for k in 0..E {
                    p[base + k * stride] = line[k];
                }
            }
        }
    }
}

/// `Aᵀ m A` on all three axes: the 4x4x4 outputs of one lane-vector patch,
/// its transformed value `ξ` at `m[ξ * TB..][..L]`.
#[inline(always)]
fn output_transform(m: &[f32]) -> [V8; O * O * O] {
    let m = |xi: usize| -> V8 { m[xi * TB..][..L].try_into().expect("8 lanes") };
    // x: [z][y][6] -> [z][y][4]
    let mut a = [[0.0f32; L]; E * E * O];
    for zy in 0..E * E {
        let line = at(std::array::from_fn(|k| m(zy * E + k)));
        a[zy * O..zy * O + O].copy_from_slice(&line);
    }
    // y: [z][6][4] -> [z][4][4]
    let mut b = [[0.0f32; L]; E * O * O];
    for z in 0..E {
        for x in 0..O {
            let line = at(std::array::from_fn(|k| a[(z * E + k) * O + x]));
            for k in 0..O {
                b[(z * O + k) * O + x] = line[k];
            }
        }
    }
    // z: [6][4][4] -> [4][4][4]
    let mut c = [[0.0f32; L]; O * O * O];
    for yx in 0..O * O {
        let line = at(std::array::from_fn(|k| b[k * O * O + yx]));
        for k in 0..O {
            c[k * O * O + yx] = line[k];
        }
    }
    c
}

/// One chunk of up to `TB` tiles: input transform of every input channel
/// into `v` (`[ξ][ci][TB]`), then per block of `CO` output channels the
/// 216 products into `m` (`[CO][ξ][TB]`) and the output transform into `y`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk<const FMA: bool>(s: &ConvShape, out: [usize; 3], x: &[f32], u: &[f32], bias: Option<&[f32]>, tiles: &[Option<Tile>; TB], runs: [bool; G], v: &mut [f32], m: &mut [f32], y: SharedMut) {
    let [d, h, wd] = s.input;
    let [od, oh, ow] = out;
    let (plane, cube, pout) = (h * wd, d * h * wd, od * oh * ow);
    let (cin, blocks) = (s.cin, s.cout.div_ceil(CO));
    // The input is padded to whole patches (see `forward`), so every tile's
    // gather is six fixed-size rows; a group is zeroed only when a lane
    // holds no tile (the last chunk).
    let full: [bool; G] = std::array::from_fn(|g| tiles[g * L..(g + 1) * L].iter().all(Option::is_some));
    let mut p = [[0.0f32; L]; XI];
    for ci in 0..cin {
        for g in 0..G {
            #[cfg(target_arch = "x86_64")]
            if let (true, true, Some(t)) = (FMA, runs[g], tiles[g * L]) {
                let base = (t.b * cin + ci) * cube + t.z * plane + t.y * wd + t.x;
                if base + 5 * plane + 5 * wd + 36 <= x.len() {
                    debug_assert!(std::arch::is_x86_feature_detected!("avx2"), "chunk::<true> runs under chunk_avx2 only");
                    // SAFETY: `FMA` is only set under AVX2 (`chunk_avx2`),
                    // and the reads end inside `x` (checked).
                    unsafe { gather_run(x.as_ptr().add(base), plane, wd, &mut p) };
                    input_transform(&mut p);
                    for (xi, val) in p.iter().enumerate() {
                        v[(xi * cin + ci) * TB + g * L..][..L].copy_from_slice(val);
                    }
                    continue;
                }
            }
            if !full[g] {
                p.fill([0.0; L]);
            }
            for l in 0..L {
                let Some(t) = tiles[g * L + l] else { continue };
                let base = (t.b * cin + ci) * cube + t.z * plane + t.y * wd + t.x;
                // Fixed-size rows: the compiler's vectorised copy of a row of
                // unknown length (masked loads, then each lane moved out) was
                // most of the whole convolution.
                for z in 0..E {
                    for yy in 0..E {
                        let row: &[f32; E] = x[base + z * plane + yy * wd..][..E].try_into().expect("6 values");
                        for c in 0..E {
                            p[(z * E + yy) * E + c][l] = row[c];
                        }
                    }
                }
            }
            input_transform(&mut p);
            for (xi, val) in p.iter().enumerate() {
                v[(xi * cin + ci) * TB + g * L..][..L].copy_from_slice(val);
            }
        }
    }
    for blk in 0..blocks {
        for xi in 0..XI {
            let vx = &v[xi * cin * TB..][..cin * TB];
            let ux = &u[(xi * blocks + blk) * cin * CO..][..cin * CO];
            let mut acc = [[0.0f32; TB]; CO];
            for ci in 0..cin {
                let vr: &[f32; TB] = vx[ci * TB..][..TB].try_into().expect("TB values");
                let ur: &[f32; CO] = ux[ci * CO..][..CO].try_into().expect("CO weights");
                for c in 0..CO {
                    for t in 0..TB {
                        acc[c][t] = madd::<FMA>(ur[c], vr[t], acc[c][t]);
                    }
                }
            }
            for (c, row) in acc.iter().enumerate() {
                m[(c * XI + xi) * TB..][..TB].copy_from_slice(row);
            }
        }
        for c in 0..CO.min(s.cout - blk * CO) {
            let co = blk * CO + c;
            let add = bias.map_or(0.0, |b| b[co]);
            for g in 0..G {
                let out = output_transform(&m[c * XI * TB + g * L..]);
                #[cfg(target_arch = "x86_64")]
                if let (true, true, Some(t)) = (FMA, runs[g], tiles[g * L]) {
                    if t.z + O <= od && t.y + O <= oh && t.x + L * O <= ow {
                        let base = (t.b * s.cout + co) * pout + t.z * oh * ow + t.y * ow + t.x;
                        // SAFETY: AVX2 as above; the run's eight blocks lie
                        // whole inside the output (checked) and are written
                        // by this chunk only.
                        unsafe { scatter_run(&out, add, y.0.add(base), oh, ow) };
                        continue;
                    }
                }
                for l in 0..L {
                    let Some(t) = tiles[g * L + l] else { continue };
                    let (nz, ny, nx) = ((od - t.z).min(O), (oh - t.y).min(O), (ow - t.x).min(O));
                    let base = (t.b * s.cout + co) * pout + t.z * oh * ow + t.y * ow + t.x;
                    if (nz, ny, nx) == (O, O, O) {
                        for z in 0..O {
                            for yy in 0..O {
                                let row: [f32; O] = std::array::from_fn(|xx| out[(z * O + yy) * O + xx][l] + add);
                                // SAFETY: as below, for a whole tile inside the output.
                                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), y.0.add(base + (z * oh + yy) * ow), O) };
                            }
                        }
                        continue;
                    }
                    for z in 0..nz {
                        for yy in 0..ny {
                            for xx in 0..nx {
                                // SAFETY: (b, co, t.z + z, t.y + yy, t.x + xx)
                                // lies inside y's capacity (clipped to the
                                // output above), and this tile's outputs are
                                // written by this chunk only.
                                unsafe { *y.0.add(base + (z * oh + yy) * ow + xx) = out[(z * O + yy) * O + xx][l] + add };
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn chunk_avx2(s: &ConvShape, out: [usize; 3], x: &[f32], u: &[f32], bias: Option<&[f32]>, tiles: &[Option<Tile>; TB], runs: [bool; G], v: &mut [f32], m: &mut [f32], y: SharedMut) {
    chunk::<true>(s, out, x, u, bias, tiles, runs, v, m, y);
}

/// `x` (shape `s`) zero-padded at the far end of each axis to `to`.
fn pad(s: &ConvShape, x: &[f32], to: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = s.input;
    let (cube, to_cube) = (d * h * w, to[0] * to[1] * to[2]);
    let total = s.batch * s.cin * to_cube;
    // Written once, copy or zero, in the pool: `vec![0.0; total]` first
    // zeroed it all on the calling thread while the pool waited (perf: a
    // twentieth of a scale-averaged `segment`).
    let mut out: Vec<f32> = Vec::with_capacity(total);
    out.spare_capacity_mut()[..total].par_chunks_mut(to_cube).zip(x.par_chunks(cube)).for_each(|(o, i)| {
        for (r, row) in o.chunks_exact_mut(to[2]).enumerate() {
            let (z, y) = (r / to[1], r % to[1]);
            let src: &[f32] = if z < d && y < h { &i[(z * h + y) * w..][..w] } else { &[] };
            let (copied, zeros) = row.split_at_mut(src.len());
            copied.iter_mut().zip(src).for_each(|(v, &x)| {
                v.write(x);
            });
            zeros.iter_mut().for_each(|v| {
                v.write(0.0);
            });
        }
    });
    // SAFETY: the loop wrote all `total` values: every row of every plane,
    // copied or zero.
    unsafe { out.set_len(total) };
    out
}

/// `y = conv(x, w) + bias` for a 3x3x3 kernel into `y` (capacity
/// `s.y_len()`, every value written here).
pub(super) fn forward(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: SharedMut) {
    debug_assert_eq!(s.kernel, 3);
    let [od, oh, ow] = s.output();
    let n = [od.div_ceil(O), oh.div_ceil(O), ow.div_ceil(O)];
    let chunks = chunks(s.batch, n);
    let u = transformed_weights(s, w);
    // The input zero-padded to whole 6-wide patches, so that every tile's
    // gather is six fixed-size rows and the kernel has one gather, not a
    // clipped one for the edge tiles besides (perf put a tenth of the kernel
    // in that one; the `conv` bench's wall time did not change either way,
    // the copy costing about what it saves).
    let padded_input = n.map(|t| t * O + 2);
    let (s, x) = if padded_input == s.input {
        (*s, std::borrow::Cow::Borrowed(x))
    } else {
        (ConvShape { input: padded_input, ..*s }, std::borrow::Cow::Owned(pad(s, x, padded_input)))
    };
    let (s, x) = (&s, &x[..]);
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    let scratch = || (vec![0.0f32; XI * s.cin * TB], vec![0.0f32; CO * XI * TB]);
    chunks.par_iter().for_each_init(scratch, |(v, m), &(tiles, runs)| {
        // The whole wrapper, as in `forward_direct`.
        #[allow(clippy::redundant_locals)]
        let y = y;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked above), all this
            // function's target features.
            unsafe { chunk_avx2(s, [od, oh, ow], x, &u, bias, &tiles, runs, v, m, y) };
            return;
        }
        chunk::<false>(s, [od, oh, ow], x, &u, bias, &tiles, runs, v, m, y);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_tile_once_with_runs_adjacent_along_x() {
        for (batch, n) in [(1, [3, 2, 17]), (2, [2, 3, 8]), (1, [1, 1, 5]), (3, [2, 2, 23])] {
            let chunks = chunks(batch, n);
            let mut seen = std::collections::HashSet::new();
            let mut run_tiles = 0;
            for (tiles, runs) in &chunks {
                for g in 0..G {
                    let group = &tiles[g * L..(g + 1) * L];
                    for t in group.iter().flatten() {
                        assert!(t.b < batch && t.z < n[0] * O && t.y < n[1] * O && t.x < n[2] * O && t.z % O + t.y % O + t.x % O == 0);
                        assert!(seen.insert((t.b, t.z, t.y, t.x)), "tile twice");
                    }
                    if runs[g] {
                        let first = group[0].expect("a run is whole");
                        for (l, t) in group.iter().enumerate() {
                            let t = t.expect("a run is whole");
                            assert_eq!((t.b, t.z, t.y, t.x), (first.b, first.z, first.y, first.x + RUN_LANES[l] * O));
                        }
                        run_tiles += L;
                    }
                }
            }
            assert_eq!(seen.len(), batch * n[0] * n[1] * n[2]);
            assert_eq!(run_tiles, batch * n[0] * n[1] * (n[2] / L * L));
        }
    }
}
