//! Gradient filtering (`filter_eps`): a threshold below every value skips
//! nothing (the unfiltered bits), one above every value skips every
//! gradient product (∂L/∂h and ∂L/∂W zero, the loss and ∂L/∂b exact); in
//! between, the twin's magnitudes widened by every value that may be
//! skipped hold the result, and without that widening they do not (the
//! filter skipped values that matter), on every kernel, for a mean
//! and a sum, with class weights and ignored rows. Bad thresholds are typed
//! errors.

use crate::common::{ctx, Rng};
use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, LinearOutput, ProductKernel,
    Reduction, Tolerance,
};

/// Rows whose logits are peaked: hidden row `i` is `W[t] + 0.9·W[u]` (its
/// target's row and a runner-up's) plus noise, so each row has one large
/// probability, one near e^-4 and the rest far below.
struct Peaked {
    dims: LinearDims,
    hidden: Vec<f32>,
    weight: Vec<f32>,
    targets: Vec<i64>,
    class_w: Vec<f32>,
}

impl Peaked {
    fn new(seed: u64) -> Self {
        let dims = LinearDims {
            n: 130,
            h: 40,
            v: 1000,
        };
        let LinearDims { n, h, v } = dims;
        let mut rng = Rng(seed);
        let weight: Vec<f32> = (0..v * h)
            .map(|_| if rng.below(2) == 0 { -1.0 } else { 1.0 })
            .collect();
        let targets: Vec<i64> = (0..n)
            .map(|i| {
                if i % 9 == 4 {
                    -100
                } else {
                    rng.below(v) as i64
                }
            })
            .collect();
        let mut hidden = Vec::with_capacity(n * h);
        for &t in &targets {
            let (t, u) = (t.max(0) as usize, rng.below(v));
            for k in 0..h {
                let x = weight[t * h + k] + 0.9 * weight[u * h + k] + rng.uniform(-0.1, 0.1);
                hidden.push(x / 1.5);
            }
        }
        let class_w = (0..v).map(|_| rng.uniform(0.5, 2.0)).collect();
        Self {
            dims,
            hidden,
            weight,
            targets,
            class_w,
        }
    }

    fn run(&self, opts: &LinearCrossEntropyOptions, weighted: bool) -> LinearOutput<f32> {
        let ctx = ctx().unwrap();
        let cw = weighted.then_some(&self.class_w[..]);
        let (h, w, t) = (&self.hidden, &self.weight, &self.targets);
        ctx.linear_cross_entropy(h, w, None, t, cw, &self.dims, opts, &Default::default())
            .unwrap()
    }

    fn twin(&self, opts: &LinearCrossEntropyOptions, weighted: bool) -> LinearOutput<f64> {
        let cw = weighted.then_some(&self.class_w[..]);
        let (h, w, t) = (&self.hidden, &self.weight, &self.targets);
        cpu::linear_cross_entropy(h, w, None, t, cw, &self.dims, opts).unwrap()
    }
}

fn bits(v: &Option<Vec<f32>>) -> Vec<u32> {
    v.as_ref().unwrap().iter().map(|x| x.to_bits()).collect()
}

fn options(
    kernel: ProductKernel,
    reduction: Reduction,
    eps: Option<f64>,
) -> LinearCrossEntropyOptions {
    LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            reduction,
            ..Default::default()
        },
        product_kernel: kernel,
        filter_eps: eps,
        ..Default::default()
    }
}

/// Both scalar kernels and the cooperative one (emulated; f32 operands
/// split in halves), each filtering its own steps: 64 × 16 of A's window
/// (Tiled, CoopEmulated) or an invocation's 8 × 4 (Blocks).
const KERNELS: [ProductKernel; 3] = [
    ProductKernel::Tiled,
    ProductKernel::Blocks,
    ProductKernel::CoopEmulated,
];

#[test]
fn thresholds_below_and_above_every_value() {
    if ctx().is_none() {
        return;
    }
    let case = Peaked::new(3);
    for kernel in KERNELS {
        let plain = case.run(&options(kernel, Reduction::Mean, None), true);
        // 0 skips nothing; 1e-30 only the ignored rows' zeros.
        for eps in [0.0, 1e-30] {
            let got = case.run(&options(kernel, Reduction::Mean, Some(eps)), true);
            assert_eq!(
                bits(&got.grad_hidden),
                bits(&plain.grad_hidden),
                "{kernel:?} {eps}"
            );
            assert_eq!(
                bits(&got.grad_weight),
                bits(&plain.grad_weight),
                "{kernel:?} {eps}"
            );
        }
        let all = case.run(&options(kernel, Reduction::Mean, Some(1e30)), true);
        assert!(all.grad_hidden.as_ref().unwrap().iter().all(|&x| x == 0.0));
        assert!(all.grad_weight.as_ref().unwrap().iter().all(|&x| x == 0.0));
        assert_eq!(all.loss[0].to_bits(), plain.loss[0].to_bits(), "{kernel:?}");
    }
}

/// CCE's threshold (2^-12) and a coarse one (0.05): the widened twin holds
/// the filtered result, which differs from the unfiltered one; at 0.05 the
/// unwidened twin does not hold it.
#[test]
fn filtered_gradients_within_the_widened_twin() {
    if ctx().is_none() {
        return;
    }
    let case = Peaked::new(5);
    for kernel in KERNELS {
        for (reduction, weighted) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
            let plain = case.run(&options(kernel, reduction, None), weighted);
            for eps in [2f64.powi(-12), 0.05] {
                let opts = options(kernel, reduction, Some(eps));
                let what = format!("{kernel:?} {reduction:?} {eps}");
                let got = case.run(&opts, weighted);
                let twin = case.twin(&opts, weighted);
                Tolerance::default()
                    .compare_linear(&got, &twin)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_ne!(bits(&got.grad_hidden), bits(&plain.grad_hidden), "{what}");
                assert_ne!(bits(&got.grad_weight), bits(&plain.grad_weight), "{what}");
                if eps == 0.05 {
                    let unwidened = case.twin(&options(kernel, reduction, None), weighted);
                    let held = Tolerance::default().compare_linear(&got, &unwidened);
                    assert!(
                        held.is_err(),
                        "{what}: the filter skipped nothing that matters"
                    );
                }
            }
        }
    }
}

/// NaN is never below the threshold: a row of NaN hidden states spreads
/// NaN over ∂L/∂W and its row of ∂L/∂h as it does unfiltered.
#[test]
fn nan_is_never_skipped() {
    if ctx().is_none() {
        return;
    }
    let mut case = Peaked::new(11);
    case.hidden[0] = f32::NAN;
    for kernel in KERNELS {
        let got = case.run(&options(kernel, Reduction::Sum, Some(1e30)), false);
        let nan = |v: &Option<Vec<f32>>| -> Vec<bool> {
            v.as_ref().unwrap().iter().map(|x| x.is_nan()).collect()
        };
        let plain = case.run(&options(kernel, Reduction::Sum, None), false);
        assert!(nan(&got.grad_weight).iter().all(|&x| x), "{kernel:?}");
        assert_eq!(nan(&got.grad_hidden), nan(&plain.grad_hidden), "{kernel:?}");
    }
}

#[test]
fn bad_thresholds_are_typed_errors() {
    if ctx().is_none() {
        return;
    }
    let case = Peaked::new(7);
    let ctx = ctx().unwrap();
    for eps in [-1.0, f64::NAN, f64::INFINITY] {
        let opts = options(ProductKernel::Auto, Reduction::Mean, Some(eps));
        let (h, w, t) = (&case.hidden, &case.weight, &case.targets);
        let got =
            ctx.linear_cross_entropy(h, w, None, t, None, &case.dims, &opts, &Default::default());
        assert!(
            matches!(
                got,
                Err(xent::Error::InvalidOption {
                    name: "filter_eps",
                    ..
                })
            ),
            "{eps}: {:?}",
            got.err()
        );
    }
}
