//! The cooperative kernels' floor in the fused op (`coop_floor` in
//! src/ops/linear/bounds.rs): a step scales its tile of the gradients'
//! window by the tile's largest power of two, so a gradient far below a
//! target's in the same tile (a rare class next to it) rounds to 0 on
//! those kernels, where the scalar kernels keep it. The twin told the
//! kernel allows for exactly that; told a scalar kernel, it does not.

use crate::common::ctx;
use xent::{cpu, LinearCrossEntropyOptions, LinearDims, ProductKernel, Tolerance};

/// 16 rows, all of target 0, over 64 classes (one tile of the window):
/// class 2's logit is 30 (its gradient about 1/16 a row), class 1's −30
/// (about 10⁻²⁷), the rest −5.
fn case() -> (Vec<f32>, Vec<f32>, Vec<i64>, LinearDims) {
    let dims = LinearDims { n: 16, h: 4, v: 64 };
    let hidden = (0..dims.n)
        .flat_map(|i| {
            let t = i as f32;
            [1.0, 0.1 * t.sin(), 0.1 * t.cos(), 0.05]
        })
        .collect();
    let logit = |c: usize| match c {
        0 => 0.0,
        1 => -30.0,
        2 => 30.0,
        _ => -5.0,
    };
    let weight = (0..dims.v)
        .flat_map(|c| [logit(c), 0.1, -0.1, 0.2])
        .collect();
    (hidden, weight, vec![0; dims.n], dims)
}

#[test]
fn a_rare_class_next_to_a_target_is_within_the_cooperative_floor() {
    let Some(ctx) = ctx() else { return };
    let (hidden, weight, targets, dims) = case();
    let opts = |product_kernel| LinearCrossEntropyOptions {
        product_kernel,
        ..Default::default()
    };
    let run = |kernel| {
        let o = opts(kernel);
        let r = Default::default();
        ctx.linear_cross_entropy(&hidden, &weight, None, &targets, None, &dims, &o, &r)
            .unwrap()
    };
    let twin = |kernel| {
        cpu::linear_cross_entropy(&hidden, &weight, None, &targets, None, &dims, &opts(kernel))
            .unwrap()
    };
    let tol = Tolerance::default();
    let (tiled, coop) = (run(ProductKernel::Tiled), run(ProductKernel::CoopEmulated));
    tol.compare_linear(&tiled, &twin(ProductKernel::Tiled))
        .unwrap();
    tol.compare_linear(&coop, &twin(ProductKernel::CoopEmulated))
        .unwrap();
    // Class 1's row of ∂L/∂W: about 10⁻²⁷ in f32, 0 on the cooperative kernel.
    let row = |out: &xent::LinearOutput<f32>| out.grad_weight.as_ref().unwrap()[4..8].to_vec();
    assert!(row(&tiled).iter().all(|&x| x != 0.0), "{:?}", row(&tiled));
    assert_eq!(row(&coop), [0.0; 4]);
    let unfloored = tol.compare_linear(&coop, &twin(ProductKernel::Tiled));
    assert!(unfloored.is_err(), "the floor moved nothing that matters");
}
