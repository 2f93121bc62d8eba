//! Same inputs, same bits: repeated fused calls, and the recording API's
//! results whatever its buffers' sizes and offsets, which are the host
//! API's.

use crate::common::placed::{placed, read_region, region, Place, EXACT, OFFSET, PADDED};
use crate::common::{ctx, Rng};
use xent::{cpu, LinearCrossEntropyOptions, LinearDims, SplitK, Tolerance};

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
        scratch_budget: Some(64 * 1024 + (rows * v * 4) as u64),
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

/// The products' cut of k fixes the bits: slices of 32 run up to 8 at
/// once (the budget has room for their partial sums) give the loss and
/// every gradient of the same slices run one at a time.
#[test]
fn slices_at_once_give_the_fused_bits_of_slices_in_order() {
    let Some(ctx) = ctx() else { return };
    let (n, h, v) = (130, 40, 300);
    let mut rng = Rng(17);
    let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-0.3, 0.3)).collect();
    let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let bias: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let targets: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
    let dims = LinearDims { n, h, v };
    let run = |parallel| {
        let opts = LinearCrossEntropyOptions {
            split_k: SplitK::Slices { len: 32, parallel },
            ..Default::default()
        };
        let args = (&hidden, &weight, Some(&bias[..]), &targets);
        let out = ctx
            .linear_cross_entropy(
                args.0,
                args.1,
                args.2,
                args.3,
                None,
                &dims,
                &opts,
                &Default::default(),
            )
            .unwrap();
        let twin =
            cpu::linear_cross_entropy(args.0, args.1, args.2, args.3, None, &dims, &opts).unwrap();
        Tolerance::default().compare_linear(&out, &twin).unwrap();
        let bits = |v: &Option<Vec<f32>>| -> Vec<u32> {
            v.as_ref().unwrap().iter().map(|x| x.to_bits()).collect()
        };
        let loss = out.loss.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        [
            loss,
            bits(&out.grad_hidden),
            bits(&out.grad_weight),
            bits(&out.grad_bias),
        ]
    };
    let in_order = run(1);
    let held = ctx.scratch_bytes();
    assert_eq!(run(8), in_order);
    // ∂L/∂h's 10 slices of 32 over the vocabulary, 8 at once: 130 × 40 each.
    assert!(ctx.scratch_bytes() >= held.max(8 * 130 * 40 * 4));
}

#[test]
fn linear_cross_entropy_bits_do_not_depend_on_the_api_buffer_sizes_or_offsets() {
    let Some(ctx) = ctx() else { return };
    // Several windows of 8 rows: ∂L/∂W and ∂L/∂b summed over chunks.
    let dims = xent::LinearDims {
        n: 37,
        h: 24,
        v: 301,
    };
    let mut rng = Rng(29);
    let mut draw =
        |len: usize, r: f32| -> Vec<f32> { (0..len).map(|_| rng.uniform(-r, r)).collect() };
    let (h, w, b) = (
        draw(dims.n * dims.h, 1.0),
        draw(dims.v * dims.h, 0.5),
        draw(dims.v, 0.5),
    );
    let t: Vec<i32> = (0..dims.n as i32)
        .map(|i| (i * 37) % dims.v as i32)
        .collect();
    let opts = xent::LinearCrossEntropyOptions {
        scratch_budget: Some(8 * dims.v as u64 * 4),
        ..Default::default()
    };
    let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
    let host = ctx
        .linear_cross_entropy(
            &h,
            &w,
            Some(&b),
            &t64,
            None,
            &dims,
            &opts,
            &Default::default(),
        )
        .unwrap();
    let bytes = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let want = [
        bytes(&host.loss),
        bytes(&host.grad_hidden.unwrap()),
        bytes(&host.grad_weight.unwrap()),
        bytes(&host.grad_bias.unwrap()),
    ];
    for place in [EXACT, PADDED, OFFSET] {
        let lens = [4, want[1].len(), want[2].len(), want[3].len()];
        let got = recorded_at(ctx, (&dims, &opts), (&h, &w, &b, &t), place, lens);
        for (what, (got, want)) in ["loss", "grad_hidden", "grad_weight", "grad_bias"]
            .iter()
            .zip(got.iter().zip(&want))
        {
            assert!(got == want, "{place:?}: {what} differs from the host API's");
        }
    }
}

/// The recording API's call on hidden `h`, weight `w`, bias `b` and targets
/// `t`, every buffer placed at `place`: the `lens` bytes of its loss,
/// ∂L/∂h, ∂L/∂W and ∂L/∂b.
fn recorded_at(
    ctx: &xent::Context,
    (dims, opts): (&LinearDims, &LinearCrossEntropyOptions),
    (h, w, b, t): (&[f32], &[f32], &[f32], &[i32]),
    place: Place,
    lens: [usize; 4],
) -> [Vec<u8>; 4] {
    let f32s = |v: &[f32]| placed(ctx, bytemuck::cast_slice(v), place);
    let (hb, wb, bb) = (f32s(h), f32s(w), f32s(b));
    let tb = placed(ctx, bytemuck::cast_slice(t), place);
    let (loss, status) = (f32s(&[0.0]), f32s(&[0.0; 4]));
    let (gh, gw, gb) = (f32s(h), f32s(w), f32s(b));
    let r = |buffer| region(buffer, place);
    let buffers = xent::LinearBuffers {
        bias: Some(r(&bb)),
        grad_hidden: Some(r(&gh)),
        grad_weight: Some(r(&gw)),
        grad_bias: Some(r(&gb)),
        ..xent::LinearBuffers::new(
            r(&hb),
            r(&wb),
            xent::TargetBuffer::ClassI32(r(&tb)),
            r(&loss),
            r(&status),
        )
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_linear_cross_entropy(&mut encoder, dims, opts, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let [l0, l1, l2, l3] = lens;
    [(&loss, l0), (&gh, l1), (&gw, l2), (&gb, l3)]
        .map(|(buffer, len)| read_region(ctx, buffer, place, len))
}
