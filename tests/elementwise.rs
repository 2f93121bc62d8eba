//! The elementwise losses (bce, bce with logits, mse, l1, smooth l1,
//! huber), one module per concern in `tests/elementwise/`: values from
//! PyTorch, the GPU against the CPU twin around the kernels' switch points,
//! half precisions, the recording API, edge cases, bit-reproducibility,
//! errors and verify mode.

mod common;

// An inline module, so that its modules' files are in `tests/elementwise/`.
mod elementwise {
    mod edge_cases;
    mod errors;
    mod half;
    mod near_flush;
    mod properties;
    mod recording;
    mod same_bits;
    mod verify_mode;
    mod worked_cases;
    mod worked_examples;
}
