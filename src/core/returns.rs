//! What a host call returns besides the loss: [`Returns`].

/// What a host call computes and returns besides the loss: the switches of
/// the host API alone. A recording call has none: it writes an output
/// exactly when given that output's buffer.
///
/// The argmax of `correct` and `argmax` is `torch.argmax`'s: the first index
/// of the largest value, a NaN larger than every number (the first NaN
/// wins), −0 equal to +0; an all −∞ row gives 0. With a temperature or a
/// soft-cap, of the logits as the loss sees them.
///
/// ```
/// use xent::Returns;
/// let all = Returns { lse: true, correct: true, ..Default::default() };
/// assert!(all.grad);
/// assert_eq!(Returns::LOSS, Returns { grad: false, ..Default::default() });
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
    /// the fused op; for probability targets, the target's argmax); ignored
    /// rows never count. Default false.
    pub correct: bool,
    /// Each row's predicted class, its argmax (logits only: cross-entropy
    /// and the fused op), every row included, ignored ones too. Default
    /// false.
    pub argmax: bool,
    /// Each row's entropy `−Σ p·log p` of the softmax of its logits as the
    /// loss sees them (logits only), every row included; a class of p = 0
    /// adds 0, as `torch.distributions.Categorical(logits=x).entropy()`.
    /// Default false.
    pub entropy: bool,
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
        argmax: false,
        entropy: false,
    };

    /// Everything: the gradient, the log-sum-exps, the correct count, the
    /// predicted classes and the entropies (logits only).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let opts = xent::CrossEntropyOptions::default();
    /// let out = ctx.cross_entropy(&[0.0f32, 2.0, 0.0], &[1, 3], &[1i64], None, &opts, &xent::Returns::ROWS)?;
    /// assert_eq!(out.argmax.as_deref(), Some(&[1i64][..]));
    /// assert_eq!(out.correct, Some(1));
    /// let h = out.entropy.unwrap()[0];
    /// assert!((h - 0.66557).abs() < 1e-4, "{h}");
    /// # Ok(()) }
    /// ```
    pub const ROWS: Returns = Returns {
        grad: true,
        lse: true,
        correct: true,
        argmax: true,
        entropy: true,
    };
}

impl Default for Returns {
    fn default() -> Self {
        Self {
            grad: true,
            ..Self::LOSS
        }
    }
}
