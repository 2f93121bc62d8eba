//! One folder per op: its public buffer types, its plan (strategy, limits)
//! and its recording. The host API (`crate::host`) and the CPU twins
//! (`crate::cpu`) sit beside them.

pub(crate) mod cross_entropy;
pub(crate) mod elementwise;
pub(crate) mod linear;
pub(crate) mod matmul;
pub(crate) mod softmax;
pub(crate) mod vocab;
