//! The cooperative kernel's f32 operands, split into f16 halves
//! (`shaders/matmul/coop.wgsl`), emulated: the stated bound against the f64
//! products on generated shapes around the kernel's switch points (blocks
//! of 64, steps of 16, dispatches of 32 of k), the halves' exact values and
//! their scaling's boundary, one operand split beside a bf16 one, and
//! infinities and NaN.

use crate::common::placed::stored;
use crate::common::{buffer, ctx, read_f32, storage, Rng};
use proptest::prelude::*;
use xent::{
    Error, MatmulDims, MatmulOptions, MatrixView, Precision, ProductBuffers, ProductKernel, SplitK,
};

/// Sizes around the block (64), the steps of k (16) and the emulated
/// kernel's dispatch of two split operands (32 of k).
fn side() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=3,
        15usize..=17,
        31usize..=33,
        63usize..=65,
        95usize..=97
    ]
}

fn coop(transpose_a: bool, transpose_b: bool) -> MatmulOptions {
    MatmulOptions {
        transpose_a,
        transpose_b,
        kernel: ProductKernel::CoopEmulated,
        ..Default::default()
    }
}

/// The bound the split is held to, relative to the sum of the terms'
/// magnitudes `M = Σ|a||b|` (`ProductKernel::Coop` documents 2⁻²⁰ a term;
/// this takes the tighter 3·2⁻²²: the halves keep 22 bits of each operand,
/// lo·lo is left out), a tile's 16 products summed in f32 (15 roundings), and per
/// step of 16 two additions to the accumulator and one of a dispatch's
/// slice to the output (2⁻²⁴ each); besides the scaling's floor,
/// 2^(e−39) of each operand's tile times the other's magnitudes. Leaving
/// either correction out errs by up to 2⁻¹² per term.
fn bound(k: usize) -> f64 {
    let steps = k.div_ceil(16) as f64;
    (12.0 + 15.0 + 3.0 * steps) * 2f64.powi(-24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// f32 operands of up to 24 bits, over magnitudes 2^-spread to
    /// 2^spread, every transpose: within `bound` of the f64 products.
    #[test]
    fn split_products_keep_f32_accuracy(
        m in side(), n in side(), k in side(),
        transpose_a in any::<bool>(), transpose_b in any::<bool>(),
        spread in 0i32..=12,
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let mut rng = Rng(seed);
        let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.spread(spread)).collect() };
        let (a, b) = (draw(m * k), draw(k * n));
        let dims = MatmulDims { m, n, k };
        let opts = coop(transpose_a, transpose_b);
        let got = ctx.matmul(&a, &b, &dims, &opts).unwrap();
        let top = |v: &[f32]| v.iter().fold(0f64, |t, &x| t.max(f64::from(x).abs()));
        let (top_a, top_b) = (top(&a), top(&b));
        for i in 0..m {
            for j in 0..n {
                let (mut want, mut magnitude, mut sum_a, mut sum_b) = (0f64, 0f64, 0f64, 0f64);
                for l in 0..k {
                    let x = f64::from(if transpose_a { a[l * m + i] } else { a[i * k + l] });
                    let y = f64::from(if transpose_b { b[j * k + l] } else { b[l * n + j] });
                    want += x * y;
                    magnitude += (x * y).abs();
                    sum_a += x.abs();
                    sum_b += y.abs();
                }
                let floor = 2f64.powi(-39) * (top_a * sum_b + top_b * sum_a);
                let allowed = bound(k) * magnitude + floor + f64::from(f32::MIN_POSITIVE);
                let g = f64::from(got[i * n + j]);
                prop_assert!((g - want).abs() <= allowed,
                    "({i}, {j}) of {dims:?} {opts:?}: {g} vs {want}, off by {:e} > {allowed:e}", (g - want).abs());
            }
        }
    }
}

fn product(
    ctx: &xent::Context,
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    let dims = MatmulDims { m, n, k };
    ctx.matmul(a, b, &dims, &coop(false, false)).unwrap()
}

/// Values the halves hold exactly give f32's own product: 22 bits of one
/// operand (hi and lo both needed) times 11 of the other, and 24 bits that
/// round hi up to a power of two (lo negative: scaled to 2^14 rather than
/// 2^15, hi stays within f16's range); 16 such terms in one step; lo's
/// rounding of a 24-bit value, half to even.
#[test]
fn the_halves_hold_22_bits() {
    let Some(ctx) = ctx() else { return };
    let p = |e: i32| 2f32.powi(e);
    for (a, b) in [
        (1.0 + p(-20), 1.0),
        (1.0, 1.0 + p(-20)),
        (1.0 + p(-11) + p(-21), 1.0 + p(-10)),
        (1.0 - p(-24), 1.0),
        (-(1.0 - p(-24)), 3.0),
        (65_535.5, 1.0),
        (p(-100) * (1.0 + p(-20)), p(90)),
    ] {
        let got = product(ctx, &[a], &[b], (1, 1, 1));
        assert_eq!(got, [a * b], "{a:e} x {b:e}");
    }
    // 24 bits: lo keeps 11 of the rest, half to even (the dropped 2^-23
    // is half of lo's last step; up would give 1 + 2^-12 + 2^-22).
    let got = product(ctx, &[1.0 + p(-12) + p(-23)], &[1.0], (1, 1, 1));
    assert_eq!(got, [1.0 + p(-12)]);
    let a: Vec<f32> = (0..16).map(|l| 1.0 + p(-20) * l as f32).collect();
    let b = vec![1.0f32; 16];
    let got = product(ctx, &a, &b, (1, 1, 16));
    let want: f64 = a.iter().map(|&x| f64::from(x)).sum();
    assert_eq!(f64::from(got[0]), want);
    assert_eq!(got, product(ctx, &a, &b, (1, 1, 16)));
}

/// The scaling's boundary for split operands: with 2^e the largest power
/// of two of a step's tile (its largest value scaled to 2^14), a value of
/// 22 bits down to a multiple of 2^(e-38) is held exactly, a smaller part
/// is rounded to that multiple, half to even. The tile holds 2^100 (row 0)
/// and x (row 1); B picks x.
#[test]
fn split_scaling_holds_22_bits_down_to_its_bound() {
    let Some(ctx) = ctx() else { return };
    let p = |e: i32| 2f32.powi(e);
    for (x, want) in [
        // 22 bits from 2^83 down to 2^62: exact.
        (p(83) + p(62), p(83) + p(62)),
        (-(p(83) + p(62)), -(p(83) + p(62))),
        (p(62), p(62)),
        // Half a step (2^61): to even, 0; 1.5 steps: up to 2 steps.
        (p(61), 0.0),
        (p(62) + p(61), p(63)),
        (p(83) + p(61), p(83)),
    ] {
        let (m, n, k) = (2, 1, 16);
        let mut a = vec![0.0f32; m * k];
        a[0] = p(100);
        a[k + 1] = x;
        let mut b = vec![0.0f32; k * n];
        b[1] = 1.0;
        let got = product(ctx, &a, &b, (m, n, k));
        assert_eq!(got, [0.0, want], "x = {x:e}");
    }
}

/// An infinity or NaN meets the other operand's hi alone: inf · 1 (whose
/// lo is 0) is inf, not NaN; inf · inf is inf; NaN stays NaN; and the
/// other rows of its step keep their corrections (1 + 2^-20).
#[test]
fn infinities_and_nan_in_split_operands() {
    let Some(ctx) = ctx() else { return };
    let (inf, nan, fine) = (f32::INFINITY, f32::NAN, 1.0 + 2f32.powi(-20));
    // A: 4 rows of 2, B: 2 x 2 (column 1 holds an inf).
    let a = [inf, 0.0, -inf, 0.0, nan, 0.0, fine, 0.0];
    let b = [1.0, inf, 0.0, 0.0];
    let got = product(ctx, &a, &b, (4, 2, 2));
    assert_eq!(got[..2], [inf, inf]);
    assert_eq!(got[2..4], [-inf, -inf]);
    assert!(got[4].is_nan() && got[5].is_nan(), "{got:?}");
    assert_eq!(got[6..], [fine, inf]);
}

/// `A·B` on the emulated kernel with A stored in `pa` and B in `pb`.
fn mixed(
    ctx: &xent::Context,
    (a, pa): (&[f32], Precision),
    (b, pb): (&[f32], Precision),
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    let store = |v: &[f32], p| {
        let mut bytes = stored(v, p);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        buffer(ctx, &bytes, wgpu::BufferUsages::STORAGE)
    };
    let (a_buf, b_buf) = (store(a, pa), store(b, pb));
    let out = storage(ctx, &vec![0.0; m * n]);
    let buffers = ProductBuffers {
        a: MatrixView::dense(a_buf.slice(..), pa, k),
        b: MatrixView::dense(b_buf.slice(..), pb, n),
        bias: None,
        out: out.slice(..),
        out_offset: 0,
        out_stride: n as u64,
        accumulate: false,
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let dims = MatmulDims { m, n, k };
    ctx.record_matmul(&mut encoder, &dims, &coop(false, false), &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    read_f32(ctx, &out)
}

/// One f32 operand beside a bf16 one (the fused op's gradient products):
/// only its correction runs (lo·hi for A, hi·lo for B), its tile scaled to
/// 2^14 beside the other's 2^15; an infinity in the bf16 operand meets the
/// f32 one's hi alone (0.5 has no lo: inf, not NaN).
#[test]
fn one_operand_split_beside_a_bf16_one() {
    let Some(ctx) = ctx() else { return };
    let (f32_, bf16) = (Precision::F32, Precision::BF16);
    let p = |e: i32| 2f32.powi(e);
    for (x, y) in [
        (1.0 + p(-20), 1.0),
        (1.0 - p(-24), 3.0),
        (0.5, f32::INFINITY),
    ] {
        let got = mixed(ctx, (&[x], f32_), (&[y], bf16), (1, 1, 1));
        assert_eq!(got, [x * y], "{x:e} (f32) x {y:e} (bf16)");
        let got = mixed(ctx, (&[y], bf16), (&[x], f32_), (1, 1, 1));
        assert_eq!(got, [x * y], "{y:e} (bf16) x {x:e} (f32)");
    }
}

/// An explicit cut past the emulated kernel's slice with two f32 operands
/// (32 of k) is a typed error; 32 runs.
#[test]
fn cuts_past_the_split_slice_are_refused() {
    let Some(ctx) = ctx() else { return };
    let cut = |len| MatmulOptions {
        split_k: SplitK::Slices { len, parallel: 1 },
        ..coop(false, false)
    };
    let dims = MatmulDims { m: 1, n: 1, k: 64 };
    let ones = vec![1.0f32; 64];
    let got = ctx.matmul(&ones, &ones, &dims, &cut(64));
    assert!(
        matches!(
            got,
            Err(Error::InvalidOption {
                name: "split_k",
                ..
            })
        ),
        "{got:?}"
    );
    assert_eq!(ctx.matmul(&ones, &ones, &dims, &cut(32)).unwrap(), [64.0]);
}
