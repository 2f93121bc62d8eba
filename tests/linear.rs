//! The fused linear cross-entropy, one module per concern in
//! `tests/linear/`: PyTorch's values, the GPU against the CPU twin, the
//! scratch bound, bit-reproducibility and errors.

mod common;

// An inline module, so that its modules' files are in `tests/linear/`.
mod linear {
    mod coop_floor;
    mod errors;
    mod filter;
    mod near_flush;
    mod probability_targets;
    mod properties;
    mod same_bits;
    mod scratch;
    mod target_kinds;
    mod worked_values;
}
