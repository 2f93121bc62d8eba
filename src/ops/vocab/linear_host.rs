//! The host API of a vocabulary-split fused linear cross-entropy run on one
//! device.

use super::host::Records;
use super::{ClassRange, LinearFinishBuffers, LinearPartialBuffers};
use crate::core::host_run::HostRun;
use crate::core::{Context, Element, Returns};
use crate::error::Result;
use crate::ops::cross_entropy::targets::Targets;
use crate::ops::linear::host::{read_grads, read_outputs, LinearInputs, LinearOutputs};
use crate::ops::linear::LinearOutput;
use crate::ops::linear::{LinearBuffers, LinearCrossEntropyOptions, LinearDims};

/// **Host API** of the vocabulary-parallel fused linear cross-entropy: K shards on this device.
impl Context {
    /// [`Context::linear_cross_entropy`] split into `shards` vocabulary
    /// shards ([`ClassRange::split`] of the `v` rows of `W`, `b` and the
    /// class weights) run on this one device: each shard's partial, the
    /// records gathered by copies, the merge, each shard's finish; `∂L/∂h`
    /// is the sum of the shards' parts in shard order, `∂L/∂W` and `∂L/∂b`
    /// the shards' rows put together. The same outputs as the unsharded
    /// call within the [`Tolerance`](crate::Tolerance), bit for bit the
    /// same for the same `shards`; `shards` may exceed `v`. Verify mode
    /// holds the result to the unsharded twin.
    ///
    /// # Errors
    /// As [`Context::linear_cross_entropy`], and
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for 0 shards.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let dims = xent::LinearDims { n: 2, h: 3, v: 5 };
    /// let h = [0.5f32, -1.0, 2.0, 1.5, 0.0, -0.5];
    /// let w: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
    /// let opts = Default::default();
    /// let out = ctx.linear_cross_entropy_sharded(&h, &w, None, &[4, 0], None, &dims, &opts, &Default::default(), 3)?;
    /// assert_eq!(out.grad_weight.unwrap().len(), 15);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn linear_cross_entropy_sharded<T: Element>(
        &self,
        hidden: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        targets: &[i64],
        class_weights: Option<&[f32]>,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
        shards: usize,
    ) -> Result<LinearOutput<f32>> {
        let inputs = LinearInputs {
            hidden,
            weight,
            bias,
            targets: Targets::I64(targets),
            class_weights,
        };
        let device_targets = inputs.check(self, dims, opts, returns)?;
        let ranges = ClassRange::split(dims.v, shards)?;
        let run = self.host_run();
        let hidden_buf = run.upload("xent hidden", bytemuck::cast_slice(hidden))?;
        let targets_buf = run.upload("xent targets", device_targets.bytes())?;
        let records = Records::new(self, dims.n, shards);
        let shard_bufs = ranges
            .iter()
            .map(|&range| ShardBuffers::new(&run, &inputs, &records, dims, range, opts, returns))
            .collect::<Result<Vec<_>>>()?;
        let targets = device_targets.buffer(&targets_buf);
        let mut encoder = run.encoder();
        for (k, (s, &range)) in shard_bufs.iter().zip(&ranges).enumerate() {
            let buffers = LinearPartialBuffers {
                hidden: hidden_buf.slice(..),
                weight: s.weight.slice(..),
                bias: s.bias.as_ref().map(|b| b.slice(..)),
                targets,
                weights: s.class_weights.as_ref().map(|b| b.slice(..)),
                partial: s.partial.slice(..),
                precision: T::PRECISION,
            };
            self.record_linear_vocab_partial(&mut encoder, dims, range, opts, &buffers)?;
            records.gather(&mut encoder, k, &s.partial);
        }
        records.merge(self, &mut encoder, &opts.loss)?;
        for (s, &range) in shard_bufs.iter().zip(&ranges) {
            let shard = LinearBuffers {
                bias: s.bias.as_ref().map(|b| b.slice(..)),
                weights: s.class_weights.as_ref().map(|b| b.slice(..)),
                precision: T::PRECISION,
                ..s.outputs
                    .buffers(hidden_buf.slice(..), s.weight.slice(..), targets)
            };
            let merged = records.merged.slice(..);
            let buffers = LinearFinishBuffers { shard, merged };
            self.record_linear_vocab_finish(&mut encoder, dims, range, opts, &buffers)?;
        }
        // Every shard writes the whole rows' outputs; the first one's are read.
        let mut wanted = shard_bufs[0].outputs.wanted();
        wanted.extend(shard_bufs.iter().flat_map(|s| s.outputs.grads()));
        let what = "running the vocabulary-split fused linear cross-entropy";
        let mut read = run.finish(encoder, &wanted, what)?;
        let mut out = read_outputs(&mut read, dims, opts, returns)?;
        if returns.grad {
            let classes: Vec<usize> = ranges.iter().map(ClassRange::len).collect();
            read_grads(&mut read, &mut out, dims, &classes, bias.is_some());
        }
        self.verify_linear(&out, &inputs, dims, opts)?;
        Ok(out)
    }
}

/// One shard's buffers, as on its own device: its rows of `W`, `b` and the
/// class weights, its records and its outputs.
struct ShardBuffers {
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    class_weights: Option<wgpu::Buffer>,
    partial: wgpu::Buffer,
    outputs: LinearOutputs,
}

impl ShardBuffers {
    fn new<T: Element>(
        run: &HostRun<'_>,
        inputs: &LinearInputs<'_, T>,
        records: &Records,
        dims: &LinearDims,
        range: ClassRange,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Result<Self> {
        let (c0, c1, h) = (range.start, range.end, dims.h);
        let weight = bytemuck::cast_slice(&inputs.weight[c0 * h..c1 * h]);
        let shard_dims = LinearDims {
            v: range.len(),
            ..*dims
        };
        let bias = inputs.bias.is_some();
        Ok(Self {
            weight: run.upload("xent shard weight", weight)?,
            bias: run.upload_opt("xent shard bias", inputs.bias.map(|b| &b[c0..c1]))?,
            class_weights: run.upload_opt(
                "xent shard class weights",
                inputs.class_weights.map(|w| &w[c0..c1]),
            )?,
            partial: records.shard("xent shard records"),
            outputs: LinearOutputs::new(run, &shard_dims, bias, opts, returns),
        })
    }
}
