//! Input checks shared by the CPU and GPU paths, so both give the same error.

use crate::error::{Error, Result};
use crate::options::CrossEntropyOptions;
use crate::shape::Layout;

/// A tensor's length against the number of elements its shape needs.
pub(crate) fn length(
    what: &'static str,
    dims: &[usize],
    expected: usize,
    actual: usize,
) -> Result<()> {
    if expected != actual {
        return Err(Error::ShapeMismatch {
            what,
            shape: dims.to_vec(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Shapes, weights and options of a cross-entropy call (not the target values).
pub(crate) fn inputs(
    layout: &Layout,
    logits_len: usize,
    targets_len: usize,
    weights: Option<&[f64]>,
    opts: &CrossEntropyOptions,
) -> Result<()> {
    opts.validate()?;
    length("logits", &layout.dims, layout.len(), logits_len)?;
    length("targets", &layout.target_dims(), layout.rows(), targets_len)?;
    if let Some(w) = weights {
        weights_ok(layout.classes, w)?;
    }
    Ok(())
}

/// Class weights: length C and no NaN.
pub(crate) fn weights_ok(classes: usize, w: &[f64]) -> Result<()> {
    if w.len() != classes {
        return Err(Error::WeightsLength {
            classes,
            actual: w.len(),
        });
    }
    if let Some(i) = w.iter().position(|v| v.is_nan()) {
        return Err(Error::InvalidOption {
            name: "weights",
            value: format!("NaN at class {i}"),
            expected: "finite class weights",
        });
    }
    Ok(())
}

/// Every target is a class in [0, C) or `ignore_index`.
pub(crate) fn target_range(layout: &Layout, targets: &[i64], ignore_index: i64) -> Result<()> {
    let classes = layout.classes as i64;
    let bad = |t: i64| t != ignore_index && !(0..classes).contains(&t);
    if let Some(first) = targets.iter().position(|&t| bad(t)) {
        return Err(out_of_range(
            layout,
            first,
            targets[first],
            ignore_index,
            targets.iter().filter(|&&t| bad(t)).count() as u64,
        ));
    }
    Ok(())
}

pub(crate) fn out_of_range(
    layout: &Layout,
    flat: usize,
    value: i64,
    ignore_index: i64,
    count: u64,
) -> Error {
    Error::TargetOutOfRange {
        position: layout.target_position(flat),
        value,
        classes: layout.classes,
        ignore_index,
        count,
    }
}
