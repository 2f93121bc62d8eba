//! Which elementwise loss, with its parameter, and the weights it may take.

use crate::core::Reduction;
use crate::error::{Error, Result};

/// A binary or regression loss, computed elementwise over input `x` and
/// target `y` of the same shape (any shape), as PyTorch's functional loss
/// of the same name. Per element, with weight `w` (1 without weights) and
/// `pos_weight` `pw` (1 without), `d = x − y`:
///
/// | loss | value | gradient ∂/∂x |
/// |---|---|---|
/// | `BceWithLogits` | `w·(pw·y·softplus(−x) + (1 − y)·softplus(x))` | `w·(l·σ(x) − pw·y)`, as `w·((1 − y) − l·σ(−x))` for `x ≥ 0` |
/// | `Bce` | `−w·(y·max(ln x, −100) + (1 − y)·max(ln(1 − x), −100))` | `w·(x − y) / max(x·(1 − x), 1e-12)` |
/// | `Mse` | `d²` | `2d` |
/// | `L1` | `\|d\|` | `sign(d)`, 0 where `x = y` |
/// | `SmoothL1 { beta }` | `\|d\| < β ? d² / 2β : \|d\| − β/2` | `d > β ? 1 : (d < −β ? −1 : d/β)` |
/// | `Huber { delta }` | `\|d\| < δ ? d²/2 : δ·(\|d\| − δ/2)` | `d > δ ? δ : (d < −δ ? −δ : d)` |
///
/// `softplus(x) = ln(1 + eˣ)`, `σ(x) = 1/(1 + e⁻ˣ)`, `l = pw·y + 1 − y`.
/// `BceWithLogits`'s loss is PyTorch's `(1 − y)·x − l·log σ(x)` rearranged
/// into two terms that are never negative for `y ∈ [0, 1]`, so nothing
/// cancels; its gradient is PyTorch's `σ(x)·l − pw·y` with `σ(x)` taken as
/// `1 − σ(−x)` where it is near 1, which is exact for hard labels (PyTorch's
/// f32 `σ(x) − y` rounds to 0 for large `x` and `y = 1`, where this gives
/// `−σ(−x)`) and, for soft labels, cancels where `σ(x) ≈ y` as PyTorch's
/// does. At `x = −∞` its loss is NaN for every target, as PyTorch's form
/// gives (`−∞ + ∞`; the limit is +∞ for `y > 0`); at `x = +∞` it is +∞, or
/// NaN for `y = 1` (`0·∞`), as PyTorch's and the form above both give. `Bce` takes probabilities: an input or target outside [0, 1] (or
/// NaN) is [`Error::InputOutOfRange`], as in
/// PyTorch, whose clamps of the logarithm at −100 and of the gradient's
/// denominator at 1e-12 (the f32 value, as PyTorch's) it keeps. `SmoothL1` with `beta = 0` is `L1`.
/// The gradients are PyTorch's on NaN too: a NaN difference gives `L1` (and
/// `SmoothL1` with `beta = 0`) a 0 gradient, the others NaN.
///
/// The reduction: `none` gives each element's loss, `sum` their sum, `mean`
/// their sum over the element count (NaN for an empty input, as PyTorch);
/// the gradient is that of the reduced loss (of the sum for `none`).
///
/// ```
/// use xent::ElementwiseLoss;
/// let loss: ElementwiseLoss = "smooth-l1".parse()?;
/// assert_eq!(loss, ElementwiseLoss::SmoothL1 { beta: 1.0 });
/// assert_eq!(loss.name(), "smooth-l1");
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElementwiseLoss {
    /// `binary_cross_entropy_with_logits`: logits in, with `weight` and `pos_weight`.
    BceWithLogits,
    /// `binary_cross_entropy`: probabilities in [0, 1] in, with `weight`.
    Bce,
    /// `mse_loss`.
    Mse,
    /// `l1_loss`.
    L1,
    /// `smooth_l1_loss` with `beta ≥ 0` (PyTorch's default 1).
    SmoothL1 {
        /// Where the loss turns from quadratic to linear.
        beta: f64,
    },
    /// `huber_loss` with `delta > 0` (PyTorch's default 1).
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f64,
    },
}

impl ElementwiseLoss {
    /// Every loss with its default parameter, in the order of the table above.
    ///
    /// ```
    /// use xent::ElementwiseLoss;
    /// // Each name parses back to its loss, with the default parameter.
    /// for loss in ElementwiseLoss::ALL {
    ///     assert_eq!(loss.name().parse::<ElementwiseLoss>()?, loss);
    /// }
    /// assert_eq!(ElementwiseLoss::ALL[5], ElementwiseLoss::Huber { delta: 1.0 });
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub const ALL: [ElementwiseLoss; 6] = [
        ElementwiseLoss::BceWithLogits,
        ElementwiseLoss::Bce,
        ElementwiseLoss::Mse,
        ElementwiseLoss::L1,
        ElementwiseLoss::SmoothL1 { beta: 1.0 },
        ElementwiseLoss::Huber { delta: 1.0 },
    ];

    /// The loss's name on the command line (`bce-with-logits`, `bce`, `mse`,
    /// `l1`, `smooth-l1`, `huber`).
    ///
    /// ```
    /// use xent::ElementwiseLoss;
    /// assert_eq!(ElementwiseLoss::BceWithLogits.name(), "bce-with-logits");
    /// // The parameter is not part of the name.
    /// assert_eq!(ElementwiseLoss::Huber { delta: 0.5 }.name(), ElementwiseLoss::Huber { delta: 2.0 }.name());
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ElementwiseLoss::BceWithLogits => "bce-with-logits",
            ElementwiseLoss::Bce => "bce",
            ElementwiseLoss::Mse => "mse",
            ElementwiseLoss::L1 => "l1",
            ElementwiseLoss::SmoothL1 { .. } => "smooth-l1",
            ElementwiseLoss::Huber { .. } => "huber",
        }
    }

    /// `LOSS` in `shaders/elementwise/loss.wgsl`.
    pub(crate) fn code(self) -> u32 {
        match self {
            ElementwiseLoss::BceWithLogits => 0,
            ElementwiseLoss::Bce => 1,
            ElementwiseLoss::Mse => 2,
            ElementwiseLoss::L1 => 3,
            ElementwiseLoss::SmoothL1 { .. } => 4,
            ElementwiseLoss::Huber { .. } => 5,
        }
    }

    /// `beta` or `delta` as the kernels compute with it, rounded to f32 as
    /// PyTorch rounds a Python float to an f32 tensor's type (0 for the
    /// losses without a parameter). The CPU twin uses the same value.
    pub(crate) fn param(self) -> f32 {
        match self {
            ElementwiseLoss::SmoothL1 { beta } => beta as f32,
            ElementwiseLoss::Huber { delta } => delta as f32,
            _ => 0.0,
        }
    }

    /// Whether the loss takes `weight` (the binary ones).
    ///
    /// ```
    /// use xent::{ElementwiseLoss, ElementwiseOptions};
    /// assert!(ElementwiseLoss::Bce.takes_weight() && !ElementwiseLoss::Mse.takes_weight());
    /// let weights = xent::LossWeights { weight: Some(&[2.0]), ..Default::default() };
    /// let mse = ElementwiseOptions::new(ElementwiseLoss::Mse);
    /// let refused = xent::cpu::elementwise_loss(&[1.0], &[0.0], &[1], weights, &mse);
    /// assert!(matches!(refused, Err(xent::Error::InvalidOption { name: "weight", .. })));
    /// ```
    pub fn takes_weight(self) -> bool {
        matches!(self, ElementwiseLoss::BceWithLogits | ElementwiseLoss::Bce)
    }

    /// Whether the loss takes `pos_weight` (`BceWithLogits` only).
    ///
    /// ```
    /// use xent::ElementwiseLoss;
    /// let takers: Vec<_> = ElementwiseLoss::ALL.into_iter().filter(|l| l.takes_pos_weight()).collect();
    /// assert_eq!(takers, [ElementwiseLoss::BceWithLogits]);
    /// ```
    pub fn takes_pos_weight(self) -> bool {
        self == ElementwiseLoss::BceWithLogits
    }

    /// The parameter in its domain: `beta` finite and ≥ 0, `delta` finite and > 0.
    pub(crate) fn check(self) -> Result<()> {
        let bad = |name, value: f64, expected| {
            Err(Error::InvalidOption {
                name,
                value: value.to_string(),
                expected,
            })
        };
        match self {
            // Finite as the kernels' f32, too.
            ElementwiseLoss::SmoothL1 { beta } if !((beta as f32).is_finite() && beta >= 0.0) => {
                bad("beta", beta, "a finite number >= 0")
            }
            ElementwiseLoss::Huber { delta } if !((delta as f32).is_finite() && delta > 0.0) => {
                bad("delta", delta, "a finite number > 0")
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for ElementwiseLoss {
    type Err = Error;

    /// A loss by its [name](ElementwiseLoss::name), with the default parameter.
    fn from_str(s: &str) -> Result<Self> {
        ElementwiseLoss::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| Error::InvalidOption {
                name: "loss",
                value: s.to_string(),
                expected: "bce-with-logits, bce, mse, l1, smooth-l1 or huber",
            })
    }
}

/// The optional weights of an elementwise loss (the binary losses only):
/// `weight` of the input's shape or of its last axis's length (one per
/// element along the last axis, as PyTorch broadcasts a `(C,)` weight), and
/// `pos_weight`, `BceWithLogits` only, of the last axis's length.
///
/// ```
/// let w = [1.0f32, 2.0, 0.5];
/// let weights = xent::LossWeights { weight: Some(&w), ..Default::default() };
/// assert!(weights.pos_weight.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LossWeights<'a> {
    /// Scales each element's loss and gradient.
    pub weight: Option<&'a [f32]>,
    /// Scales the positive term `y·softplus(−x)` of `BceWithLogits`.
    pub pos_weight: Option<&'a [f32]>,
}

/// The options of an elementwise loss call, at both API levels
/// ([`Context::elementwise_loss`](crate::Context::elementwise_loss),
/// [`Context::record_elementwise_loss`](crate::Context::record_elementwise_loss)):
/// the loss (with its parameter) and the reduction. How the tensors are
/// stored is not an option: the host API takes it from the element type,
/// the recording API from [`ElementwiseBuffers::precision`](crate::ElementwiseBuffers::precision).
///
/// ```
/// use xent::{ElementwiseLoss, ElementwiseOptions, Reduction};
/// let opts = ElementwiseOptions { reduction: Reduction::Sum, ..ElementwiseOptions::new(ElementwiseLoss::Mse) };
/// assert_eq!(opts.loss, ElementwiseLoss::Mse);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElementwiseOptions {
    /// The loss, with `beta` or `delta` for the losses that take one.
    pub loss: ElementwiseLoss,
    /// `none`, `mean` (the default) or `sum`.
    pub reduction: Reduction,
}

impl ElementwiseOptions {
    /// `loss` with the mean reduction.
    ///
    /// ```
    /// use xent::{ElementwiseLoss, ElementwiseOptions};
    /// let opts = ElementwiseOptions::new(ElementwiseLoss::L1);
    /// assert_eq!(opts.reduction, xent::Reduction::Mean);
    /// let out = xent::cpu::elementwise_loss(&[1.0, 4.0], &[0.0, 0.0], &[2], Default::default(), &opts)?;
    /// assert_eq!(out.scalar(), Some(2.5)); // (|1| + |4|) / 2
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn new(loss: ElementwiseLoss) -> Self {
        Self {
            loss,
            reduction: Reduction::Mean,
        }
    }
}

/// Where a weight's values come from for element `i`: the input's shape
/// (`Full`) or its last axis (`LastAxis`).
///
/// ```
/// let w = [1.0f32, 2.0, 3.0];
/// // A (3,) weight broadcast along the last axis of a (2, 3) input.
/// let weights = xent::LossWeights { weight: Some(&w), ..Default::default() };
/// let out = xent::cpu::elementwise_loss(&[0.0; 6], &[1.0; 6], &[2, 3], weights,
///     &xent::ElementwiseOptions::new(xent::ElementwiseLoss::BceWithLogits))?;
/// assert_eq!(out.loss.len(), 1);
/// let _ = xent::WeightShape::LastAxis;
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightShape {
    /// One weight per element of the input.
    Full,
    /// One weight per element of the last axis, the same for every other index.
    LastAxis,
}
