//! Which kernel computes a product: the scalar ones' tiles and blocks, the
//! cooperative one's, each one's slice of k a dispatch under the loop
//! bound, and the choice among them for a call's operands and device.

use super::buffers::ProductKernel;
use crate::core::device::{DeviceClass, LOOP_TRIPS_MAX};
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, Result};

/// The output tile of `matmul` (`TILE`) and its k step (`TILE_K`).
pub(crate) const TILE: usize = 64;
pub(crate) const TILE_K: usize = 16;
/// The most of k one dispatch of `matmul` covers: Mesa's software adapters
/// stop an invocation's loops after 65 535 iterations in all (nested ones
/// included), and xent bounds every invocation to `LOOP_TRIPS_MAX`. A trip
/// of the tile loop runs at most 33 (itself, `TILE_K` steps, two runs of 4
/// loads, two stores of 4) and the stores after it 20, so a dispatch covers
/// 256 trips (8 468 iterations); a deeper product is several dispatches,
/// each adding its slice of k to the output in order.
pub(crate) const K_PER_DISPATCH: usize = LOOP_TRIPS_MAX / 64 * TILE_K;
/// The output block of a `matmul_blocks` workgroup: 128 columns, 32 rows
/// (64 invocations of 8 × 8).
pub(crate) const BLOCKS_COLS: usize = 128;
pub(crate) const BLOCKS_ROWS: usize = 32;
/// The most of k one dispatch of `matmul_blocks` covers: a trip of its k
/// loop takes 4 steps of k and nests nothing; half the bound leaves room
/// for the stores' loops.
pub(crate) const K_PER_DISPATCH_BLOCKS: usize = 4 * (LOOP_TRIPS_MAX / 2);
/// The output block of a `matmul_coop` workgroup (`BLOCK` in
/// `shaders/matmul/coop.wgsl`): 4 × 4 tiles of 16 × 16.
pub(crate) const COOP_BLOCK: usize = 64;
/// The most of k one dispatch of `matmul_coop` covers, in steps of 16: a
/// step runs 81 loop trips on the hardware's matrices (two staging loops of
/// 32, the 16 tiles), 129 with an f32 operand split in halves (the
/// corrections' 16 tiles, the clearing of infinities' 32); with the
/// emulation's loops (a tile's product is 8 elements of 16 terms) about
/// 2 400 for each product of the 16 tiles a step runs (one, two or three),
/// besides the block's start and end (164 and 292 trips): 6 steps of one
/// product, 3 of two, 2 of three.
pub(crate) const K_PER_DISPATCH_COOP: usize = 192 * 16;
pub(crate) const K_PER_DISPATCH_COOP_SPLIT: usize = 120 * 16;
pub(crate) const K_PER_DISPATCH_COOP_EMULATED: usize = 6 * 16;

/// The cooperative kernel's slice of k a dispatch for operands stored in
/// `a` and `b`: each f32 operand adds a product of halves to every step.
pub(crate) fn coop_k_step(native: bool, (a, b): (Precision, Precision)) -> usize {
    let splits = usize::from(a == Precision::F32) + usize::from(b == Precision::F32);
    match (native, splits) {
        (true, 0) => K_PER_DISPATCH_COOP,
        (true, _) => K_PER_DISPATCH_COOP_SPLIT,
        (false, s) => K_PER_DISPATCH_COOP_EMULATED / (1 + s),
    }
}

/// A product's kernel: its entry point, the slice of k each dispatch
/// adds (under the loop bound), its grid of workgroups.
pub(crate) struct ProductPlan {
    pub shape: ProductShape,
    pub grid: (usize, usize),
}

/// A product kernel's entry point, output block and slice of k a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProductShape {
    pub entry: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub k_step: usize,
    /// The cooperative kernel on the hardware's matrices (not emulated).
    pub native: bool,
}

/// The choice of a product's kernel.
impl Context {
    /// The kernel `kernel` names for operands stored in `a` and `b` (`Auto`:
    /// by the device's class): its entry point, block and slice of k per
    /// dispatch.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for `Coop` on a device without cooperative
    /// matrices.
    pub(crate) fn product_shape(
        &self,
        kernel: ProductKernel,
        (a, b): (Precision, Precision),
    ) -> Result<ProductShape> {
        // `Auto` does not choose the cooperative kernel yet: it has not run
        // on hardware (benches/device.sh checks it where a GPU has it).
        let kernel = match kernel {
            ProductKernel::Auto if self.profile.class == DeviceClass::Gpu => ProductKernel::Tiled,
            ProductKernel::Auto => ProductKernel::Blocks,
            k => k,
        };
        let shape = |entry, (rows, cols), k_step| ProductShape {
            entry,
            rows,
            cols,
            k_step,
            native: kernel == ProductKernel::Coop,
        };
        let coop = (COOP_BLOCK, COOP_BLOCK);
        Ok(match kernel {
            ProductKernel::Coop if !self.cooperative => {
                return Err(Error::Unsupported {
                    what: "cooperative matrix products",
                    reason: "the device was not opened with EXPERIMENTAL_COOPERATIVE_MATRIX \
                             offering f16 16x16x16 products accumulated in f32 on subgroups \
                             of 32 (Context::cooperative_matrices)"
                        .into(),
                })
            }
            ProductKernel::Coop => shape("matmul_coop", coop, coop_k_step(true, (a, b))),
            ProductKernel::CoopEmulated => shape("matmul_coop", coop, coop_k_step(false, (a, b))),
            ProductKernel::Tiled => shape("matmul", (TILE, TILE), K_PER_DISPATCH),
            _ => shape(
                "matmul_blocks",
                (BLOCKS_ROWS, BLOCKS_COLS),
                K_PER_DISPATCH_BLOCKS,
            ),
        })
    }

    /// The kernel for `m × n` outputs: its shape and its grid.
    pub(crate) fn product_kernel(
        &self,
        kernel: ProductKernel,
        precisions: (Precision, Precision),
        m: usize,
        n: usize,
    ) -> Result<ProductPlan> {
        let shape = self.product_shape(kernel, precisions)?;
        let plan = ProductPlan {
            grid: (n.div_ceil(shape.cols), m.div_ceil(shape.rows)),
            shape,
        };
        let max_groups = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let (x, y) = plan.grid;
        if x > max_groups || y > max_groups {
            return Err(Error::Unsupported {
                what: "a product this large",
                reason: format!(
                    "{m} x {n} outputs need {y} x {x} blocks of {} x {}, more than the \
                     device's {max_groups} workgroups per dimension",
                    shape.rows, shape.cols
                ),
            });
        }
        Ok(plan)
    }
}
