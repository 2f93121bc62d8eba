//! WGSL that xent's own kernels use, for a client's shaders that produce or
//! consume xent's tensors.
//!
//! Include a piece in your module's source (WGSL's module-scope
//! declarations may come in any order, so plain concatenation works):
//!
//! ```
//! let source = format!("{}\n{}", xent::wgsl::BF16, r#"
//! @group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
//! @group(0) @binding(1) var<storage, read_write> y: array<vec2<u32>>;
//! @compute @workgroup_size(64)
//! fn to_bf16(@builtin(global_invocation_id) id: vec3<u32>) {
//!     if (id.x < arrayLength(&y)) {
//!         y[id.x] = bf16_pack4(x[id.x]);
//!     }
//! }
//! "#);
//! let module = wgpu::naga::front::wgsl::parse_str(&source).unwrap();
//! assert!(module.entry_points.iter().any(|e| e.name == "to_bf16"));
//! ```

/// bf16 to and from f32 in xent's storage of bf16 tensors
/// ([`Precision::BF16`](crate::Precision::BF16)): two to a little-endian
/// `u32` (element `2k` in the low half of word `k`, as a `&[half::bf16]`
/// lies in memory). Storing rounds to nearest even, keeps ±∞, and keeps NaN
/// NaN (quiet, sign and the top of the payload kept): the same bits as
/// `half::bf16::from_f32` (tested on every bit pattern class). Integer
/// operations only, so no GPU flushes a subnormal on the way.
///
/// | function | does |
/// |---|---|
/// | `bf16_unpack(w: u32, half: u32) -> f32` | element `half` (0 low, 1 high) of word `w` |
/// | `bf16_bits(v: f32) -> u32` | `v` rounded to bf16, as the low 16 bits |
/// | `bf16_unpack4(w: vec2<u32>) -> vec4<f32>` | four elements, two words |
/// | `bf16_pack4(v: vec4<f32>) -> vec2<u32>` | four values rounded, two words |
///
/// A single element shares its word with a neighbour: a shader writing
/// elements one at a time from several invocations must combine halves
/// (xent's kernels use `atomicAnd`/`atomicOr` on an `atomic<u32>` view).
///
/// ```
/// use wgpu::naga::valid::{Capabilities, ValidationFlags, Validator};
/// let source = format!("{}\n{}", xent::wgsl::BF16, "
///     @group(0) @binding(0) var<storage, read> x: array<u32>;
///     @group(0) @binding(1) var<storage, read_write> y: array<f32>;
///     @compute @workgroup_size(64) fn widen(@builtin(global_invocation_id) id: vec3<u32>) {
///         if (id.x < arrayLength(&y)) { y[id.x] = bf16_unpack(x[id.x / 2u], id.x % 2u); }
///     }");
/// let module = wgpu::naga::front::wgsl::parse_str(&source).unwrap();
/// Validator::new(ValidationFlags::all(), Capabilities::empty()).validate(&module).unwrap();
/// for f in ["bf16_unpack", "bf16_bits", "bf16_unpack4", "bf16_pack4"] {
///     assert!(module.functions.iter().any(|(_, g)| g.name.as_deref() == Some(f)), "{f}");
/// }
/// ```
pub const BF16: &str = crate::core::shaders::BF16_WGSL;
