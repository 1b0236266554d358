//! Valid, stride-1, undilated, ungrouped 3-D convolution on contiguous f32
//! NCDHW buffers: forward, and one backward pass giving the input, weight and
//! bias gradients. These are the only convolutions the DeepMedic network uses
//! (3x3x3 in the pathways, 1x1x1 as its fully connected layers).
//!
//! Why by hand: burn flex's generic conv3d converts every input to NDHWC,
//! builds im2col tiles from it, zeroes fresh buffers on every call, computes
//! the data gradient as a direct transposed convolution and the weight
//! gradient as a convolution whose kernel is the whole output. For this one
//! shape family all three are plain matrix products on the NCDHW data as it
//! lies, done here with the `gemm` crate (the micro-kernels flex itself uses):
//!
//! - forward: `Y_b = W · col(X_b)`, `W` as `[cout, cin·k³]` exactly as burn
//!   stores it, `col` built tile by tile from contiguous row copies;
//! - data gradient: `dcol = Wᵀ · dY_b` (a gemm), scattered back by col2im;
//! - weight gradient: `dW = Σ_b dY_b · col(X_b)ᵀ`, with per-batch partial sums
//!   added in batch order, so the result does not depend on the thread count.
//!
//! A 1x1x1 kernel needs no col at all: `X_b` itself is the matrix.
//!
//! The forward pass of a 3x3x3 kernel takes one of two other routes by
//! shape ([`auto_algo`] has the measurement behind the choice):
//!
//! - at most 8 input and 8 output channels (the `fast` preset's first
//!   layers): a direct convolution, register tiles of 6 output positions x up to 16 output
//!   channels, each tap one weight vector times a broadcast input value, no
//!   col. It is written as plain array loops that the compiler vectorises,
//!   compiled twice: with AVX2 + FMA, chosen at run time where the CPU has
//!   them, and without.
//! - at least 8 input channels, an output edge of 11 or more and 4,096
//!   outputs or more (every 3x3x3 layer of the wide network's
//!   full-resolution pathway after its first, and in training every layer
//!   with such an edge): Winograd's F(4x4x4, 3x3x3) ([`winograd`]), 8x fewer
//!   multiplies, the same result to ~1e-4 relative;
//! - otherwise, unless output rows are very short: three shifted products
//!   over a col of 9 rows per input channel, each one contiguous copy
//!   ([`forward_shifted`]).
//!
//! The `gemm` crate is built with its `x86-v4` feature: AVX-512 kernels,
//! chosen at run time where the CPU has them (AVX2 + FMA otherwise).
//! With the wide network they cut `segment --flip-average xy` from 34.0 s
//! to 30.1 s on patient 1 (2 cores, training paused, two runs each,
//! 2026-12-05; masks identical).

use std::cell::RefCell;

mod winograd;

use gemm::Parallelism;
use rayon::prelude::*;

/// Sizes of one convolution: batch, channels, cubic kernel edge, input and
/// output spatial sizes (output = input - kernel + 1 on every axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub input: [usize; 3],
}

impl ConvShape {
    /// `None` when the kernel does not fit inside the input.
    pub fn new(batch: usize, cin: usize, cout: usize, kernel: usize, input: [usize; 3]) -> Option<Self> {
        (kernel >= 1 && input.iter().all(|&n| n >= kernel)).then_some(Self { batch, cin, cout, kernel, input })
    }
    pub fn output(&self) -> [usize; 3] {
        self.input.map(|n| n - self.kernel + 1)
    }
    fn in_voxels(&self) -> usize {
        self.input.iter().product()
    }
    fn out_voxels(&self) -> usize {
        self.output().iter().product()
    }
    /// Rows of `col`: one per (input channel, kernel offset), in burn's
    /// weight order, so `W` needs no reordering.
    fn k(&self) -> usize {
        self.cin * self.kernel.pow(3)
    }
    pub fn x_len(&self) -> usize {
        self.batch * self.cin * self.in_voxels()
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.cout * self.out_voxels()
    }
    pub fn w_len(&self) -> usize {
        self.cout * self.k()
    }
    /// Output rows (z, y) per col tile: the tile (k rows of `rows * ow`
    /// values) is kept near 512 KiB so it stays in L2 while gemm streams it.
    /// Output rows per shifted-products tile (one plane at most): the col
    /// (9·cin rows of `rows * w + 2` values) kept near 512 KiB.
    fn shifted_rows_per_tile(&self) -> usize {
        const TILE_FLOATS: usize = 128 * 1024;
        (TILE_FLOATS / (self.cin * 9 * self.input[2]).max(1)).clamp(1, self.output()[1])
    }
    fn rows_per_tile(&self) -> usize {
        const TILE_FLOATS: usize = 128 * 1024;
        let ow = self.output()[2];
        (TILE_FLOATS / (self.k() * ow).max(1)).max(1)
    }
}

/// A raw pointer that rayon tasks may share. Every use writes a region no
/// other task touches; the comment at each use says why.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the pointer is only dereferenced through gemm/slice writes into
// disjoint regions (see each use), and the buffer outlives the parallel scope.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

thread_local! {
    /// Reused col / dcol buffers: allocating and zeroing them per call was a
    /// tenth of flex's training step.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `f` with this thread's scratch buffers, or fresh ones when they are in
/// use: a thread waiting inside a parallel gemm may be handed another task
/// of the same loop by rayon, which must not find the buffers borrowed.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut pair) => {
            let (a, b) = &mut *pair;
            f(a, b)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// Threads gemm may use inside one task: when there are fewer tasks than
/// threads, the spare threads split gemm's output blocks instead (each output
/// value is still summed by one thread in one order: deterministic).
fn gemm_parallelism(tasks: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if tasks >= threads || threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads.div_ceil(tasks))
    }
}

/// Every (col row, output row) pair of output rows `r0..r1`, a row being one
/// (z, y) of the output: `visit(col_offset, input_offset)` with `ow` values
/// from each. im2col copies along these pairs and col2im adds back along them.
fn col_rows(s: &ConvShape, r0: usize, r1: usize, mut visit: impl FnMut(usize, usize)) {
    let [_, h, w] = s.input;
    let [_, oh, ow] = s.output();
    let n = (r1 - r0) * ow;
    let kk = s.kernel;
    let (plane, cube) = (h * w, s.in_voxels());
    for ci in 0..s.cin {
        for kz in 0..kk {
            for ky in 0..kk {
                for kx in 0..kk {
                    let row = ((ci * kk + kz) * kk + ky) * kk + kx;
                    for (j, r) in (r0..r1).enumerate() {
                        let (z, y) = (r / oh, r % oh);
                        visit(row * n + j * ow, ci * cube + (z + kz) * plane + (y + ky) * w + kx);
                    }
                }
            }
        }
    }
}

/// Every (kernel row, output row) pair of a 3x3x3 kernel for output rows
/// `r0..r1`: `visit(col_offset, input_offset)`, `col_offset` being the col
/// row of offset kx = 0 (the rows of kx = 1 and 2 follow at `n` and `2n`),
/// `input_offset` the input row's first of `ow + 2` values.
fn col_rows3(s: &ConvShape, r0: usize, r1: usize, mut visit: impl FnMut(usize, usize)) {
    let [_, h, w] = s.input;
    let [_, oh, ow] = s.output();
    let n = (r1 - r0) * ow;
    let (plane, cube) = (h * w, s.in_voxels());
    // Each output row's input offset, once per tile (not a division per row).
    let rows: Vec<usize> = (r0..r1).map(|r| (r / oh) * plane + (r % oh) * w).collect();
    for ci in 0..s.cin {
        for kz in 0..3 {
            for ky in 0..3 {
                let (row, base) = (((ci * 3 + kz) * 3 + ky) * 3, ci * cube + kz * plane + ky * w);
                for (j, &o) in rows.iter().enumerate() {
                    visit(row * n + j * ow, base + o);
                }
            }
        }
    }
}

/// `d_k[t] = src[t + k]` for k = 0, 1, 2: the three col rows of one input
/// row, in 8-value blocks (fixed-size copies the compiler inlines as vector
/// moves).
#[inline]
// The tail of rows under 8 values is an element loop on purpose: three
// `copy_from_slice` calls of a few values are `memcpy` calls.
#[allow(clippy::manual_memcpy)]
fn copy_shifted3(d0: &mut [f32], d1: &mut [f32], d2: &mut [f32], src: &[f32]) {
    let ow = d0.len();
    let mut t = 0;
    while t + 8 <= ow {
        d0[t..t + 8].copy_from_slice(&src[t..t + 8]);
        d1[t..t + 8].copy_from_slice(&src[t + 1..t + 9]);
        d2[t..t + 8].copy_from_slice(&src[t + 2..t + 10]);
        t += 8;
    }
    if t < ow && ow >= 8 {
        // The last block again, overlapping the one before: the same values
        // rewritten, instead of up to seven single copies per row.
        let t = ow - 8;
        d0[t..t + 8].copy_from_slice(&src[t..t + 8]);
        d1[t..t + 8].copy_from_slice(&src[t + 1..t + 9]);
        d2[t..t + 8].copy_from_slice(&src[t + 2..t + 10]);
        return;
    }
    for u in t..ow {
        d0[u] = src[u];
        d1[u] = src[u + 1];
        d2[u] = src[u + 2];
    }
}

/// `out[t] += a[t] + b[t] + e[t]` (equal lengths), in 8-value blocks.
#[inline]
fn add3(out: &mut [f32], a: &[f32], b: &[f32], e: &[f32]) {
    let m = out.len();
    let (a, b, e) = (&a[..m], &b[..m], &e[..m]);
    let mut t = 0;
    while t + 8 <= m {
        let o: &mut [f32; 8] = (&mut out[t..t + 8]).try_into().expect("8 values");
        let (x, y, z): (&[f32; 8], &[f32; 8], &[f32; 8]) = (a[t..t + 8].try_into().expect("8"), b[t..t + 8].try_into().expect("8"), e[t..t + 8].try_into().expect("8"));
        for l in 0..8 {
            o[l] += x[l] + y[l] + z[l];
        }
        t += 8;
    }
    for u in t..m {
        out[u] += a[u] + b[u] + e[u];
    }
}

/// Fill `col` (`k` rows of `(r1 - r0) * ow` values) from batch item `x_b`.
/// For 3x3x3 kernels the three rows of kx = 0, 1, 2 are shifts of one input
/// row: one inline loop writes all three (output rows are short, 13-33
/// values in the `fast` preset, so a `memcpy` call per row cost more than
/// the copy: 14 % of a training step).
fn im2col(s: &ConvShape, x_b: &[f32], r0: usize, r1: usize, col: &mut [f32]) {
    let ow = s.output()[2];
    if s.kernel != 3 {
        col_rows(s, r0, r1, |c, x| col[c..c + ow].copy_from_slice(&x_b[x..x + ow]));
        return;
    }
    let n = (r1 - r0) * ow;
    col_rows3(s, r0, r1, |c, x| {
        let (d0, rest) = col[c..].split_at_mut(n);
        let (d1, rest) = rest.split_at_mut(n);
        copy_shifted3(&mut d0[..ow], &mut d1[..ow], &mut rest[..ow], &x_b[x..x + ow + 2]);
    });
}

/// The adjoint of [`im2col`]: add `dcol` into `dx_b`. For 3x3x3 kernels
/// the three shifted rows are summed first and added to the input row once.
fn col2im_add(s: &ConvShape, dcol: &[f32], r0: usize, r1: usize, dx_b: &mut [f32]) {
    let ow = s.output()[2];
    if s.kernel != 3 || ow < 2 {
        col_rows(s, r0, r1, |c, x| dx_b[x..x + ow].iter_mut().zip(&dcol[c..c + ow]).for_each(|(d, v)| *d += v));
        return;
    }
    let n = (r1 - r0) * ow;
    col_rows3(s, r0, r1, |c, x| {
        let (d0, d1, d2) = (&dcol[c..c + ow], &dcol[c + n..c + n + ow], &dcol[c + 2 * n..c + 2 * n + ow]);
        let dst = &mut dx_b[x..x + ow + 2];
        dst[0] += d0[0];
        dst[1] += d0[1] + d1[0];
        let m = ow - 2;
        add3(&mut dst[2..2 + m], &d0[2..], &d1[1..1 + m], &d2[..m]);
        dst[ow] += d1[ow - 1] + d2[ow - 2];
        dst[ow + 1] += d2[ow - 1];
    });
}

/// `dst[m x n] (+)= lhs[m x k] · rhs[k x n]`, every matrix given by its
/// pointer and (row, column) strides.
///
/// # Safety
/// Each pointer must address every element its strides reach for the given
/// sizes; `dst` must not overlap `lhs` or `rhs`, nor a region another thread
/// writes at the same time.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // gemm's product is empty; keep the contract "dst holds lhs·rhs".
        if !accumulate {
            for i in 0..m {
                std::ptr::write_bytes(dst.add(i * dst_rs), 0, n);
            }
        }
        return;
    }
    // dst := alpha·dst + beta·lhs·rhs; alpha is ignored when dst is not read.
    gemm::gemm(
        m, n, k, dst, 1, dst_rs as isize, accumulate, lhs.0, lhs.2 as isize, lhs.1 as isize, rhs.0, rhs.2 as isize,
        rhs.1 as isize, 1.0f32, 1.0f32, false, false, false, par,
    );
}

/// How [`forward`] computes a 3x3x3 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// By shape (see [`auto_algo`]).
    Auto,
    /// `W · col(X)`: im2col tiles and the `gemm` crate.
    Im2col,
    /// Register-tiled direct convolution, no col at all; 3x3x3 kernels only
    /// (others by [`Algo::Im2col`]).
    Direct,
    /// Three shifted products over a col of nine rows per input channel
    /// (see [`forward_shifted`]); 3x3x3 kernels only (others by
    /// [`Algo::Im2col`]).
    Shifted,
    /// Winograd's F(4x4x4, 3x3x3) (see [`winograd`]); 3x3x3 kernels only
    /// (others by [`Algo::Im2col`]).
    Winograd,
}

/// What [`Algo::Auto`] runs for `s`.
///
/// Why by shape (the `conv` bench, `--presets models/wide/network.json,fast`,
/// forward pass per layer, 2 threads, the `gemm` crate's AVX-512 kernels,
/// training paused, two runs, 2026-12-05). Against im2col + gemm:
/// - the shifted products: median 0.84-0.86x on the 84 layers with 12-24
///   input channels and output rows of 6 or more (0.38-1.36x layer by
///   layer, single layers being noisy); all 3x3x3 layers together 0.81x
///   on a wide inference tile, 0.88-0.89x on a wide training batch, 0.73x
///   and 0.86-0.89x for `fast`; on rows of 1-5 values mostly 1.1-3.0x (most
///   of each computed row is then the two dropped positions);
/// - the direct kernel: 0.60-0.74x on `fast`'s 8 -> 8 layers (shifted
///   0.62-0.86x), but 1.17-1.61x on its 8 -> 12 layers (shifted
///   0.79-0.98x) and 1.0-1.45x on the wide network's 1 -> 12 (shifted
///   0.75-1.30x); on `fast`'s 1 -> 8 0.66-1.23x (shifted 0.70-2.2x).
///
/// With the AVX2 gemm (2026-12-03) the direct kernel had won on every
/// layer with 1-8 input channels; the AVX-512 gemm moved the balance.
///
/// Winograd (the same bench, 2026-12-07, three runs, nothing else
/// running): all 3x3x3 layers of a wide inference tile 0.46x im2col
/// (shifted 0.73-0.77x), of a wide training batch 0.60-0.61x (shifted
/// 0.75-0.77x). Layer by layer, with 12-24 input channels: 0.37-0.66x on
/// the full-resolution pathway's inference layers (output edges 60-78) and
/// on training batches with output edges of 11 or more; on one inference
/// tile's small coarse-pathway layers (batch 1, edges 12-14, under 3,000
/// outputs) 0.85-0.97x, slower than the shifted products there
/// (0.70-0.90x), but 0.72-0.77x from an edge of 16 (4,096 outputs); 1.0-5.0x
/// on edges of 3-10 (tiles past the edge) and 2.5-3.7x with one input
/// channel (transforms that save little).
pub fn auto_algo(s: &ConvShape) -> Algo {
    if s.kernel != 3 {
        Algo::Im2col
    } else if s.cin <= DIRECT_MAX_CHANNELS && s.cout <= DIRECT_MAX_CHANNELS {
        Algo::Direct
    } else if s.cin >= WINOGRAD_MIN_CHANNELS && s.output().iter().all(|&n| n >= WINOGRAD_MIN_OUTPUT) && s.batch * s.out_voxels() >= WINOGRAD_MIN_OUTPUTS {
        Algo::Winograd
    } else if s.output()[2] >= SHIFTED_MIN_ROW {
        Algo::Shifted
    } else {
        Algo::Im2col
    }
}

/// Input channels, output edge and outputs (batch x voxels) from which
/// Winograd's F(4x4x4, 3x3x3) takes a layer: with one input channel its
/// transforms cost more than the products they save (2.5-3.7x im2col);
/// below an edge of 11 the tiles past the edge (up to three of every four
/// outputs read zeros) cost more than the shifted products; and a layer of
/// fewer outputs than a 16^3 block is too small for it to win (see
/// [`auto_algo`]).
const WINOGRAD_MIN_CHANNELS: usize = 8;
const WINOGRAD_MIN_OUTPUT: usize = 11;
const WINOGRAD_MIN_OUTPUTS: usize = 4096;

/// Shortest output row the shifted products take (the two dropped
/// positions per row are a quarter of the work at 6).
const SHIFTED_MIN_ROW: usize = 6;

/// Input and output channels the direct kernel takes, at most.
const DIRECT_MAX_CHANNELS: usize = 8;

/// Output channels per register tile, at most: a tile holds `XT` output
/// positions x up to 16 channels (two 8-lane vectors per position).
const CB_MAX: usize = 16;
/// Output positions per register tile: 6 positions x 16 channels are twelve
/// 8-lane accumulators, leaving registers for the weights and the broadcast
/// input (AVX2 has 16).
const XT: usize = 6;

/// The output-channel blocks `(first channel, width)`: 16 wide, the rest
/// rounded up to a multiple of 4 (the padding has zero weights and is never
/// stored).
fn direct_blocks(cout: usize) -> Vec<(usize, usize)> {
    (0..cout).step_by(CB_MAX).map(|c0| (c0, (cout - c0).min(CB_MAX).next_multiple_of(4))).collect()
}

/// `W` repacked per block as `[cin·27][width]`: one tap's weights for the
/// block's channels are adjacent (one vector load each).
fn pack_direct(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let k = s.k();
    let mut p = Vec::new();
    for (c0, width) in direct_blocks(s.cout) {
        let start = p.len();
        p.resize(start + k * width, 0.0);
        for c in 0..width.min(s.cout - c0) {
            for r in 0..k {
                p[start + r * width + c] = w[(c0 + c) * k + r];
            }
        }
    }
    p
}

/// `a·b + c`, fused when the caller was compiled with FMA (the two differ in
/// rounding only; which one runs depends on the CPU, as gemm's kernels do).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// One register tile: `NT` output positions of one output row, starting at
/// `t0`, x `CB` output channels. The sums run over the input channels and
/// taps, vectorised along the channels: each tap is one weight vector
/// times a broadcast input value, so any row length is covered without
/// padding. `rows[i]` is the offset in `x_b` of the input row of
/// (ci, kz, ky) = i; `wp` the block's packed weights.
#[inline(always)]
fn direct_tile<const CB: usize, const NT: usize, const FMA: bool>(x_b: &[f32], rows: &[usize], wp: &[f32], t0: usize, init: &[f32; CB]) -> [[f32; CB]; NT] {
    let mut acc = [*init; NT];
    for (i, &off) in rows.iter().enumerate() {
        let src = &x_b[off + t0..off + t0 + NT + 2];
        let taps = &wp[i * 3 * CB..(i + 1) * 3 * CB];
        for kx in 0..3 {
            let wv: &[f32; CB] = taps[kx * CB..(kx + 1) * CB].try_into().expect("CB weights");
            for t in 0..NT {
                let xv = src[t + kx];
                for c in 0..CB {
                    acc[t][c] = madd::<FMA>(xv, wv[c], acc[t][c]);
                }
            }
        }
    }
    acc
}

/// Tiles of one block along one output row: `XT` positions at a time, then
/// the remainder, storing the block's real channels.
#[inline(always)]
fn direct_row<const CB: usize, const FMA: bool>(x_b: &[f32], rows: &[usize], wp: &[f32], init: &[f32; CB], ow: usize, mut store: impl FnMut(usize, usize, &[f32])) {
    let mut t0 = 0;
    while t0 + XT <= ow {
        let a = direct_tile::<CB, XT, FMA>(x_b, rows, wp, t0, init);
        a.iter().enumerate().for_each(|(t, v)| store(t0 + t, CB, v));
        t0 += XT;
    }
    macro_rules! tail {
        ($($n:literal)*) => {
            match ow - t0 {
                $($n => {
                    let a = direct_tile::<CB, $n, FMA>(x_b, rows, wp, t0, init);
                    a.iter().enumerate().for_each(|(t, v)| store(t0 + t, CB, v));
                })*
                _ => {}
            }
        };
    }
    tail!(1 2 3 4 5);
}

/// Output plane `z` of batch item `x_b`, all channels, into `y_b` (the
/// item's `cout` planes; this call writes plane `z` of each only).
#[inline(always)]
fn direct_plane<const FMA: bool>(s: &ConvShape, x_b: &[f32], wp: &[f32], bias: &[f32], z: usize, y_b: SharedMut) {
    let [_, h, w] = s.input;
    let [_, oh, ow] = s.output();
    let (plane, cube, pout) = (h * w, s.in_voxels(), s.out_voxels());
    let k = s.k();
    let mut rows = vec![0usize; s.cin * 9];
    for yy in 0..oh {
        for ci in 0..s.cin {
            for kz in 0..3 {
                for ky in 0..3 {
                    rows[(ci * 3 + kz) * 3 + ky] = ci * cube + (z + kz) * plane + (yy + ky) * w;
                }
            }
        }
        let row_out = (z * oh + yy) * ow;
        let mut packed = 0;
        for (c0, width) in direct_blocks(s.cout) {
            let wb = &wp[packed..packed + k * width];
            packed += k * width;
            let channels = (s.cout - c0).min(width);
            let store = |t: usize, _: usize, v: &[f32]| {
                for (c, &val) in v[..channels].iter().enumerate() {
                    // SAFETY: (channel c0 + c, plane z, row yy, position t)
                    // lies inside this batch item's output, and plane z is
                    // written by this task only.
                    unsafe { *y_b.0.add((c0 + c) * pout + row_out + t) = val };
                }
            };
            macro_rules! block {
                ($cb:literal) => {{
                    let init: [f32; $cb] = std::array::from_fn(|c| bias.get(c0 + c).copied().unwrap_or(0.0));
                    direct_row::<$cb, FMA>(x_b, &rows, wb, &init, ow, store);
                }};
            }
            match width {
                4 => block!(4),
                8 => block!(8),
                12 => block!(12),
                _ => block!(16),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn direct_plane_avx2(s: &ConvShape, x_b: &[f32], wp: &[f32], bias: &[f32], z: usize, y_b: SharedMut) {
    direct_plane::<true>(s, x_b, wp, bias, z, y_b);
}

/// The direct convolution into `y` (capacity `s.y_len()`, every value
/// written here).
fn forward_direct(s: &ConvShape, x: &[f32], w: &[f32], bias: &[f32], y: SharedMut) {
    let wp = pack_direct(s, w);
    let (xin, yb_len) = (s.cin * s.in_voxels(), s.cout * s.out_voxels());
    let od = s.output()[0];
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    (0..s.batch * od).into_par_iter().for_each(|task| {
        // The whole wrapper, not its raw-pointer field (closures capture
        // fields separately, and the bare pointer is not Send).
        #[allow(clippy::redundant_locals)]
        let y = y;
        let (b, z) = (task / od, task % od);
        let x_b = &x[b * xin..(b + 1) * xin];
        // SAFETY (pointer arithmetic): batch item b's output starts inside y.
        let y_b = SharedMut(unsafe { y.0.add(b * yb_len) });
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked above), all this
            // function's target features.
            unsafe { direct_plane_avx2(s, x_b, &wp, bias, z, y_b) };
            return;
        }
        direct_plane::<false>(s, x_b, &wp, bias, z, y_b);
    });
}

/// The col rows of a shifted-products tile (plane `z`, output rows from
/// `y0`, rows of `ld` values): `visit(row, input_offset, count)` per
/// (ci, kz, ky), `count` = `ld` except where the last input row's two extra
/// values would run past the end of the input (they only meet dropped
/// positions, so the rest of that row is zero).
fn col9_rows(s: &ConvShape, z: usize, y0: usize, ld: usize, mut visit: impl FnMut(usize, usize, usize)) {
    let [_, h, wd] = s.input;
    let (plane, cube) = (h * wd, s.in_voxels());
    for ci in 0..s.cin {
        for kz in 0..3 {
            for ky in 0..3 {
                let from = ci * cube + (z + kz) * plane + (y0 + ky) * wd;
                visit((ci * 3 + kz) * 3 + ky, from, ld.min(s.cin * cube - from));
            }
        }
    }
}

/// A 3x3x3 convolution as three products over a col of nine rows per input
/// channel instead of 27.
///
/// Why: in im2col the rows of kx = 0, 1, 2 are the same input row shifted
/// by one value, and building that col (27 short copies per input row) was
/// a sixth of `segment --flip-average xy` (perf, 2026-12-05). Here a tile is
/// a run of output rows of one plane; for each (ci, kz, ky) the input rows
/// it reads are contiguous in the input, so that col row is one copy of
/// `rows * w + 2` values, and output position `j` of the tile, counted on
/// the input's row width `w`, is `Σ_kx W_kx · col[:, j + kx]`: three gemm
/// calls on column offsets 0, 1, 2 of one col. Positions `x >= ow` of each
/// row are computed and dropped when the tile is copied into `y`.
fn forward_shifted(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: SharedMut) {
    let wd = s.input[2];
    let [od, oh, ow] = s.output();
    let (xin, pout) = (s.cin * s.in_voxels(), s.out_voxels());
    let k9 = s.cin * 9;
    let per = s.shifted_rows_per_tile();
    let tiles = oh.div_ceil(per);
    let tasks = s.batch * od * tiles;
    let par = gemm_parallelism(tasks);
    (0..tasks).into_par_iter().for_each(|t| {
        // The whole wrapper, as in `forward_direct`.
        #[allow(clippy::redundant_locals)]
        let y = y;
        let (b, z, y0) = (t / (od * tiles), (t / tiles) % od, (t % tiles) * per);
        let y1 = (y0 + per).min(oh);
        // gemm reads the col in place when its width is a multiple of the
        // SIMD width and packs it (again for each kx) otherwise: the packing
        // was 12 % of a `segment` (perf, 2026-12-06). The padding columns
        // compute positions that are dropped like those with `x >= ow`.
        let n = ((y1 - y0) * wd).next_multiple_of(16);
        let ld = n + 2;
        let x_b = &x[b * xin..(b + 1) * xin];
        with_scratch(|col, out| {
            col.resize(k9 * ld, 0.0);
            out.resize(s.cout * n, 0.0);
            col9_rows(s, z, y0, ld, |row, from, have| {
                let dst = &mut col[row * ld..][..ld];
                dst[..have].copy_from_slice(&x_b[from..from + have]);
                dst[have..].fill(0.0);
            });
            for kx in 0..3 {
                // SAFETY: W_kx (cout x 9·cin) is w from offset kx at row
                // stride 27·cin and column stride 3, inside w; the col view
                // (9·cin x n from column kx, row stride ld) lies inside col;
                // `out` is this thread's scratch.
                unsafe {
                    matmul((s.cout, n, k9), out.as_mut_ptr(), n, kx > 0, (w.as_ptr().add(kx), s.k(), 3), (col.as_ptr().add(kx), ld, 1), par);
                }
            }
            for co in 0..s.cout {
                let add = bias.map_or(0.0, |b| b[co]);
                for (i, yy) in (y0..y1).enumerate() {
                    let src = &out[co * n + i * wd..][..ow];
                    let row = b * s.cout * pout + co * pout + (z * oh + yy) * ow;
                    for (t, &v) in src.iter().enumerate() {
                        // SAFETY: (b, co, z, yy, t < ow) lies inside y's
                        // capacity, and rows y0..y1 of plane z are this
                        // task's alone. Written through the pointer: y is
                        // not initialised yet, so no slice of it is made.
                        unsafe { *y.0.add(row + t) = v + add };
                    }
                }
            }
        });
    });
}

/// `y = conv(x, w) + bias`, valid, stride 1. Panics if a slice's length does
/// not match `s` (callers check shapes first).
pub fn forward(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    forward_with(s, x, w, bias, Algo::Auto)
}

/// [`forward`] by the given algorithm (the bench and the tests compare them).
pub fn forward_with(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, algo: Algo) -> Vec<f32> {
    assert_eq!(x.len(), s.x_len(), "conv input length");
    assert_eq!(w.len(), s.w_len(), "conv weight length");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), s.cout, "conv bias length");
    }
    let algo = match algo {
        Algo::Auto => auto_algo(s),
        Algo::Direct | Algo::Shifted | Algo::Winograd if s.kernel != 3 => Algo::Im2col,
        a => a,
    };
    if algo == Algo::Winograd {
        let mut y: Vec<f32> = Vec::with_capacity(s.y_len());
        winograd::forward(s, x, w, bias, SharedMut(y.as_mut_ptr()));
        // SAFETY: the tiles cover every output position of every batch item
        // and each chunk wrote all channels of its tiles.
        unsafe { y.set_len(s.y_len()) };
        return y;
    }
    if algo == Algo::Shifted {
        let mut y: Vec<f32> = Vec::with_capacity(s.y_len());
        forward_shifted(s, x, w, bias, SharedMut(y.as_mut_ptr()));
        // SAFETY: every (batch, plane, row tile) task wrote all channels and
        // positions of its rows; the tiles cover every row of every plane.
        unsafe { y.set_len(s.y_len()) };
        return y;
    }
    if algo == Algo::Direct {
        let mut y: Vec<f32> = Vec::with_capacity(s.y_len());
        let zeros;
        let bias = match bias {
            Some(b) => b,
            None => {
                zeros = vec![0.0f32; s.cout];
                &zeros
            }
        };
        forward_direct(s, x, w, bias, SharedMut(y.as_mut_ptr()));
        // SAFETY: every (batch, plane) task wrote all channels, rows and
        // positions of its plane (the row's tiles cover 0..ow).
        unsafe { y.set_len(s.y_len()) };
        return y;
    }
    let (xin, pout) = (s.cin * s.in_voxels(), s.out_voxels());
    let yb_len = s.cout * pout;
    let k = s.k();
    let [od, oh, ow] = s.output();
    // Capacity only: gemm writes every value before `set_len` below.
    let mut y: Vec<f32> = Vec::with_capacity(s.y_len());
    let yp = SharedMut(y.as_mut_ptr());

    if s.kernel == 1 {
        // Tiles of positions; every (b, tile) writes columns p0..p1 of its own
        // batch item's rows: disjoint.
        const TILE: usize = 4096;
        let tiles = pout.div_ceil(TILE);
        let tasks = s.batch * tiles;
        let par = gemm_parallelism(tasks);
        (0..tasks).into_par_iter().for_each(|t| {
            let (b, p0) = (t / tiles, (t % tiles) * TILE);
            let p1 = (p0 + TILE).min(pout);
            // The whole wrapper, as in `forward_direct`.
            #[allow(clippy::redundant_locals)]
            let yp = yp;
            // SAFETY: x and w are live slices of the checked lengths; the
            // destination block (rows of batch b, columns p0..p1) is written by
            // this task only, inside y's capacity.
            unsafe {
                matmul(
                    (s.cout, p1 - p0, s.cin),
                    yp.0.add(b * yb_len + p0),
                    pout,
                    false,
                    (w.as_ptr(), s.cin, 1),
                    (x.as_ptr().add(b * xin + p0), pout, 1),
                    par,
                );
            }
        });
    } else {
        let rows = od * oh;
        let per = s.rows_per_tile();
        let tiles = rows.div_ceil(per);
        let tasks = s.batch * tiles;
        let par = gemm_parallelism(tasks);
        (0..tasks).into_par_iter().for_each(|t| {
            let (b, r0) = (t / tiles, (t % tiles) * per);
            let r1 = (r0 + per).min(rows);
            let n = (r1 - r0) * ow;
            // The whole wrapper, as in `forward_direct`.
            #[allow(clippy::redundant_locals)]
            let yp = yp;
            with_scratch(|col, _| {
                col.resize(k * n, 0.0);
                im2col(s, &x[b * xin..(b + 1) * xin], r0, r1, col);
                // SAFETY: col holds k x n values; the destination (rows of
                // batch b, output positions r0*ow..r1*ow) is this task's alone.
                unsafe {
                    matmul((s.cout, n, k), yp.0.add(b * yb_len + r0 * ow), pout, false, (w.as_ptr(), k, 1), (col.as_ptr(), n, 1), par);
                }
            });
        });
    }
    // SAFETY: the tasks above wrote every (batch, channel, position) once:
    // positions are covered by the tiles, channels by gemm's m rows.
    unsafe { y.set_len(s.y_len()) };
    if let Some(bias) = bias {
        y.par_chunks_mut(pout).enumerate().for_each(|(i, plane)| {
            let v = bias[i % s.cout];
            plane.iter_mut().for_each(|e| *e += v);
        });
    }
    y
}

/// Gradients of `sum(dy · conv(x, w))`: `(dx, dw, dbias)`. `dx` is computed
/// only when `want_dx` (a network's first layer does not need it).
pub fn backward(s: &ConvShape, x: &[f32], w: &[f32], dy: &[f32], want_dx: bool) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.x_len(), "conv input length");
    assert_eq!(w.len(), s.w_len(), "conv weight length");
    assert_eq!(dy.len(), s.y_len(), "conv output-gradient length");
    let (xin, pout) = (s.cin * s.in_voxels(), s.out_voxels());
    let yb_len = s.cout * pout;
    let k = s.k();
    let [od, oh, ow] = s.output();
    let mut dx = want_dx.then(|| vec![0.0f32; s.x_len()]);
    let par = gemm_parallelism(s.batch);

    // One task per batch item: its col2im tiles overlap inside dx_b, so they
    // run in order; items write disjoint dx_b and their own partial dw.
    let per_item = |b: usize, dx_b: Option<&mut [f32]>| -> Vec<f32> {
        let x_b = &x[b * xin..(b + 1) * xin];
        let dy_b = &dy[b * yb_len..(b + 1) * yb_len];
        let mut dw_b = vec![0.0f32; s.w_len()];
        if s.kernel == 1 {
            // SAFETY: all matrices are live slices of the checked lengths and
            // dw_b / dx_b belong to this task.
            unsafe {
                // dW_b = dY_b (cout x p) · X_bᵀ (p x cin)
                matmul((s.cout, s.cin, pout), dw_b.as_mut_ptr(), s.cin, false, (dy_b.as_ptr(), pout, 1), (x_b.as_ptr(), 1, pout), par);
                if let Some(dx_b) = dx_b {
                    // dX_b = Wᵀ (cin x cout) · dY_b (cout x p)
                    matmul((s.cin, pout, s.cout), dx_b.as_mut_ptr(), pout, false, (w.as_ptr(), 1, s.cin), (dy_b.as_ptr(), pout, 1), par);
                }
            }
            return dw_b;
        }
        let rows = od * oh;
        let per = s.rows_per_tile();
        // dW is accumulated transposed (k x cout): posed as dY · colᵀ, gemm
        // packed the whole col (k x n) on every tile, 12 % of the network
        // bench's profile (training steps and an inference tile); as
        // col · dYᵀ it packs only dY (cout x n) and reads the col in place
        // (fast preset's step 0.98 -> 0.93 s, 2026-12-06).
        let mut dwt = vec![0.0f32; s.w_len()];
        with_scratch(|col, dcol| {
            let mut dx_b = dx_b;
            for (i, r0) in (0..rows).step_by(per).enumerate() {
                let r1 = (r0 + per).min(rows);
                let n = (r1 - r0) * ow;
                col.resize(k * n, 0.0);
                im2col(s, x_b, r0, r1, col);
                let dy_tile = dy_b[r0 * ow..].as_ptr();
                // SAFETY: col / dcol hold k x n values, dy_tile addresses cout
                // rows of n values at stride pout inside dy_b, dw_b is this
                // task's own.
                unsafe {
                    // dW_bᵀ += col (k x n) · dY_tileᵀ (n x cout)
                    matmul((k, s.cout, n), dwt.as_mut_ptr(), s.cout, i > 0, (col.as_ptr(), n, 1), (dy_tile, 1, pout), par);
                }
                if let Some(dx_b) = dx_b.as_deref_mut() {
                    dcol.resize(k * n, 0.0);
                    // SAFETY: as above; dcol is this thread's scratch.
                    unsafe {
                        // dcol = Wᵀ (k x cout) · dY_tile (cout x n)
                        matmul((k, n, s.cout), dcol.as_mut_ptr(), n, false, (w.as_ptr(), 1, k), (dy_tile, pout, 1), par);
                    }
                    col2im_add(s, dcol, r0, r1, dx_b);
                }
            }
        });
        for (c, row) in dw_b.chunks_exact_mut(k).enumerate() {
            row.iter_mut().zip(dwt[c..].iter().step_by(s.cout)).for_each(|(d, &t)| *d = t);
        }
        dw_b
    };

    let partial: Vec<Vec<f32>> = match dx.as_mut() {
        Some(dx) => dx.par_chunks_mut(xin).enumerate().map(|(b, dx_b)| per_item(b, Some(dx_b))).collect(),
        None => (0..s.batch).into_par_iter().map(|b| per_item(b, None)).collect(),
    };
    // Batch order, whatever the thread count: training repeats exactly.
    let mut dw = vec![0.0f32; s.w_len()];
    for p in &partial {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    let mut db = vec![0.0f32; s.cout];
    for b in 0..s.batch {
        for (c, acc) in db.iter_mut().enumerate() {
            let plane = &dy[b * yb_len + c * pout..b * yb_len + (c + 1) * pout];
            *acc += plane.iter().sum::<f32>();
        }
    }
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64, for checking.
    fn naive(s: &ConvShape, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
        let [d, h, wd] = s.input;
        let [od, oh, ow] = s.output();
        let kk = s.kernel;
        let mut y = vec![0.0f64; s.y_len()];
        for b in 0..s.batch {
            for co in 0..s.cout {
                for z in 0..od {
                    for yy in 0..oh {
                        for xx in 0..ow {
                            let mut acc = f64::from(bias[co]);
                            for ci in 0..s.cin {
                                for kz in 0..kk {
                                    for ky in 0..kk {
                                        for kx in 0..kk {
                                            let xi = (((b * s.cin + ci) * d + z + kz) * h + yy + ky) * wd + xx + kx;
                                            let wi = (((co * s.cin + ci) * kk + kz) * kk + ky) * kk + kx;
                                            acc += f64::from(x[xi]) * f64::from(w[wi]);
                                        }
                                    }
                                }
                            }
                            y[(((b * s.cout + co) * od + z) * oh + yy) * ow + xx] = acc;
                        }
                    }
                }
            }
        }
        y
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

    #[test]
    fn forward_matches_the_definition_on_odd_shapes() {
        // Output rows of 1, 4, 5, 7, 8, 13, 17, 21 and 31 values (every
        // remainder of the direct kernel's 6-position tiles); 1 to 9 and 19
        // output channels (not multiples of its 4-channel blocks).
        for (batch, cin, cout, kernel, input) in [(1, 2, 9, 3, [3, 4, 23]), (2, 3, 19, 3, [4, 3, 8]), (2, 3, 1, 3, [4, 3, 33]), (1, 1, 6, 3, [3, 5, 6]), (1, 1, 3, 3, [5, 6, 7]), (2, 7, 5, 3, [4, 3, 9]), (3, 4, 2, 1, [3, 5, 2]), (1, 2, 3, 3, [3, 3, 3]), (2, 3, 2, 3, [3, 4, 15]), (1, 2, 2, 3, [4, 3, 10]), (1, 1, 2, 3, [3, 3, 19])] {
            let s = ConvShape::new(batch, cin, cout, kernel, input).unwrap();
            let (x, w, b) = (data(s.x_len(), 1), data(s.w_len(), 2), data(cout, 3));
            let want = naive(&s, &x, &w, &b);
            for algo in [Algo::Im2col, Algo::Direct, Algo::Shifted, Algo::Winograd] {
                let got = forward_with(&s, &x, &w, Some(&b), algo);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    // Winograd's transforms (coefficients up to 8 on each
                    // of three axes) cost a few more bits than a direct sum.
                    let tol = if algo == Algo::Winograd { 1e-4 } else { 1e-5 };
                    assert!((f64::from(*g) - e).abs() <= tol * e.abs().max(1.0), "{algo:?} {s:?} at {i}: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn winograd_matches_the_definition_across_chunks_and_edges() {
        // Several 16-tile chunks, batch items split across chunks, output
        // edges of every remainder mod 4, channel counts that are not
        // multiples of the 6-channel register blocks, and the network's
        // 24 -> 24 with values of its scale. Rows of eight or more tiles
        // take the run gather and scatter (`winograd::chunks`): whole runs,
        // a run whose last block is clipped in x, rows clipped in y or z,
        // a row of exactly one run, and runs at the buffer's very end.
        for (batch, cin, cout, input) in [(2, 13, 19, [11, 9, 14]), (1, 24, 24, [22, 21, 23]), (3, 9, 7, [6, 7, 8]), (1, 1, 1, [3, 3, 3]), (2, 5, 7, [10, 7, 36]), (1, 6, 13, [7, 6, 64]), (1, 24, 24, [14, 10, 70]), (2, 3, 4, [6, 6, 34])] {
            let s = ConvShape::new(batch, cin, cout, 3, input).unwrap();
            let (x, w, b) = (data(s.x_len(), 11), data(s.w_len(), 12), data(cout, 13));
            let want = naive(&s, &x, &w, &b);
            let got = forward_with(&s, &x, &w, Some(&b), Algo::Winograd);
            let worst = got.iter().zip(&want).map(|(g, e)| (f64::from(*g) - e).abs() / e.abs().max(1.0)).fold(0.0, f64::max);
            // Measured: 1.6e-4 on the 24 -> 24 layer (the transforms'
            // coefficients of up to 5 x 5 x 5 in and 8 x 8 x 8 out cost bits
            // a direct sum keeps); a wrong transform or index is off by O(1).
            assert!(worst <= 5e-4, "{s:?}: worst relative error {worst}");
        }
    }

    #[test]
    fn winograd_gives_the_same_bits_on_any_thread_count() {
        // Each output is summed by one chunk in one order, whatever the
        // threads: training and `segment` stay reproducible.
        let s = ConvShape::new(2, 12, 13, 3, [19, 17, 21]).unwrap();
        let (x, w, b) = (data(s.x_len(), 14), data(s.w_len(), 15), data(s.cout, 16));
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| forward_with(&s, &x, &w, Some(&b), Algo::Winograd))
        };
        let one = on(1);
        assert!(one.iter().zip(on(3)).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn winograd_follows_a_changed_kernel() {
        // Kept transforms are found by the kernel itself: a kernel of the
        // same shape changed (a training step), then changed back, must give
        // each its own outputs, the same bits as the first time.
        let s = ConvShape::new(1, 10, 8, 3, [13, 12, 14]).unwrap();
        let (x, b) = (data(s.x_len(), 21), data(s.cout, 22));
        let (w1, mut w2) = (data(s.w_len(), 23), data(s.w_len(), 23));
        w2[s.w_len() - 1] += 0.5;
        let first = forward_with(&s, &x, &w1, Some(&b), Algo::Winograd);
        let changed = forward_with(&s, &x, &w2, Some(&b), Algo::Winograd);
        let again = forward_with(&s, &x, &w1, Some(&b), Algo::Winograd);
        assert!(first.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()));
        let want = naive(&s, &x, &w2, &b);
        let worst = changed.iter().zip(&want).map(|(g, e)| (f64::from(*g) - e).abs() / e.abs().max(1.0)).fold(0.0, f64::max);
        assert!(worst <= 5e-4, "the changed kernel's outputs: worst relative error {worst}");
        assert!(first.iter().zip(&changed).any(|(a, b)| (a - b).abs() > 1e-3), "the change shows in the outputs");
    }

    /// The backward pass is the adjoint of the forward pass: for random `v`,
    /// d/dθ sum(v · conv) computed by `backward` equals central differences.
    #[test]
    fn backward_matches_finite_differences() {
        for (batch, cin, cout, kernel, input) in [(2, 3, 2, 3, [4, 5, 3]), (1, 2, 3, 1, [2, 3, 4]), (1, 2, 2, 3, [3, 4, 15]), (2, 1, 2, 3, [3, 3, 21])] {
            let s = ConvShape::new(batch, cin, cout, kernel, input).unwrap();
            let (x, w, b, v) = (data(s.x_len(), 4), data(s.w_len(), 5), data(cout, 6), data(s.y_len(), 7));
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
                naive(&s, x, w, b).iter().zip(&v).map(|(y, v)| y * f64::from(*v)).sum()
            };
            let (dx, dw, db) = backward(&s, &x, &w, &v, true);
            let dx = dx.unwrap();
            let eps = 1e-2f32;
            let check = |name: &str, analytic: &[f32], perturb: &dyn Fn(usize, f32) -> f64| {
                for i in (0..analytic.len()).step_by(analytic.len().div_ceil(7)) {
                    let numeric = (perturb(i, eps) - perturb(i, -eps)) / (2.0 * f64::from(eps));
                    let a = f64::from(analytic[i]);
                    assert!((a - numeric).abs() <= 1e-3 * a.abs().max(1.0), "{name}[{i}] {s:?}: {a} vs {numeric}");
                }
            };
            check("dx", &dx, &|i, e| {
                let mut x2 = x.clone();
                x2[i] += e;
                loss(&x2, &w, &b)
            });
            check("dw", &dw, &|i, e| {
                let mut w2 = w.clone();
                w2[i] += e;
                loss(&x, &w2, &b)
            });
            check("db", &db, &|i, e| {
                let mut b2 = b.clone();
                b2[i] += e;
                loss(&x, &w, &b2)
            });
        }
    }

    #[test]
    fn backward_without_dx_gives_the_same_weight_gradient() {
        let s = ConvShape::new(3, 4, 5, 3, [5, 4, 6]).unwrap();
        let (x, w, dy) = (data(s.x_len(), 8), data(s.w_len(), 9), data(s.y_len(), 10));
        let (dx_a, dw_a, db_a) = backward(&s, &x, &w, &dy, true);
        let (dx_b, dw_b, db_b) = backward(&s, &x, &w, &dy, false);
        assert!(dx_a.is_some() && dx_b.is_none());
        assert_eq!(dw_a, dw_b);
        assert_eq!(db_a, db_b);
    }

    #[test]
    fn a_kernel_larger_than_the_input_has_no_shape() {
        assert!(ConvShape::new(1, 1, 1, 3, [2, 5, 5]).is_none());
        assert!(ConvShape::new(1, 1, 1, 3, [3, 3, 3]).is_some());
    }
}
