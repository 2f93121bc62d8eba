//! The matrix products (`shaders/matmul/`) against their f64 CPU twin:
//! shapes around the tile sizes (64 × 64 outputs, k in steps of 16),
//! every transpose, every storage precision, every kernel (the cooperative
//! one emulated), cuts of k (`SplitK`), unaligned views (the scalar loads),
//! the bias, accumulation, and bit-identical repeats.

use crate::common::generators::{precision, split_k, within};
use crate::common::placed::stored;
use crate::common::{buffer, ctx, read_f32, storage as init, Rng};
use proptest::prelude::*;
use xent::{
    cpu, MatmulDims, MatmulOptions, MatrixView, Precision, ProductBuffers, ProductKernel, Tolerance,
};

/// Sizes around the tile's switch points.
fn side() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=5,
        15usize..=17,
        63usize..=65,
        127usize..=130,
        190usize..=200
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn products_match_cpu(
        m in side(), n in side(), k in side(),
        transpose_a in any::<bool>(), transpose_b in any::<bool>(),
        precision in precision(),
        kernel in prop_oneof![
            Just(ProductKernel::Tiled),
            Just(ProductKernel::Blocks),
            Just(ProductKernel::CoopEmulated),
        ],
        split_k in split_k(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        if precision == Precision::F16 && !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let dims = MatmulDims { m, n, k };
        let split_k = within(split_k, kernel, if precision == Precision::F32 { 2 } else { 0 });
        let opts = MatmulOptions { transpose_a, transpose_b, kernel, split_k };
        let got = match precision {
            Precision::F32 => ctx.matmul(&a, &b, &dims, &opts),
            Precision::BF16 => {
                let to = |v: &[f32]| v.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>();
                ctx.matmul(&to(&a), &to(&b), &dims, &opts)
            }
            Precision::F16 => {
                let to = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>();
                ctx.matmul(&to(&a), &to(&b), &dims, &opts)
            }
        }.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let round = |v: &[f32]| -> Vec<f32> { match precision {
            Precision::F32 => v.to_vec(),
            Precision::BF16 => v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect(),
            Precision::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        }};
        let want = cpu::matmul(&round(&a), &round(&b), &dims, &opts).unwrap();
        // f32 accumulation of rounded operands: the f32 tolerance.
        Tolerance::default().check("product", &got, &want).map_err(|e| TestCaseError::fail(format!("{dims:?} {opts:?}: {e}")))?;
    }
}

/// Views at odd offsets and strides (the scalar loads), a bias, and a
/// second product accumulated onto the first: `out = A1·B + bias, then
/// out += A2·B`, against the CPU; the same recording twice gives the same bits.
#[test]
fn strided_views_bias_and_accumulation() {
    let Some(ctx) = ctx() else { return };
    let (m, n, k) = (67, 70, 37);
    let (a_off, a_stride, b_off, b_stride, c_off, c_stride) =
        (3usize, 41usize, 5usize, 39usize, 7usize, 73usize);
    let mut rng = Rng(7);
    let a_store: Vec<f32> = (0..a_off + 2 * m * a_stride)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    // B = Wᵀ with W (n × k) stored with stride b_stride.
    let w_store: Vec<f32> = (0..b_off + n * b_stride)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let (a_buf, w_buf, bias_buf) = (init(ctx, &a_store), init(ctx, &w_store), init(ctx, &bias));
    let run = |kernel: ProductKernel| {
        let out = init(ctx, &vec![0.0f32; c_off + m * c_stride]);
        let mut e = ctx.device().create_command_encoder(&Default::default());
        for (second, offset) in [(false, a_off), (true, a_off + m * a_stride)] {
            let buffers = ProductBuffers {
                a: MatrixView {
                    offset: offset as u64,
                    stride: a_stride as u64,
                    ..MatrixView::dense(a_buf.slice(..), Precision::F32, k)
                },
                b: MatrixView {
                    offset: b_off as u64,
                    stride: b_stride as u64,
                    ..MatrixView::dense(w_buf.slice(..), Precision::F32, k)
                },
                bias: (!second).then_some(bias_buf.slice(..)),
                out: out.slice(..),
                out_offset: c_off as u64,
                out_stride: c_stride as u64,
                accumulate: second,
            };
            let opts = MatmulOptions {
                transpose_b: true,
                kernel,
                ..Default::default()
            };
            ctx.record_matmul(&mut e, &MatmulDims { m, n, k }, &opts, &buffers)
                .unwrap();
        }
        ctx.queue().submit([e.finish()]);
        read_f32(ctx, &out)
    };
    for kernel in [ProductKernel::Tiled, ProductKernel::Blocks] {
        let got = run(kernel);
        let a_at = |s: usize, i: usize, l: usize| {
            f64::from(a_store[a_off + s * m * a_stride + i * a_stride + l])
        };
        let w_at = |j: usize, l: usize| f64::from(w_store[b_off + j * b_stride + l]);
        let tol = Tolerance::default();
        for i in 0..m {
            for j in 0..n {
                let mut want = f64::from(bias[j]);
                let mut mag = want.abs();
                for s in 0..2 {
                    for l in 0..k {
                        want += a_at(s, i, l) * w_at(j, l);
                        mag += (a_at(s, i, l) * w_at(j, l)).abs();
                    }
                }
                let g = f64::from(got[c_off + i * c_stride + j]);
                assert!(tol.matches_terms(g, want, mag), "({i}, {j}): {g} vs {want}");
            }
        }
        // Outside the output's rows nothing was written.
        assert!(got[..c_off].iter().all(|&v| v == 0.0));
        assert!((0..m).all(
            |i| got[c_off + i * c_stride + n..c_off + (i + 1) * c_stride]
                .iter()
                .all(|&v| v == 0.0)
        ));
        assert_eq!(got, run(kernel), "a repeat differs");
    }
}

#[test]
fn bad_views_are_typed_errors() {
    let Some(ctx) = ctx() else { return };
    let a = init(ctx, &[0.0; 16]);
    let out = init(ctx, &[0.0; 16]);
    let short_bias = init(ctx, &[0.0; 2]);
    let dims = MatmulDims { m: 4, n: 4, k: 4 };
    let ok = ProductBuffers {
        a: MatrixView::dense(a.slice(..), Precision::F32, 4),
        b: MatrixView::dense(a.slice(..), Precision::F32, 4),
        bias: None,
        out: out.slice(..),
        out_offset: 0,
        out_stride: 4,
        accumulate: false,
    };
    let opts = MatmulOptions::default();
    let mut e = ctx.device().create_command_encoder(&Default::default());
    ctx.record_matmul(&mut e, &dims, &opts, &ok).unwrap();
    let cases = [
        (
            "a",
            ProductBuffers {
                a: MatrixView { offset: 1, ..ok.a },
                ..ok
            },
        ),
        (
            "a",
            ProductBuffers {
                a: MatrixView { stride: 3, ..ok.a },
                ..ok
            },
        ),
        (
            "out",
            ProductBuffers {
                out_stride: 5,
                ..ok
            },
        ),
        (
            "out",
            ProductBuffers {
                out: a.slice(..),
                ..ok
            },
        ),
        (
            "bias",
            ProductBuffers {
                bias: Some(short_bias.slice(..)),
                ..ok
            },
        ),
    ];
    for (what, b) in cases {
        match ctx.record_matmul(&mut e, &dims, &opts, &b) {
            Err(xent::Error::BadBuffer { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(matches!(
        ctx.matmul(
            &[0.0; 3],
            &[0.0; 4],
            &MatmulDims { m: 2, n: 2, k: 2 },
            &Default::default()
        ),
        Err(xent::Error::ShapeMismatch { what: "a", .. })
    ));
}

/// A product deeper than one dispatch's share of k (4 096 tiled, 32 768 in blocks: Mesa stops an
/// invocation's loops after 65 535 iterations in all, silently) is several
/// dispatches adding in order: around the switch and far past it, against
/// the CPU, transposed and not.
#[test]
fn deep_products_span_dispatches() {
    let Some(ctx) = ctx() else { return };
    // The switch of each kernel (32 768 for `Blocks`, 4 096 for `Tiled`).
    for k in [4095, 4096, 4097, 32_767, 32_768, 32_769, 50_257] {
        for (transpose_a, kernel) in [
            (false, ProductKernel::Tiled),
            (true, ProductKernel::Tiled),
            (false, ProductKernel::Blocks),
            (true, ProductKernel::Blocks),
        ] {
            let (m, n) = (3, 5);
            let mut rng = Rng(k as u64);
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let dims = MatmulDims { m, n, k };
            let opts = MatmulOptions {
                transpose_a,
                kernel,
                ..Default::default()
            };
            let got = ctx.matmul(&a, &b, &dims, &opts).unwrap();
            let want = cpu::matmul(&a, &b, &dims, &opts).unwrap();
            Tolerance::default()
                .check("deep product", &got, &want)
                .unwrap_or_else(|e| panic!("k {k}: {e}"));
        }
    }
}

/// bf16 operands in buffers of whole 8-byte runs that are not whole 16-byte
/// ones (24 bytes: the last run past a binding rounded to 16), through the
/// recording API, against the CPU: the vec4 views are bound over whole runs.
#[test]
fn narrow_operands_read_their_last_run() {
    let Some(ctx) = ctx() else { return };
    let (m, n, k) = (3, 2, 4);
    let a: Vec<f32> = (0..m * k).map(|i| i as f32 - 5.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| 0.5 * i as f32 - 1.0).collect();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let store = |v: &[f32]| buffer(ctx, &stored(v, Precision::BF16), usage);
    let (a_buf, b_buf) = (store(&a), store(&b));
    assert_eq!(a_buf.size(), 24);
    for kernel in [
        ProductKernel::Tiled,
        ProductKernel::Blocks,
        ProductKernel::CoopEmulated,
    ] {
        let out = init(ctx, &[0.0; 6]);
        let buffers = ProductBuffers {
            a: MatrixView::dense(a_buf.slice(..), Precision::BF16, k),
            b: MatrixView::dense(b_buf.slice(..), Precision::BF16, n),
            bias: None,
            out: out.slice(..),
            out_offset: 0,
            out_stride: n as u64,
            accumulate: false,
        };
        let opts = MatmulOptions {
            kernel,
            ..Default::default()
        };
        let mut e = ctx.device().create_command_encoder(&Default::default());
        ctx.record_matmul(&mut e, &MatmulDims { m, n, k }, &opts, &buffers)
            .unwrap();
        ctx.queue().submit([e.finish()]);
        let want = cpu::matmul(&a, &b, &MatmulDims { m, n, k }, &opts).unwrap();
        Tolerance::default()
            .check("bf16 product", &read_f32(ctx, &out), &want)
            .unwrap_or_else(|e| panic!("{kernel:?}: {e}"));
    }
}
