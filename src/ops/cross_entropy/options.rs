//! Options of the loss, with PyTorch's defaults.

use crate::core::{Reduction, Returns};
use crate::error::{Error, Result};

/// What the input tensor holds.
///
/// ```
/// // F.nll_loss: the input holds log-probabilities.
/// let opts = xent::CrossEntropyOptions { input: xent::InputKind::LogProbs, ..Default::default() };
/// assert_eq!(xent::InputKind::default(), xent::InputKind::Logits);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputKind {
    /// Unnormalised scores: `logp = log_softmax(x)` (`F.cross_entropy`).
    #[default]
    Logits,
    /// Log-probabilities, already `log_softmax`: `logp = x` (`F.nll_loss`).
    LogProbs,
    /// Probabilities, already `softmax`: `logp = ln x` (`F.nll_loss(x.log())`).
    /// A zero probability gives `ln 0 = −inf` and a negative one NaN, exactly
    /// as PyTorch; the gradient `−w·q/x` is then infinite or NaN too.
    Probs,
}

impl InputKind {
    pub(crate) fn code(self) -> u32 {
        match self {
            InputKind::Logits => 0,
            InputKind::LogProbs => 1,
            InputKind::Probs => 2,
        }
    }
}

impl std::str::FromStr for InputKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logits" => Ok(InputKind::Logits),
            "log-probs" => Ok(InputKind::LogProbs),
            "probs" => Ok(InputKind::Probs),
            _ => Err(Error::InvalidOption {
                name: "input",
                value: s.to_string(),
                expected: "one of logits, log-probs, probs",
            }),
        }
    }
}

/// What a `mean` over rows that are all ignored (denominator 0) returns.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let zero = xent::CrossEntropyOptions { empty_mean: xent::EmptyMean::Zero, ..Default::default() };
/// // Every target ignored: PyTorch's NaN by default, 0 when asked.
/// let out = ctx.cross_entropy(&[1.0f32, 2.0], &[1, 2], &[-100i64], None, &zero, &Default::default())?;
/// assert_eq!(out.loss, vec![0.0]);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyMean {
    /// NaN (0 / 0), as PyTorch.
    #[default]
    Nan,
    /// 0.
    Zero,
}

/// Options of [`cross_entropy`](crate::Context::cross_entropy) and its
/// relatives: PyTorch's `F.cross_entropy` options plus a few beyond it.
///
/// For a row with input `x` (C classes) and `logp` its log-probabilities (see
/// [`InputKind`]), class weights `w` (all 1 when absent), sample weight `sᵢ`
/// (1 when absent), smoothing `ε`, and target distribution
/// `q = (1 − ε)·onehot(t) + ε/C` (class index `t`) or `q = (1 − ε)·y + ε/C`
/// (probabilities `y`):
///
/// * loss, class index: `ℓ = sᵢ·[(1 − ε)·(−w[t]·logp[t]) + (ε/C)·(−Σ_c w[c]·logp[c])]`
///   (PyTorch's decomposition, which equals `−sᵢ·Σ_c w[c]·q[c]·logp[c]`);
/// * loss, probabilities: `ℓ = −sᵢ·Σ_c w[c]·q[c]·logp[c]`;
/// * temperature (logits only): with `T ≠ 1`, every logit is divided by `T`
///   first, before soft-capping and everything below (the loss, z-loss,
///   log-sum-exp and argmax are of `x / T`), and the gradient carries the
///   `1/T` (distillation's and sampling's temperature);
/// * soft-capping (logits only, Gemma 2's): with `cap` set, every logit
///   (divided by `T`) becomes `cap·tanh(x / cap)` before everything below (the loss, z-loss,
///   log-sum-exp and argmax are of the capped logits), and the gradient is
///   multiplied by the cap's derivative `1 − tanh²(x / cap)`;
/// * z-loss (logits only): `+ sᵢ·r·z·lse²`, `lse = log Σ exp x`, with row weight
///   `r = w[t]` (class index) or 1 (probabilities);
/// * gradient for logits: `∂ℓ/∂x_j = sᵢ·(p_j·Σ_c w[c]·q[c] − w[j]·q[j] + r·2z·lse·p_j)`,
///   `p = softmax(x)`; for class indices that is
///   `sᵢ·[(1 − ε)·w[t]·(p_j − [j = t]) + (ε/C)·(W·p_j − w[j])]`, `W = Σ_c w[c]`;
///   for log-probabilities `−sᵢ·w[j]·q[j]`; for probabilities `−sᵢ·w[j]·q[j] / x_j`;
/// * a row whose class-index target equals `ignore_index` has loss 0 and
///   gradient 0 and does not count in the mean's denominator — **even when
///   its input holds NaN or ±∞**, where PyTorch writes NaN over the row's
///   gradient: padding rows must not poison a training step (a deliberate
///   difference, listed in the README);
/// * `mean` divides the sum of row losses (and the gradient) by
///   `Σ sᵢ·w[tᵢ]` over non-ignored rows for class indices — so smoothing and
///   z-loss are normalised by the same weights, exactly as PyTorch does for
///   smoothing — and by the number of rows for probability targets (PyTorch's
///   rule); a zero denominator gives NaN, or 0 with [`EmptyMean::Zero`]
///   (and a zero gradient). With NaN, as PyTorch: the loss is NaN even when
///   smoothing makes the numerator positive (its nll term is 0 / 0); for
///   logits the gradient of every non-ignored row is NaN; for log-probability
///   and probability inputs it is NaN at the targets and 0 where `q = 0`
///   (`nll_loss` writes only the targets' elements), then divided by the
///   input for probabilities (NaN where that is 0, as `torch.log`'s backward);
/// * an empty batch (a 0-sized axis other than the class axis) has no rows:
///   `mean` is NaN (or 0 with [`EmptyMean::Zero`]), `sum` 0, `none` empty;
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
    /// The kernel strategy: [`Strategy::Auto`] (the default) or one forced.
    pub strategy: Strategy,
    /// How row losses are combined. Default [`Reduction::Mean`].
    pub reduction: Reduction,
    /// Targets equal to this are skipped: loss 0, gradient 0, whatever the
    /// row's input (NaN and ±∞ included; PyTorch gives such a row a NaN
    /// gradient). Default −100; may lie outside [0, C). Must fit in an `i32`
    /// (the GPU's target type). With probability targets it must be negative
    /// (PyTorch: "ignore_index is not supported for floating point target").
    pub ignore_index: i64,
    /// ε in [0, 1]: the target distribution becomes `(1 − ε)·onehot + ε/C`.
    pub label_smoothing: f64,
    /// What the input holds. Default [`InputKind::Logits`].
    pub input: InputKind,
    /// z-loss scale `z ≥ 0` (logits only): adds `z·lse²` per row. Default 0.
    pub z_loss: f64,
    /// Logit soft-capping `cap > 0` (logits only): each logit `x` becomes
    /// `cap·tanh(x / cap)` first (after the temperature). Default `None` (no cap).
    pub softcap: Option<f64>,
    /// Temperature `T > 0` (logits only): each logit `x` becomes `x / T`
    /// before everything else, soft-capping included; the gradient carries
    /// the `1/T`. The GPU divides by `T` as an f32. Default 1 (none).
    pub temperature: f64,
    /// What an all-ignored `mean` returns. Default [`EmptyMean::Nan`].
    pub empty_mean: EmptyMean,
}

/// Which kernel strategy spreads a call's rows over invocations (see
/// ARCHITECTURE.md's table). `Auto`, the default, chooses by the shape and
/// the device; the others force one, for measuring strategies against each
/// other (`xent bench --strategies all`). A forced strategy that cannot
/// serve a shape (its layout, or the loop bound) is
/// [`Error::Unsupported`], never a silent fallback. The environment variable
/// `XENT_STRATEGY=<name>` forces one for every call of a process whose
/// options say `Auto`.
///
/// ```
/// let s: xent::Strategy = "wide4".parse()?;
/// assert_eq!((s, s.name()), (xent::Strategy::Wide4, "wide4"));
/// assert!("fastest".parse::<xent::Strategy>().is_err());
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Chosen by shape and device.
    #[default]
    Auto,
    /// A workgroup per row, scalar access (`inner = 1`).
    Wide,
    /// A workgroup per row, vec4 access (`inner = 1`, `C % 4 = 0`).
    Wide4,
    /// A workgroup per row, rows starting mid-vec4, through vec4 views
    /// where the buffers reach the tensor's last vec4, else through scalar
    /// views with the same bits (`inner = 1`, `C ≥ 4`).
    WideMixed,
    /// An invocation per row (any layout).
    Narrow,
    /// An invocation per row, vec4 access (`inner = 1`, `C % 4 = 0`).
    Narrow4,
    /// Four neighbouring pixels per invocation (`inner % 4 = 0`).
    Pixels4,
    /// Several workgroups per row over spans of classes (any layout).
    Split,
    /// A team of neighbouring invocations per row, several short rows per
    /// workgroup, scalar access (`inner = 1`): the GPU default.
    Team,
    /// As `Team`, vec4 access (`inner = 1`, `C % 4 = 0`).
    Team4,
    /// A team of invocations per pixel of a map, neighbouring pixels side
    /// by side (`inner > 1`): the GPU default for maps too long for an
    /// invocation per pixel.
    MapTeam,
}

impl Strategy {
    /// Every strategy that can be forced.
    ///
    /// ```
    /// use xent::Strategy;
    /// // Every strategy but `Auto`, each once.
    /// assert!(!Strategy::FORCED.contains(&Strategy::Auto));
    /// let names: std::collections::HashSet<_> = Strategy::FORCED.iter().map(|s| s.name()).collect();
    /// assert_eq!(names.len(), Strategy::FORCED.len());
    /// ```
    pub const FORCED: [Strategy; 10] = [
        Strategy::Wide,
        Strategy::Wide4,
        Strategy::WideMixed,
        Strategy::Narrow,
        Strategy::Narrow4,
        Strategy::Pixels4,
        Strategy::Split,
        Strategy::Team,
        Strategy::Team4,
        Strategy::MapTeam,
    ];

    /// The strategy's name (`auto`, `wide`, `wide4`, `wide-mixed`, `narrow`,
    /// `narrow4`, `pixels4`, `split`, `team`, `team4`, `map-team`).
    ///
    /// ```
    /// use xent::Strategy;
    /// assert_eq!(Strategy::WideMixed.name(), "wide-mixed");
    /// // Each name parses back to its strategy (`XENT_STRATEGY`, `--strategies`).
    /// for s in Strategy::FORCED {
    ///     assert_eq!(s.name().parse::<Strategy>()?, s);
    /// }
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Wide => "wide",
            Strategy::Wide4 => "wide4",
            Strategy::WideMixed => "wide-mixed",
            Strategy::Narrow => "narrow",
            Strategy::Narrow4 => "narrow4",
            Strategy::Pixels4 => "pixels4",
            Strategy::Split => "split",
            Strategy::Team => "team",
            Strategy::Team4 => "team4",
            Strategy::MapTeam => "map-team",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        std::iter::once(Strategy::Auto)
            .chain(Strategy::FORCED)
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::InvalidOption {
                name: "strategy",
                value: s.to_string(),
                expected:
                    "auto, wide, wide4, wide-mixed, narrow, narrow4, pixels4, split, team, team4 \
                     or map-team",
            })
    }
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::Auto,
            reduction: Reduction::Mean,
            ignore_index: -100,
            label_smoothing: 0.0,
            input: InputKind::Logits,
            z_loss: 0.0,
            softcap: None,
            temperature: 1.0,
            empty_mean: EmptyMean::Nan,
        }
    }
}

impl CrossEntropyOptions {
    /// Checks the options' domains.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for smoothing outside [0, 1] or NaN, an
    /// `ignore_index` that does not fit in an `i32`, a z-loss that is negative
    /// or not finite, a soft-cap or temperature that is not a finite
    /// positive number, or z-loss / log-sum-exp / soft-capping / a
    /// temperature asked of an input that is not logits.
    ///
    /// ```
    /// let bad = xent::CrossEntropyOptions { label_smoothing: 1.5, ..Default::default() };
    /// assert!(matches!(bad.validate(), Err(xent::Error::InvalidOption { name: "label_smoothing", .. })));
    /// let cold = xent::CrossEntropyOptions { temperature: 0.0, ..Default::default() };
    /// assert!(matches!(cold.validate(), Err(xent::Error::InvalidOption { name: "temperature", .. })));
    /// ```
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
        if !(self.z_loss.is_finite() && self.z_loss >= 0.0) {
            return Err(Error::InvalidOption {
                name: "z_loss",
                value: self.z_loss.to_string(),
                expected: "a finite number >= 0",
            });
        }
        if let Some(cap) = self.softcap {
            // The GPU divides by it in f32: a normal f32.
            if !(f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&cap) {
                return Err(Error::InvalidOption {
                    name: "softcap",
                    value: cap.to_string(),
                    expected: "a number > 0 that is a normal f32 (2^-126 to 3.4e38)",
                });
            }
        }
        // The GPU divides by it in f32: a normal f32 (nor 0, nor ∞).
        let t = self.temperature;
        if !(f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&t) {
            return Err(Error::InvalidOption {
                name: "temperature",
                value: t.to_string(),
                expected: "a finite number > 0 that is a normal f32 (2^-126 to 3.4e38)",
            });
        }
        let logit_options = self.z_loss != 0.0 || self.softcap.is_some() || t != 1.0;
        if self.input != InputKind::Logits && logit_options {
            return Err(Error::InvalidOption {
                name: "input",
                value: format!("{:?}", self.input),
                expected: "logits when z_loss, softcap or temperature is used (they act on logits)",
            });
        }
        Ok(())
    }

    /// The temperature as the GPU divides by it: rounded to f32.
    pub(crate) fn f32_temperature(&self) -> f64 {
        f64::from(self.temperature as f32)
    }

    /// That what the host call `returns` fits the options (checked after
    /// [`CrossEntropyOptions::validate`]): the log-sum-exp is of logits.
    ///
    /// # Errors
    /// [`Error::InvalidOption`].
    pub(crate) fn check_returns(&self, returns: &Returns) -> Result<()> {
        let of_logits = [
            (
                returns.lse,
                "logits when the log-sum-exp is returned (it is of logits)",
            ),
            (
                returns.argmax,
                "logits when the predicted class is returned (it is of logits)",
            ),
            (
                returns.entropy,
                "logits when the entropy is returned (it is of the logits' softmax)",
            ),
        ];
        self.logits_only(&of_logits)
    }

    /// The first output of `outputs` asked for (`(asked, expected)`),
    /// refused unless the input is logits: [`Error::InvalidOption`] naming
    /// the input, with `expected` as its message.
    pub(crate) fn logits_only(&self, outputs: &[(bool, &'static str)]) -> Result<()> {
        match outputs.iter().find(|&&(asked, _)| asked) {
            Some(&(_, expected)) if self.input != InputKind::Logits => Err(Error::InvalidOption {
                name: "input",
                value: format!("{:?}", self.input),
                expected,
            }),
            _ => Ok(()),
        }
    }
}
