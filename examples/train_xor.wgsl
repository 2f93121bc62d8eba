// The XOR network's own kernels, around xent's cross-entropy:
//
//   forward    one invocation per sample: z = W1·x + b1, logits = W2·relu(z) + b2
//   (xent)     loss and dlogits = ∂loss/∂logits, recorded by the host
//   backward   one invocation per parameter: its gradient, summed over the batch
//   sgd_step   one invocation per parameter: p -= lr · ∂loss/∂p
//
// The parameters are packed in one buffer, in PyTorch's order and layout
// (weights are [out, in], row-major), and their gradients in another with the
// same layout:
//
//   W1 [hidden, inputs] | b1 [hidden] | W2 [classes, hidden] | b2 [classes]
//
// Every sum runs over the batch in a fixed order with no atomics, so a run is
// reproducible on the same adapter.

// Mirrors `Shape` in train_xor.rs.
struct Shape {
    batch: u32,
    inputs: u32,
    hidden: u32,
    classes: u32,
    lr: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors WORKGROUP in train_xor.rs, which sizes the dispatches.
const WORKGROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> s: Shape;
// [batch, inputs]
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The packed parameters (see the top of the file).
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
// ∂loss/∂params, same layout as `params`.
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
// [batch, hidden]: the pre-activations z, kept for the ReLU's backward.
@group(0) @binding(4) var<storage, read_write> hidden: array<f32>;
// [batch, classes]: the input of xent's cross-entropy.
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;
// [batch, classes]: ∂loss/∂logits, written by xent. With the mean reduction
// it already carries the 1/batch, so the gradients below are plain sums.
@group(0) @binding(6) var<storage, read> dlogits: array<f32>;

// Offsets into the packed parameters.
fn w1_at(k: u32, i: u32) -> u32 { return k * s.inputs + i; }
fn b1_at(k: u32) -> u32 { return s.hidden * s.inputs + k; }
fn w2_at(j: u32, k: u32) -> u32 { return s.hidden * (s.inputs + 1u) + j * s.hidden + k; }
fn b2_at(j: u32) -> u32 { return w2_at(s.classes, 0u) + j; }
fn param_count() -> u32 { return b2_at(s.classes); }

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = id.x;
    if (n >= s.batch) {
        return;
    }
    for (var k = 0u; k < s.hidden; k++) {
        var z = params[b1_at(k)];
        for (var i = 0u; i < s.inputs; i++) {
            z += params[w1_at(k, i)] * x[n * s.inputs + i];
        }
        hidden[n * s.hidden + k] = z;
    }
    for (var j = 0u; j < s.classes; j++) {
        var y = params[b2_at(j)];
        for (var k = 0u; k < s.hidden; k++) {
            y += params[w2_at(j, k)] * max(hidden[n * s.hidden + k], 0.0);
        }
        logits[n * s.classes + j] = y;
    }
}

// ∂loss/∂z[n, k]: back through W2, then through the ReLU (gradient 0 where
// the unit was off; at exactly 0 too, as PyTorch does).
fn dz(n: u32, k: u32) -> f32 {
    if (hidden[n * s.hidden + k] <= 0.0) {
        return 0.0;
    }
    var g = 0.0;
    for (var j = 0u; j < s.classes; j++) {
        g += dlogits[n * s.classes + j] * params[w2_at(j, k)];
    }
    return g;
}

// One invocation per parameter, so each gradient is one thread's fixed-order
// sum over the batch; dz is recomputed rather than stored, which for a
// network this small costs less than another dispatch.
@compute @workgroup_size(WORKGROUP)
fn backward(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.x;
    if (p >= param_count()) {
        return;
    }
    var g = 0.0;
    if (p < b1_at(0u)) {
        let k = p / s.inputs;
        let i = p % s.inputs;
        for (var n = 0u; n < s.batch; n++) {
            g += dz(n, k) * x[n * s.inputs + i];
        }
    } else if (p < w2_at(0u, 0u)) {
        let k = p - b1_at(0u);
        for (var n = 0u; n < s.batch; n++) {
            g += dz(n, k);
        }
    } else if (p < b2_at(0u)) {
        let j = (p - w2_at(0u, 0u)) / s.hidden;
        let k = (p - w2_at(0u, 0u)) % s.hidden;
        for (var n = 0u; n < s.batch; n++) {
            g += dlogits[n * s.classes + j] * max(hidden[n * s.hidden + k], 0.0);
        }
    } else {
        let j = p - b2_at(0u);
        for (var n = 0u; n < s.batch; n++) {
            g += dlogits[n * s.classes + j];
        }
    }
    grads[p] = g;
}

// A dispatch of its own: `backward` reads W2, so no parameter may change
// until every gradient has been computed from the same parameters.
@compute @workgroup_size(WORKGROUP)
fn sgd_step(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.x;
    if (p < param_count()) {
        params[p] -= s.lr * grads[p];
    }
}
