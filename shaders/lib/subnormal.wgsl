// Logarithms and divisions exact for subnormal f32 values, which WGSL lets a
// GPU flush to zero in arithmetic (softmax of large logits makes such
// probabilities; binary cross-entropy takes them as input). Shared by the
// ops' modules.
//
// Needs from the module: `p.nan`, a NaN in the uniform (a NaN constant
// would be folded by shader compilers that assume no NaNs).

// ln 2^-149: a subnormal f32 is its mantissa times 2^-149.
const LN_SUBNORMAL_UNIT: f32 = -103.27892990343184;

// The mantissa of a subnormal x (0 < |x| < 2^-126) as a float, with x's
// sign, or 0 for any other x. WGSL lets a GPU flush subnormals in
// arithmetic, so probabilities that small (softmax of large logits makes
// them) are taken from their bits.
fn subnormal_mantissa(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let m = select(f32(bits & 0x7fffffu), -f32(bits & 0x7fffffu), (bits >> 31u) != 0u);
    return select(0.0, m, (bits & 0x7f800000u) == 0u);
}

// ln x, exact for subnormal x too (ln m + ln 2^-149); NaN for a negative one.
fn log_subnormal(x: f32) -> f32 {
    let m = subnormal_mantissa(x);
    if (m < 0.0) {
        return p.nan;
    }
    // One logarithm: of x, or of its mantissa plus ln 2^-149.
    let sub = m > 0.0;
    return log(select(x, m, sub)) + select(0.0, LN_SUBNORMAL_UNIT, sub);
}

// v * 2^149 by its exponent bits (±inf past f32's range; NaN stays NaN):
// a product of constants would let the compiler fold 2^149 into +inf.
fn times_2_149(v: f32) -> f32 {
    var r = v;
    var k = 149u;
    if ((bitcast<u32>(r) & 0x7f800000u) == 0u) {
        // Zero or subnormal: 2^24 makes a subnormal normal, exactly.
        r = r * 16777216.0;
        k = 125u;
    }
    let bits = bitcast<u32>(r);
    let e = (bits >> 23u) & 0xffu;
    if (e == 0u || e == 255u) {
        return r;
    }
    if (e + k >= 255u) {
        return bitcast<f32>((bits & 0x80000000u) | 0x7f800000u);
    }
    return bitcast<f32>(bits + (k << 23u));
}

// v / x, exact for subnormal x too ((v / m) * 2^149).
fn div_subnormal(v: f32, x: f32) -> f32 {
    let m = subnormal_mantissa(x);
    return select(v / x, times_2_149(v / select(m, 1.0, m == 0.0)), m != 0.0);
}
