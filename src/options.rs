//! Options of the loss, with PyTorch's defaults.

use crate::error::{Error, Result};

/// How per-target losses are combined, as PyTorch's `reduction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per target, in the target's shape. Ignored targets get 0.
    /// The gradient is that of the sum of the per-target losses.
    None,
    /// `Σ lossᵢ / Σ w[tᵢ]` over the non-ignored targets (the count of them
    /// without weights). NaN when every target is ignored.
    #[default]
    Mean,
    /// `Σ lossᵢ` over the non-ignored targets.
    Sum,
}

impl Reduction {
    pub(crate) fn code(self) -> u32 {
        match self {
            Reduction::None => 0,
            Reduction::Mean => 1,
            Reduction::Sum => 2,
        }
    }
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(Error::InvalidOption {
                name: "reduction",
                value: s.to_string(),
                expected: "one of none, mean, sum",
            }),
        }
    }
}

/// Options of [`cross_entropy`](crate::Context::cross_entropy), the same as
/// PyTorch's `F.cross_entropy` with class-index targets.
///
/// For a row with logits `x` (C classes), `logp = log_softmax(x)`, target `t`,
/// class weights `w` (all 1 when absent) and smoothing `ε`:
///
/// * loss: `ℓ = (1 − ε)·(−w[t]·logp[t]) + (ε / C)·(−Σ_c w[c]·logp[c])`;
/// * gradient: `∂ℓ/∂x_j = (1 − ε)·w[t]·(p_j − [j = t]) + (ε / C)·(W·p_j − w[j])`,
///   with `p = softmax(x)` and `W = Σ_c w[c]`;
/// * a row whose target equals `ignore_index` has loss 0 and gradient 0 and
///   does not count in the mean's denominator;
/// * `mean` divides the sum of row losses (and the gradient) by
///   `Σ w[tᵢ]` over non-ignored rows, so the smoothing term is normalised by
///   the same weights, exactly as PyTorch does; 0/0 gives NaN;
/// * `−inf` logits are allowed away from the target (their `p` is 0); with
///   smoothing the smoothing term then becomes `+inf`, as in PyTorch.
///
/// ```
/// let opts = xent::CrossEntropyOptions {
///     ignore_index: 255,
///     label_smoothing: 0.1,
///     ..Default::default()
/// };
/// assert_eq!(opts.reduction, xent::Reduction::Mean);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyOptions {
    /// How row losses are combined. Default [`Reduction::Mean`].
    pub reduction: Reduction,
    /// Targets equal to this are skipped. Default −100; may lie outside [0, C).
    /// Must fit in an `i32` (the GPU's target type).
    pub ignore_index: i64,
    /// ε in [0, 1]: the target distribution becomes `(1 − ε)·onehot + ε/C`.
    pub label_smoothing: f64,
    /// Whether to compute the gradient with respect to the logits.
    pub compute_grad: bool,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self {
            reduction: Reduction::Mean,
            ignore_index: -100,
            label_smoothing: 0.0,
            compute_grad: true,
        }
    }
}

impl CrossEntropyOptions {
    /// Checks the options' domains.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for smoothing outside [0, 1] or NaN, or an
    /// `ignore_index` that does not fit in an `i32`.
    pub fn validate(&self) -> Result<()> {
        let s = self.label_smoothing;
        if s.is_nan() || !(0.0..=1.0).contains(&s) {
            return Err(Error::InvalidOption {
                name: "label_smoothing",
                value: s.to_string(),
                expected: "a number in [0, 1]",
            });
        }
        if i32::try_from(self.ignore_index).is_err() {
            return Err(Error::InvalidOption {
                name: "ignore_index",
                value: self.ignore_index.to_string(),
                expected: "an integer that fits in i32",
            });
        }
        Ok(())
    }
}
