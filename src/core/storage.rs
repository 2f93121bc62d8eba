//! The one storage scheme of every op's tensors stored in the call's
//! precision (f32, f16, or bf16 two to a word). An op lists its stored
//! tensors ([`Stored`]: name, binding, vec4 view, written or not); the core
//! writes their declarations and the accessors its kernels use, the same
//! for every op:
//!
//! | accessor | what |
//! |---|---|
//! | `<name>_load(i) -> f32` | element `i`, widened exactly |
//! | `<name>_load4(q) -> vec4<f32>` | elements `4q … 4q+3` through the vec4 view |
//! | `<name>_store(i, v)` | element `i` (written tensors): bf16 rounded to nearest even, f16 by WGSL's conversion |
//! | `<name>_store4(q, v)` | a whole vec4 of the vec4 view |
//! | `<name>_store_at4(i, v)` | element `i` through the vec4 view, by the invocation that owns its vec4 |
//! | `<name>_len() -> u32` | the elements the binding holds (bf16: both halves of every word) |
//!
//! bf16 lies two to a little-endian u32 (element 2k in the low half of word
//! k, as a `&[half::bf16]` lies in memory), converted by `shaders/lib/bf16.wgsl`.
//! A vec4 of bf16 is a `vec2<u32>`, whole words, so vec4 stores need no
//! atomics; an element stored alone shares its word with a neighbour that
//! another invocation may write at the same time, so it sets its own half
//! with two atomic bit operations (no float atomics: the result does not
//! depend on the order).
//!
//! This is the only WGSL xent writes from Rust; every other piece is a file
//! under `shaders/`. The naga validation of each op's modules covers it.

use std::fmt::Write;

use super::precision::Precision;
use super::shaders::BF16_WGSL;

/// A tensor an op's kernels read (or write) in the call's precision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    /// Its array's name in the WGSL, and its accessors' prefix.
    pub name: &'static str,
    pub binding: u32,
    /// The binding of its vec4 view (`<name>4`), where a kernel reads or
    /// writes it in vec4s.
    pub vec4: Option<u32>,
    /// Written by the kernels (`read_write`, with store accessors).
    pub written: bool,
}

impl Stored {
    /// A tensor the kernels only read.
    pub(crate) const fn read(name: &'static str, binding: u32, vec4: Option<u32>) -> Self {
        Self {
            name,
            binding,
            vec4,
            written: false,
        }
    }

    /// A tensor the kernels write (and may read).
    pub(crate) const fn written(name: &'static str, binding: u32, vec4: Option<u32>) -> Self {
        Self {
            name,
            binding,
            vec4,
            written: true,
        }
    }
}

/// The storage part of a module: `enable f16;` first where a tensor is f16,
/// each group's tensors declared in its precision with their accessors, and
/// the bf16 conversions where a tensor is bf16. Put it first in the module.
pub(crate) fn storage_wgsl(groups: &[(Precision, &[Stored])]) -> String {
    let mut out = String::new();
    if groups.iter().any(|(p, _)| *p == Precision::F16) {
        out.push_str("enable f16;\n");
    }
    for &(precision, tensors) in groups {
        for t in tensors {
            match precision {
                Precision::F32 => declare_native(&mut out, t, "f32"),
                Precision::F16 => declare_native(&mut out, t, "f16"),
                Precision::BF16 => declare_bf16(&mut out, t),
            }
        }
    }
    if groups.iter().any(|(p, _)| *p == Precision::BF16) {
        out.push_str(BF16_WGSL);
    }
    out
}

fn access(t: &Stored) -> &'static str {
    if t.written {
        "read_write"
    } else {
        "read"
    }
}

/// f32 or f16 (`ty`): one value an element.
fn declare_native(out: &mut String, t: &Stored, ty: &str) {
    let (n, b, a) = (t.name, t.binding, access(t));
    let _ = writeln!(
        out,
        "@group(0) @binding({b}) var<storage, {a}> {n}: array<{ty}>;\n\
         fn {n}_load(i: u32) -> f32 {{ return f32({n}[i]); }}\n\
         fn {n}_len() -> u32 {{ return arrayLength(&{n}); }}"
    );
    if t.written {
        let _ = writeln!(out, "fn {n}_store(i: u32, v: f32) {{ {n}[i] = {ty}(v); }}");
    }
    let Some(b4) = t.vec4 else { return };
    let _ = writeln!(
        out,
        "@group(0) @binding({b4}) var<storage, {a}> {n}4: array<vec4<{ty}>>;\n\
         fn {n}_load4(q: u32) -> vec4<f32> {{ return vec4<f32>({n}4[q]); }}"
    );
    if t.written {
        let _ = writeln!(
            out,
            "fn {n}_store4(q: u32, v: vec4<f32>) {{ {n}4[q] = vec4<{ty}>(v); }}\n\
             fn {n}_store_at4(i: u32, v: f32) {{ {n}4[i / 4u][i % 4u] = {ty}(v); }}"
        );
    }
}

/// bf16, two to a u32; a written tensor's scalar view is atomic.
fn declare_bf16(out: &mut String, t: &Stored) {
    let (n, b, a) = (t.name, t.binding, access(t));
    if t.written {
        let _ = writeln!(
            out,
            "@group(0) @binding({b}) var<storage, {a}> {n}: array<atomic<u32>>;\n\
             fn {n}_load(i: u32) -> f32 {{ return bf16_unpack(atomicLoad(&{n}[i / 2u]), i & 1u); }}\n\
             fn {n}_store(i: u32, v: f32) {{\n\
             \x20   let shift = (i & 1u) * 16u;\n\
             \x20   atomicAnd(&{n}[i / 2u], ~(0xffffu << shift));\n\
             \x20   atomicOr(&{n}[i / 2u], bf16_bits(v) << shift);\n\
             }}"
        );
    } else {
        let _ = writeln!(
            out,
            "@group(0) @binding({b}) var<storage, {a}> {n}: array<u32>;\n\
             fn {n}_load(i: u32) -> f32 {{ return bf16_unpack({n}[i / 2u], i & 1u); }}"
        );
    }
    let _ = writeln!(
        out,
        "fn {n}_len() -> u32 {{ return 2u * arrayLength(&{n}); }}"
    );
    let Some(b4) = t.vec4 else { return };
    let _ = writeln!(
        out,
        "@group(0) @binding({b4}) var<storage, {a}> {n}4: array<vec2<u32>>;\n\
         fn {n}_load4(q: u32) -> vec4<f32> {{ return bf16_unpack4({n}4[q]); }}"
    );
    if t.written {
        let _ = writeln!(
            out,
            "fn {n}_store4(q: u32, v: vec4<f32>) {{ {n}4[q] = bf16_pack4(v); }}\n\
             fn {n}_store_at4(i: u32, v: f32) {{\n\
             \x20   let j = i / 4u;\n\
             \x20   let w = {n}4[j];\n\
             \x20   let shift = (i & 1u) * 16u;\n\
             \x20   let word = select(w.x, w.y, (i % 4u) >= 2u);\n\
             \x20   let merged = (word & ~(0xffffu << shift)) | (bf16_bits(v) << shift);\n\
             \x20   {n}4[j] = select(vec2<u32>(merged, w.y), vec2<u32>(w.x, merged), (i % 4u) >= 2u);\n\
             }}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENSORS: &[Stored] = &[
        Stored::read("x", 1, Some(5)),
        Stored::written("y", 2, Some(6)),
        Stored::read("b", 3, None),
        Stored::written("g", 4, None),
    ];

    /// Every precision's declarations and accessors validate, with a kernel
    /// using each accessor.
    #[test]
    fn every_precision_declares_every_accessor() {
        let kernel = "@compute @workgroup_size(1) fn main() {\n\
            let v = x_load(0u) + b_load(0u) + y_load(0u) + g_load(0u) + x_load4(0u).x;\n\
            y_store(0u, v); y_store4(0u, y_load4(0u)); y_store_at4(1u, v); g_store(1u, v);\n\
            let n = x_len() + y_len() + b_len() + g_len();\n\
            if (n == 0u) { g_store(0u, 1.0); }\n}";
        for precision in Precision::ALL {
            let source = storage_wgsl(&[(precision, TENSORS)]) + kernel;
            crate::core::pipelines::validates(&format!("{precision:?}"), &source);
        }
        // Two groups of different precisions: one `enable`, one bf16 piece.
        let mixed = storage_wgsl(&[
            (Precision::F16, &TENSORS[..1]),
            (Precision::BF16, &TENSORS[1..2]),
        ]);
        assert!(mixed.starts_with("enable f16;"));
        assert_eq!(mixed.matches("fn bf16_unpack(").count(), 1);
    }
}
