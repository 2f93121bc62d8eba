// Gradient filtering (the fused op's `filter_eps`, on the products that
// read its window of gradients as A), shared by the scalar (product.wgsl)
// and the cooperative (coop.wgsl) kernels: a step of k whose values of A
// all lie below the threshold in magnitude adds nothing. NaN and
// infinities are never below it.
override FILTER: bool = false;

// The fused op's call statistics (cross-entropy's `aux`: the mean's
// denominator first), for the threshold's scale.
@group(0) @binding(7) var<storage, read> filter_stats: array<u32>;

// Whether an invocation loaded a value of A to keep, and the step's
// verdict, read by all.
var<workgroup> any_kept: atomic<u32>;
var<workgroup> keep_step: u32;

// The magnitude below which A's values count as zero, as f32 bits:
// `filter_eps`, over the mean's denominator's magnitude where the loss is a
// mean (the gradient's scale: filter_eps is relative to a row of weight 1,
// as softmax - one-hot); 0 (nothing below it) for a threshold of 0, and
// infinity for a denominator of 0.
fn filter_threshold() -> u32 {
    var t = mp.filter_eps;
    if (mp.filter_mean != 0u && t > 0.0) {
        t = t / abs(bitcast<f32>(filter_stats[0]));
    }
    return bitcast<u32>(t);
}

// Whether any of `v` is not below the threshold (f32 bits, at least 0) in
// magnitude, compared as integers: non-negative floats order as their bits,
// NaN's lie above infinity's, and no compiler's float folding (GL's
// drivers take `!(a < t)` for `a >= t`) can let NaN through.
fn kept4(v: vec4<f32>, threshold: u32) -> bool {
    return any((bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) >= vec4<u32>(threshold));
}

