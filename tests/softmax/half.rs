//! Softmax and log-softmax, forward and backward, with their tensors stored
//! in bf16 (every device): against the CPU on the same bf16 inputs on every
//! strategy (narrow, wide, split, teams on the GPU table), and the forward bit for bit against the
//! f32 kernels' results rounded to nearest even on the host.

use crate::common::{ctx, gpu_class_ctx, read_f32, Rng};
use half::bf16;
use wgpu::util::DeviceExt;
use xent::{cpu, Precision, SoftmaxKind, Tolerance};

/// Maps and short rows (narrow; GPUs: scalar teams), long rows (wide;
/// GPUs: vec4 teams), rows past the loop bound of one workgroup (split),
/// odd counts (shared words at row ends).
const SHAPES: [&[usize]; 7] = [
    &[7, 5],
    &[2, 5, 3, 3],
    &[3, 257],
    &[4, 1000],
    &[66, 12],
    &[1, 3],
    &[2, 1_100_001],
];

fn inputs(len: usize, seed: u64) -> Vec<bf16> {
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| bf16::from_f32(rng.uniform(-6.0, 6.0)))
        .collect()
}

#[test]
fn the_bf16_forward_matches_the_cpu_and_the_f32_kernels_rounded() {
    // Both tables: the software one, and the GPU one forced.
    for ctx in [ctx(), gpu_class_ctx()].into_iter().flatten() {
        bf16_forward_matches_the_cpu_and_the_f32_kernels_rounded_on(ctx);
    }
}

fn bf16_forward_matches_the_cpu_and_the_f32_kernels_rounded_on(ctx: &xent::Context) {
    for dims in SHAPES {
        let len: usize = dims.iter().product();
        let x = inputs(len, len as u64);
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax] {
            let (got, f32_got, reference) = match kind {
                SoftmaxKind::Softmax => (
                    ctx.softmax(&x, dims, &xent::SoftmaxOptions::default())
                        .unwrap(),
                    ctx.softmax(&x32, dims, &xent::SoftmaxOptions::default())
                        .unwrap(),
                    cpu::softmax_reference(&x32, dims).unwrap(),
                ),
                SoftmaxKind::LogSoftmax => (
                    ctx.softmax(
                        &x,
                        dims,
                        &xent::SoftmaxOptions {
                            kind: xent::SoftmaxKind::LogSoftmax,
                        },
                    )
                    .unwrap(),
                    ctx.softmax(
                        &x32,
                        dims,
                        &xent::SoftmaxOptions {
                            kind: xent::SoftmaxKind::LogSoftmax,
                        },
                    )
                    .unwrap(),
                    cpu::log_softmax_reference(&x32, dims).unwrap(),
                ),
            };
            Tolerance::BF16
                .check("softmax", &got, &reference)
                .unwrap_or_else(|e| panic!("{dims:?} {kind:?}: {e}"));
            for (i, (&g, &f)) in got.iter().zip(&f32_got).enumerate() {
                let want = bf16::from_f32(f).to_f32();
                assert!(
                    g.to_bits() == want.to_bits(),
                    "{dims:?} {kind:?}[{i}]: f32 {f:e} rounds to {want:e}, the bf16 kernel wrote {g:e}"
                );
            }
        }
    }
}

#[test]
fn the_bf16_backward_matches_the_cpu() {
    // Both tables: the software one, and the GPU one forced.
    for ctx in [ctx(), gpu_class_ctx()].into_iter().flatten() {
        bf16_backward_matches_the_cpu_on(ctx);
    }
}

fn bf16_backward_matches_the_cpu_on(ctx: &xent::Context) {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |v: &[bf16]| {
        let mut bytes: Vec<u8> = bytemuck::cast_slice(v).to_vec();
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &bytes,
                usage,
            })
    };
    for dims in SHAPES {
        let len: usize = dims.iter().product();
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax] {
            let x32: Vec<f32> = inputs(len, 3).iter().map(|v| v.to_f32()).collect();
            // The forward output, rounded to bf16, and an upstream gradient.
            let y: Vec<bf16> = match kind {
                SoftmaxKind::Softmax => cpu::softmax(&x32, dims).unwrap(),
                SoftmaxKind::LogSoftmax => cpu::log_softmax(&x32, dims).unwrap(),
            }
            .iter()
            .map(|&v| bf16::from_f64(v))
            .collect();
            let dy = inputs(len, 5);
            let (yb, dyb, dxb) = (init(&y), init(&dy), init(&vec![bf16::ZERO; len]));
            let mut enc = ctx.device().create_command_encoder(&Default::default());
            ctx.record_softmax_backward(
                &mut enc,
                dims,
                &xent::SoftmaxOptions { kind },
                &xent::SoftmaxBackwardBuffers {
                    output: yb.slice(..),
                    grad_output: dyb.slice(..),
                    grad_input: dxb.slice(..),
                    precision: Precision::BF16,
                },
            )
            .unwrap();
            ctx.queue().submit([enc.finish()]);
            let words = read_f32(ctx, &dxb);
            let got: Vec<f32> = bytemuck::cast_slice::<f32, bf16>(&words)[..len]
                .iter()
                .map(|v| v.to_f32())
                .collect();
            let (y32, dy32): (Vec<f32>, Vec<f32>) = (
                y.iter().map(|v| v.to_f32()).collect(),
                dy.iter().map(|v| v.to_f32()).collect(),
            );
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_backward_reference(&y32, &dy32, dims),
                SoftmaxKind::LogSoftmax => cpu::log_softmax_backward_reference(&y32, &dy32, dims),
            }
            .unwrap();
            Tolerance::BF16
                .check("softmax backward", &got, &reference)
                .unwrap_or_else(|e| panic!("{dims:?} {kind:?}: {e}"));
        }
    }
}

/// A storage buffer of `ctx`'s device holding `v`, padded to a word.
fn f16_buffer(ctx: &xent::Context, v: &[half::f16]) -> wgpu::Buffer {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let mut bytes: Vec<u8> = bytemuck::cast_slice(v).to_vec();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: &bytes,
            usage,
        })
}

/// The first `len` f16 values of `buffer`, widened.
fn read_f16(ctx: &xent::Context, buffer: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let words = read_f32(ctx, buffer);
    bytemuck::cast_slice::<f32, half::f16>(&words)[..len]
        .iter()
        .map(|v| v.to_f32())
        .collect()
}

/// The recording API's f16 softmax (of `kind`) of `x`, widened.
fn f16_forward(
    ctx: &xent::Context,
    dims: &[usize],
    kind: SoftmaxKind,
    x: &[half::f16],
) -> Vec<f32> {
    let len = x.len();
    let (xb, yb) = (
        f16_buffer(ctx, x),
        f16_buffer(ctx, &vec![half::f16::ZERO; len]),
    );
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    ctx.record_softmax(
        &mut enc,
        dims,
        &xent::SoftmaxOptions { kind },
        &xent::SoftmaxBuffers {
            input: xb.slice(..),
            output: yb.slice(..),
            precision: Precision::F16,
        },
    )
    .unwrap();
    ctx.queue().submit([enc.finish()]);
    read_f16(ctx, &yb, len)
}

/// The recording API's f16 softmax backward (of `kind`) of the output `yh`
/// and upstream gradient `dy`, widened.
fn f16_backward(
    ctx: &xent::Context,
    dims: &[usize],
    kind: SoftmaxKind,
    yh: &[half::f16],
    dy: &[half::f16],
) -> Vec<f32> {
    let len = yh.len();
    let (yb, dyb, dxb) = (
        f16_buffer(ctx, yh),
        f16_buffer(ctx, dy),
        f16_buffer(ctx, &vec![half::f16::ZERO; len]),
    );
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    ctx.record_softmax_backward(
        &mut enc,
        dims,
        &xent::SoftmaxOptions { kind },
        &xent::SoftmaxBackwardBuffers {
            output: yb.slice(..),
            grad_output: dyb.slice(..),
            grad_input: dxb.slice(..),
            precision: Precision::F16,
        },
    )
    .unwrap();
    ctx.queue().submit([enc.finish()]);
    read_f16(ctx, &dxb, len)
}

#[test]
fn the_f16_forward_and_backward_match_the_cpu() {
    // Both tables: the software one, and the GPU one forced.
    for ctx in [ctx(), gpu_class_ctx()].into_iter().flatten() {
        f16_forward_and_backward_match_the_cpu_on(ctx);
    }
}

fn f16_forward_and_backward_match_the_cpu_on(ctx: &xent::Context) {
    if !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
        eprintln!("adapter has no SHADER_F16: f16 softmax not run");
        return;
    }
    for dims in SHAPES {
        let len: usize = dims.iter().product();
        let mut rng = Rng(len as u64 + 9);
        let x: Vec<half::f16> = (0..len)
            .map(|_| half::f16::from_f32(rng.uniform(-6.0, 6.0)))
            .collect();
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax] {
            let y = f16_forward(ctx, dims, kind, &x);
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_reference(&x32, dims),
                SoftmaxKind::LogSoftmax => cpu::log_softmax_reference(&x32, dims),
            }
            .unwrap();
            Tolerance::F16
                .check("softmax", &y, &reference)
                .unwrap_or_else(|e| panic!("f16 {dims:?} {kind:?}: {e}"));
            // The backward of the f16 output with an f16 upstream gradient.
            let yh: Vec<half::f16> = y.iter().map(|&v| half::f16::from_f32(v)).collect();
            let dy: Vec<half::f16> = (0..len)
                .map(|_| half::f16::from_f32(rng.uniform(-1.0, 1.0)))
                .collect();
            let dx = f16_backward(ctx, dims, kind, &yh, &dy);
            let (y32, dy32): (Vec<f32>, Vec<f32>) = (
                yh.iter().map(|v| v.to_f32()).collect(),
                dy.iter().map(|v| v.to_f32()).collect(),
            );
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_backward_reference(&y32, &dy32, dims),
                SoftmaxKind::LogSoftmax => cpu::log_softmax_backward_reference(&y32, &dy32, dims),
            }
            .unwrap();
            Tolerance::F16
                .check("softmax backward", &dx, &reference)
                .unwrap_or_else(|e| panic!("f16 backward {dims:?} {kind:?}: {e}"));
        }
    }
}
