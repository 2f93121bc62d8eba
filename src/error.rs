//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong in xent, as one growing enum.
///
/// Every message names the value that was wrong and what was expected. The
/// enum is `#[non_exhaustive]`: match on the variants you handle and keep a
/// wildcard arm.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// match ctx.cross_entropy(&[1.0f32, 2.0], &[1, 2], &[5i64], None, &Default::default(), &Default::default()) {
///     Err(xent::Error::TargetOutOfRange { value, classes, .. }) => assert_eq!((value, classes), (5, 2)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error(
        "no GPU adapter found ({request}); for a software adapter install Mesa's Vulkan driver \
         (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`) or run with WGPU_BACKEND=gl and Mesa's llvmpipe"
    )]
    NoAdapter {
        /// What was asked for: backends and adapter name from the environment.
        request: String,
    },
    /// The adapter refused to create a device.
    #[error("could not create a device on adapter {adapter}: {reason}")]
    DeviceRequest {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// A shape that is empty, has a zero-sized axis, or is too large.
    #[error("invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The shape as given.
        shape: Vec<usize>,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor's length does not match the shape it is used with.
    #[error("{what} has {actual} elements but the shape {shape:?} needs {expected}")]
    ShapeMismatch {
        /// Which tensor.
        what: &'static str,
        /// The shape it was checked against.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A buffer is too small for the shape or lacks a needed usage flag.
    #[error("buffer `{what}` is unusable: {reason}")]
    BadBuffer {
        /// Which buffer.
        what: &'static str,
        /// Its size, the size needed, or the missing usage.
        reason: String,
    },
    /// A buffer region that starts where the device cannot bind it: its
    /// offset is not a multiple of the alignment (the device's
    /// `min_storage_buffer_offset_alignment`, and at least 16 bytes, a vec4).
    #[error("buffer `{what}` starts at offset {offset}, which is not a multiple of {alignment} bytes (the device's storage offset alignment)")]
    BadOffset {
        /// Which buffer.
        what: &'static str,
        /// The region's offset in its buffer, in bytes.
        offset: u64,
        /// The alignment it must have, in bytes.
        alignment: u64,
    },
    /// Class weights whose length is not the number of classes.
    #[error("weights have length {actual} but there are {classes} classes")]
    WeightsLength {
        /// Number of classes (C).
        classes: usize,
        /// Length of the weights given.
        actual: usize,
    },
    /// An option outside its domain (label smoothing outside [0, 1], NaN, ...).
    #[error("invalid option {name} = {value}: expected {expected}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// The value given, printed.
        value: String,
        /// What the option accepts.
        expected: &'static str,
    },
    /// A class-index target outside [0, C) that is not `ignore_index`.
    #[error(
        "target {value} at position {position:?} is out of range: expected a class in [0, {classes}) \
         or ignore_index {ignore_index} ({count} bad target(s) in all)"
    )]
    TargetOutOfRange {
        /// Position of the first bad target, as indices into the target's shape.
        position: Vec<usize>,
        /// The bad target value.
        value: i64,
        /// Number of classes (C).
        classes: usize,
        /// The ignore index in force.
        ignore_index: i64,
        /// How many targets are out of range in all.
        count: u64,
    },
    /// A probability target that is negative or NaN.
    #[error(
        "probability target {value} at position {position:?} is invalid: expected a number >= 0"
    )]
    InvalidProbability {
        /// Position in the target's shape (the input's shape).
        position: Vec<usize>,
        /// The bad value.
        value: f64,
    },
    /// An input or target of `binary_cross_entropy` outside [0, 1] (or
    /// NaN), which PyTorch rejects too.
    #[error(
        "{what} {} at position {position:?} is outside [0, 1]: binary cross-entropy takes \
         probabilities ({count} element(s) with an input or target outside [0, 1] in all)",
        *.value as f32
    )]
    InputOutOfRange {
        /// `input` or `target`: which of the first bad element's values is bad
        /// (its input, if both are).
        what: &'static str,
        /// Position in the input's shape of the first element whose input or
        /// target is bad.
        position: Vec<usize>,
        /// Its value.
        value: f64,
        /// How many elements have an input or a target outside [0, 1].
        count: u64,
    },
    /// An elementwise loss's weight (or `pos_weight`) whose length is
    /// neither of the shapes it may have.
    #[error("{what} has {actual} elements: expected {expected} for the input's shape {shape:?}")]
    WeightShape {
        /// `weight` or `pos_weight`.
        what: &'static str,
        /// The input's shape.
        shape: Vec<usize>,
        /// Elements given.
        actual: usize,
        /// The lengths it may have, in words.
        expected: String,
    },
    /// The GPU result disagrees with the CPU reference beyond the tolerance.
    #[error(
        "GPU and CPU disagree on {what} at index {index}: gpu {gpu}, cpu {cpu}, allowed |gpu - cpu| <= {rel:e} x max(|gpu|, |cpu|, {magnitude:e}) + {abs:e}"
    )]
    Mismatch {
        /// Which output.
        what: &'static str,
        /// Flat index of the worst element.
        index: usize,
        /// GPU value.
        gpu: f64,
        /// CPU value.
        cpu: f64,
        /// The magnitude of the terms the CPU value is made of (see
        /// [`Tolerance`](crate::Tolerance)).
        magnitude: f64,
        /// Absolute floor of the tolerance at this element: the
        /// tolerance's `abs` plus what flushed intermediates may leave
        /// (its flush factor times 2⁻¹²⁶).
        abs: f64,
        /// Relative tolerance.
        rel: f64,
    },
    /// The device lacks a feature the request needs (e.g. SHADER_F16 for f16).
    #[error("{what} is not supported here: {reason}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why it cannot be done on this device.
        reason: String,
    },
    /// The device given to [`Context::new`](crate::Context::new) has a limit
    /// below what xent needs ([`required_limits`](crate::required_limits)).
    #[error(
        "the device's limit {limit} is {actual}, but xent needs {needed} \
         (request xent::required_limits() when making the device)"
    )]
    DeviceLimit {
        /// The limit's name, as a field of `wgpu::Limits`.
        limit: &'static str,
        /// What xent needs.
        needed: u64,
        /// What the device has.
        actual: u64,
    },
    /// wgpu reported an error while running xent's work: a validation error
    /// (e.g. a buffer from another device, or one that was destroyed), an
    /// out-of-memory error, or an internal one. The message names what xent
    /// was doing and holds wgpu's message, on one line.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device is lost: destroyed (`wgpu::Device::destroy`) or lost to the
    /// driver or the OS. Nothing on it works again; every later call on this
    /// context returns this error. Make a new device and a new [`Context`](crate::Context).
    #[error("the GPU device is lost ({0}); make a new device and Context")]
    DeviceLost(String),
}

/// Shorthand for `std::result::Result<T, xent::Error>`.
///
/// ```
/// fn classes(dims: &[usize]) -> xent::Result<usize> {
///     Ok(xent::Layout::from_dims(dims)?.classes)
/// }
/// assert_eq!(classes(&[4, 10]), Ok(10));
/// assert!(matches!(classes(&[]), Err(xent::Error::InvalidShape { .. })));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// wgpu's error scopes (validation, out of memory, internal) around xent's
/// own work on a device: a wgpu error becomes an [`Error::Gpu`] instead of a
/// panic in wgpu's default uncaptured-error handler. Scopes are per device
/// and per thread; pushing and popping one costs a lock and no GPU work.
/// Dropped without [`GpuScope::pop`] (an early return), the scopes are popped
/// and what they caught is discarded.
pub(crate) struct GpuScope {
    // Scopes are popped in the reverse order of pushing, and fields drop in
    // declaration order.
    internal: wgpu::ErrorScopeGuard,
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl GpuScope {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        Self {
            internal,
            oom,
            validation,
        }
    }

    /// Pops the scopes: [`Error::Gpu`] naming `what` when one caught an error.
    pub(crate) fn pop(self, what: &str) -> Result<()> {
        match self.caught() {
            Some(e) => Err(gpu_error(what, &e)),
            None => Ok(()),
        }
    }

    /// Pops the scopes and returns the error one caught, if any (a
    /// validation error before an out-of-memory one before an internal one).
    pub(crate) fn caught(self) -> Option<wgpu::Error> {
        let Self {
            internal,
            oom,
            validation,
        } = self;
        // wgpu-core's pop futures are ready at once; block_on takes the value.
        let [internal, oom, validation] =
            [internal, oom, validation].map(|scope| pollster::block_on(scope.pop()));
        validation.or(oom).or(internal)
    }
}

/// [`Error::Gpu`]: `what` xent was doing, then wgpu's message on one line.
pub(crate) fn gpu_error(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {}", one_line(e)))
}

/// wgpu's multi-line error report ("Validation Error\n\nCaused by:\n  In
/// …\n    …") as one line, its parts joined by ": ".
pub(crate) fn one_line(e: &dyn std::fmt::Display) -> String {
    let message = e.to_string();
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "Caused by:")
        .collect();
    parts.join(": ")
}
