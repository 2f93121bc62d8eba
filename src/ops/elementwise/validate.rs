//! The checks of an elementwise loss call, shared by the CPU and GPU paths
//! so both give the same error.

use super::options::{ElementwiseLoss, LossWeights, WeightShape};
use crate::core::shape;
use crate::core::Returns;
use crate::error::{Error, Result};

/// An elementwise loss's shape: any, `[]` included (one element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elements {
    pub dims: Vec<usize>,
    /// Elements in all.
    pub len: usize,
    /// The last axis's length (1 for `[]`), the length of a last-axis weight.
    pub last: usize,
}

impl Elements {
    pub(crate) fn new(dims: &[usize]) -> Result<Self> {
        let len = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| Error::InvalidShape {
                shape: dims.to_vec(),
                reason: "its element count overflows usize".into(),
            })?;
        Ok(Self {
            dims: dims.to_vec(),
            len,
            last: dims.last().copied().unwrap_or(1),
        })
    }

    /// Index along the last axis of element `i`.
    pub(crate) fn along_last(&self, i: usize) -> usize {
        i % self.last.max(1)
    }
}

/// The lengths of a call's tensors, its weights' shapes and the loss's
/// parameter; returns the shape and how `weight` is laid out.
pub(crate) fn call(
    loss: ElementwiseLoss,
    dims: &[usize],
    input: usize,
    target: usize,
    weight: Option<usize>,
    pos_weight: Option<usize>,
) -> Result<(Elements, Option<WeightShape>)> {
    loss.check()?;
    let shape = Elements::new(dims)?;
    shape::length("input", dims, shape.len, input)?;
    shape::length("target", dims, shape.len, target)?;
    for (what, given, takes) in [
        ("weight", weight.is_some(), loss.takes_weight()),
        ("pos_weight", pos_weight.is_some(), loss.takes_pos_weight()),
    ] {
        if given && !takes {
            return Err(Error::InvalidOption {
                name: what,
                value: format!("given for {}", loss.name()),
                expected: if what == "weight" {
                    "weight only with bce or bce-with-logits"
                } else {
                    "pos_weight only with bce-with-logits"
                },
            });
        }
    }
    let weight_shape = weight
        .map(|n| {
            if n == shape.len {
                Ok(WeightShape::Full)
            } else if n == shape.last {
                Ok(WeightShape::LastAxis)
            } else {
                Err(Error::WeightShape {
                    what: "weight",
                    shape: dims.to_vec(),
                    actual: n,
                    expected: format!(
                        "{} (the input's shape) or {} (its last axis)",
                        shape.len, shape.last
                    ),
                })
            }
        })
        .transpose()?;
    if let Some(n) = pos_weight {
        if n != shape.last {
            return Err(Error::WeightShape {
                what: "pos_weight",
                shape: dims.to_vec(),
                actual: n,
                expected: format!("{} (the input's last axis)", shape.last),
            });
        }
    }
    Ok((shape, weight_shape))
}

/// [`call`] for the slices of the host API and the CPU twin.
pub(crate) fn slices(
    loss: ElementwiseLoss,
    dims: &[usize],
    input: &[f32],
    target: &[f32],
    weights: LossWeights<'_>,
) -> Result<(Elements, Option<WeightShape>)> {
    call(
        loss,
        dims,
        input.len(),
        target.len(),
        weights.weight.map(<[f32]>::len),
        weights.pos_weight.map(<[f32]>::len),
    )
}

/// Binary cross-entropy's inputs and targets in [0, 1] (NaN is not), as
/// PyTorch checks them: the first element where either is bad, named by
/// its input if that is bad, else by its target (the GPU reports the same).
pub(crate) fn input_range(
    loss: ElementwiseLoss,
    shape: &Elements,
    input: &[f32],
    target: &[f32],
) -> Result<()> {
    if loss != ElementwiseLoss::Bce {
        return Ok(());
    }
    let bad = |i: usize| !(in_unit(input[i]) && in_unit(target[i]));
    match (0..shape.len).find(|&i| bad(i)) {
        None => Ok(()),
        Some(first) => Err(out_of_range(
            shape,
            first,
            input[first],
            target[first],
            (first..shape.len).filter(|&i| bad(i)).count() as u64,
        )),
    }
}

fn in_unit(v: f32) -> bool {
    (0.0..=1.0).contains(&v)
}

/// The error of bad elements, the first at flat position `first` with input
/// `x` and target `y`: named by its input if that is bad, else its target.
pub(crate) fn out_of_range(shape: &Elements, first: usize, x: f32, y: f32, count: u64) -> Error {
    if in_unit(x) {
        named_out_of_range(shape, first, "target", y, count)
    } else {
        named_out_of_range(shape, first, "input", x, count)
    }
}

/// The error of bad elements, the first at flat position `first`, whose
/// `what` (input or target) is `value`.
pub(crate) fn named_out_of_range(
    shape: &Elements,
    first: usize,
    what: &'static str,
    value: f32,
    count: u64,
) -> Error {
    Error::InputOutOfRange {
        what,
        position: shape::multi_index(&shape.dims, first),
        value: f64::from(value),
        count,
    }
}

/// What a host call of an elementwise loss may return: the gradient (an
/// elementwise loss has no log-sum-exp or argmax count).
pub(crate) fn returns(returns: &Returns) -> Result<()> {
    for (asked, value) in [(returns.lse, "lse"), (returns.correct, "correct")] {
        if asked {
            return Err(Error::InvalidOption {
                name: "returns",
                value: value.into(),
                expected: "the gradient only: an elementwise loss has no log-sum-exp or argmax",
            });
        }
    }
    Ok(())
}
