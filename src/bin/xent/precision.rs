//! `xent loss --precision`: the storage of the input (and the elementwise
//! losses' target) and the gradient on the GPU. They are rounded to it on
//! load, the GPU reads and writes it (summing in f32), and the CPU check
//! runs on the rounded values, holding the gradient to that precision's
//! tolerance.

use clap::ValueEnum;
use half::{bf16, f16};
use xent::{
    CrossEntropyOptions, CrossEntropyOutput, ElementwiseOptions, ElementwiseOutput,
    LinearCrossEntropyOptions, LinearDims, LinearOutput, LossWeights, Targets, Tolerance, Weights,
};

/// The values of `--precision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum PrecisionArg {
    #[default]
    F32,
    F16,
    Bf16,
}

impl PrecisionArg {
    /// `input` as the GPU will store it, widened back to f32 exactly.
    pub(crate) fn round(self, input: &[f32]) -> Vec<f32> {
        match self {
            PrecisionArg::F32 => input.to_vec(),
            PrecisionArg::F16 => input.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
            PrecisionArg::Bf16 => input.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
        }
    }

    /// The tolerance of a gradient stored in this precision.
    pub(crate) fn grad_tolerance(self) -> Tolerance {
        match self {
            PrecisionArg::F32 => Tolerance::default(),
            PrecisionArg::F16 => Tolerance::F16,
            PrecisionArg::Bf16 => Tolerance::BF16,
        }
    }

    /// Cross-entropy on the GPU with the logits stored in this precision
    /// (`input` already rounded to it, so the conversion is exact), split
    /// into `mode`'s vocabulary shards when it has them, returning what
    /// `mode` asks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cross_entropy(
        self,
        ctx: &xent::Context,
        input: &[f32],
        dims: &[usize],
        given: (Targets<'_>, Weights<'_>),
        opts: &CrossEntropyOptions,
        mode: crate::compute::Mode,
    ) -> xent::Result<CrossEntropyOutput<f32>> {
        fn run<E: xent::Element>(
            ctx: &xent::Context,
            x: &[E],
            dims: &[usize],
            (targets, weights): (Targets<'_>, Weights<'_>),
            opts: &CrossEntropyOptions,
            mode: crate::compute::Mode,
        ) -> xent::Result<CrossEntropyOutput<f32>> {
            let returns = &mode.returns;
            match mode.shards {
                Some(k) => ctx.cross_entropy_sharded(x, dims, targets, weights, opts, returns, k),
                None => ctx.cross_entropy_with(x, dims, targets, weights, opts, returns),
            }
        }
        match self {
            PrecisionArg::F32 => run(ctx, input, dims, given, opts, mode),
            PrecisionArg::F16 => {
                let x: Vec<f16> = input.iter().map(|&v| f16::from_f32(v)).collect();
                run(ctx, &x, dims, given, opts, mode)
            }
            PrecisionArg::Bf16 => {
                let x: Vec<bf16> = input.iter().map(|&v| bf16::from_f32(v)).collect();
                run(ctx, &x, dims, given, opts, mode)
            }
        }
    }
}

impl PrecisionArg {
    /// An elementwise loss on the GPU with input, target and gradient
    /// stored in this precision (`input` and `target` already rounded to it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn elementwise_loss(
        self,
        ctx: &xent::Context,
        input: &[f32],
        target: &[f32],
        dims: &[usize],
        weights: LossWeights<'_>,
        opts: &ElementwiseOptions,
    ) -> xent::Result<ElementwiseOutput<f32>> {
        match self {
            PrecisionArg::F32 => {
                ctx.elementwise_loss(input, target, dims, weights, opts, &Default::default())
            }
            PrecisionArg::F16 => {
                let h = |v: &[f32]| v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>();
                ctx.elementwise_loss(
                    &h(input),
                    &h(target),
                    dims,
                    weights,
                    opts,
                    &Default::default(),
                )
            }
            PrecisionArg::Bf16 => {
                let h = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
                ctx.elementwise_loss(
                    &h(input),
                    &h(target),
                    dims,
                    weights,
                    opts,
                    &Default::default(),
                )
            }
        }
    }
}

/// The fused op's inputs as the CLI holds them: f32 values, the bias not
/// yet rounded to the storage.
pub(crate) struct LinearInputs<'a> {
    pub hidden: &'a [f32],
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub targets: Targets<'a>,
    pub class_weights: Option<&'a [f32]>,
}

impl PrecisionArg {
    /// The fused linear cross-entropy on the GPU, `h`, `W` and `b` stored
    /// in this precision (`hidden` and `weight` already rounded to it),
    /// split into `shards` vocabulary shards when given.
    pub(crate) fn linear_cross_entropy(
        self,
        ctx: &xent::Context,
        x: &LinearInputs<'_>,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        (shards, returns): (Option<usize>, &xent::Returns),
    ) -> xent::Result<LinearOutput<f32>> {
        fn run<T: xent::Element>(
            ctx: &xent::Context,
            to: impl Fn(&[f32]) -> Vec<T>,
            x: &LinearInputs<'_>,
            dims: &LinearDims,
            opts: &LinearCrossEntropyOptions,
            (shards, returns): (Option<usize>, &xent::Returns),
        ) -> xent::Result<LinearOutput<f32>> {
            let (h, w, b) = (to(x.hidden), to(x.weight), x.bias.map(&to));
            let (t, cw) = (x.targets, x.class_weights);
            match (shards, t) {
                (Some(k), Targets::I64(t)) => ctx.linear_cross_entropy_sharded(
                    &h,
                    &w,
                    b.as_deref(),
                    t,
                    cw,
                    dims,
                    opts,
                    returns,
                    k,
                ),
                (Some(_), _) => Err(xent::Error::Unsupported {
                    what: "--vocab-shards",
                    reason: "the vocabulary split takes int64 or int32 class ids".into(),
                }),
                (None, t) => {
                    ctx.linear_cross_entropy_with(&h, &w, b.as_deref(), t, cw, dims, opts, returns)
                }
            }
        }
        match self {
            PrecisionArg::F32 => run(ctx, |v| v.to_vec(), x, dims, opts, (shards, returns)),
            PrecisionArg::F16 => run(
                ctx,
                |v| v.iter().map(|&y| f16::from_f32(y)).collect(),
                x,
                dims,
                opts,
                (shards, returns),
            ),
            PrecisionArg::Bf16 => run(
                ctx,
                |v| v.iter().map(|&y| bf16::from_f32(y)).collect(),
                x,
                dims,
                opts,
                (shards, returns),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_the_stored_type() {
        let x = [0.1f32, 1.0 / 3.0, 65_520.0];
        assert_eq!(PrecisionArg::F32.round(&x), x.to_vec());
        assert_eq!(
            PrecisionArg::Bf16.round(&x)[0],
            bf16::from_f32(0.1).to_f32()
        );
        // Past f16's largest finite value: infinity, as the GPU would store it.
        assert!(PrecisionArg::F16.round(&x)[2].is_infinite());
    }
}
