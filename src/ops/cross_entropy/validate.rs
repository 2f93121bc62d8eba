//! Cross-entropy's input checks, shared by the CPU and GPU paths so both
//! give the same error.

use super::options::CrossEntropyOptions;
use super::status::out_of_range;
use super::targets::Targets;
use crate::core::shape::{length, multi_index, Layout};
use crate::error::{Error, Result};

/// Shapes, weights, options and probability values of a cross-entropy call.
/// Class-index ranges are checked apart: on the GPU for the GPU path.
pub(crate) fn inputs<P: Copy + Into<f64>>(
    layout: &Layout,
    input_len: usize,
    targets: &Targets<'_, P>,
    class_weights: Option<&[f64]>,
    sample_weights: Option<&[f64]>,
    opts: &CrossEntropyOptions,
) -> Result<()> {
    opts.validate()?;
    length("input", &layout.dims, layout.len(), input_len)?;
    match targets {
        Targets::Probs(y) => {
            probability_targets_ignore(opts)?;
            length("probability targets", &layout.dims, layout.len(), y.len())?;
            if let Some(i) = y.iter().position(|&v| {
                let v: f64 = v.into();
                v.is_nan() || v < 0.0
            }) {
                return Err(Error::InvalidProbability {
                    position: multi_index(&layout.dims, i),
                    value: y[i].into(),
                });
            }
        }
        _ => length(
            "targets",
            &layout.target_dims(),
            layout.rows(),
            targets.len(),
        )?,
    }
    if let Some(w) = class_weights {
        weights_ok(layout.classes, w)?;
    }
    if let Some(s) = sample_weights {
        length(
            "sample weights",
            &layout.target_dims(),
            layout.rows(),
            s.len(),
        )?;
        if let Some(i) = s.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidOption {
                name: "sample_weights",
                value: format!("{} at row {i}", s[i]),
                expected: "finite sample weights",
            });
        }
    }
    Ok(())
}

/// Probability targets have no class to ignore: an `ignore_index` of 0 or
/// more with them is an error, as PyTorch's "ignore_index is not supported
/// for floating point target" (negative values, the default −100 among them,
/// are accepted and have no effect, as there).
pub(crate) fn probability_targets_ignore(opts: &CrossEntropyOptions) -> Result<()> {
    if opts.ignore_index >= 0 {
        return Err(Error::InvalidOption {
            name: "ignore_index",
            value: opts.ignore_index.to_string(),
            expected: "a negative ignore_index with probability targets (PyTorch: \
                       ignore_index is not supported for floating point target)",
        });
    }
    Ok(())
}

/// Class weights: length C, every one finite.
pub(crate) fn weights_ok(classes: usize, w: &[f64]) -> Result<()> {
    if w.len() != classes {
        return Err(Error::WeightsLength {
            classes,
            actual: w.len(),
        });
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidOption {
            name: "weights",
            value: format!("{} at class {i}", w[i]),
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
