//! The byte yardstick of a fused linear cross-entropy (`src/core/traffic.rs`),
//! counted in the order its dispatches run: the target statistics; per
//! window of rows, the logits' product into the window, the cross-entropy's
//! rows passes over it in place, the gradient products out of it; the
//! loss's reduction. The products are counted as their blocks load
//! (`src/ops/matmul/traffic.rs`), the rows passes as a cross-entropy's.
//!
//! The minimum is the call's inputs read once and its outputs written once;
//! the logits, which never exist whole, are not in it. So the ratio is what
//! fusing and tiling cost in bytes: W is read by each window's three
//! products, and h and the window once per column of output blocks.

use super::LinearDims;
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
use crate::ops::cross_entropy::traffic::{CallCount, TrafficInputs};
use crate::ops::matmul::kernels::ProductShape;
use crate::ops::matmul::split::SplitRule;
use crate::ops::matmul::traffic::{column_sums_traffic, ProductCount};
use crate::ops::matmul::MatmulDims;

/// What a fused call's count needs beside its cross-entropy's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearCount<'a> {
    /// The call's (a shard's: `v` its range of classes).
    pub dims: LinearDims,
    pub window_rows: usize,
    /// Bytes per element of `h`, `W` and `b`.
    pub elem: u64,
    /// The kernels of the logits' product (of h and W) and of the gradient
    /// products (of the f32 window and h or W).
    pub shapes: [ProductShape; 2],
    /// How the products cut k.
    pub rule: SplitRule,
    pub bias: bool,
    /// Which of `∂L/∂h`, `∂L/∂W`, `∂L/∂b` are written.
    pub grads: [bool; 3],
    /// A shard's partial: no gradient products.
    pub partial: bool,
    /// The window's cross-entropy and its layout (`(n, v)`).
    pub ce: &'a CallCount,
    pub layout: &'a Layout,
}

impl LinearCount<'_> {
    /// The call's count.
    pub(crate) fn traffic(&self) -> Traffic {
        let mut traffic = Traffic::new(self.minimum());
        self.ce.before(&mut traffic, self.layout);
        let n = self.dims.n;
        for (c, r0) in (0..n).step_by(self.window_rows.max(1)).enumerate() {
            self.chunk(&mut traffic, c, self.window_rows.min(n - r0));
        }
        if n == 0 && !self.partial {
            self.without_rows(&mut traffic);
        }
        self.ce.after(&mut traffic, self.layout);
        traffic
    }

    /// `h`, `W`, `b`, the targets and class weights read once; the loss,
    /// the gradients and each per-row output written once.
    fn minimum(&self) -> u64 {
        let LinearDims { n, h, v } = self.dims;
        let (n, h, v) = (n as u64, h as u64, v as u64);
        // The cross-entropy's minimum without its logits and their gradient.
        let ce = CallCount {
            t: TrafficInputs {
                elem: 0,
                write_grad: false,
                ..self.ce.t
            },
            ..*self.ce
        };
        let [gh, gw, gb] = self.grads.map(|g| u64::from(g && !self.partial));
        let inputs = (n * h + v * h + v * u64::from(self.bias)) * self.elem;
        ce.minimum(self.layout) + inputs + 4 * (gh * n * h + gw * v * h + gb * v)
    }

    fn product(&self, (m, n, k): (usize, usize, usize), names: [&'static str; 3]) -> ProductCount {
        // Every product but the logits' reads the f32 window first.
        let (first, shape) = match names[0] {
            "window" => (4, self.shapes[1]),
            _ => (self.elem, self.shapes[0]),
        };
        let dims = MatmulDims { m, n, k };
        ProductCount {
            shape,
            split: self.rule.plan(&shape, dims),
            dims,
            names,
            elems: (first, self.elem),
            bias: false,
            accumulate: false,
        }
    }

    /// Chunk `c` of `rows` rows, as `record::linear_chunk` dispatches it.
    fn chunk(&self, traffic: &mut Traffic, c: usize, rows: usize) {
        let LinearDims { h, v, .. } = self.dims;
        let [gh, gw, gb] = self.grads;
        let window = ["window", "weight", "grad_hidden"];
        if v == 0 {
            self.window_rows_passes(traffic, rows);
            if gh && !self.partial {
                self.product((rows, h, 0), window).add_to(traffic);
            }
            return;
        }
        let logits = ProductCount {
            bias: self.bias,
            ..self.product((rows, v, h), ["hidden", "weight", "window"])
        };
        logits.add_to(traffic);
        self.window_rows_passes(traffic, rows);
        if self.partial {
            return;
        }
        if gh {
            self.product((rows, h, v), window).add_to(traffic);
        }
        if gw {
            let product = self.product((v, h, rows), ["window", "hidden", "grad_weight"]);
            ProductCount {
                accumulate: c > 0,
                ..product
            }
            .add_to(traffic);
        }
        if gb {
            column_sums_traffic(traffic, (rows, v), ["window", "grad_bias"], c > 0);
        }
    }

    /// The cross-entropy's rows passes over a window of `rows` rows: its
    /// logits and their gradient are the window.
    fn window_rows_passes(&self, traffic: &mut Traffic, rows: usize) {
        let mut passes = Traffic::new(0);
        self.ce.rows(&mut passes, &self.layout.with_outer(rows));
        traffic.extend(&passes.renamed("input", "window").renamed("grad", "window"));
    }

    /// No rows: zeros written to `∂L/∂W` and `∂L/∂b`.
    fn without_rows(&self, traffic: &mut Traffic) {
        let LinearDims { h, v, .. } = self.dims;
        if self.grads[1] {
            let product = self.product((v, h, 0), ["window", "hidden", "grad_weight"]);
            product.add_to(traffic);
        }
        if self.grads[2] {
            column_sums_traffic(traffic, (0, v), ["window", "grad_bias"], false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::device::{DeviceClass, DeviceProfile};
    use crate::ops::cross_entropy::plan::stats_groups;
    use crate::ops::cross_entropy::strategy::RowStrategy;
    use crate::ops::cross_entropy::traffic::CountedCall;
    use crate::ops::matmul::traffic::tests::scalar;
    use crate::ops::matmul::SplitK;

    /// The benchmarks' fused call (`xent bench --linear`: mean, i32
    /// targets, `∂L/∂h` and `∂L/∂W`, no bias) of `dims` in windows of
    /// `window_rows`, planned for `class`.
    fn bench_count(dims: LinearDims, window_rows: usize, elem: u64, class: DeviceClass) -> Traffic {
        count_with(dims, window_rows, elem, class, false)
    }

    /// [`bench_count`]'s call, with a bias and its gradient where `bias`.
    fn count_with(
        dims: LinearDims,
        window_rows: usize,
        elem: u64,
        class: DeviceClass,
        bias: bool,
    ) -> Traffic {
        let device = DeviceProfile {
            class,
            wide_wg: if class == DeviceClass::Gpu { 32 } else { 8 },
            subgroups: class == DeviceClass::Gpu,
        };
        let layout = Layout::from_dims(&[dims.n, dims.v]).unwrap();
        let strategy = RowStrategy::choose(&layout, device).unwrap();
        let entry = strategy.entry(dims.v);
        let t = TrafficInputs::bench(4, stats_groups(dims.n as u64));
        let ce = CallCount::new(CountedCall::Whole { strategy, entry }, t);
        let count = LinearCount {
            dims,
            window_rows,
            elem,
            shapes: [scalar(match class {
                DeviceClass::Gpu => "matmul",
                _ => "matmul_blocks",
            }); 2],
            // The default budget's windows leave no room for slices at once.
            rule: SplitRule {
                split: SplitK::Auto,
                fill: class == DeviceClass::Gpu,
                room: 0,
                max_groups: 65_535,
            },
            bias,
            grads: [true, true, bias],
            partial: false,
            ce: &ce,
            layout: &layout,
        };
        count.traffic()
    }

    /// Every plan moves at least the minimum, with and without a bias and
    /// its gradient, in windows that divide the rows or not, in both tables.
    #[test]
    fn no_fused_plan_moves_less_than_the_minimum() {
        for (n, h, v) in [(1, 1, 1), (3, 5, 7), (100, 64, 1000), (513, 33, 4097)] {
            for rows in [1, 2, 64, n] {
                for class in [DeviceClass::Gpu, DeviceClass::Software] {
                    for bias in [false, true] {
                        let dims = LinearDims { n, h, v };
                        let t = count_with(dims, rows, 2, class, bias);
                        assert!(t.planned() >= t.minimum, "{dims:?} in {rows}");
                    }
                }
            }
        }
    }

    fn read(t: &Traffic, buffer: &str) -> u64 {
        t.transfers
            .iter()
            .filter(|x| x.buffer == buffer)
            .map(|x| x.read)
            .sum()
    }

    /// 2048 × 512 × 32 000 in windows of 128 rows, 64 × 64 tiles: each of
    /// the 16 windows reads W twice in `h·Wᵀ` and twice in `g·W` (two rows
    /// of tiles each); h is read by each of `h·Wᵀ`'s 500 columns of tiles
    /// and each of `gᵀ·h`'s 500 rows; the window, written by `h·Wᵀ`, is
    /// read by 8 columns of tiles in `g·W` and 8 in `gᵀ·h`.
    #[test]
    fn the_fused_call_counted_by_hand() {
        let dims = LinearDims {
            n: 2048,
            h: 512,
            v: 32_000,
        };
        let t = bench_count(dims, 128, 4, DeviceClass::Gpu);
        let (h, w, logits) = (2048 * 512 * 4u64, 32_000 * 512 * 4u64, 2048 * 32_000 * 4u64);
        assert_eq!(t.minimum, 2 * (h + w) + 4 * 2048 + 4 + 16);
        assert_eq!(read(&t, "weight"), 16 * 4 * w);
        assert_eq!(read(&t, "hidden"), 1000 * h);
        let rows_passes = read(&t, "window") - 16 * logits;
        assert_eq!(
            rows_passes / logits,
            2,
            "the rows read twice (32 000 classes)"
        );
        // ∂L/∂W accumulated by 15 windows after the first.
        assert_eq!(read(&t, "grad_weight"), 15 * w);
        assert_eq!(
            t.passes(),
            [
                "target_stats",
                "matmul",
                "rows_team4",
                "loss_tiles",
                "reduce_loss"
            ]
        );
    }

    /// The ratio over the op's minimum on the reference shapes in the
    /// windows the default scratch budget plans (1/8 of the logits), and
    /// at 8192 × 4096 × 128 256 in the 32-row windows the old default of
    /// 16 MiB planned, both tables (software: 32 × 128 blocks). It is this
    /// high because the products re-read their operands once per block (on
    /// a GPU mostly from L2; larger tiles re-read less), and each window's
    /// products read W again: 256 windows of 32 rows read W (2.1 GB in f32)
    /// 512 times, 8 of 1 024 rows 16 times; what remains is `h` and the
    /// window read once per column of blocks.
    #[test]
    fn the_reference_shapes_in_both_tables() {
        let pinned = [
            // GPU f32, GPU bf16, software f32, software bf16
            (
                (2048, 512, 32_000),
                256,
                [105.2384, 100.2180, 127.3724, 104.6688],
            ),
            (
                (8192, 4096, 128_256),
                1024,
                [373.6436, 337.7716, 462.1983, 355.5826],
            ),
            (
                (8192, 4096, 128_256),
                32,
                [727.0669, 728.7922, 695.3073, 666.3938],
            ),
        ];
        for ((n, h, v), rows, want) in pinned {
            let dims = LinearDims { n, h, v };
            let got = [
                bench_count(dims, rows, 4, DeviceClass::Gpu).ratio(),
                bench_count(dims, rows, 2, DeviceClass::Gpu).ratio(),
                bench_count(dims, rows, 4, DeviceClass::Software).ratio(),
                bench_count(dims, rows, 2, DeviceClass::Software).ratio(),
            ];
            for (got, want) in got.iter().zip(want) {
                assert!(
                    (got / want - 1.0).abs() < 1e-5,
                    "{dims:?}: {got:.4} for {want}"
                );
            }
        }
    }
}
