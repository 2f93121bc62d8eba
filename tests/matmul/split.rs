//! Split k (`SplitK`): the cut of k fixes the bits, and running its slices
//! at once (their partial sums in scratch, then added in order) gives the
//! bits of running them one after another, on every kernel, with a bias,
//! accumulation and strided views, at the most slices at once; `Auto` on a
//! GPU-class device cuts a thin product and matches the twin; bad cuts are
//! typed errors.

use crate::common::placed::stored;
use crate::common::{ctx, gpu_class_ctx, read_f32, storage as init, Rng};
use xent::{
    cpu, MatmulDims, MatmulOptions, MatrixView, Precision, ProductBuffers, ProductKernel, SplitK,
    Tolerance,
};

/// One product's operands, stored strided (A k-contiguous from element
/// 3, rows 5 longer than k; B as Wᵀ with W n × k), a bias and an output
/// holding earlier values, in `precision`.
struct Case {
    dims: MatmulDims,
    precision: Precision,
    a: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    out: Vec<f32>,
}

const A_OFF: usize = 3;
const PAD: usize = 5;

impl Case {
    fn new(dims: MatmulDims, precision: Precision, seed: u64) -> Self {
        let MatmulDims { m, n, k } = dims;
        let mut rng = Rng(seed);
        let mut draw = |len: usize| -> Vec<f32> {
            let v: Vec<f32> = (0..len).map(|_| rng.uniform(-2.0, 2.0)).collect();
            match precision {
                Precision::F32 => v,
                _ => v
                    .iter()
                    .map(|&x| half::bf16::from_f32(x).to_f32())
                    .collect(),
            }
        };
        Self {
            dims,
            precision,
            a: draw(A_OFF + m * (k + PAD)),
            w: draw(n * k),
            bias: draw(n),
            out: draw(2 * m * n + 7),
        }
    }

    /// `out[7..] (+)= A·Wᵀ (+ bias)` recorded with `split_k`: the output's bits.
    fn run(&self, ctx: &xent::Context, kernel: ProductKernel, split_k: SplitK) -> Vec<u32> {
        let MatmulDims { n, k, .. } = self.dims;
        let usage = wgpu::BufferUsages::STORAGE;
        let buffer = |bytes: Vec<u8>| crate::common::buffer(ctx, &bytes, usage);
        let (a, w, bias) = (
            buffer(stored(&self.a, self.precision)),
            buffer(stored(&self.w, self.precision)),
            buffer(stored(&self.bias, self.precision)),
        );
        let out = init(ctx, &self.out);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for accumulate in [false, true] {
            let buffers = ProductBuffers {
                a: MatrixView {
                    offset: A_OFF as u64,
                    stride: (k + PAD) as u64,
                    ..MatrixView::dense(a.slice(..), self.precision, k)
                },
                b: MatrixView::dense(w.slice(..), self.precision, k),
                bias: (!accumulate).then_some(bias.slice(..)),
                out: out.slice(..),
                out_offset: 7,
                out_stride: 2 * n as u64,
                accumulate,
            };
            let opts = MatmulOptions {
                transpose_b: true,
                kernel,
                split_k,
                ..Default::default()
            };
            ctx.record_matmul(&mut encoder, &self.dims, &opts, &buffers)
                .unwrap();
        }
        ctx.queue().submit([encoder.finish()]);
        read_f32(ctx, &out).iter().map(|x| x.to_bits()).collect()
    }

    /// The twin of `run`: `A·Wᵀ + bias` then `+ A·Wᵀ` into the output's
    /// rows, the magnitude of both products' terms and the bias.
    fn twin(&self) -> cpu::Reference {
        let MatmulDims { m, n, k } = self.dims;
        let a: Vec<f32> = (0..m * k)
            .map(|e| self.a[A_OFF + (e / k) * (k + PAD) + e % k])
            .collect();
        let opts = MatmulOptions {
            transpose_b: true,
            ..Default::default()
        };
        let p = cpu::matmul(&a, &self.w, &self.dims, &opts).unwrap();
        let bias = |e: usize| f64::from(self.bias[e % n]);
        cpu::Reference {
            value: (0..m * n).map(|e| 2.0 * p.value[e] + bias(e)).collect(),
            magnitude: (0..m * n)
                .map(|e| 2.0 * p.magnitude[e] + bias(e).abs())
                .collect(),
            flush: p.flush.iter().map(|f| 2.0 * f).collect(),
        }
    }
}

/// The output rows of `bits` (rows 2n apart from element 7), as f32.
fn rows_of(bits: &[u32], (m, n): (usize, usize)) -> Vec<f32> {
    (0..m * n)
        .map(|e| f32::from_bits(bits[7 + (e / n) * 2 * n + e % n]))
        .collect()
}

/// Every kernel, a bias and accumulation onto earlier values: slices run
/// 2, 3 or all at once give the bits of one at a time, and the values
/// lying between the rows are untouched.
#[test]
fn slices_at_once_give_the_bits_of_slices_in_order() {
    let Some(ctx) = ctx() else { return };
    for (kernel, precision, len) in [
        (ProductKernel::Tiled, Precision::F32, 48),
        (ProductKernel::Blocks, Precision::F32, 32),
        (ProductKernel::CoopEmulated, Precision::BF16, 32),
    ] {
        // 7 slices and a short eighth; rows and columns past a block.
        let dims = MatmulDims {
            m: 67,
            n: 70,
            k: 7 * len + 5,
        };
        let case = Case::new(dims, precision, 5);
        let cut = |parallel| SplitK::Slices { len, parallel };
        let in_order = case.run(ctx, kernel, cut(1));
        for parallel in [2, 3, 8, 1024] {
            let got = case.run(ctx, kernel, cut(parallel));
            assert!(got == in_order, "{kernel:?}, {parallel} at once");
        }
        let want = case.twin();
        let got = rows_of(&in_order, (dims.m, dims.n));
        Tolerance::default()
            .check("split product", &got, &want)
            .unwrap();
        let between = |bits: &[u32]| -> Vec<u32> {
            let n = dims.n;
            (0..bits.len())
                .filter(|&i| i < 7 || (i - 7) % (2 * n) >= n || i >= 7 + 2 * n * dims.m)
                .map(|i| bits[i])
                .collect()
        };
        let before: Vec<u32> = case.out.iter().map(|x| x.to_bits()).collect();
        assert_eq!(between(&in_order), between(&before), "{kernel:?}");
    }
}

/// The most slices at once (1 024, `sum_slices`' loop) and one more in a
/// second batch: the bits of one at a time.
#[test]
fn the_most_slices_at_once() {
    let Some(ctx) = ctx() else { return };
    let dims = MatmulDims {
        m: 3,
        n: 5,
        k: 1025 * 16,
    };
    let case = Case::new(dims, Precision::F32, 9);
    let cut = |parallel| SplitK::Slices { len: 16, parallel };
    let at_once = case.run(ctx, ProductKernel::Blocks, cut(1024));
    assert!(at_once == case.run(ctx, ProductKernel::Blocks, cut(1)));
    let want = case.twin();
    Tolerance::default()
        .check("1 025 slices", &rows_of(&at_once, (3, 5)), &want)
        .unwrap();
}

/// On a GPU-class device, `Auto` cuts a product of one block 4 000 deep
/// into 16 slices of 256 run at once: the bits of those slices in order,
/// within the twin's tolerance, its partial sums held as scratch.
#[test]
fn auto_cuts_a_thin_product_on_a_gpu() {
    let Some(ctx) = gpu_class_ctx() else { return };
    let dims = MatmulDims {
        m: 8,
        n: 60,
        k: 4000,
    };
    let case = Case::new(dims, Precision::F32, 13);
    let auto = case.run(ctx, ProductKernel::Auto, SplitK::Auto);
    let cut = SplitK::Slices {
        len: 256,
        parallel: 1,
    };
    assert!(auto == case.run(ctx, ProductKernel::Tiled, cut));
    assert!(ctx.scratch_bytes() >= 16 * 8 * 60 * 4);
    let want = case.twin();
    Tolerance::default()
        .check("auto split", &rows_of(&auto, (8, 60)), &want)
        .unwrap();
}

/// Cuts no kernel can run are typed errors naming `split_k`.
#[test]
fn bad_cuts_are_typed_errors() {
    let Some(ctx) = ctx() else { return };
    let (a, b) = (vec![1.0f32; 4 * 8], vec![1.0f32; 8 * 4]);
    let dims = MatmulDims { m: 4, n: 4, k: 8 };
    for (kernel, len, parallel) in [
        (ProductKernel::Tiled, 0, 1),
        (ProductKernel::Tiled, 24, 1),
        (ProductKernel::Tiled, 4112, 1),
        (ProductKernel::Tiled, 16, 0),
        (ProductKernel::Blocks, 16, 1025),
        (ProductKernel::CoopEmulated, 112, 1),
    ] {
        let opts = MatmulOptions {
            kernel,
            split_k: SplitK::Slices { len, parallel },
            ..Default::default()
        };
        let bf16 =
            |v: &[f32]| -> Vec<half::bf16> { v.iter().map(|&x| half::bf16::from_f32(x)).collect() };
        let got = ctx.matmul(&bf16(&a), &bf16(&b), &dims, &opts);
        assert!(
            matches!(
                got,
                Err(xent::Error::InvalidOption {
                    name: "split_k",
                    ..
                })
            ),
            "{kernel:?} {len} {parallel}: {got:?}"
        );
    }
}
