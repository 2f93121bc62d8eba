//! Softmax and log-softmax, forward and backward, one module per concern in
//! `tests/softmax/`: the worked example, the GPU against the CPU on
//! generated shapes and at the loop bounds, bf16 and f16, the CPU's
//! gradients, and the tolerance's mutation check.

#[path = "../common/mod.rs"]
mod common;

mod cpu_gradients;
mod gpu_vs_cpu;
mod half;
mod loop_bounds;
mod verify_mode;
mod worked_examples;
