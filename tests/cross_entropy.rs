//! Cross-entropy (and its loss family: input kinds, target kinds, weights,
//! smoothing, z-loss, softcap), one module per concern in
//! `tests/cross_entropy/`: values from PyTorch, the GPU against the CPU
//! twin, the kernels' switch points and loop bounds, chunks past a binding,
//! half precisions, the recording API, bit-reproducibility and errors.

mod common;

// An inline module, so that its modules' files are in `tests/cross_entropy/`.
mod cross_entropy {
    mod bf16;
    mod cpu_gradients;
    mod device_class;
    mod edge_cases;
    mod errors;
    mod f16;
    mod family_examples;
    mod family_properties;
    mod gpu_vs_cpu;
    mod large;
    mod loop_bounds;
    mod near_flush;
    mod recording;
    mod recording_buffers;
    mod reductions;
    mod row_outputs;
    mod same_bits;
    mod strategies;
    mod switch_points;
    mod temperature;
    mod verify_mode;
    mod worked_examples;
}
