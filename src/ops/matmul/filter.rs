//! Gradient filtering (Cut Cross-Entropy's idea), for the fused op's
//! gradient products: a step of k whose values of A (the window of
//! `∂L/∂logits`) all lie below a threshold in magnitude adds nothing, and
//! its loads of B and its multiply-adds are skipped (`FILTER` in
//! `shaders/matmul/product.wgsl`: a 64 × 16 tile of A for the tiled
//! kernel, an invocation's 8 × 4 for the blocks). The threshold is
//! `filter_eps` times the gradient's scale: over the mean's denominator
//! for a mean, read on the device from cross-entropy's call statistics,
//! so it is relative to a row of weight 1, as `softmax − one-hot` is. NaN
//! and infinities are never below it. Which steps are skipped depends only
//! on the data: the same inputs give the same bits. The byte count
//! (`traffic.rs`) counts every step, a bound where steps are skipped.

use super::params::MatmulParams;

/// A product's filter: its threshold and where the mean's denominator is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GradFilter<'a> {
    pub eps: f32,
    /// Cross-entropy's call statistics (`aux`): the mean's denominator first.
    pub stats: wgpu::BufferSlice<'a>,
    /// The loss is a mean: the threshold is over its denominator.
    pub mean: bool,
}

impl GradFilter<'_> {
    /// `params` with the filter's threshold.
    pub(crate) fn apply(&self, params: MatmulParams) -> MatmulParams {
        MatmulParams {
            filter_eps: self.eps,
            filter_mean: u32::from(self.mean),
            ..params
        }
    }
}
