//! Cross-entropy of f16 or bf16 logits held to the CPU twin, shared by the
//! two half precisions' tests.

use xent::{cpu, CrossEntropyOptions, Element, Targets, Tolerance, Weights};

/// One half-precision call held to the twin on the same (widened) inputs,
/// with class weights `w`: the loss at the f32 tolerance (it is computed
/// and stored in f32), the gradient at `grad_tol`, the stored type's.
pub fn half_matches_cpu<E: Element>(
    ctx: &xent::Context,
    (x, dims): (&[E], &[usize]),
    t: &[i64],
    w: &[f32],
    opts: &CrossEntropyOptions,
    grad_tol: Tolerance,
) -> Result<(), String> {
    let weights = Weights {
        class: Some(w),
        sample: None,
    };
    let gpu = ctx
        .cross_entropy_with(x, dims, Targets::I64(t), weights, opts, &Default::default())
        .map_err(|e| e.to_string())?;
    let x32: Vec<f32> = x.iter().map(|v| v.widen()).collect();
    let want = cpu::cross_entropy_with(&x32, dims, Targets::I64(t), weights, opts)
        .map_err(|e| e.to_string())?;
    Tolerance::default()
        .check("loss", &gpu.loss, &want.loss_reference())
        .map_err(|e| e.to_string())?;
    let grad = gpu.grad.as_deref().unwrap();
    grad_tol
        .check("grad", grad, &want.grad_reference().unwrap())
        .map_err(|e| e.to_string())
}
