//! The byte yardstick of a matrix product (`src/core/traffic.rs`). Each
//! workgroup loads its block's rows of A and columns of B over all of k, so
//! A is read once per column of blocks and B once per row of blocks: the
//! reuse a block buys, and why a larger block moves fewer bytes. The output
//! is written once per dispatch (slice of k) and read by each that adds to
//! it; where slices of k run at once, each writes its partial sums once
//! and `sum_slices` reads them once, and the output once. The bias is read once per row of blocks (its loads within a block
//! are one word each, cached). A product's minimum is its operands read
//! once and its output written once (and read once, where it is added to).

use super::kernels::ProductShape;
use super::split::SplitPlan;
use super::MatmulDims;
use crate::core::traffic::Traffic;

/// One product as the count sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProductCount {
    /// The kernel: its entry point and output block.
    pub shape: ProductShape,
    /// Its cut of k.
    pub split: SplitPlan,
    pub dims: MatmulDims,
    /// What the count calls A, B and the output.
    pub names: [&'static str; 3],
    /// Bytes per element of A, and of B and the bias.
    pub elems: (u64, u64),
    pub bias: bool,
    /// The first dispatch adds to the output.
    pub accumulate: bool,
}

impl ProductCount {
    fn mnk(&self) -> (u64, u64, u64) {
        let MatmulDims { m, n, k } = self.dims;
        (m as u64, n as u64, k as u64)
    }

    /// The operands read once, the output written once (and read once
    /// where it is added to).
    pub(crate) fn minimum(&self) -> u64 {
        let (m, n, k) = self.mnk();
        let (ea, eb) = self.elems;
        let bias = n * eb * u64::from(self.bias);
        m * k * ea + k * n * eb + bias + 4 * m * n * (1 + u64::from(self.accumulate))
    }

    /// Adds the product's dispatches to `traffic` (nothing for an empty
    /// output, which dispatches nothing).
    pub(crate) fn add_to(&self, traffic: &mut Traffic) {
        let (m, n, k) = self.mnk();
        let (ea, eb) = self.elems;
        let ProductShape {
            entry, rows, cols, ..
        } = self.shape;
        let (rows, cols) = (rows as u64, cols as u64);
        let [a, b, out] = self.names;
        let (row_blocks, col_blocks) = (m.div_ceil(rows), n.div_ceil(cols));
        traffic.read(entry, a, m * k * ea * col_blocks);
        traffic.read(entry, b, k * n * eb * row_blocks);
        if self.bias {
            traffic.read(entry, "bias", n * eb * row_blocks);
        }
        // At least one batch: a product over k = 0 writes its zeros.
        let block = 4 * m * n;
        for (i, (_, _, slices)) in self.split.batches(k as usize).into_iter().enumerate() {
            let added = u64::from(i > 0 || self.accumulate);
            if slices == 1 {
                traffic.read(entry, out, block * added);
                traffic.write(entry, out, block);
            } else {
                let partials = block * slices as u64;
                traffic.write(entry, "partials", partials);
                traffic.read("sum_slices", "partials", partials);
                traffic.read("sum_slices", out, block * added);
                traffic.write("sum_slices", out, block);
            }
        }
    }

    /// The count of this product alone.
    pub(crate) fn traffic(&self) -> Traffic {
        let mut traffic = Traffic::new(self.minimum());
        self.add_to(&mut traffic);
        traffic
    }
}

/// `column_sums` (the bias's gradient): `m × n` of f32 `a` read once, `n`
/// sums written (and read, where added to).
pub(crate) fn column_sums_traffic(
    traffic: &mut Traffic,
    (m, n): (usize, usize),
    [a, out]: [&'static str; 2],
    accumulate: bool,
) {
    let (m, n) = (m as u64, n as u64);
    traffic.read("column_sums", a, 4 * m * n);
    traffic.read("column_sums", out, 4 * n * u64::from(accumulate));
    traffic.write("column_sums", out, 4 * n);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::matmul::kernels::{
        BLOCKS_COLS, BLOCKS_ROWS, K_PER_DISPATCH, K_PER_DISPATCH_BLOCKS, TILE,
    };

    /// The kernel `entry`'s own slices of k, one at a time.
    pub(crate) fn unsplit(entry: &'static str) -> SplitPlan {
        SplitPlan {
            len: scalar(entry).k_step,
            parallel: 1,
        }
    }

    /// The shape of the scalar kernel `entry`.
    pub(crate) fn scalar(entry: &'static str) -> ProductShape {
        let (rows, cols, k_step) = match entry {
            "matmul" => (TILE, TILE, K_PER_DISPATCH),
            _ => (BLOCKS_ROWS, BLOCKS_COLS, K_PER_DISPATCH_BLOCKS),
        };
        ProductShape {
            entry,
            rows,
            cols,
            k_step,
            native: false,
        }
    }

    fn logits(entry: &'static str, (m, n, k): (usize, usize, usize)) -> ProductCount {
        ProductCount {
            shape: scalar(entry),
            split: unsplit(entry),
            dims: MatmulDims { m, n, k },
            names: ["hidden", "weight", "window"],
            elems: (4, 4),
            bias: false,
            accumulate: false,
        }
    }

    /// h·Wᵀ of 256 rows, 512 deep, 32 000 classes in 64 × 64 tiles: h is
    /// read by each of the 500 columns of tiles, W by each of the 4 rows.
    #[test]
    fn a_tiled_product_counted_by_hand() {
        let t = logits("matmul", (256, 32_000, 512)).traffic();
        let (h, w, out) = (256 * 512 * 4u64, 32_000 * 512 * 4u64, 256 * 32_000 * 4u64);
        assert_eq!(t.minimum, h + w + out);
        assert_eq!(t.planned(), 500 * h + 4 * w + out);
        // matmul_blocks: 32 × 128 blocks, 250 columns, 8 rows of them.
        let t = logits("matmul_blocks", (256, 32_000, 512)).traffic();
        assert_eq!(t.planned(), 250 * h + 8 * w + out);
        assert_eq!(t.passes(), ["matmul_blocks"]);
    }

    /// Past a dispatch's slice of k, each further slice reads and writes
    /// the output again; an accumulating product reads it in its first.
    #[test]
    fn slices_of_k_and_accumulation_reread_the_output() {
        let k = 2 * K_PER_DISPATCH + 1;
        let t = logits("matmul", (64, 64, k)).traffic();
        let out = 64 * 64 * 4u64;
        let operands = 2 * 64 * k as u64 * 4;
        assert_eq!(t.planned(), operands + 3 * out + 2 * out);
        let t = ProductCount {
            accumulate: true,
            ..logits("matmul", (64, 64, 16))
        }
        .traffic();
        assert_eq!(
            (t.minimum, t.planned()),
            (2 * 64 * 16 * 4 + 2 * out, 2 * 64 * 16 * 4 + 2 * out)
        );
        // Nothing for an empty output; zeros written for k = 0.
        assert_eq!(logits("matmul", (0, 64, 16)).traffic().planned(), 0);
        assert_eq!(logits("matmul", (8, 64, 0)).traffic().planned(), out / 8);
    }

    /// Slices run at once write their partial sums once and `sum_slices`
    /// reads them once, where slices run one after another read and write
    /// the output: the same bytes but the output's once more per batch.
    #[test]
    fn split_k_moves_its_slices_bytes_and_an_output_per_batch() {
        let cut = |parallel| ProductCount {
            split: SplitPlan { len: 16, parallel },
            ..logits("matmul", (64, 64, 7 * 16))
        };
        let (one, three) = (cut(1).traffic(), cut(3).traffic());
        let out = 64 * 64 * 4u64;
        // Batches of 3, 3 and 1: the two of 3 each add an output's write and read.
        assert_eq!(three.planned(), one.planned() + 4 * out);
        assert_eq!(three.passes(), ["matmul", "sum_slices"]);
        let partials = three.transfers.iter().filter(|t| t.buffer == "partials");
        assert_eq!(partials.map(|t| t.read + t.written).sum::<u64>(), 12 * out);
    }
}
