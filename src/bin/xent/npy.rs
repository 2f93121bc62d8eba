//! Reading and writing NumPy `.npy` arrays with npyz.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::atomic::Ordering;

use npyz::{DType, TypeChar, WriterBuilder};

use crate::{usage, Failure, QUIET_PANICS};

/// The values of an `.npy` array, in the dtypes xent takes.
pub enum Array {
    /// float16, widened to f32 exactly (every f16 is an f32) by the callers.
    F16(Vec<half::f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
}

/// An array read from a file, with its shape and NumPy dtype name.
pub struct Npy {
    pub array: Array,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
}

/// Reads `path` (the `what` file: "logits", "targets", "weights") as a
/// C-ordered array of float16, float32, float64, int64, int32 or uint8.
///
/// # Errors
/// Exit status 2 for a file that is missing, unreadable, not an `.npy`
/// file, truncated, Fortran-ordered, or of another dtype.
pub fn read(what: &str, path: &Path) -> Result<Npy, Failure> {
    read_as(what, path, expected_dtypes(what))
}

/// [`read`], with `expected` saying which dtypes the caller takes when the
/// file's is none xent reads.
pub fn read_as(what: &str, path: &Path, expected: &str) -> Result<Npy, Failure> {
    let npy = open(what, path)?;
    let (shape, count) = shape_of(&npy, what, path)?;
    if npy.order() == npyz::Order::Fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(usage(format!(
            "{what} file {} is Fortran-ordered; save it C-ordered (numpy.ascontiguousarray)",
            path.display()
        )));
    }
    let dtype = dtype_of(&npy, what, path, expected)?;
    let truncated = |e: std::io::Error| {
        usage(format!(
            "{what} file {} is truncated or corrupt: its header says shape {shape:?} \
             ({count} {dtype} values) but reading them failed: {e}",
            path.display()
        ))
    };
    let array = match dtype {
        "float16" => Array::F16(npy.into_vec().map_err(truncated)?),
        "float32" => Array::F32(npy.into_vec().map_err(truncated)?),
        "float64" => Array::F64(npy.into_vec().map_err(truncated)?),
        "int64" => Array::I64(npy.into_vec().map_err(truncated)?),
        "int32" => Array::I32(npy.into_vec().map_err(truncated)?),
        _ => Array::U8(npy.into_vec().map_err(truncated)?),
    };
    Ok(Npy {
        array,
        shape,
        dtype,
    })
}

/// An `.npy` file opened and its header parsed.
type NpyFile = npyz::NpyFile<BufReader<File>>;

/// Opens the `what` file at `path` and parses its header.
fn open(what: &str, path: &Path) -> Result<NpyFile, Failure> {
    let shown = path.display();
    if path.is_dir() {
        return Err(usage(format!(
            "cannot read {what} file {shown}: it is a directory"
        )));
    }
    let file =
        File::open(path).map_err(|e| usage(format!("cannot read {what} file {shown}: {e}")))?;
    // npyz multiplies the header's axes unchecked; a header whose element
    // count overflows panics in debug builds. That is bad input, not a bug.
    QUIET_PANICS.store(true, Ordering::Relaxed);
    let parsed = std::panic::catch_unwind(|| npyz::NpyFile::new(BufReader::new(file)));
    QUIET_PANICS.store(false, Ordering::Relaxed);
    match parsed {
        Ok(Ok(npy)) => Ok(npy),
        Ok(Err(e)) => Err(not_npy(what, path, e.to_string())),
        Err(_) => Err(not_npy(
            what,
            path,
            "its shape has too many elements".into(),
        )),
    }
}

/// The file's shape, and its count of elements.
fn shape_of(npy: &NpyFile, what: &str, path: &Path) -> Result<(Vec<usize>, usize), Failure> {
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| not_npy(what, path, "an axis does not fit in usize".into()))?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| not_npy(what, path, "its shape has too many elements".into()))?;
    Ok((shape, count))
}

/// The NumPy name of the file's dtype, one of those xent reads; else the
/// failure naming it, with `expected` (the dtypes the caller takes).
fn dtype_of(
    npy: &NpyFile,
    what: &str,
    path: &Path,
    expected: &str,
) -> Result<&'static str, Failure> {
    let shown = path.display();
    let DType::Plain(ts) = npy.dtype() else {
        return Err(usage(format!(
            "{what} file {shown} has a structured dtype; expected a plain numeric array"
        )));
    };
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 2) => Ok("float16"),
        (TypeChar::Float, 4) => Ok("float32"),
        (TypeChar::Float, 8) => Ok("float64"),
        (TypeChar::Int, 8) => Ok("int64"),
        (TypeChar::Int, 4) => Ok("int32"),
        (TypeChar::Uint, 1) => Ok("uint8"),
        (c, size) => Err(usage(format!(
            "{what} file {shown} has dtype {} ({ts}), which xent does not take: {expected}",
            numpy_name(c, size),
        ))),
    }
}

/// The failure of a `what` file that is not an `.npy` file, for `reason`.
fn not_npy(what: &str, path: &Path, reason: String) -> Failure {
    usage(format!(
        "{what} file {} is not a NumPy .npy file: {reason}",
        path.display()
    ))
}

/// What the `what` file may hold, for error messages.
pub fn expected_dtypes(what: &str) -> &'static str {
    match what {
        "targets" => {
            "expected int64, int32 or uint8 class ids, or float16/float32/float64 probabilities"
        }
        _ => "expected float16, float32 or float64",
    }
}

/// NumPy's name of a plain dtype.
fn numpy_name(c: TypeChar, size: u64) -> String {
    match c {
        TypeChar::Bool => "bool".into(),
        TypeChar::Int => format!("int{}", size * 8),
        TypeChar::Uint => format!("uint{}", size * 8),
        TypeChar::Float => format!("float{}", size * 8),
        TypeChar::Complex => format!("complex{}", size * 8),
        TypeChar::TimeDelta => "timedelta64".into(),
        TypeChar::DateTime => "datetime64".into(),
        TypeChar::ByteStr => "bytes".into(),
        TypeChar::UnicodeStr => "str".into(),
        TypeChar::RawData => "void".into(),
        other => format!("{other:?}"),
    }
}

/// Writes `data` as a C-ordered `.npy` of `shape` (`[]` for a scalar), of
/// `T`'s dtype (float32 for f32, int64 for i64).
///
/// # Errors
/// Exit status 2 when the file cannot be created or written.
pub fn write<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> Result<(), Failure> {
    let fail = |e: std::io::Error| usage(format!("cannot write {}: {e}", path.display()));
    let file = File::create(path).map_err(fail)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(fail)?;
    writer.extend(data.iter().copied()).map_err(fail)?;
    writer.finish().map_err(fail)
}
