//! The products' host API: slices in, a `Vec` out, through the recording API.

use super::buffers::{MatmulOptions, MatrixView, ProductBuffers};
use super::MatmulDims;
use crate::core::precision::widen_all;
use crate::core::Context;
use crate::core::Element;
use crate::error::Result;

/// **Host API** of the matrix products: slices in, a `Vec` out.
impl Context {
    /// `op(A)·op(B)` on the GPU: `a` is `m × k` (`k × m` with
    /// `transpose_a`), `b` is `k × n` (`n × k` with `transpose_b`), dense
    /// and row-major, stored on the device as `T` is (`f32`, `half::bf16`,
    /// or `half::f16` with `SHADER_F16`); the result is `m × n`, f32,
    /// accumulated in f32 in a fixed order. In verify mode it is held to
    /// [`cpu::matmul`](crate::cpu::matmul) of the operands widened to f32.
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
    /// let c = ctx.matmul(&[1.0f32, 2.0], &[1.0, 0.0, 0.0, 1.0], &d, &Default::default())?;
    /// assert_eq!(c, vec![1.0, 2.0]);
    /// # Ok(()) }
    /// ```
    pub fn matmul<T: Element>(
        &self,
        a: &[T],
        b: &[T],
        dims: &MatmulDims,
        opts: &MatmulOptions,
    ) -> Result<Vec<f32>> {
        let MatmulDims { m, n, .. } = *dims;
        let ([_, ac], [_, bc]) =
            dims.check_lengths(a.len(), b.len(), opts.transpose_a, opts.transpose_b)?;
        let p = T::PRECISION;
        p.supported_on(&self.device, "f16 operands")?;
        let run = self.host_run();
        let a_buf = run.upload("xent matmul a", bytemuck::cast_slice(a))?;
        let b_buf = run.upload("xent matmul b", bytemuck::cast_slice(b))?;
        let out = run.output("xent matmul out", m * n);
        let buffers = ProductBuffers {
            a: MatrixView::dense(a_buf.slice(..), p, ac),
            b: MatrixView::dense(b_buf.slice(..), p, bc),
            bias: None,
            out: out.slice(..),
            out_offset: 0,
            out_stride: n as u64,
            accumulate: false,
        };
        let mut encoder = run.encoder();
        self.record_matmul(&mut encoder, dims, opts, &buffers)?;
        let mut read = run.finish(encoder, &[&out], "running a matrix product")?;
        let mut c = read.f32s(m * n);
        self.inject_fault(Some(&mut c), &[m, n]);
        if let Some(tol) = self.verify {
            let (a32, b32) = (widen_all(a), widen_all(b));
            let want = super::cpu::matmul(&a32, &b32, dims, opts)?;
            tol.check("product", &c, &want)?;
        }
        Ok(c)
    }
}
