//! The float inputs of every command, as read from `.npy` files: float16,
//! float32 or float64, anything else refused naming the dtypes taken.

use std::borrow::Cow;
use std::path::Path;

use crate::npy::{self, Array};
use crate::{usage, Failure};

/// Float values as read: float32 or float64 (float16 widened to float32,
/// exactly, so `--precision f16` stores a float16 file's values as they are).
pub(crate) enum Floats {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Floats {
    pub(crate) fn from_f16(v: &[half::f16]) -> Self {
        Floats::F32(v.iter().map(|x| x.to_f32()).collect())
    }

    pub(crate) fn f32(&self) -> Cow<'_, [f32]> {
        match self {
            Floats::F32(v) => Cow::Borrowed(v),
            Floats::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        }
    }

    pub(crate) fn f64(&self) -> Cow<'_, [f64]> {
        match self {
            Floats::F32(v) => Cow::Owned(v.iter().map(|&x| f64::from(x)).collect()),
            Floats::F64(v) => Cow::Borrowed(v),
        }
    }
}

/// The `array` read from the `what` file at `path` as floats, or the
/// failure naming its `dtype` and the dtypes taken.
pub(crate) fn floats(
    what: &str,
    path: &Path,
    array: Array,
    dtype: &str,
) -> Result<Floats, Failure> {
    match array {
        Array::F16(v) => Ok(Floats::from_f16(&v)),
        Array::F32(v) => Ok(Floats::F32(v)),
        Array::F64(v) => Ok(Floats::F64(v)),
        _ => Err(usage(format!(
            "{what} file {} has dtype {dtype}, which xent does not take: {}",
            path.display(),
            npy::expected_dtypes(what)
        ))),
    }
}

/// A float array read from a file: its values and shape.
pub(crate) fn read_floats(what: &str, path: &Path) -> Result<(Floats, Vec<usize>), Failure> {
    let a = npy::read(what, path)?;
    Ok((floats(what, path, a.array, a.dtype)?, a.shape))
}

/// The `what` file (bias or class weights), if given: one float per row of
/// weight (`ws`, `v` rows).
pub(crate) fn read_vector(
    what: &str,
    path: Option<&Path>,
    ws: &[usize],
    v: usize,
) -> Result<Option<Vec<f32>>, Failure> {
    let Some(path) = path else { return Ok(None) };
    let (values, shape) = read_floats(what, path)?;
    if shape != [v] {
        return Err(usage(format!(
            "{what} has shape {shape:?} but weight {ws:?} needs ({v},)"
        )));
    }
    Ok(Some(values.f32().into_owned()))
}
