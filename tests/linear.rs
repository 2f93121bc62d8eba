//! The fused linear cross-entropy: PyTorch's values (tests/data/
//! reference_linear.py) on the GPU and the CPU twin, the GPU against the
//! twin on generated shapes and options (across chunk boundaries and the
//! products' tiles), bit-identical repeats, the scratch bound, and typed
//! errors.

mod common;

#[path = "data/linear_values.rs"]
mod values;

use common::{ctx, Rng};
use proptest::prelude::*;
use values::{LINEAR_CASES, SOFTCAP_CASES};
use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Precision, ProductKernel,
    Reduction, Tolerance,
};

/// The reference script's inputs (exact dyadic values).
struct Inputs {
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    class_weights: Vec<f32>,
    targets: Vec<i64>,
}

fn inputs(n: usize, h: usize, v: usize, ignore_index: i64, ignored: &[usize]) -> Inputs {
    let m = |x: usize, k: usize| (x % k) as f32;
    Inputs {
        hidden: (0..n * h)
            .map(|i| (m((i / h) * 7 + (i % h) * 13, 17) - 8.0) / 8.0)
            .collect(),
        weight: (0..v * h)
            .map(|i| (m((i / h) * 5 + (i % h) * 11, 19) - 9.0) / 16.0)
            .collect(),
        bias: (0..v).map(|c| (m(c * 3, 7) - 3.0) / 4.0).collect(),
        class_weights: (0..v).map(|c| 0.5 + m(c * 7, 5) / 4.0).collect(),
        targets: (0..n)
            .map(|r| {
                if ignored.contains(&r) {
                    ignore_index
                } else {
                    ((r * 31 + 7) % v) as i64
                }
            })
            .collect(),
    }
}

fn reduction(name: &str) -> Reduction {
    name.parse().unwrap()
}

/// The CPU twin against PyTorch: f64 against f64 printed to 17 digits.
fn close64(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what}: {got} vs PyTorch {want}"
    );
}

#[test]
fn pytorch_worked_values() {
    let Some(ctx) = ctx() else { return };
    let tol = Tolerance::default();
    for case in LINEAR_CASES {
        let (n, h, v) = (case.n, case.h, case.v);
        let x = inputs(n, h, v, case.ignore_index, case.ignored_rows);
        let dims = LinearDims { n, h, v };
        let bias = case.bias.then_some(&x.bias[..]);
        let cw = case.class_weights.then_some(&x.class_weights[..]);
        // The default budget, and one of two rows' logits (many chunks).
        // The default budget, and one of two rows of logits besides the
        // per-row scratch (a chunk per two rows).
        let plan = ctx
            .plan_linear_cross_entropy(&dims, &Default::default(), &Default::default())
            .unwrap();
        let two_rows = plan.scratch_bytes - plan.window_bytes + 16 + 8 * v as u64;
        for budget in [xent::DEFAULT_SCRATCH_BUDGET, two_rows] {
            let opts = LinearCrossEntropyOptions {
                loss: CrossEntropyOptions {
                    reduction: reduction(case.reduction),
                    ignore_index: case.ignore_index,
                    label_smoothing: case.label_smoothing,
                    z_loss: case.z_loss,
                    softcap: case.softcap,
                    ..Default::default()
                },
                scratch_budget: budget,
                ..Default::default()
            };
            let what = format!("{} (budget {budget})", case.name);
            let twin =
                cpu::linear_cross_entropy(&x.hidden, &x.weight, bias, &x.targets, cw, &dims, &opts)
                    .unwrap();
            let gpu = ctx
                .linear_cross_entropy(
                    &x.hidden,
                    &x.weight,
                    bias,
                    &x.targets,
                    cw,
                    &dims,
                    &opts,
                    &Default::default(),
                )
                .unwrap();
            let mag = twin.magnitude.as_ref().unwrap();
            let pick = |values: &[f64], at: &[usize]| -> Vec<f64> {
                at.iter().map(|&i| values[i]).collect()
            };
            let check = |name: &'static str,
                         got: &[f32],
                         want: Vec<f64>,
                         twin: &[f64],
                         magnitude: Vec<f64>| {
                for (i, (&t, &w)) in twin.iter().zip(&want).enumerate() {
                    close64(&format!("{what} {name}[{i}] (twin)"), t, w);
                }
                tol.check(
                    name,
                    got,
                    &cpu::Reference {
                        value: want,
                        magnitude,
                    },
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            };
            check(
                "loss",
                &gpu.loss,
                case.loss.to_vec(),
                &twin.loss,
                mag.loss.clone(),
            );
            let all: Vec<usize> = (0..n * h).collect();
            check(
                "grad_hidden",
                gpu.grad_hidden.as_ref().unwrap(),
                case.grad_hidden.to_vec(),
                twin.grad_hidden.as_ref().unwrap(),
                pick(mag.grad_hidden.as_ref().unwrap(), &all),
            );
            let at: Vec<usize> = case
                .grad_weight_at
                .iter()
                .map(|&(c, k, _)| c * h + k)
                .collect();
            let gw = gpu.grad_weight.as_ref().unwrap();
            check(
                "grad_weight",
                &at.iter().map(|&i| gw[i]).collect::<Vec<_>>(),
                case.grad_weight_at.iter().map(|e| e.2).collect(),
                &pick(twin.grad_weight.as_ref().unwrap(), &at),
                pick(mag.grad_weight.as_ref().unwrap(), &at),
            );
            if case.bias {
                let at: Vec<usize> = case.grad_bias_at.iter().map(|e| e.0).collect();
                let gb = gpu.grad_bias.as_ref().unwrap();
                check(
                    "grad_bias",
                    &at.iter().map(|&i| gb[i]).collect::<Vec<_>>(),
                    case.grad_bias_at.iter().map(|e| e.1).collect(),
                    &pick(twin.grad_bias.as_ref().unwrap(), &at),
                    pick(mag.grad_bias.as_ref().unwrap(), &at),
                );
            } else {
                assert!(gpu.grad_bias.is_none() && case.grad_bias_at.is_empty());
            }
        }
    }
}

#[test]
fn softcap_worked_values() {
    let Some(ctx) = ctx() else { return };
    let tol = Tolerance::default();
    let (x, dims, t) = (
        common::WORKED_LOGITS,
        common::WORKED_DIMS,
        common::WORKED_TARGETS,
    );
    for case in SOFTCAP_CASES {
        let opts = CrossEntropyOptions {
            softcap: Some(case.softcap),
            z_loss: case.z_loss,
            label_smoothing: case.label_smoothing,
            reduction: reduction(case.reduction),
            ..Default::default()
        };
        let twin = cpu::cross_entropy(&x, &dims, &t, None, &opts).unwrap();
        let gpu = ctx
            .cross_entropy(&x, &dims, &t, None, &opts, &Default::default())
            .unwrap();
        for (i, (&got, &want)) in twin.loss.iter().zip(case.loss).enumerate() {
            close64(&format!("{} loss[{i}]", case.name), got, want);
        }
        // Gradients as small as 1e-14 come from 1 − tanh² near 1: absolute there.
        for (i, (&got, &want)) in twin
            .grad
            .as_ref()
            .unwrap()
            .iter()
            .zip(&case.grad)
            .enumerate()
        {
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1e-3),
                "{} grad[{i}]: {got} vs {want}",
                case.name
            );
        }
        let mut reference = twin.clone();
        reference.loss = case.loss.to_vec();
        reference.grad = Some(case.grad.to_vec());
        tol.compare_cross_entropy(&gpu, &reference, &tol)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

/// Vocabularies around the products' tiles and the rows kernels' switch points.
fn vocab() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=6,
        60usize..=70,
        127usize..=131,
        250usize..=260,
        1000usize..=1100
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gpu_matches_the_twin(
        n in prop_oneof![1usize..=4, 60usize..=70, 120usize..=200],
        h in prop_oneof![1usize..=5, 15usize..=17, 31usize..=34, 63usize..=66],
        v in vocab(),
        window in prop::option::of(1usize..=70),
        bias in any::<bool>(),
        weighted in any::<bool>(),
        ignore in any::<bool>(),
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        smoothing in prop_oneof![Just(0.0f64), Just(0.1)],
        z_loss in prop_oneof![Just(0.0f64), Just(1e-3)],
        softcap in prop_oneof![Just(None), Just(Some(3.0f64)), Just(Some(30.0))],
        extras in any::<bool>(),
        precision in prop_oneof![Just(Precision::F32), Just(Precision::BF16), Just(Precision::F16)],
        product_kernel in prop_oneof![Just(ProductKernel::Auto), Just(ProductKernel::Tiled), Just(ProductKernel::Blocks)],
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        if precision == Precision::F16 && !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let scale = 2.0 / (h as f32).sqrt();
        let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-scale, scale)).collect();
        let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let b: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let cw: Vec<f32> = (0..v).map(|_| rng.uniform(0.5, 2.0)).collect();
        let targets: Vec<i64> = (0..n).map(|_| if ignore && rng.below(4) == 0 { -100 } else { rng.below(v) as i64 }).collect();
        let dims = LinearDims { n, h, v };
        // A budget of `window` rows of logits besides the per-row scratch.
        let base = LinearCrossEntropyOptions {
            loss: CrossEntropyOptions {
                reduction, label_smoothing: smoothing, z_loss, softcap, ..Default::default()
            },
            product_kernel,
            ..Default::default()
        };
        let returns = xent::Returns { lse: extras, correct: extras, ..Default::default() };
        let fixed = ctx.plan_linear_cross_entropy(&dims, &base, &returns).unwrap().scratch_bytes
            - ctx.plan_linear_cross_entropy(&dims, &base, &returns).unwrap().window_bytes;
        let opts = LinearCrossEntropyOptions {
            scratch_budget: window.map_or(xent::DEFAULT_SCRATCH_BUDGET, |w| fixed + 16 + (w * v * 4) as u64),
            ..base
        };
        let plan = ctx.plan_linear_cross_entropy(&dims, &opts, &returns).unwrap();
        prop_assert!(plan.scratch_bytes <= opts.scratch_budget);
        if let Some(w) = window {
            prop_assert_eq!(plan.window_rows, if w >= 64 && w < n { w / 64 * 64 } else { w.min(n) });
        }
        let (bias, cw) = (bias.then_some(&b[..]), weighted.then_some(&cw[..]));
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} window {} {precision:?}: {e}", plan.window_rows));
        let gpu = match precision {
            Precision::F32 => ctx.linear_cross_entropy(&hidden, &weight, bias, &targets, cw, &dims, &opts, &returns),
            Precision::BF16 => {
                let to = |x: &[f32]| x.iter().map(|&v| half::bf16::from_f32(v)).collect::<Vec<_>>();
                let b = bias.map(to);
                ctx.linear_cross_entropy(&to(&hidden), &to(&weight), b.as_deref(), &targets, cw, &dims, &opts, &returns)
            }
            Precision::F16 => {
                let to = |x: &[f32]| x.iter().map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>();
                let b = bias.map(to);
                ctx.linear_cross_entropy(&to(&hidden), &to(&weight), b.as_deref(), &targets, cw, &dims, &opts, &returns)
            }
        }.map_err(fail)?;
        let round = |x: &[f32]| -> Vec<f32> { match precision {
            Precision::F32 => x.to_vec(),
            Precision::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            Precision::F16 => x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
        }};
        let b_r = bias.map(round);
        let twin = cpu::linear_cross_entropy(&round(&hidden), &round(&weight), b_r.as_deref(), &targets, cw, &dims, &opts).unwrap();
        Tolerance::default().compare_linear(&gpu, &twin).map_err(fail)?;
    }
}

/// ∂L/∂W is summed over chunks in chunk order: the same call gives the same
/// bits, and a different window agrees within the tolerance.
#[test]
fn repeats_are_bit_identical() {
    let Some(ctx) = ctx() else { return };
    let (n, h, v) = (300, 48, 700);
    let mut rng = Rng(11);
    let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-0.3, 0.3)).collect();
    let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let bias: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let targets: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
    let dims = LinearDims { n, h, v };
    let opts = |rows: usize| LinearCrossEntropyOptions {
        scratch_budget: 64 * 1024 + (rows * v * 4) as u64,
        ..Default::default()
    };
    let run = |rows| {
        ctx.linear_cross_entropy(
            &hidden,
            &weight,
            Some(&bias),
            &targets,
            None,
            &dims,
            &opts(rows),
            &Default::default(),
        )
        .unwrap()
    };
    let (a, b) = (run(64), run(64));
    assert!(
        ctx.plan_linear_cross_entropy(&dims, &opts(64), &Default::default())
            .unwrap()
            .chunks
            >= 5
    );
    let bits = |v: &Option<Vec<f32>>| {
        v.as_ref()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a.grad_weight), bits(&b.grad_weight));
    assert_eq!(bits(&a.grad_bias), bits(&b.grad_bias));
    assert_eq!(bits(&a.grad_hidden), bits(&b.grad_hidden));
    assert_eq!(a.loss[0].to_bits(), b.loss[0].to_bits());
    let twin = cpu::linear_cross_entropy(
        &hidden,
        &weight,
        Some(&bias),
        &targets,
        None,
        &dims,
        &opts(64),
    )
    .unwrap();
    Tolerance::default()
        .compare_linear(&run(300), &twin)
        .unwrap();
    Tolerance::default().compare_linear(&a, &twin).unwrap();
}

/// The scratch a call holds (from the sizes of the buffers the context
/// allocated) stays within the budget on every shape, and within 1/8 of the
/// materialised logits on 2 048 × 512 × 32 000 at the default budget.
#[test]
fn scratch_stays_within_the_budget() {
    let Some(_) = ctx() else { return };
    let ctx = xent::Context::from_env().unwrap();
    let big = LinearDims {
        n: 2048,
        h: 512,
        v: 32_000,
    };
    let plan = ctx
        .plan_linear_cross_entropy(&big, &Default::default(), &Default::default())
        .unwrap();
    assert!(
        plan.scratch_bytes <= xent::DEFAULT_SCRATCH_BUDGET,
        "{plan:?}"
    );
    assert!(plan.scratch_bytes * 8 <= big.logits_bytes(), "{plan:?}");
    let mut held = 0;
    for (n, h, v, budget) in [
        (5, 8, 11, 1 << 20),
        (130, 16, 1000, 40_000),
        (257, 32, 3000, 200_000),
        (64, 4, 50_257, 1 << 20),
    ] {
        let dims = LinearDims { n, h, v };
        let opts = LinearCrossEntropyOptions {
            scratch_budget: budget,
            ..Default::default()
        };
        let plan = ctx
            .plan_linear_cross_entropy(&dims, &opts, &Default::default())
            .unwrap();
        assert!(plan.scratch_bytes <= budget, "{dims:?}: {plan:?}");
        let x = inputs(n, h, v, -100, &[]);
        ctx.linear_cross_entropy(
            &x.hidden,
            &x.weight,
            Some(&x.bias),
            &x.targets,
            None,
            &dims,
            &opts,
            &Default::default(),
        )
        .unwrap();
        // The context's scratch grows to the largest call so far.
        held = held.max(plan.scratch_bytes);
        assert!(
            ctx.scratch_bytes() <= held.max(budget),
            "{dims:?}: {} held",
            ctx.scratch_bytes()
        );
    }
    let fresh = xent::Context::from_env().unwrap();
    let dims = LinearDims {
        n: 257,
        h: 32,
        v: 3000,
    };
    let opts = LinearCrossEntropyOptions {
        scratch_budget: 200_000,
        ..Default::default()
    };
    let x = inputs(257, 32, 3000, -100, &[]);
    fresh
        .linear_cross_entropy(
            &x.hidden,
            &x.weight,
            None,
            &x.targets,
            None,
            &dims,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(
        fresh.scratch_bytes(),
        fresh
            .plan_linear_cross_entropy(&dims, &opts, &Default::default())
            .unwrap()
            .scratch_bytes
    );
    assert!(fresh.scratch_bytes() <= 200_000);
}

#[test]
fn misuse_is_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let dims = LinearDims { n: 2, h: 3, v: 4 };
    let (h, w, t) = (vec![0.0f32; 6], vec![0.0f32; 12], vec![0i64, 3]);
    let o = LinearCrossEntropyOptions::default();
    let run =
        |h: &[f32], w: &[f32], b: Option<&[f32]>, t: &[i64], o: &LinearCrossEntropyOptions| {
            ctx.linear_cross_entropy(h, w, b, t, None, &dims, o, &Default::default())
                .unwrap_err()
        };
    assert!(matches!(
        run(&h[..5], &w, None, &t, &o),
        xent::Error::ShapeMismatch { what: "hidden", .. }
    ));
    assert!(matches!(
        run(&h, &w[..8], None, &t, &o),
        xent::Error::ShapeMismatch { what: "weight", .. }
    ));
    assert!(matches!(
        run(&h, &w, Some(&[0.0; 3]), &t, &o),
        xent::Error::ShapeMismatch { what: "bias", .. }
    ));
    assert!(matches!(
        run(&h, &w, None, &t[..1], &o),
        xent::Error::ShapeMismatch {
            what: "targets",
            ..
        }
    ));
    assert!(matches!(
        run(&h, &w, None, &[0, 4], &o),
        xent::Error::TargetOutOfRange { value: 4, .. }
    ));
    let capped = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            softcap: Some(0.0),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        run(&h, &w, None, &t, &capped),
        xent::Error::InvalidOption {
            name: "softcap",
            ..
        }
    ));
    let tight = LinearCrossEntropyOptions {
        scratch_budget: 40,
        ..Default::default()
    };
    assert!(matches!(
        run(&h, &w, None, &t, &tight),
        xent::Error::InvalidOption {
            name: "scratch_budget",
            ..
        }
    ));
    // An empty batch: mean NaN, and the gradients of W and b written as
    // zeros (over buffers that held ones: no chunk writes them).
    use wgpu::util::DeviceExt;
    let empty = LinearDims { n: 0, h: 3, v: 4 };
    let dev = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |v: &[f32]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(v),
            usage,
        })
    };
    let (hidden, weight, bias, targets) =
        (init(&[0.0; 4]), init(&w), init(&[0.0; 4]), init(&[0.0; 4]));
    let (loss, status, gw, gb) = (
        init(&[1.0]),
        init(&[0.0; 4]),
        init(&[1.0; 12]),
        init(&[1.0; 4]),
    );
    let buffers = xent::LinearBuffers {
        bias: Some(bias.slice(..)),
        grad_weight: Some(gw.slice(..)),
        grad_bias: Some(gb.slice(..)),
        ..xent::LinearBuffers::new(
            hidden.slice(..),
            weight.slice(..),
            xent::TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            status.slice(..),
        )
    };
    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_linear_cross_entropy(&mut encoder, &empty, &o, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    assert!(common::read_f32(ctx, &loss)[0].is_nan());
    assert_eq!(common::read_f32(ctx, &gw), vec![0.0; 12]);
    assert_eq!(common::read_f32(ctx, &gb), vec![0.0; 4]);
}
