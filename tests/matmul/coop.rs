//! The cooperative-matrix product (`shaders/matmul/coop.wgsl`), emulated:
//! the same tiling, scaling and indexing as on tensor cores, against the
//! CPU twin around its switch points (64 × 64 blocks, k in steps of 16 and
//! slices of 96 a dispatch), with views, a bias and accumulation; the
//! scaling's documented boundary in bf16; bit-identical repeats; and what
//! the hardware kernel needs.

use crate::common::{ctx, read_f32, Rng};
use half::bf16;
use proptest::prelude::*;
use wgpu::util::DeviceExt;
use xent::{
    cpu, Error, MatmulDims, MatmulOptions, MatrixView, Precision, ProductBuffers, ProductKernel,
    Tolerance,
};

/// Sizes around the block (64) and the steps of k (16; 96 a dispatch).
fn side() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=3,
        15usize..=17,
        63usize..=65,
        95usize..=97,
        191usize..=193
    ]
}

fn rounded(precision: Precision, v: &[f32]) -> Vec<f32> {
    match precision {
        Precision::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        _ => v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
    }
}

fn emulated(
    ctx: &xent::Context,
    a: &[f32],
    b: &[f32],
    dims: &MatmulDims,
    opts: &MatmulOptions,
    precision: Precision,
) -> Vec<f32> {
    match precision {
        Precision::F16 => {
            let to = |v: &[f32]| {
                v.iter()
                    .map(|&x| half::f16::from_f32(x))
                    .collect::<Vec<_>>()
            };
            ctx.matmul(&to(a), &to(b), dims, opts).unwrap()
        }
        _ => {
            let to = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
            ctx.matmul(&to(a), &to(b), dims, opts).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// f16 and bf16 operands, every transpose, magnitudes over many
    /// binades: within the f32 tolerance of the twin on the rounded
    /// operands (the scaling keeps such operands exact).
    #[test]
    fn emulated_products_match_the_cpu(
        m in side(), n in side(), k in side(),
        transpose_a in any::<bool>(), transpose_b in any::<bool>(),
        f16 in any::<bool>(),
        spread in 0i32..=12,
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let precision = if f16 { Precision::F16 } else { Precision::BF16 };
        if f16 && !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            return Ok(());
        }
        let mut rng = Rng(seed);
        // Magnitudes 2^-spread to 2^spread (f16's range holds them).
        let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.spread(spread)).collect() };
        let (a, b) = (draw(m * k), draw(k * n));
        let dims = MatmulDims { m, n, k };
        let opts = MatmulOptions { transpose_a, transpose_b, kernel: ProductKernel::CoopEmulated, ..Default::default() };
        let got = emulated(ctx, &a, &b, &dims, &opts, precision);
        let want = cpu::matmul(&rounded(precision, &a), &rounded(precision, &b), &dims, &opts).unwrap();
        Tolerance::default().check("product", &got, &want)
            .map_err(|e| TestCaseError::fail(format!("{dims:?} {opts:?} {precision:?}: {e}")))?;
    }
}

/// Through the recording API: bf16 views at odd offsets and strides, a bias
/// in the first product and a second one accumulated onto it, 1 000 deep
/// (11 dispatches): against the CPU, and the same bits twice.
#[test]
fn emulated_views_bias_and_accumulation() {
    let Some(ctx) = ctx() else { return };
    let (m, n, k) = (67, 70, 1000);
    let (a_view, w_view, out_view) = ((3, 1003), (5, 1001), (7, 73));
    let mut rng = Rng(11);
    let mut draw = |len: usize| -> Vec<bf16> {
        (0..len)
            .map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0)))
            .collect()
    };
    let (a, w, bias) = (draw(3 + 2 * m * 1003), draw(5 + n * 1001), draw(n));
    let operands = Operands {
        a: &a,
        w: &w,
        bias: &bias,
        dims: (m, n, k),
        a_view,
        w_view,
    };
    let got = operands.recorded(ctx, out_view);
    for i in 0..m {
        for j in 0..n {
            let (want, magnitude) = operands.expected(i, j);
            let g = f64::from(got[out_view.0 + i * out_view.1 + j]);
            let fits = Tolerance::default().matches_terms(g, want, magnitude);
            assert!(fits, "({i}, {j}): {g} vs {want}");
        }
    }
    let again = operands.recorded(ctx, out_view);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&again));
}

/// The operands of `emulated_views_bias_and_accumulation`: two A's one
/// after the other and W, each (offset, stride) into its storage.
struct Operands<'a> {
    a: &'a [bf16],
    w: &'a [bf16],
    bias: &'a [bf16],
    dims: (usize, usize, usize),
    a_view: (usize, usize),
    w_view: (usize, usize),
}

impl Operands<'_> {
    /// `out = A1·Wᵀ + bias`, then `out += A2·Wᵀ`, recorded into one
    /// encoder on the emulated kernel; the output's storage read back.
    fn recorded(&self, ctx: &xent::Context, (c_off, c_stride): (usize, usize)) -> Vec<f32> {
        let ((m, n, k), dev) = (self.dims, ctx.device());
        let init = |bytes: &[u8]| {
            let mut contents = bytes.to_vec();
            contents.resize(bytes.len().next_multiple_of(4), 0);
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
        };
        let (a, w, bias) = (
            init(bytemuck::cast_slice(self.a)),
            init(bytemuck::cast_slice(self.w)),
            init(bytemuck::cast_slice(self.bias)),
        );
        let out = init(bytemuck::cast_slice(&vec![0.0f32; c_off + m * c_stride]));
        fn view(
            buffer: &wgpu::Buffer,
            (offset, stride): (usize, usize),
            k: usize,
        ) -> MatrixView<'_> {
            MatrixView {
                offset: offset as u64,
                stride: stride as u64,
                ..MatrixView::dense(buffer.slice(..), Precision::BF16, k)
            }
        }
        let mut e = dev.create_command_encoder(&Default::default());
        for second in [false, true] {
            let a_view = (
                self.a_view.0 + usize::from(second) * m * self.a_view.1,
                self.a_view.1,
            );
            let buffers = ProductBuffers {
                a: view(&a, a_view, k),
                b: view(&w, self.w_view, k),
                bias: (!second).then_some(bias.slice(..)),
                out: out.slice(..),
                out_offset: c_off as u64,
                out_stride: c_stride as u64,
                accumulate: second,
            };
            let opts = MatmulOptions {
                transpose_b: true,
                kernel: ProductKernel::CoopEmulated,
                ..Default::default()
            };
            ctx.record_matmul(&mut e, &MatmulDims { m, n, k }, &opts, &buffers)
                .unwrap();
        }
        ctx.queue().submit([e.finish()]);
        read_f32(ctx, &out)
    }

    /// Output (i, j) of both products and the bias, in f64, and the sum of
    /// its terms' magnitudes.
    fn expected(&self, i: usize, j: usize) -> (f64, f64) {
        let f = |x: bf16| f64::from(x.to_f32());
        let ((m, _, k), (a_off, a_stride), (w_off, w_stride)) =
            (self.dims, self.a_view, self.w_view);
        let (mut s, mut magnitude) = (f(self.bias[j]), f(self.bias[j]).abs());
        for second in 0..2 {
            for l in 0..k {
                let t = f(self.a[a_off + second * m * a_stride + i * a_stride + l])
                    * f(self.w[w_off + j * w_stride + l]);
                s += t;
                magnitude += t.abs();
            }
        }
        (s, magnitude)
    }
}

/// The scaling's boundary (`ProductKernel::Coop`): with 2^e the largest
/// power of two of a step's tile, a bf16 value of magnitude at least
/// 2^(e-32) is held exactly, a smaller one is rounded to a multiple of
/// 2^(e-39), half to even. One row holds 2^100 (e = 100) and x; B picks x.
#[test]
fn scaling_holds_bf16_exactly_down_to_its_bound() {
    let Some(ctx) = ctx() else { return };
    let p = |e: i32| 2f32.powi(e);
    for (x, want) in [
        // At the bound: exact.
        (p(68) * (1.0 + p(-7)), p(68) * (1.0 + p(-7))),
        (-p(68) * (1.0 + p(-7)), -p(68) * (1.0 + p(-7))),
        // Below it: 2^67 + 2^60 is half a step (2^61) past 2^67: to even.
        (p(67) * (1.0 + p(-7)), p(67)),
        // 2^67 + 2^61 + 2^60 (1.5 steps): up to 2^67 + 2^62.
        (p(67) * (1.0 + p(-6) + p(-7)), p(67) + p(62)),
        // Far below: a multiple of 2^61, or zero.
        (p(40), 0.0),
    ] {
        let (m, n, k) = (2, 1, 16);
        // Row 0: the largest and a zero; row 1: x. B picks A(·, 1).
        let mut a = vec![0.0f32; m * k];
        a[0] = p(100);
        a[k + 1] = x;
        let mut b = vec![0.0f32; k * n];
        b[1] = 1.0;
        let dims = MatmulDims { m, n, k };
        let opts = MatmulOptions {
            kernel: ProductKernel::CoopEmulated,
            ..Default::default()
        };
        let got = emulated(ctx, &a, &b, &dims, &opts, Precision::BF16);
        assert_eq!(got, [0.0, want], "x = {x:e}");
        // In a step of its own (a second row block), x is exact.
        let dims = MatmulDims { m: 65, n, k };
        let mut a = vec![0.0f32; 65 * k];
        a[0] = p(100);
        a[64 * k + 1] = x;
        let got = emulated(ctx, &a, &b, &dims, &opts, Precision::BF16);
        assert_eq!(got[64], x, "x = {x:e}, alone in its block");
    }
}

/// Each step's two shifts reach ±126 each: their inverse is applied in two
/// halves, so tiny operands on both sides (2^-60 · 2^-60, shifts of 75
/// each) keep their product instead of underflowing to zero, and huge ones
/// (2^79 in both tiles, shifts of -64 each) give 2^126 rather than inf;
/// bf16 subnormals (2^-130, lifted by 2^126) give what the scalar kernel
/// gives on this device (exact where it keeps f32 subnormals); an inf
/// leaves the rest of its tile alone.
#[test]
fn scaling_keeps_extreme_operands() {
    let Some(ctx) = ctx() else { return };
    let p = |e: i32| 2f64.powi(e) as f32;
    let run = |a: &[f32], b: &[f32], (m, n, k), kernel| {
        let dims = MatmulDims { m, n, k };
        let opts = MatmulOptions {
            kernel,
            ..Default::default()
        };
        emulated(ctx, a, b, &dims, &opts, Precision::BF16)
    };
    let coop = ProductKernel::CoopEmulated;
    for (a, b, want) in [(p(-60), p(-60), p(-120)), (p(60), p(60), p(120))] {
        // a·b + 0·b + a·0: the one product, alone in its step.
        let got = run(&[a, 0.0, a], &[b, b, 0.0], (1, 1, 3), coop);
        assert_eq!(got, [want], "{a:e} x {b:e}");
    }
    // A = [2^79, 0], B = [[2^47, 0], [0, 2^79]]: [2^126, 0].
    let got = run(&[p(79), 0.0], &[p(47), 0.0, 0.0, p(79)], (1, 2, 2), coop);
    assert_eq!(got, [p(126), 0.0]);
    for (a, b) in [(p(-130), p(100)), (p(-130), p(10))] {
        let scalar = run(&[a, 0.0], &[b, 0.0], (1, 1, 2), ProductKernel::Blocks);
        let got = run(&[a, 0.0], &[b, 0.0], (1, 1, 2), coop);
        assert_eq!(got, scalar, "{a:e} x {b:e}");
    }
    // Row 0 holds an inf; row 1's product is its own.
    let got = run(
        &[f32::INFINITY, 0.0, 1.0, 0.0],
        &[1.0, 0.0],
        (2, 1, 2),
        coop,
    );
    assert_eq!(got, [f32::INFINITY, 1.0]);
}

/// The hardware kernel needs the device's cooperative matrices: a typed
/// error without them, with any operands (f32 ones split in halves).
#[test]
fn the_hardware_kernel_needs_the_device() {
    let Some(ctx) = ctx() else { return };
    let dims = MatmulDims { m: 2, n: 2, k: 2 };
    let opts = MatmulOptions {
        kernel: ProductKernel::Coop,
        ..Default::default()
    };
    let halves = [bf16::from_f32(1.0); 4];
    let singles = [1.0f32; 4];
    for got in [
        ctx.matmul(&halves, &halves, &dims, &opts),
        ctx.matmul(&singles, &singles, &dims, &opts),
    ] {
        if ctx.cooperative_matrices() {
            assert_eq!(got.unwrap(), [2.0; 4]);
        } else {
            assert!(
                matches!(
                    got,
                    Err(Error::Unsupported {
                        what: "cooperative matrix products",
                        ..
                    })
                ),
                "{got:?}"
            );
        }
    }
}
