//! The products' f64 CPU twin.

use super::{MatmulDims, MatmulOptions};
use crate::core::reference::Reference;
use crate::error::Result;

/// `op(A)·op(B)` in f64, with each output's magnitude `Σ_l |A(i,l)|·|B(l,j)|`
/// (see [`Tolerance`](crate::Tolerance)): `a` is `m × k` (stored `k × m`
/// when `transpose_a`), `b` is `k × n` (stored `n × k` when `transpose_b`),
/// both row-major and dense.
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when a slice's length is not its shape's.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let d = xent::MatmulDims { m: 1, n: 1, k: 2 };
/// let r = xent::cpu::matmul(&[1.0f32, -2.0], &[3.0f32, 4.0], &d, &Default::default())?;
/// assert_eq!((r.value[0], r.magnitude[0]), (-5.0, 11.0));
/// # Ok(()) }
/// ```
pub fn matmul<T: Copy + Into<f64>>(
    a: &[T],
    b: &[T],
    dims: &MatmulDims,
    opts: &MatmulOptions,
) -> Result<Reference> {
    let (transpose_a, transpose_b) = (opts.transpose_a, opts.transpose_b);
    let MatmulDims { m, n, k } = *dims;
    dims.check_lengths(a.len(), b.len(), transpose_a, transpose_b)?;
    let at = |i: usize, l: usize| -> f64 {
        if transpose_a {
            a[l * m + i].into()
        } else {
            a[i * k + l].into()
        }
    };
    let bt = |l: usize, j: usize| -> f64 {
        if transpose_b {
            b[j * k + l].into()
        } else {
            b[l * n + j].into()
        }
    };
    let mut value = vec![0.0; m * n];
    let mut magnitude = vec![0.0; m * n];
    // A flushed input times the other; each product and partial sum.
    let mut flush = vec![0.0; m * n];
    for i in 0..m {
        for l in 0..k {
            let x = at(i, l);
            for j in 0..n {
                let y = bt(l, j);
                value[i * n + j] += x * y;
                magnitude[i * n + j] += (x * y).abs();
                flush[i * n + j] += x.abs() + y.abs() + 2.0;
            }
        }
    }
    Ok(Reference {
        value,
        magnitude,
        flush,
    })
}
