// The online (max, sum-exp) pair every softmax-based op reduces a row to,
// as vec2(m, s): s = sum of exp(x - m) over the elements seen. Pairs merge
// as m = max(m1, m2), s = s1 e^(m1 - m) + s2 e^(m2 - m), the merge that
// lets a row be split over invocations, workgroups, chunks or devices.

// Below every finite f32: the identity of the merge. A true -inf would
// give (-inf) - (-inf) = NaN when two empty pairs merge.
const LOWEST: f32 = -3.4028234663852886e38;

fn ms_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// One more element v.
fn ms_online(ms: vec2<f32>, v: f32) -> vec2<f32> {
    if (v > ms.x) {
        return vec2<f32>(v, ms.y * exp(ms.x - v) + 1.0);
    }
    return vec2<f32>(ms.x, ms.y + exp(v - ms.x));
}
