//! The row check of a prepared case: sampled rows of its output read back
//! (from each shard, for a split) and held to the CPU path row by row.

use super::Prepared;
use crate::bench::BenchOp;
use crate::core::reference::Reference;
use crate::core::shape::Layout;
use crate::cpu;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::softmax::SoftmaxKind;

impl Prepared<'_> {
    /// Reads back the gradient of `k` rows spread evenly over the case (its
    /// first and last among them) from the last recorded run and holds each
    /// to the CPU path on that row alone, scaled by the mean's 1/N (the
    /// bench's targets are all in range, unweighted), under the case
    /// precision's tolerance: the check of a case too large for the CPU to
    /// compute whole (past 2^32 elements). Returns the rows checked and
    /// their largest |GPU − CPU|.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming the first element out of tolerance;
    /// [`Error::Unsupported`] for an elementwise case or a map (inner > 1);
    /// [`Error::Gpu`] if the readback fails.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::bench::{BenchCase, Prepared};
    /// let ctx = xent::Context::from_env()?;
    /// let case = Prepared::new(&ctx, &BenchCase::new(&[8, 100]))?;
    /// let (rows, diff) = case.check_rows(3)?; // rows 0, 3 and 7
    /// assert!(rows == 3 && diff < 1e-4);
    /// assert_eq!(case.check_rows(100)?.0, 8); // at most every row
    /// let mse = Prepared::new(&ctx, &BenchCase::elementwise(xent::ElementwiseLoss::Mse, &[8, 100]))?;
    /// assert!(matches!(mse.check_rows(3), Err(xent::Error::Unsupported { .. })));
    /// # Ok(()) }
    /// ```
    pub fn check_rows(&self, k: usize) -> Result<(usize, f64)> {
        let layout = Layout::from_dims(&self.dims)?;
        let (rows, classes) = (layout.rows(), layout.classes);
        if matches!(self.op, BenchOp::Elementwise(_)) || layout.inner != 1 {
            return Err(Error::Unsupported {
                what: "a row-sampled check",
                reason: format!(
                    "it takes cross-entropy and softmax cases of (N, C); {} {:?} is not one",
                    self.op.name(),
                    self.dims
                ),
            });
        }
        let k = k.min(rows);
        if k == 0 {
            return Ok((0, 0.0));
        }
        let picks: Vec<usize> = (0..k).map(|i| i * (rows - 1) / (k - 1).max(1)).collect();
        // The copy kernel, timed in turns with the call, overwrites the
        // gradient buffer: the call runs once more first.
        self.run(|p, encoder| p.record_fused(encoder, None))?;
        let gpu_rows = self.read_rows(&picks, classes)?;
        let tol = self.precision.tolerance(crate::Tolerance::default());
        let mut largest = 0.0f64;
        for (&r, gpu) in picks.iter().zip(gpu_rows) {
            let reference = self.row_reference(r, classes, rows)?;
            // A mismatch names its element in the whole output.
            tol.check(self.op.name(), &gpu, &reference)
                .map_err(|mut e| {
                    if let Error::Mismatch { index, .. } = &mut e {
                        *index += r * classes;
                    }
                    e
                })?;
            largest = largest.max(crate::max_abs_diff(&gpu, &reference.value));
        }
        Ok((k, largest))
    }

    /// The output rows `picks` of `classes` elements, read back: each from
    /// its pieces (one for a whole call, one per shard for a split), each
    /// piece copied in whole words and widened.
    fn read_rows(&self, picks: &[usize], classes: usize) -> Result<Vec<Vec<f32>>> {
        let size = self.precision.size();
        let pieces: Vec<Vec<(&wgpu::Buffer, usize, usize)>> = picks
            .iter()
            .map(|&r| match &self.vocab {
                Some(v) => v.row_pieces(r),
                None => vec![(&self.grad, r * classes, classes)],
            })
            .collect();
        // Copies run in whole words: each piece's bytes widened to them.
        let span = |first: usize, len: usize| {
            if len == 0 {
                return (0, 0);
            }
            let start = first as u64 * size;
            (
                start / 4 * 4,
                (start + len as u64 * size).next_multiple_of(4),
            )
        };
        let total: u64 = pieces
            .iter()
            .flatten()
            .map(|&(_, f, l)| span(f, l))
            .map(|(lo, hi)| hi - lo)
            .sum();
        let sample = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench sampled rows"),
            size: total.max(4),
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        let mut at = 0;
        for &(buffer, first, len) in pieces.iter().flatten() {
            let (lo, hi) = span(first, len);
            if hi > lo {
                encoder.copy_buffer_to_buffer(buffer, lo, &sample, at, hi - lo);
            }
            at += hi - lo;
        }
        let bytes = self.ctx.download(encoder, &[&sample])?.remove(0);
        let mut at = 0;
        let rows = pieces.iter().map(|row| {
            let mut values = Vec::with_capacity(classes);
            for &(_, first, len) in row {
                let (lo, hi) = span(first, len);
                let skip = (first as u64 * size - lo) as usize;
                values.extend(self.precision.widen(&bytes[at + skip..], len));
                at += (hi - lo) as usize;
            }
            values
        });
        Ok(rows.collect())
    }

    /// The CPU path's output (the gradient, for cross-entropy) of row `r`
    /// alone, of `classes` classes: cross-entropy's scaled by the mean's
    /// 1/`rows` (the bench's targets are all in range, unweighted).
    fn row_reference(&self, r: usize, classes: usize, rows: usize) -> Result<Reference> {
        let x = &self.logits[r * classes..(r + 1) * classes];
        let row = [1, classes];
        let dy = || &self.elementwise_targets[r * classes..(r + 1) * classes];
        match self.op {
            BenchOp::Softmax(SoftmaxKind::Softmax) => cpu::softmax_reference(x, &row),
            BenchOp::Softmax(SoftmaxKind::LogSoftmax) => cpu::log_softmax_reference(x, &row),
            BenchOp::SoftmaxBackward(SoftmaxKind::Softmax) => {
                cpu::softmax_backward_reference(x, dy(), &row)
            }
            BenchOp::SoftmaxBackward(SoftmaxKind::LogSoftmax) => {
                cpu::log_softmax_backward_reference(x, dy(), &row)
            }
            BenchOp::CrossEntropy | BenchOp::VocabSplit(_) | BenchOp::Elementwise(_) => {
                let opts = CrossEntropyOptions {
                    reduction: crate::Reduction::Sum,
                    ..Default::default()
                };
                let t = crate::Targets::I64(&self.targets[r..r + 1]);
                let want = cpu::cross_entropy_with(x, &row, t, crate::Weights::none(), &opts)?;
                let mut reference = want
                    .grad_reference()
                    .ok_or_else(|| Error::Gpu("the CPU path returned no gradient".to_string()))?;
                let scale = 1.0 / rows as f64;
                reference.value.iter_mut().for_each(|v| *v *= scale);
                reference.magnitude.iter_mut().for_each(|v| *v *= scale);
                reference
                    .flush
                    .iter_mut()
                    .for_each(|v| *v = *v * scale + 1.0);
                Ok(reference)
            }
        }
    }
}
