//! The host API of a vocabulary-split call run on one device: the shards'
//! partials, their records gathered by copies, the merge, the finishes.

use std::borrow::Cow;

use super::VOCAB_RECORD_BYTES;
use super::{ClassRange, MergeDims, VocabFinishBuffers, VocabMergeBuffers, VocabPartialBuffers};
use crate::core::encode::{Dispatches, Timing};
use crate::core::host_run::HostRun;
use crate::core::precision::widen_all;
use crate::core::shape::Layout;
use crate::core::transfer::STORAGE_OUT;
use crate::core::Context;
use crate::core::{Element, Returns};
use crate::error::Result;
use crate::ops::cross_entropy::cpu::CrossEntropyOutput;
use crate::ops::cross_entropy::host::{
    check_host_inputs, read_outputs, DeviceTargets, OutputBuffers,
};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::{Targets, Weights};
use crate::ops::cross_entropy::CrossEntropyBuffers;

/// **Host API** of vocabulary-parallel cross-entropy: K shards on this device.
impl Context {
    /// [`Context::cross_entropy_with`] split into `shards` vocabulary shards
    /// ([`ClassRange::split`]) run on this one device through partial →
    /// merge → finish, as a model-parallel run does across devices: the
    /// same outputs as the unsharded call within the
    /// [`Tolerance`](crate::Tolerance) (the sums run in another order), bit
    /// for bit the same for the same `shards`. `shards` may exceed C: the
    /// extra shards are empty. The input is stored on the device as `E` is
    /// (f16 needs `SHADER_F16`), its gradient read back widened to f32. Verify mode holds the result to
    /// the CPU twin of the unsharded call on the stored values.
    ///
    /// # Errors
    /// As [`Context::cross_entropy_with`], and [`Error::InvalidOption`](crate::Error::InvalidOption)
    /// for 0 shards.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{Targets, Weights};
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
    /// let t = [1i64, 3, 2];
    /// let opts = Default::default();
    /// let out = ctx.cross_entropy_sharded(&logits, &[3, 5], Targets::I64(&t), Weights::none(), &opts, &Default::default(), 2)?;
    /// assert!((out.scalar().unwrap() - 3.7925).abs() < 1e-4);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy_sharded<E: Element>(
        &self,
        input: &[E],
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
        returns: &Returns,
        shards: usize,
    ) -> Result<CrossEntropyOutput<f32>> {
        let precision = E::PRECISION;
        let layout = Layout::from_dims(dims)?;
        let ranges = ClassRange::split(layout.classes, shards)?;
        let device_targets =
            check_host_inputs(&layout, input.len(), targets, weights, opts, returns)?;
        precision.supported_on(&self.device, "f16 logits and gradients")?;
        let run = self.host_run();
        let sample = run.upload_opt("xent sample weights", weights.sample)?;
        let records = Records::new(self, layout.rows(), shards);
        let shard_bufs = ranges
            .iter()
            .map(|&range| {
                let slices = HostShard::new(input, &layout, &device_targets, weights, range);
                ShardBuffers::new(&run, &slices, &records, &layout, opts, returns)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut encoder = run.encoder();
        for (k, (s, &range)) in shard_bufs.iter().zip(&ranges).enumerate() {
            let partial = VocabPartialBuffers {
                logits: s.logits.slice(..),
                targets: device_targets.buffer(&s.targets),
                weights: s.weights.as_ref().map(|b| b.slice(..)),
                precision,
                partial: s.partial.slice(..),
            };
            self.record_vocab_partial(&mut encoder, dims, range, opts, &partial)?;
            records.gather(&mut encoder, k, &s.partial);
        }
        records.merge(self, &mut encoder, opts)?;
        for (s, &range) in shard_bufs.iter().zip(&ranges) {
            let shard = CrossEntropyBuffers {
                weights: s.weights.as_ref().map(|b| b.slice(..)),
                sample_weights: sample.as_ref().map(|b| b.slice(..)),
                in_place: returns.grad,
                precision,
                ..s.outputs
                    .buffers(s.logits.slice(..), device_targets.buffer(&s.targets))
            };
            let merged = records.merged.slice(..);
            let buffers = VocabFinishBuffers { shard, merged };
            self.record_vocab_finish(&mut encoder, dims, range, opts, &buffers)?;
        }
        // Every shard writes the whole rows' outputs; the first one's are read.
        let mut wanted = shard_bufs[0].outputs.wanted();
        if returns.grad {
            wanted.extend(shard_bufs.iter().map(|s| &s.logits));
        }
        let what = "running the vocabulary-split cross-entropy";
        let mut read = run.finish(encoder, &wanted, what)?;
        let mut out = read_outputs(&mut read, &layout, opts, returns)?;
        out.grad = returns.grad.then(|| {
            let mut g = vec![0.0f32; layout.len()];
            for &range in &ranges {
                let slice = read.widened(precision, layout.rows() * range.len());
                scatter_classes(&mut g, &slice, &layout, range);
            }
            g
        });
        self.inject_fault(out.grad.as_mut(), dims);
        let input32 = || widen_all(input);
        self.verify_cross_entropy(&out, input32, dims, (targets, weights), opts, precision)?;
        Ok(out)
    }
}

/// One shard's slices of a host call's inputs: its classes of the input,
/// of probability targets and of the class weights. Class-index targets are
/// whole in every shard, as on devices of their own (K copies of `rows`
/// 4-byte ids, small beside each shard's records and outputs).
struct HostShard<'a, E> {
    logits: Vec<E>,
    targets: Cow<'a, [u8]>,
    weights: Option<&'a [f32]>,
}

impl<'a, E: Element> HostShard<'a, E> {
    fn new(
        input: &[E],
        layout: &Layout,
        targets: &'a DeviceTargets<'a>,
        weights: Weights<'a>,
        range: ClassRange,
    ) -> Self {
        let targets = match targets.targets {
            Targets::Probs(y) => {
                Cow::Owned(bytemuck::cast_slice(&class_slice(y, layout, range)).to_vec())
            }
            _ => Cow::Borrowed(targets.bytes()),
        };
        Self {
            logits: class_slice(input, layout, range),
            targets,
            weights: weights.class.map(|w| &w[range.start..range.end]),
        }
    }
}

/// One shard's buffers, as on its own device: its slices, its records and
/// its outputs (the gradient in place over its logits).
struct ShardBuffers {
    logits: wgpu::Buffer,
    targets: wgpu::Buffer,
    weights: Option<wgpu::Buffer>,
    partial: wgpu::Buffer,
    outputs: OutputBuffers,
}

impl ShardBuffers {
    fn new<E: Element>(
        run: &HostRun<'_>,
        slices: &HostShard<'_, E>,
        records: &Records,
        layout: &Layout,
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<Self> {
        let logits = bytemuck::cast_slice(&slices.logits);
        Ok(Self {
            logits: run.upload_out("xent shard input", logits)?,
            targets: run.upload("xent shard targets", &slices.targets)?,
            weights: run.upload_opt("xent shard class weights", slices.weights)?,
            partial: records.shard("xent shard records"),
            outputs: OutputBuffers::new(run, layout.rows(), opts.reduction, returns),
        })
    }
}

/// The classes `range` of a tensor of `layout`: `(outer, range.len(), inner)`.
pub(crate) fn class_slice<T: Copy>(x: &[T], layout: &Layout, range: ClassRange) -> Vec<T> {
    let inner = layout.inner;
    let mut out = Vec::with_capacity(layout.outer * range.len() * inner);
    for n in 0..layout.outer {
        let base = n * layout.classes * inner;
        out.extend_from_slice(&x[base + range.start * inner..base + range.end * inner]);
    }
    out
}

/// Writes `slice` (the classes `range`, as [`class_slice`] lays them out)
/// into `dst`, a tensor of `layout`.
pub(crate) fn scatter_classes(dst: &mut [f32], slice: &[f32], layout: &Layout, range: ClassRange) {
    let (inner, width) = (layout.inner, range.len() * layout.inner);
    if width == 0 {
        return;
    }
    for (n, part) in slice.chunks(width).enumerate() {
        let base = n * layout.classes * inner + range.start * inner;
        dst[base..base + width].copy_from_slice(part);
    }
}

/// The records of a split call's shards on one device: each shard's (made
/// by [`Records::shard`]), their all-gather by copies, and the merged ones.
pub(crate) struct Records {
    rows: usize,
    shards: usize,
    /// One shard's records: `rows` records, at least 16 bytes.
    block: u64,
    gathered: wgpu::Buffer,
    pub merged: wgpu::Buffer,
    device: wgpu::Device,
}

impl Records {
    pub(crate) fn new(ctx: &Context, rows: usize, shards: usize) -> Self {
        let block = (rows as u64 * VOCAB_RECORD_BYTES).max(16);
        let device = ctx.device().clone();
        let buffer = |label, size| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: STORAGE_OUT | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        Records {
            rows,
            shards,
            block,
            gathered: buffer("xent gathered records", block * shards as u64),
            merged: buffer("xent merged records", block),
            device,
        }
    }

    /// A buffer for one shard's records.
    pub(crate) fn shard(&self, label: &str) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: self.block,
            usage: STORAGE_OUT,
            mapped_at_creation: false,
        })
    }

    /// The all-gather on one device: shard `k`'s records copied to place `k`.
    pub(crate) fn gather(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: usize,
        partial: &wgpu::Buffer,
    ) {
        let offset = k as u64 * self.block;
        encoder.copy_buffer_to_buffer(partial, 0, &self.gathered, offset, self.block);
    }

    /// The merge of the gathered records into `merged`. (Shard k's records
    /// lie at k · rows records exactly when rows > 0; with no rows the
    /// merge records nothing.)
    pub(crate) fn merge(
        &self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        opts: &CrossEntropyOptions,
    ) -> Result<()> {
        ctx.encode(encoder, &self.prepare_merge(ctx, opts)?, Timing::Off)
    }

    /// The merge, prepared.
    pub(crate) fn prepare_merge(
        &self,
        ctx: &Context,
        opts: &CrossEntropyOptions,
    ) -> Result<Dispatches> {
        let dims = MergeDims {
            rows: self.rows,
            shards: self.shards,
        };
        let buffers = VocabMergeBuffers {
            gathered: self.gathered.slice(..),
            merged: self.merged.slice(..),
        };
        ctx.prepare_vocab_merge(&dims, opts, &buffers)
    }
}
