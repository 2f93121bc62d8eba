//! The scratch a fused call holds, from the sizes of the buffers the
//! context allocated, stays within the budget.

use super::worked_values::inputs;
use crate::common::ctx;
use xent::{LinearCrossEntropyOptions, LinearDims};

/// The scratch a call holds (from the sizes of the buffers the context
/// allocated) stays within the budget on every shape; the default budget's
/// window is 1/8 of the materialised logits on 2 048 × 512 × 32 000 (256
/// rows), and on a language model's head (8 192 × 4 096 × 128 256: 1 024
/// rows, where the device binds 525 MB; planned only).
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
    assert!(plan.scratch_bytes <= plan.budget, "{plan:?}");
    assert_eq!(plan.window_bytes * 8, big.logits_bytes(), "{plan:?}");
    assert_eq!(plan.window_rows, 256);
    let head = LinearDims {
        n: 8192,
        h: 4096,
        v: 128_256,
    };
    let plan = ctx
        .plan_linear_cross_entropy(&head, &Default::default(), &Default::default())
        .unwrap();
    let row = 128_256 * 4;
    let binds = ctx.device().limits().max_storage_buffer_binding_size / row;
    let rows = 1024.min(binds as usize / 64 * 64);
    assert_eq!(plan.window_rows, rows, "{plan:?}");
    assert!(plan.scratch_bytes <= plan.budget && plan.window_bytes * 8 <= head.logits_bytes());
    let mut held = 0;
    for (n, h, v, budget) in [
        (5, 8, 11, 1 << 20),
        (130, 16, 1000, 40_000),
        (257, 32, 3000, 200_000),
        (64, 4, 50_257, 1 << 20),
    ] {
        let dims = LinearDims { n, h, v };
        let opts = LinearCrossEntropyOptions {
            scratch_budget: Some(budget),
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
    a_fresh_context_holds_one_calls_scratch();
}

/// A fresh context after one call holds exactly that call's planned scratch.
fn a_fresh_context_holds_one_calls_scratch() {
    let fresh = xent::Context::from_env().unwrap();
    let dims = LinearDims {
        n: 257,
        h: 32,
        v: 3000,
    };
    let opts = LinearCrossEntropyOptions {
        scratch_budget: Some(200_000),
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
