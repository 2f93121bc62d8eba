//! How an op's per-target or per-element losses are combined.

use crate::error::{Error, Result};

/// How per-target (or, for the elementwise losses, per-element) losses are
/// combined, as PyTorch's `reduction`.
///
/// ```
/// assert_eq!(xent::Reduction::default(), xent::Reduction::Mean);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per target, in the target's shape. Ignored targets get 0.
    /// The gradient is that of the sum of the per-target losses.
    None,
    /// `Σ lossᵢ / Σ w[tᵢ]` over the non-ignored targets (the count of them
    /// without weights). NaN when every target is ignored. For the
    /// elementwise losses, the sum over the element count.
    #[default]
    Mean,
    /// `Σ lossᵢ` over the non-ignored targets.
    Sum,
}

impl Reduction {
    /// The length of the loss output for `elems` per-target losses: them
    /// all for `None`, one otherwise.
    pub(crate) fn loss_len(self, elems: usize) -> usize {
        if self == Reduction::None {
            elems
        } else {
            1
        }
    }

    /// The shape of the loss output: the targets' `dims` for `None`, a
    /// scalar's (none) otherwise.
    pub(crate) fn loss_dims(self, dims: &[usize]) -> Vec<usize> {
        if self == Reduction::None {
            dims.to_vec()
        } else {
            Vec::new()
        }
    }

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
