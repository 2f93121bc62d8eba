//! bf16 logits and gradients (two to a word on the device, accumulation in
//! f32) against the CPU path on the same bf16 inputs, on every row strategy,
//! in place (the host API) and out of place (the recording API), chunked;
//! and bit for bit against the f32 kernels' results rounded to nearest even
//! on the host, which no tolerance could tell from truncation.

use crate::common::generators::{small_dims, smoothing};
use crate::common::half_precision::half_matches_cpu;
use crate::common::{ctx, read_f32, small_binding_ctx, Rng};
use half::bf16;
use proptest::prelude::*;
use wgpu::util::DeviceExt;
use xent::{
    cpu, CrossEntropyBuffers, CrossEntropyOptions, Precision, Reduction, TargetBuffer, Targets,
    Tolerance, Weights,
};

fn logits(len: usize, seed: u64) -> Vec<bf16> {
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| bf16::from_f32(rng.uniform(-8.0, 8.0)))
        .collect()
}

fn targets(layout: &xent::Layout, seed: u64) -> Vec<i64> {
    let mut rng = Rng(seed ^ 0x7a);
    (0..layout.rows())
        .map(|i| {
            if i % 7 == 3 {
                -100
            } else {
                rng.below(layout.classes) as i64
            }
        })
        .collect()
}

/// One bf16 case held to the CPU: the loss at the f32 tolerance (it is
/// computed and stored in f32), the gradient at the bf16 one.
fn check(
    ctx: &xent::Context,
    dims: &[usize],
    seed: u64,
    opts: &CrossEntropyOptions,
) -> Result<(), String> {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let x = logits(layout.len(), seed);
    let t = targets(&layout, seed);
    let mut rng = Rng(seed + 1);
    let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
    half_matches_cpu(ctx, (&x, dims), &t, &w, opts, Tolerance::BF16)
}

/// Shapes for every row strategy: split rows, wide vec4, wide mixed (odd
/// C), fixed narrow vec4, narrow scalar (odd C), pixel quads, scalar pixels.
const SHAPES: [&[usize]; 8] = [
    &[2, 20_001],
    &[3, 256],
    &[3, 257],
    &[40, 12],
    &[40, 13],
    &[5, 96],
    &[2, 5, 4, 3],
    &[2, 5, 3, 3],
];

#[test]
fn every_row_strategy_in_bf16_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    for dims in SHAPES {
        for opts in [
            CrossEntropyOptions {
                reduction: Reduction::Sum,
                ..Default::default()
            },
            CrossEntropyOptions {
                reduction: Reduction::None,
                label_smoothing: 0.1,
                ..Default::default()
            },
        ] {
            check(ctx, dims, 9, &opts).unwrap_or_else(|e| panic!("{dims:?} {opts:?}: {e}"));
        }
    }
}

#[test]
fn the_gradient_is_the_f32_kernels_rounded_to_nearest_even() {
    // On bf16 inputs the f32 and bf16 modules compute the same f32 values;
    // the bf16 one must store each as half's round-to-nearest-even of it.
    let Some(ctx) = ctx() else { return };
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    for dims in SHAPES {
        let layout = xent::Layout::from_dims(dims).unwrap();
        let x = logits(layout.len(), 4);
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        let t = targets(&layout, 4);
        let f32_grad = ctx
            .cross_entropy_with(
                &x32,
                dims,
                Targets::I64(&t),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap()
            .grad
            .unwrap();
        let bf16_grad = ctx
            .cross_entropy_with(
                &x,
                dims,
                Targets::I64(&t),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap()
            .grad
            .unwrap();
        for (i, (&g32, &g16)) in f32_grad.iter().zip(&bf16_grad).enumerate() {
            let want = bf16::from_f32(g32).to_f32();
            assert!(
                g16.to_bits() == want.to_bits() || (g16.is_nan() && want.is_nan()),
                "{dims:?}[{i}]: f32 {g32:e} rounds to {want:e}, bf16 kernel wrote {g16:e}"
            );
        }
    }
}

#[test]
fn nan_and_infinite_logits_stay_nan_in_bf16() {
    let Some(ctx) = ctx() else { return };
    let x: Vec<bf16> = [f32::NAN, 0.0, 1.0, f32::INFINITY, 0.0, 0.0]
        .iter()
        .map(|&v| bf16::from_f32(v))
        .collect();
    let out = ctx
        .cross_entropy_with(
            &x,
            &[2, 3],
            Targets::I64(&[1, 1]),
            Weights::none(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let f32_out = ctx
        .cross_entropy_with(
            &x.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
            &[2, 3],
            Targets::I64(&[1, 1]),
            Weights::none(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let (g, g32) = (out.grad.unwrap(), f32_out.grad.unwrap());
    for i in 0..6 {
        assert_eq!(
            g[i].is_nan(),
            g32[i].is_nan(),
            "{i}: {} vs {}",
            g[i],
            g32[i]
        );
    }
    assert!(g.iter().all(|v| v.is_nan()), "{g:?}");
}

#[test]
fn the_recording_api_writes_a_bf16_gradient_to_its_own_buffer() {
    // Out of place: the input stays, the gradient buffer gets every element
    // (odd C: neighbouring rows share words).
    let Some(ctx) = ctx() else { return };
    let dims = [7usize, 131];
    let layout = xent::Layout::from_dims(&dims).unwrap();
    let x = logits(layout.len(), 12);
    let t: Vec<i32> = targets(&layout, 12)
        .iter()
        .map(|&v| v.max(0) as i32)
        .collect();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |bytes: &[u8]| {
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage,
            })
    };
    let mut padded: Vec<u8> = bytemuck::cast_slice(&x).to_vec();
    padded.resize(padded.len().next_multiple_of(16), 0);
    let (xb, tb) = (init(&padded), init(bytemuck::cast_slice(&t)));
    let grad = init(&vec![0u8; padded.len()]);
    let (loss, status) = (init(&[0u8; 4]), init(&[0u8; 16]));
    let buffers = CrossEntropyBuffers {
        precision: Precision::BF16,
        ..CrossEntropyBuffers::new(
            xb.slice(..),
            TargetBuffer::ClassI32(tb.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        )
    };
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut enc, &dims, &Default::default(), &buffers)
        .unwrap();
    ctx.queue().submit([enc.finish()]);
    let words = read_f32(ctx, &grad);
    let got: Vec<f32> = bytemuck::cast_slice::<f32, bf16>(&words)[..layout.len()]
        .iter()
        .map(|v| v.to_f32())
        .collect();
    let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
    let want = cpu::cross_entropy(&x32, &dims, &t64, None, &Default::default()).unwrap();
    Tolerance::BF16
        .check("grad", &got, &want.grad_reference().unwrap())
        .unwrap();
    Tolerance::default()
        .check("loss", &read_f32(ctx, &loss), &want.loss_reference())
        .unwrap();
}

#[test]
fn bf16_tensors_larger_than_a_binding_are_chunked() {
    let Some(ctx) = small_binding_ctx(1 << 20) else {
        return;
    };
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    for dims in [[600usize, 1000], [600, 1001], [3, 200_001]] {
        check(&ctx, &dims, 3, &opts).unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bf16_matches_cpu_on_generated_shapes(
        dims in small_dims(),
        seed in any::<u64>(),
        smoothing in smoothing(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let opts = CrossEntropyOptions { reduction: Reduction::Sum, label_smoothing: smoothing, ..Default::default() };
        check(ctx, &dims, seed, &opts).map_err(TestCaseError::fail)?;
    }
}
