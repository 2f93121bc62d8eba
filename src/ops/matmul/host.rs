//! The products' host API: slices in, a `Vec` out, through the recording API.

use super::buffers::{MatrixView, ProductBuffers, ProductKernel};
use super::MatmulDims;
use crate::core::transfer::{to_f32, STORAGE_OUT};
use crate::core::Context;
use crate::core::Precision;
use crate::error::{GpuScope, Result};

/// Options of [`Context::matmul`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    /// `a` holds `Aᵀ` (`k × m`).
    pub transpose_a: bool,
    /// `b` holds `Bᵀ` (`n × k`).
    pub transpose_b: bool,
    /// The operands' storage on the GPU (rounded to it on upload); the
    /// output is f32.
    pub precision: Precision,
    /// The kernel; [`ProductKernel::Auto`] chooses by the device.
    pub kernel: ProductKernel,
}

impl Context {
    /// `op(A)·op(B)` on the GPU: `a` is `m × k` (`k × m` with
    /// `transpose_a`), `b` is `k × n` (`n × k` with `transpose_b`), dense
    /// and row-major; the result is `m × n`, f32, accumulated in f32 in a
    /// fixed order. In verify mode it is held to [`cpu::matmul`](crate::cpu::matmul)
    /// of the stored (rounded) operands.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch); the errors of
    /// [`Context::record_matmul`]; [`Error::Mismatch`](crate::Error::Mismatch)
    /// in verify mode.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let d = xent::MatmulDims { m: 1, n: 2, k: 2 };
    /// let c = ctx.matmul(&[1.0, 2.0], &[1.0, 0.0, 0.0, 1.0], d, &Default::default())?;
    /// assert_eq!(c, vec![1.0, 2.0]);
    /// # Ok(()) }
    /// ```
    pub fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        dims: MatmulDims,
        opts: &MatmulOptions,
    ) -> Result<Vec<f32>> {
        let MatmulDims { m, n, .. } = dims;
        let ([_, ac], [_, bc]) =
            dims.check_lengths(a.len(), b.len(), opts.transpose_a, opts.transpose_b)?;
        let p = opts.precision;
        p.supported_on(&self.device, "f16 operands")?;
        let scope = GpuScope::push(&self.device);
        let a_buf = self.upload("xent matmul a", &p.narrow(a))?;
        let b_buf = self.upload("xent matmul b", &p.narrow(b))?;
        let out = self.upload_as("xent matmul out", &vec![0u8; m * n * 4], STORAGE_OUT)?;
        let buffers = ProductBuffers {
            a: MatrixView {
                transposed: opts.transpose_a,
                ..MatrixView::dense(a_buf.slice(..), p, ac)
            },
            b: MatrixView {
                transposed: opts.transpose_b,
                ..MatrixView::dense(b_buf.slice(..), p, bc)
            },
            bias: None,
            out: out.slice(..),
            out_offset: 0,
            out_stride: n as u64,
            accumulate: false,
            kernel: opts.kernel,
        };
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.record_matmul(&mut encoder, dims, &buffers)?;
        scope.pop("recording a matrix product")?;
        let bytes = self.download(encoder, &[&out])?;
        let mut c = to_f32(&bytes[0], m * n);
        if let (Some(f), true) = (self.fault, m * n > 0) {
            f.apply(&mut c, &crate::Layout::from_dims(&[m, n])?);
        }
        if let Some(tol) = self.verify {
            let (a64, b64) = (p.round(a), p.round(b));
            let want = super::cpu::matmul(&a64, &b64, dims, opts.transpose_a, opts.transpose_b)?;
            tol.check("product", &c, &want)?;
        }
        Ok(c)
    }
}
