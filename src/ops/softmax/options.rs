//! What softmax computes: [`SoftmaxOptions`] and [`SoftmaxKind`].

/// Which normalisation softmax computes.
///
/// ```
/// assert_eq!(xent::SoftmaxKind::default(), xent::SoftmaxKind::Softmax);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SoftmaxKind {
    /// `exp(x − max) / Σ exp(x − max)`.
    #[default]
    Softmax,
    /// `x − max − log Σ exp(x − max)`.
    LogSoftmax,
}

impl SoftmaxKind {
    /// The code of `Params::mode` (`LOG_SOFTMAX` in `shaders/softmax/kernels.wgsl`).
    pub(crate) fn code(self) -> u32 {
        match self {
            SoftmaxKind::Softmax => 0,
            SoftmaxKind::LogSoftmax => 1,
        }
    }
}

/// The options of softmax, forward and backward, at both API levels
/// ([`Context::softmax`](crate::Context::softmax),
/// [`Context::record_softmax`](crate::Context::record_softmax) and their
/// backward). How the tensors are stored is not an option: the host API
/// takes it from the element type, the recording API from
/// [`SoftmaxBuffers::precision`](crate::SoftmaxBuffers::precision).
///
/// ```
/// let opts = xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax };
/// assert_eq!(xent::SoftmaxOptions::default().kind, xent::SoftmaxKind::Softmax);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftmaxOptions {
    /// Softmax or log-softmax.
    pub kind: SoftmaxKind,
}
