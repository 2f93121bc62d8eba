//! `--product-kernel` (`xent linear-loss`, `xent bench --linear`): which
//! kernel computes the fused op's products; `--split-k` (`xent
//! linear-loss`): how they cut k.

use clap::ValueEnum;
use xent::{ProductKernel, SplitK};

use crate::{usage, Failure};

/// The values of `--product-kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum ProductKernelArg {
    /// By the device: tiles on GPUs, register blocks on software adapters.
    #[default]
    Auto,
    /// 64 x 64 tiles through workgroup memory.
    Tiled,
    /// 8 x 8 register blocks read straight from memory.
    Blocks,
    /// Tensor cores (wgpu's cooperative matrices), f32 operands split in
    /// f16 halves; exit 2 where the adapter lacks them.
    Coop,
    /// The cooperative kernel with its matrix operations in plain WGSL, on
    /// any adapter (slow).
    CoopEmulated,
}

impl ProductKernelArg {
    /// The library's kernel.
    pub(crate) fn kernel(self) -> ProductKernel {
        match self {
            ProductKernelArg::Auto => ProductKernel::Auto,
            ProductKernelArg::Tiled => ProductKernel::Tiled,
            ProductKernelArg::Blocks => ProductKernel::Blocks,
            ProductKernelArg::Coop => ProductKernel::Coop,
            ProductKernelArg::CoopEmulated => ProductKernel::CoopEmulated,
        }
    }

    /// Exit 2 naming the missing feature where `coop` is asked of a device
    /// without cooperative matrices.
    pub(crate) fn check_device(self, ctx: &xent::Context) -> Result<(), Failure> {
        if self == ProductKernelArg::Coop && !ctx.cooperative_matrices() {
            return Err(usage(format!(
                "--product-kernel coop needs cooperative matrices (wgpu's \
                 EXPERIMENTAL_COOPERATIVE_MATRIX with f16 16x16x16 products into f32, \
                 subgroups of 32), which {} lacks; coop-emulated runs the same kernel anywhere",
                ctx.adapter_summary()
            )));
        }
        Ok(())
    }
}

/// `--split-k`: `auto`, or `LEN` or `LENxP` (slices of LEN of k, at most P
/// at once; 1 without it). The library checks the values against the kernel.
pub(crate) fn parse_split_k(s: &str) -> Result<SplitK, String> {
    if s == "auto" {
        return Ok(SplitK::Auto);
    }
    let number = |t: &str| {
        t.parse::<usize>()
            .map_err(|_| format!("expected auto, LEN or LENxP (e.g. 512x8), got {s:?}"))
    };
    let (len, parallel) = match s.split_once('x') {
        Some((len, parallel)) => (number(len)?, number(parallel)?),
        None => (number(s)?, 1),
    };
    Ok(SplitK::Slices { len, parallel })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_values() {
        assert_eq!(parse_split_k("auto"), Ok(SplitK::Auto));
        assert_eq!(
            parse_split_k("512x8"),
            Ok(SplitK::Slices {
                len: 512,
                parallel: 8
            })
        );
        assert_eq!(
            parse_split_k("64"),
            Ok(SplitK::Slices {
                len: 64,
                parallel: 1
            })
        );
        for bad in ["", "x8", "64x", "sixty", "64x8x2"] {
            assert!(parse_split_k(bad).is_err(), "{bad}");
        }
    }
}
