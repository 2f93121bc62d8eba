//! The WGSL sources of xent's shader modules, each assembled from pieces:
//! a prelude (`shaders/lib/elem_*.wgsl`: the storage type, `enable f16;`),
//! the op's body (`shaders/<op>/*.wgsl`) and the shared pieces it uses
//! (`shaders/lib/`). Plain concatenation: WGSL's module-scope declarations
//! may come in any order, and a piece missing or defined twice is a shader
//! compile error (and a failing unit test, which validates every assembly
//! with naga), never a silent fallback. No text is replaced inside a piece.

use crate::ops::cross_entropy::Precision;

/// The cross-entropy module's body, one job per piece, in assembly order
/// (WGSL's module-scope declarations may come in any order; the order here
/// is the reading order).
const CROSS_ENTROPY_WGSL: [&str; 12] = [
    include_str!("../../shaders/cross_entropy/common.wgsl"),
    include_str!("../../shaders/cross_entropy/target_stats.wgsl"),
    include_str!("../../shaders/cross_entropy/pass1.wgsl"),
    include_str!("../../shaders/cross_entropy/row_plan.wgsl"),
    include_str!("../../shaders/cross_entropy/rows_wide.wgsl"),
    include_str!("../../shaders/cross_entropy/rows_narrow.wgsl"),
    include_str!("../../shaders/cross_entropy/rows_vec4.wgsl"),
    include_str!("../../shaders/cross_entropy/rows_fixed.wgsl"),
    include_str!("../../shaders/cross_entropy/rows_team.wgsl"),
    include_str!("../../shaders/cross_entropy/split.wgsl"),
    include_str!("../../shaders/cross_entropy/vocab.wgsl"),
    include_str!("../../shaders/cross_entropy/reduce_loss.wgsl"),
];
/// The shared pieces of `shaders/lib/`.
const ELEM_F32_WGSL: &str = include_str!("../../shaders/lib/elem_f32.wgsl");
const ELEM_F16_WGSL: &str = include_str!("../../shaders/lib/elem_f16.wgsl");
const ELEM_ACCESS_WGSL: &str = include_str!("../../shaders/lib/elem_access.wgsl");
const ELEM_BF16_WGSL: &str = include_str!("../../shaders/lib/elem_bf16.wgsl");
const BF16_WGSL: &str = include_str!("../../shaders/lib/bf16.wgsl");
const WORKGROUP_REDUCTIONS_WGSL: &str = include_str!("../../shaders/lib/workgroup_reductions.wgsl");
const WORKGROUP_TREES_WGSL: &str = include_str!("../../shaders/lib/workgroup_trees.wgsl");
const SUBGROUP_REDUCTIONS_WGSL: &str = include_str!("../../shaders/lib/subgroup_reductions.wgsl");
const ADDRESSING_WGSL: &str = include_str!("../../shaders/lib/addressing.wgsl");
const ONLINE_SOFTMAX_WGSL: &str = include_str!("../../shaders/lib/online_softmax.wgsl");
const BLOCK_STATS_WGSL: &str = include_str!("../../shaders/lib/block_stats.wgsl");
const SUBNORMAL_WGSL: &str = include_str!("../../shaders/lib/subnormal.wgsl");
/// The other ops' bodies.
const SOFTMAX_WGSL: &str = include_str!("../../shaders/softmax/kernels.wgsl");
const SOFTMAX_F32_WGSL: &str = include_str!("../../shaders/softmax/storage_f32.wgsl");
const SOFTMAX_F16_WGSL: &str = include_str!("../../shaders/softmax/storage_f16.wgsl");
const SOFTMAX_BF16_WGSL: &str = include_str!("../../shaders/softmax/storage_bf16.wgsl");
const ELEMENTWISE_WGSL: &str = include_str!("../../shaders/elementwise/loss.wgsl");
const ELEMENTWISE_F32_WGSL: &str = include_str!("../../shaders/elementwise/storage_f32.wgsl");
const ELEMENTWISE_F16_WGSL: &str = include_str!("../../shaders/elementwise/storage_f16.wgsl");
const ELEMENTWISE_BF16_WGSL: &str = include_str!("../../shaders/elementwise/storage_bf16.wgsl");
const MATMUL_WGSL: &str = include_str!("../../shaders/matmul/product.wgsl");
const MATMUL_ENABLE_F16_WGSL: &str = include_str!("../../shaders/matmul/enable_f16.wgsl");
const MATMUL_LHS_WGSL: [&str; 3] = [
    include_str!("../../shaders/matmul/lhs_f32.wgsl"),
    include_str!("../../shaders/matmul/lhs_f16.wgsl"),
    include_str!("../../shaders/matmul/lhs_bf16.wgsl"),
];
const MATMUL_RHS_WGSL: [&str; 3] = [
    include_str!("../../shaders/matmul/rhs_f32.wgsl"),
    include_str!("../../shaders/matmul/rhs_f16.wgsl"),
    include_str!("../../shaders/matmul/rhs_bf16.wgsl"),
];
pub(crate) const COPY_WGSL: &str = include_str!("../../shaders/copy.wgsl");

/// The cross-entropy module as built for a device, assembled from pieces: the
/// storage of the input and the gradient (`shaders/lib/elem_f32.wgsl`, or
/// `elem_f16.wgsl` with `enable f16;`, each with `elem_access.wgsl`; or
/// `elem_bf16.wgsl`, packed; sums stay f32), the body
/// (`shaders/cross_entropy/*.wgsl`), the shared pieces it uses (the online
/// (max, sum-exp) merge, the block statistics, the subnormal logarithms) and
/// the workgroup reductions (`shaders/lib/workgroup_reductions.wgsl` and
/// `workgroup_trees.wgsl`, or `subgroup_reductions.wgsl` where the device's
/// subgroups hold a workgroup).
pub(crate) fn cross_entropy_source(precision: Precision, subgroups: bool) -> String {
    // The prelude first (`enable f16;` must precede every declaration), then
    // the body, the shared pieces, the reductions: WGSL declarations may
    // come in any order. A piece missing or defined twice is a shader
    // compile error at the context's creation, never a silent fallback.
    let storage: &[&str] = match precision {
        Precision::F32 => &[ELEM_F32_WGSL, ELEM_ACCESS_WGSL],
        Precision::F16 => &[ELEM_F16_WGSL, ELEM_ACCESS_WGSL],
        Precision::BF16 => &[ELEM_BF16_WGSL, BF16_WGSL],
    };
    // Naga takes the subgroup builtins without `enable subgroups;` (it
    // rejects the directive as not yet implemented); the device feature
    // SUBGROUP is what allows them.
    let reductions: &[&str] = if subgroups {
        &[SUBGROUP_REDUCTIONS_WGSL]
    } else {
        &[WORKGROUP_REDUCTIONS_WGSL, WORKGROUP_TREES_WGSL]
    };
    let mut pieces = storage.to_vec();
    pieces.extend(CROSS_ENTROPY_WGSL);
    pieces.extend([
        ADDRESSING_WGSL,
        ONLINE_SOFTMAX_WGSL,
        BLOCK_STATS_WGSL,
        SUBNORMAL_WGSL,
    ]);
    pieces.extend(reductions);
    pieces.join("\n")
}

/// The softmax module for input, output and upstream gradient stored in
/// `precision` (`shaders/softmax/storage_*.wgsl`; bf16 with
/// `shaders/lib/bf16.wgsl`): the storage, the kernels, the online (max,
/// sum-exp) merge and the workgroup trees.
pub(crate) fn softmax_source(precision: Precision) -> String {
    let storage: &[&str] = match precision {
        Precision::F32 => &[SOFTMAX_F32_WGSL],
        Precision::F16 => &[SOFTMAX_F16_WGSL],
        Precision::BF16 => &[SOFTMAX_BF16_WGSL, BF16_WGSL],
    };
    let mut pieces = storage.to_vec();
    pieces.extend([
        SOFTMAX_WGSL,
        ADDRESSING_WGSL,
        ONLINE_SOFTMAX_WGSL,
        WORKGROUP_TREES_WGSL,
    ]);
    pieces.join("\n")
}

/// The elementwise losses' module for input, target and gradient stored in
/// `precision` (`shaders/elementwise/storage_*.wgsl`, the f16 one with
/// `enable f16;`, the bf16 one with `shaders/lib/bf16.wgsl`; weights, losses
/// and every sum stay f32): the storage, the body, the block statistics (its
/// fixed-order sums and input check) and the subnormal logarithms (`Bce`'s
/// logarithm of a subnormal probability).
pub(crate) fn elementwise_source(precision: Precision) -> String {
    let storage: &[&str] = match precision {
        Precision::F32 => &[ELEMENTWISE_F32_WGSL],
        Precision::F16 => &[ELEMENTWISE_F16_WGSL],
        Precision::BF16 => &[ELEMENTWISE_BF16_WGSL, BF16_WGSL],
    };
    let mut pieces = storage.to_vec();
    pieces.extend([
        ELEMENTWISE_WGSL,
        ADDRESSING_WGSL,
        BLOCK_STATS_WGSL,
        SUBNORMAL_WGSL,
    ]);
    pieces.join("\n")
}

/// The matrix products' module for an A operand stored in `lhs` and a B
/// operand (and bias) in `rhs` (`shaders/matmul/lhs_*.wgsl`,
/// `rhs_*.wgsl`; `enable f16;` first when either is f16, `shaders/lib/bf16.wgsl`
/// when either is bf16), and the body (`shaders/matmul/product.wgsl`).
pub(crate) fn matmul_source(lhs: Precision, rhs: Precision) -> String {
    let index = |p: Precision| match p {
        Precision::F32 => 0,
        Precision::F16 => 1,
        Precision::BF16 => 2,
    };
    let mut pieces = Vec::new();
    if lhs == Precision::F16 || rhs == Precision::F16 {
        pieces.push(MATMUL_ENABLE_F16_WGSL);
    }
    pieces.extend([
        MATMUL_LHS_WGSL[index(lhs)],
        MATMUL_RHS_WGSL[index(rhs)],
        MATMUL_WGSL,
    ]);
    if lhs == Precision::BF16 || rhs == Precision::BF16 {
        pieces.push(BF16_WGSL);
    }
    pieces.join("\n")
}
