//! The WGSL pieces more than one op's module is assembled from
//! (`shaders/lib/`), and the assembly itself. An op's module is its storage
//! (declared by [`storage_wgsl`](super::storage::storage_wgsl), `enable f16;`
//! first where needed), its body (`shaders/<op>/`) and the shared pieces it
//! uses. Plain
//! concatenation: WGSL's module-scope declarations may come in any order,
//! and a piece missing or defined twice is a shader compile error (and a
//! failing unit test, which validates every assembly with naga), never a
//! silent fallback. No text is replaced inside a piece.

/// bf16 to and from f32, rounding to nearest even, NaN and ±∞ kept.
pub(crate) const BF16_WGSL: &str = include_str!("../../shaders/lib/bf16.wgsl");
/// A workgroup's index in a grid that spills into y; a row's place in
/// `(outer, classes, inner)`.
pub(crate) const ADDRESSING_WGSL: &str = include_str!("../../shaders/lib/addressing.wgsl");
/// The online (max, sum-exp) pair and its merge.
pub(crate) const ONLINE_SOFTMAX_WGSL: &str = include_str!("../../shaders/lib/online_softmax.wgsl");
/// Fixed-order block statistics: a per-block tree and the in-order fold.
pub(crate) const BLOCK_STATS_WGSL: &str = include_str!("../../shaders/lib/block_stats.wgsl");
/// Logarithms and divisions exact for subnormal values.
pub(crate) const SUBNORMAL_WGSL: &str = include_str!("../../shaders/lib/subnormal.wgsl");
/// Fixed-order workgroup trees on vec2 values.
pub(crate) const WORKGROUP_TREES_WGSL: &str =
    include_str!("../../shaders/lib/workgroup_trees.wgsl");
/// Teams of invocations per row: their constants and fixed-order trees.
pub(crate) const TEAMS_WGSL: &str = include_str!("../../shaders/lib/teams.wgsl");
/// The bandwidth reference of the benchmarks.
pub(crate) const COPY_WGSL: &str = include_str!("../../shaders/copy.wgsl");

/// The module source made of `pieces`, in order.
pub(crate) fn assemble(pieces: &[&str]) -> String {
    pieces.join("\n")
}
