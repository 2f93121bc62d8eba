//! The output files of every command: their paths checked before any
//! input is read, and the arrays written as float32 `.npy`.

use std::path::{Path, PathBuf};

use crate::npy;
use crate::{usage, Failure};

/// Checks the output paths given (flag, path) before any input is read:
/// each must name a file (not a directory) in a directory that exists, no
/// two outputs may be the same file, and none may be one of the input
/// paths given. Writing can still fail afterwards (permissions, a full
/// disk); these are the failures known before any work is done.
pub(crate) fn check_output_paths(
    outputs: &[(&str, Option<&Path>)],
    inputs: &[(&str, Option<&Path>)],
) -> Result<(), Failure> {
    let inputs: Vec<(&str, &Path)> = inputs
        .iter()
        .filter_map(|&(flag, path)| Some((flag, path?)))
        .collect();
    let mut seen: Vec<(&str, &Path, PathBuf)> = Vec::new();
    for &(flag, path) in outputs {
        let Some(path) = path else { continue };
        let file = output_file(flag, path)?;
        if let Some((other, other_path, _)) = seen.iter().find(|(_, _, f)| *f == file) {
            return Err(usage(format!(
                "{other} {} and {flag} {} are the same file; give each output its own path",
                other_path.display(),
                path.display()
            )));
        }
        for (input, input_path) in &inputs {
            if same_file(&file, input_path) {
                return Err(usage(format!(
                    "cannot write {flag} {}: it is the {input} file {}, which would be overwritten; \
                     give the output its own path",
                    path.display(),
                    input_path.display()
                )));
            }
        }
        seen.push((flag, path, file));
    }
    Ok(())
}

/// The file an output path names, as an absolute path with its directory's
/// symbolic links and `..` resolved (and the file's own link, if it is one),
/// after checking it can be created: its directory exists and it is not a
/// directory itself.
fn output_file(flag: &str, path: &Path) -> Result<PathBuf, Failure> {
    let shown = path.display();
    let fail = |why: String| usage(format!("cannot write {flag} {shown}: {why}"));
    if path.is_dir() {
        return Err(fail("it is a directory; give a file name".into()));
    }
    let spelt = path.as_os_str().to_string_lossy();
    let (Some(name), false) = (path.file_name(), spelt.ends_with(std::path::is_separator)) else {
        return Err(fail("it names no file; give a file name".into()));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        return Err(fail(format!(
            "its directory {} does not exist",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(fail(format!("{} is not a directory", dir.display())));
    }
    // An existing file (or a link to one) is resolved whole, so a link to an
    // input is caught.
    if let Ok(file) = std::fs::canonicalize(path) {
        return Ok(file);
    }
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        fail(format!(
            "cannot resolve its directory {}: {e}",
            dir.display()
        ))
    })?;
    Ok(dir.join(name))
}

/// Whether `input` (which may not exist) is the file `output` names, as
/// resolved by `output_file`.
fn same_file(output: &Path, input: &Path) -> bool {
    std::fs::canonicalize(input).is_ok_and(|i| i == output)
}

/// Writes `values` as a float32 (f32) or int64 (i64) `.npy` of `shape` to
/// `path` and says so, naming the array `what`.
pub(crate) fn write<T: Written>(
    what: &str,
    path: &Path,
    shape: &[usize],
    values: &[T],
) -> Result<(), Failure> {
    npy::write(path, shape, values)?;
    say!(
        "wrote {what}, {} {shape:?}, to {}",
        T::DTYPE,
        path.display()
    );
    Ok(())
}

/// An element type the commands write, with its NumPy name.
pub(crate) trait Written: npyz::AutoSerialize + Copy {
    const DTYPE: &'static str;
}

impl Written for f32 {
    const DTYPE: &'static str = "float32";
}

impl Written for i64 {
    const DTYPE: &'static str = "int64";
}
