//! What a host call returns besides the loss: [`Returns`].

/// What a host call computes and returns besides the loss: the switches of
/// the host API alone. A recording call has none: it writes an output
/// exactly when given that output's buffer.
///
/// ```
/// use xent::Returns;
/// let all = Returns { lse: true, correct: true, ..Default::default() };
/// assert!(all.grad);
/// assert_eq!(Returns::LOSS, Returns { grad: false, lse: false, correct: false });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Returns {
    /// The gradient with respect to the input (the fused op: to `h`, `W`
    /// and `b`). Default true.
    pub grad: bool,
    /// Each row's log-sum-exp, of logits only (cross-entropy and the fused
    /// op); an all −∞ row gives −∞, as `torch.logsumexp`. Default false.
    pub lse: bool,
    /// The number of rows whose argmax equals the target (cross-entropy and
    /// the fused op; for probability targets, the target's argmax). The
    /// argmax is the first index of the largest value that is not NaN (an
    /// all −∞ row: 0; an all-NaN row has none and never counts); ignored
    /// rows never count. Default false.
    pub correct: bool,
}

impl Returns {
    /// The loss alone.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let opts = xent::CrossEntropyOptions::default();
    /// let out = ctx.cross_entropy(&[0.0f32, 0.0], &[1, 2], &[0i64], None, &opts, &xent::Returns::LOSS)?;
    /// assert!(out.grad.is_none() && out.lse.is_none() && out.correct.is_none());
    /// assert!((out.scalar().unwrap() - std::f32::consts::LN_2).abs() < 1e-6);
    /// # Ok(()) }
    /// ```
    pub const LOSS: Returns = Returns {
        grad: false,
        lse: false,
        correct: false,
    };
}

impl Default for Returns {
    fn default() -> Self {
        Self {
            grad: true,
            lse: false,
            correct: false,
        }
    }
}
