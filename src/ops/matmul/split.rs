//! Split k: a product's k cut into slices, each summed from zero in k
//! order by its own workgroups, the slices' sums added to the output in
//! slice order. The cut fixes the bits. How many slices run at once (into
//! the context's scratch, then `sum_slices` in `shaders/matmul/split.wgsl`)
//! sets only the speed and the memory: the in-order sum of a batch is the
//! bits of its slices run one after another, each adding to the output.
//!
//! A product with few output blocks (`∂L/∂h = g·W` of a window of rows:
//! one row of blocks across `h`, the vocabulary deep) leaves most of a GPU
//! idle and runs its slices of k one dispatch after another; cut finer and
//! run at once, its slices' blocks fill the GPU. The partial sums cost the
//! bytes of the sequential dispatches' re-reads of the output (each slice's
//! `m × n` written once and read once either way), and a batch's sum one
//! more write and read of the output.

use super::kernels::ProductShape;
use super::params::MatmulParams;
use super::pipelines::MatmulVariant;
use super::record::slot;
use super::MatmulDims;
use crate::core::device::DeviceClass;
use crate::core::encode::Dispatch;
use crate::core::{Context, Precision};
use crate::error::{Error, Result};

/// How a product cuts k into slices and how many it runs at once. The cut
/// fixes the result's bits; running more at once does not change them.
///
/// ```
/// let opts = xent::MatmulOptions {
///     split_k: xent::SplitK::Slices { len: 512, parallel: 8 },
///     ..Default::default()
/// };
/// assert_eq!(xent::MatmulOptions::default().split_k, xent::SplitK::Auto);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SplitK {
    /// On GPUs, a product with fewer than 512 output blocks is cut into
    /// slices (at least 256 of k, at most the kernel's slice a dispatch)
    /// so that the blocks of the slices it runs at once number about 512,
    /// their partial sums within 32 MiB of scratch (within what the fused
    /// op's budget leaves there). Elsewhere, for products with blocks
    /// enough, and where the room holds fewer than two slices' partial
    /// sums: slices of the kernel's bound a dispatch, one after another.
    /// So the cut, and the bits, follow the product's shape, the device's
    /// class and the room.
    #[default]
    Auto,
    /// Slices of `len` of k, a positive multiple of 16 and at most the
    /// kernel's slice a dispatch (4 096 for `Tiled`, 32 768 for `Blocks`,
    /// 3 072 for `Coop`, 96 for `CoopEmulated`); at most `parallel` (1 to
    /// 1 024) at once, fewer where their partial sums would not fit the
    /// scratch (one binding; the fused op's budget), where the bits are the same.
    Slices { len: usize, parallel: usize },
}

/// Output blocks that fill a GPU: several 256-invocation workgroups on
/// each of an H100's 132 multiprocessors.
pub(crate) const FILL_BLOCKS: usize = 512;
/// The least of k `Auto` cuts a slice to: a 64 × 64 block's partial sum
/// (16 KiB written and read) against 2 MFLOP of products.
pub(crate) const MIN_SLICE: usize = 256;
/// The most slices at once: `sum_slices` adds them in a loop of as many trips.
pub(crate) const MAX_PARALLEL: usize = 1024;
/// The scratch `Auto` gives a product's partial sums outside the fused op.
pub(crate) const PARTIALS_BUDGET: u64 = 32 << 20;

/// A product's cut: slices of `len` of k, `parallel` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitPlan {
    pub len: usize,
    pub parallel: usize,
}

impl SplitPlan {
    /// The batches of slices over `k`, in order: (start, end) of each's k
    /// and its slices (at least one batch of one, over k = 0).
    pub(crate) fn batches(&self, k: usize) -> Vec<(usize, usize, usize)> {
        let slices = k.div_ceil(self.len).max(1);
        (0..slices.div_ceil(self.parallel))
            .map(|b| {
                let first = b * self.parallel;
                let count = self.parallel.min(slices - first);
                let k0 = first * self.len;
                (k0, (k0 + count * self.len).min(k), count)
            })
            .collect()
    }
}

/// What decides a product's cut besides its shape and kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRule {
    pub split: SplitK,
    /// The device is a GPU (`Auto` cuts to fill it).
    pub fill: bool,
    /// Bytes the partial sums may take.
    pub room: u64,
    /// Workgroups a dispatch may have along y (the slices stack there).
    pub max_groups: usize,
}

impl SplitRule {
    /// Whether an explicit cut suits the kernel `shape`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] (`split_k`) for a length that is not a
    /// positive multiple of 16 within the kernel's slice, or `parallel`
    /// outside 1 to 1 024.
    pub(crate) fn check(&self, shape: &ProductShape) -> Result<()> {
        let SplitK::Slices { len, parallel } = self.split else {
            return Ok(());
        };
        let tile_k = super::kernels::TILE_K;
        if len == 0 || !len.is_multiple_of(tile_k) || len > shape.k_step {
            return Err(Error::InvalidOption {
                name: "split_k",
                value: format!("len {len} ({})", shape.entry),
                expected: "a positive multiple of 16 within the kernel's slice of k a dispatch",
            });
        }
        if parallel == 0 || parallel > MAX_PARALLEL {
            return Err(Error::InvalidOption {
                name: "split_k",
                value: format!("parallel {parallel}"),
                expected: "1 to 1024 slices at once",
            });
        }
        Ok(())
    }

    /// The cut of a product of `dims` on kernel `shape` (checked). `Auto`
    /// cuts finer than the kernel's slices only where it has room to run
    /// two or more at once: one at a time, finer slices would only re-read
    /// the output more.
    pub(crate) fn plan(&self, shape: &ProductShape, dims: MatmulDims) -> SplitPlan {
        let MatmulDims { m, n, k } = dims;
        let row_blocks = m.div_ceil(shape.rows).max(1);
        let blocks = row_blocks * n.div_ceil(shape.cols);
        let per_slice = 4 * m as u64 * n as u64;
        let fits = self.room.checked_div(per_slice).unwrap_or(u64::MAX);
        let at_once = usize::try_from(fits)
            .unwrap_or(usize::MAX)
            .min(self.max_groups / row_blocks)
            .min(MAX_PARALLEL);
        let (len, want) = match self.split {
            SplitK::Slices { len, parallel } => (len, parallel),
            SplitK::Auto => {
                let want = FILL_BLOCKS.div_ceil(blocks.max(1)).min(at_once);
                if !self.fill || blocks >= FILL_BLOCKS || want < 2 {
                    (shape.k_step, 1)
                } else {
                    let len = k.div_ceil(want).next_multiple_of(super::kernels::TILE_K);
                    (len.max(MIN_SLICE).min(shape.k_step), want)
                }
            }
        };
        let slices = k.div_ceil(len).max(1);
        SplitPlan {
            len,
            parallel: want.min(slices).min(at_once).max(1),
        }
    }
}

impl Context {
    /// The rule of a product's cut: `room` bytes for its partial sums
    /// (the fused op's budget), else 32 MiB for `Auto`, one binding for
    /// explicit slices; never past one binding.
    pub(crate) fn split_rule(&self, split: SplitK, room: Option<u64>) -> SplitRule {
        let limits = self.device.limits();
        let binding = limits.max_storage_buffer_binding_size;
        let room = match (room, split) {
            (Some(r), _) => r,
            (None, SplitK::Auto) => PARTIALS_BUDGET,
            (None, SplitK::Slices { .. }) => binding,
        };
        SplitRule {
            split,
            fill: self.profile.class == DeviceClass::Gpu,
            room: room.min(binding),
            max_groups: limits.max_compute_workgroups_per_dimension as usize,
        }
    }
}

/// The in-order sum of a batch's partial sums.
impl Context {
    /// `sum_slices`: `params.k` partial sums in `partials` added to `out`
    /// in order, with the bias (in `rhs`; a placeholder bound without
    /// one) where `has_bias` and `params` say.
    pub(crate) fn sum_slices(
        &self,
        (rhs, has_bias): (Precision, bool),
        params: &MatmulParams,
        [partials, out, bias]: [wgpu::BufferSlice<'_>; 3],
    ) -> Result<Dispatch> {
        let variant = MatmulVariant {
            lhs: Precision::F32,
            rhs,
            a_k_contig: true,
            b_k_contig: true,
            a_vec: false,
            b_vec: false,
            has_bias,
            filter: false,
        };
        let pipeline = self.matmul_pipeline(variant, "sum_slices")?;
        let uniform = self.uniform("xent split-k sum params", bytemuck::bytes_of(params))?;
        let entries = [
            (slot::PARAMS, uniform.slice(..)),
            (slot::LHS, partials),
            (slot::OUT, out),
            (slot::BIAS, bias),
        ];
        let group = self.bind(&pipeline, &entries);
        let grid = self.grid((params.m as usize * params.n as usize).div_ceil(64))?;
        Ok(("sum_slices", pipeline, group, grid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::traffic::tests::scalar;

    fn gpu(split: SplitK, room: u64) -> SplitRule {
        SplitRule {
            split,
            fill: true,
            room,
            max_groups: 65_535,
        }
    }

    /// `∂L/∂h` of a 32-row window at 4 096 × 128 256: 64 blocks, cut into
    /// slices of the tiled kernel's 4 096 (128 256 / 8 is past it), 8 at a
    /// time: 512 blocks.
    #[test]
    fn auto_fills_a_gpu_with_the_slices_of_a_thin_product() {
        let dims = MatmulDims {
            m: 32,
            n: 4096,
            k: 128_256,
        };
        let rule = gpu(SplitK::Auto, PARTIALS_BUDGET);
        let cut = |len, parallel| SplitPlan { len, parallel };
        for (k, want, why) in [
            (
                128_256,
                cut(4096, 8),
                "128 256 / 8 is past the kernel's slice",
            ),
            (
                1024,
                cut(256, 4),
                "8 slices of 128 would be under the least, 256",
            ),
            (20_000, cut(2512, 8), "8 slices of 2 512, whole steps of 16"),
        ] {
            let dims = MatmulDims { k, ..dims };
            assert_eq!(rule.plan(&scalar("matmul"), dims), want, "{why}");
        }
        let mid = MatmulDims { k: 20_000, ..dims };
        // Room for 3 partial sums of 512 KiB: 3 at once, of 4 096 (20 000 / 3
        // is past the kernel's slice); for 1: the kernel's slices.
        let tight = gpu(SplitK::Auto, 3 * 32 * 4096 * 4 + 7);
        assert_eq!(tight.plan(&scalar("matmul"), mid), cut(4096, 3));
        let none = gpu(SplitK::Auto, 32 * 4096 * 4 + 7);
        assert_eq!(none.plan(&scalar("matmul"), mid), cut(4096, 1));
        // Blocks enough, or not a GPU: the kernel's slices, one at a time.
        let wide = MatmulDims { m: 4096, ..dims };
        assert_eq!(rule.plan(&scalar("matmul"), wide), cut(4096, 1));
        let software = SplitRule {
            fill: false,
            ..rule
        };
        assert_eq!(
            software.plan(&scalar("matmul_blocks"), dims),
            cut(32_768, 1)
        );
    }

    #[test]
    fn batches_cover_k_in_order() {
        let plan = SplitPlan {
            len: 16,
            parallel: 3,
        };
        assert_eq!(plan.batches(100), [(0, 48, 3), (48, 96, 3), (96, 100, 1)]);
        assert_eq!(plan.batches(0), [(0, 0, 1)]);
        assert_eq!(plan.batches(32), [(0, 32, 2)]);
    }

    #[test]
    fn explicit_cuts_are_checked() {
        let shape = scalar("matmul");
        let ok = gpu(
            SplitK::Slices {
                len: 4096,
                parallel: 1024,
            },
            0,
        );
        assert!(ok.check(&shape).is_ok());
        for (len, parallel) in [(0, 1), (24, 1), (4112, 1), (16, 0), (16, 1025)] {
            let rule = gpu(SplitK::Slices { len, parallel }, 0);
            assert!(
                matches!(
                    rule.check(&shape),
                    Err(Error::InvalidOption {
                        name: "split_k",
                        ..
                    })
                ),
                "{len} {parallel}"
            );
        }
        // No room: one slice at a time, the same cut.
        let plan = ok.plan(
            &shape,
            MatmulDims {
                m: 8,
                n: 8,
                k: 9000,
            },
        );
        assert_eq!(
            plan,
            SplitPlan {
                len: 4096,
                parallel: 1
            }
        );
    }
}
