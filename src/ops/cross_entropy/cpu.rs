//! The CPU twin of the cross-entropy family, in f64, with the magnitudes of
//! its terms: its outputs, its entry points, the mean's denominator and the
//! reduction (each row's terms are `cpu_rows.rs`'s).

use super::cpu_rows::{ClassWeights, Twin};
use super::validate;
use crate::core::reference::{widen, Reference};
use crate::core::shape::Layout;
use crate::core::Reduction;
use crate::error::Result;
use crate::ops::cross_entropy::options::{CrossEntropyOptions, EmptyMean, InputKind};
use crate::ops::cross_entropy::targets::{Targets, Weights};

/// Loss and gradient of a cross-entropy call, in the precision of its path.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let out = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[2], &[1], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyOutput<T> {
    /// One value for `mean` and `sum`; one per target, in the target's shape,
    /// for `none`.
    pub loss: Vec<T>,
    /// The shape of `loss`: `[]` for `mean` and `sum`, the target's shape for `none`.
    pub loss_dims: Vec<usize>,
    /// ∂loss/∂input in the input's layout (for `none`, of the sum of the
    /// per-target losses); `None` when not asked for ([`Returns`](crate::Returns);
    /// the CPU twin returns it always).
    pub grad: Option<Vec<T>>,
    /// Each row's log-sum-exp of the logits, in the target's shape, when
    /// asked for (the twin: always, for logits).
    pub lse: Option<Vec<T>>,
    /// Rows whose argmax equals the target (non-ignored rows; for probability
    /// targets, the target's argmax), when asked for (the twin: always).
    pub correct: Option<u64>,
    /// Each row's predicted class, in the target's shape: the first index
    /// of its largest logit as the loss sees it (after the temperature and
    /// the soft-cap), as `torch.argmax` (a NaN is the largest), every row
    /// included; when asked for (the twin: always, for logits).
    pub argmax: Option<Vec<i64>>,
    /// Each row's entropy `−Σ p·log p` of the softmax of its logits as the
    /// loss sees them, in the target's shape, every row included; when asked
    /// for (the twin: always, for logits).
    pub entropy: Option<Vec<T>>,
    /// The magnitudes of the terms each value is made of, which the
    /// [`Tolerance`](crate::Tolerance) scales with (CPU results; `None` on GPU
    /// results).
    pub magnitude: Option<CrossEntropyMagnitude>,
}

/// The magnitude of the terms of each value of a [`CrossEntropyOutput`]: the
/// sum of their absolute values, a logarithm of a sum counting 0.1 more
/// (see [`Tolerance`](crate::Tolerance)). Same lengths as the values.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// // Logits (0, 0), target 1: loss ln 2, gradient (1/2, −1/2).
/// let out = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[1, 2], &[1], None, &Default::default())?;
/// let m = out.magnitude.unwrap();
/// assert_eq!(m.loss.len(), out.loss.len());
/// assert!(m.loss[0] >= out.loss[0].abs()); // at least the value's own size
/// assert_eq!(m.grad.unwrap().len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyMagnitude {
    /// Of each loss value.
    pub loss: Vec<f64>,
    /// Of each gradient element.
    pub grad: Option<Vec<f64>>,
    /// Of each log-sum-exp.
    pub lse: Option<Vec<f64>>,
    /// How far the GPU's count of correct rows may be from the twin's: rows
    /// whose two largest logits, as the loss sees them, are within the f32
    /// rounding of the soft-cap and the temperature (0 without either).
    pub correct_slack: u64,
    /// Of each row's entropy.
    pub entropy: Option<Vec<f64>>,
    /// Rows (in order) whose predicted class may be any of the listed
    /// ones: their largest logits, as the loss sees them, lie within the
    /// f32 rounding of the soft-cap and the temperature (none without either).
    pub argmax_ties: Vec<(usize, Vec<i64>)>,
    /// Each loss value's flush factor: the sum of the factors that multiply
    /// its f32 inputs and intermediates after a GPU may have flushed them
    /// to zero (see [`Tolerance`](crate::Tolerance)).
    pub loss_flush: Vec<f64>,
    /// Each gradient element's flush factor.
    pub grad_flush: Option<Vec<f64>>,
}

impl CrossEntropyOutput<f64> {
    /// The loss with its magnitudes (its own size where there are none), for
    /// [`Tolerance::check`](crate::Tolerance::check).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let cpu = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[1, 2], &[1], None, &Default::default())?;
    /// let reference = cpu.loss_reference();
    /// assert_eq!(reference.value, vec![std::f64::consts::LN_2]);
    /// xent::Tolerance::default().check("loss", &[std::f32::consts::LN_2], &reference)?;
    /// assert!(xent::Tolerance::default().check("loss", &[0.7], &reference).is_err());
    /// # Ok(()) }
    /// ```
    pub fn loss_reference(&self) -> Reference {
        let m = self.magnitude.as_ref();
        reference(
            &self.loss,
            m.map(|m| &m.loss[..]),
            m.map(|m| &m.loss_flush[..]),
        )
    }

    /// The gradient with its magnitudes, when there is one.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let cpu = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[1, 2], &[1], None, &Default::default())?;
    /// let grad = cpu.grad_reference().unwrap();
    /// assert_eq!(grad.value, vec![0.5, -0.5]); // softmax − onehot
    /// xent::Tolerance::default().check("gradient", &[0.5, -0.5], &grad)?;
    /// # Ok(()) }
    /// ```
    pub fn grad_reference(&self) -> Option<Reference> {
        let m = self.magnitude.as_ref();
        let (mag, flush) = (
            m.and_then(|m| m.grad.as_deref()),
            m.and_then(|m| m.grad_flush.as_deref()),
        );
        self.grad.as_deref().map(|g| reference(g, mag, flush))
    }

    /// The log-sum-exp with its magnitudes, when there is one.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let cpu = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[1, 2], &[1], None, &Default::default())?;
    /// let lse = cpu.lse_reference().unwrap();
    /// assert_eq!(lse.value, vec![std::f64::consts::LN_2]); // ln(e⁰ + e⁰)
    /// # Ok(()) }
    /// ```
    pub fn lse_reference(&self) -> Option<Reference> {
        let m = self.magnitude.as_ref().and_then(|m| m.lse.as_deref());
        self.lse.as_deref().map(|l| reference(l, m, None))
    }

    /// The entropies with their magnitudes, for [`Tolerance::check`](crate::Tolerance::check);
    /// `None` when there are none.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let out = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[1, 2], &[1], None, &Default::default())?;
    /// let h = out.entropy_reference().unwrap();
    /// assert_eq!(h.value, vec![std::f64::consts::LN_2]); // two equal classes
    /// # Ok(()) }
    /// ```
    pub fn entropy_reference(&self) -> Option<Reference> {
        let m = self.magnitude.as_ref().and_then(|m| m.entropy.as_deref());
        self.entropy.as_deref().map(|h| reference(h, m, None))
    }
}

fn reference(value: &[f64], magnitude: Option<&[f64]>, flush: Option<&[f64]>) -> Reference {
    Reference {
        value: value.to_vec(),
        magnitude: magnitude
            .map_or_else(|| value.iter().map(|v| v.abs()).collect(), <[f64]>::to_vec),
        flush: flush.map_or_else(|| vec![0.0; value.len()], <[f64]>::to_vec),
    }
}

impl<T: Copy> CrossEntropyOutput<T> {
    /// The reduced loss for `mean` and `sum`; `None` for `none`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{CrossEntropyOptions, Reduction};
    /// let x = [0.0f32, 0.0, 0.0, 0.0];
    /// let mean = xent::cpu::cross_entropy(&x, &[2, 2], &[0, 1], None, &Default::default())?;
    /// assert_eq!(mean.scalar(), Some(std::f64::consts::LN_2));
    /// let opts = CrossEntropyOptions { reduction: Reduction::None, ..Default::default() };
    /// let none = xent::cpu::cross_entropy(&x, &[2, 2], &[0, 1], None, &opts)?;
    /// assert_eq!((none.scalar(), none.loss_dims), (None, vec![2]));
    /// # Ok(()) }
    /// ```
    pub fn scalar(&self) -> Option<T> {
        if self.loss_dims.is_empty() {
            self.loss.first().copied()
        } else {
            None
        }
    }
}

/// Softmax cross-entropy with class-index targets, as PyTorch's `F.cross_entropy`.
///
/// `logits` has shape `dims` = `(C)`, `(N, C)` or `(N, C, d1, …, dK)`;
/// `targets` has the same shape without the class axis; `weights`, if given,
/// has length C. The formulas are those of [`CrossEntropyOptions`]. This is
/// [`cross_entropy_with`] for i64 class indices and class weights only.
///
/// # Errors
/// Shape, weight-length and option errors as the GPU path, and
/// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) naming the first bad target.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
/// let out = xent::cpu::cross_entropy(&logits, &[3, 5], &[1, 3, 2], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - 3.7925).abs() < 5e-5);
/// # Ok(()) }
/// ```
pub fn cross_entropy<T: Copy + Into<f64>>(
    logits: &[T],
    dims: &[usize],
    targets: &[i64],
    weights: Option<&[T]>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    cross_entropy_with(
        logits,
        dims,
        Targets::I64(targets),
        Weights {
            class: weights,
            sample: None,
        },
        opts,
    )
}

/// Cross-entropy with probability targets of the input's shape (soft labels;
/// one-hot is a special case), as PyTorch's `F.cross_entropy` with float targets.
///
/// # Errors
/// As [`cross_entropy_with`].
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let out = xent::cpu::cross_entropy_soft(&[0.0f32, 0.0], &[1, 2], &[0.5, 0.5], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
/// # Ok(()) }
/// ```
pub fn cross_entropy_soft<T: Copy + Into<f64>>(
    input: &[T],
    dims: &[usize],
    probs: &[T],
    weights: Option<&[T]>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    cross_entropy_with(
        input,
        dims,
        Targets::Probs(probs),
        Weights {
            class: weights,
            sample: None,
        },
        opts,
    )
}

/// The whole loss family on the CPU: any target kind, class and sample
/// weights, every option of [`CrossEntropyOptions`] (input kinds, z-loss,
/// log-sum-exp, argmax count). The CPU twin of
/// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with).
///
/// # Errors
/// [`Error::InvalidShape`](crate::Error::InvalidShape),
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) (targets, sample
/// weights), [`Error::WeightsLength`](crate::Error::WeightsLength),
/// [`Error::InvalidOption`](crate::Error::InvalidOption),
/// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange),
/// [`Error::InvalidProbability`](crate::Error::InvalidProbability).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// use xent::{cpu, CrossEntropyOptions, InputKind, Targets, Weights};
/// // NLL of log-probabilities: -(-0.5) = 0.5.
/// let opts = CrossEntropyOptions { input: InputKind::LogProbs, ..Default::default() };
/// let out = cpu::cross_entropy_with(&[-0.5f64, -1.0], &[2], Targets::U8(&[0]), Weights::none(), &opts)?;
/// assert_eq!(out.loss, vec![0.5]);
/// # Ok(()) }
/// ```
pub fn cross_entropy_with<T: Copy + Into<f64>>(
    input: &[T],
    dims: &[usize],
    targets: Targets<'_, T>,
    weights: Weights<'_, T>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    let layout = Layout::from_dims(dims)?;
    let class_w = weights.class.map(widen);
    let sample_w = weights.sample.map(widen);
    validate::inputs(
        &layout,
        input.len(),
        &targets,
        class_w.as_deref(),
        sample_w.as_deref(),
        opts,
    )?;
    if let Some(t) = targets.class_indices() {
        validate::target_range(&layout, &t, opts.ignore_index)?;
    }
    let class_w = ClassWeights(class_w.as_deref());
    let twin = Twin::new(input, layout, targets, class_w, sample_w.as_deref(), opts);
    let denom = denominator(&twin);
    let rows = twin.run(grad_scale(opts, denom));
    let (loss, loss_mag, loss_dims) = reduce_rows(opts, denom, rows.loss, rows.mag, &twin.layout);
    let loss_flush = reduce_flush(opts, denom, rows.loss_flush);
    let logits = opts.input == InputKind::Logits;
    Ok(CrossEntropyOutput {
        loss,
        loss_dims,
        grad: Some(rows.grad),
        lse: logits.then_some(rows.lse),
        correct: Some(rows.correct),
        argmax: logits.then_some(rows.argmax),
        entropy: logits.then_some(rows.entropy),
        magnitude: Some(CrossEntropyMagnitude {
            loss: loss_mag,
            grad: Some(rows.grad_mag),
            lse: logits.then_some(rows.lse_mag),
            correct_slack: rows.correct_slack,
            entropy: logits.then_some(rows.entropy_mag),
            argmax_ties: rows.argmax_ties,
            loss_flush,
            grad_flush: Some(rows.grad_flush),
        }),
    })
}

/// The mean's denominator: `Σ sᵢ·w[tᵢ]` over the non-ignored rows for class
/// indices, the number of rows for probabilities.
fn denominator(twin: &Twin<'_>) -> f64 {
    match &twin.class_of {
        Some(ts) => ts
            .iter()
            .enumerate()
            .filter_map(|(row, t)| t.map(|t| twin.sw(row) * twin.class_w.at(t)))
            .sum(),
        None => twin.layout.rows() as f64,
    }
}

/// What the gradient of every row is multiplied by (with its sample weight).
fn grad_scale(opts: &CrossEntropyOptions, denom: f64) -> f64 {
    // A zero denominator: 0 with EmptyMean::Zero; NaN for logits (PyTorch's
    // nll term is 0 / 0 and the softmax's backward spreads it over the row);
    // 1 / 0 otherwise, which meets the structural zeros of `Row::grad_element`.
    match (opts.reduction, opts.empty_mean, opts.input) {
        (Reduction::Mean, EmptyMean::Zero, _) if denom == 0.0 => 0.0,
        (Reduction::Mean, EmptyMean::Nan, InputKind::Logits) if denom == 0.0 => f64::NAN,
        (Reduction::Mean, ..) => 1.0 / denom,
        (Reduction::None | Reduction::Sum, ..) => 1.0,
    }
}

/// The rows' loss flush factors as the reduction gives them: a sum's
/// terms and partial sums may each be flushed too, and the mean divides by
/// its denominator.
fn reduce_flush(opts: &CrossEntropyOptions, denom: f64, row_flush: Vec<f64>) -> Vec<f64> {
    let rows = row_flush.len() as f64;
    let total = row_flush.iter().sum::<f64>() + rows;
    match opts.reduction {
        Reduction::None => row_flush,
        Reduction::Sum => vec![total],
        Reduction::Mean if denom != 0.0 => vec![(total / denom).abs() + 1.0],
        Reduction::Mean => vec![0.0],
    }
}

/// The rows' losses and magnitudes as the reduction gives them, with the
/// loss's shape.
fn reduce_rows(
    opts: &CrossEntropyOptions,
    denom: f64,
    row_loss: Vec<f64>,
    row_mag: Vec<f64>,
    layout: &Layout,
) -> (Vec<f64>, Vec<f64>, Vec<usize>) {
    let reduced = |total: f64| match (opts.reduction, opts.empty_mean) {
        (Reduction::Mean, EmptyMean::Zero) if denom == 0.0 => 0.0,
        // NaN even when smoothing makes the numerator positive: PyTorch's nll
        // term is 0 / 0.
        (Reduction::Mean, EmptyMean::Nan) if denom == 0.0 => f64::NAN,
        (Reduction::Mean, _) => total / denom,
        _ => total,
    };
    match opts.reduction {
        Reduction::None => (row_loss, row_mag, layout.target_dims()),
        _ => {
            let loss = reduced(row_loss.iter().sum());
            let mag = reduced(row_mag.iter().sum()).abs().max(loss.abs());
            (vec![loss], vec![mag], Vec::new())
        }
    }
}
