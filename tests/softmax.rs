//! Softmax and log-softmax, forward and backward, one module per concern in
//! `tests/softmax/`: the worked example, the GPU against the CPU on
//! generated shapes and at the loop bounds, the GPU table forced, bf16 and f16, the CPU's
//! gradients, and the tolerance's mutation check.

mod common;

// An inline module, so that its modules' files are in `tests/softmax/`.
mod softmax {
    mod cpu_gradients;
    mod device_class;
    mod gpu_vs_cpu;
    mod half;
    mod loop_bounds;
    mod verify_mode;
    mod worked_examples;
}
