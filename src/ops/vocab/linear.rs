//! The fused linear cross-entropy split by vocabulary: each shard holds the
//! rows `[c0, c1)` of `W` and `b`.
