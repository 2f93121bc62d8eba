//! Recording a vocabulary shard's partial, the merge of the shards'
//! records, and a shard's finish into the caller's encoder.

use super::{ClassRange, ShardPass, ShardStage, VOCAB_RECORD_WORDS};
use super::{MergeDims, VocabFinishBuffers, VocabMergeBuffers};
use crate::core::binding::no_aliasing;
use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::encode::{Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::params::{slot, CrossEntropyParams};
use crate::ops::cross_entropy::pipelines::CrossEntropyVariant;
use crate::ops::cross_entropy::strategy::NARROW_WG;
use crate::ops::cross_entropy::{CrossEntropyBuffers, TargetBuffer};

/// The buffers of a shard's partial ([`Context::record_vocab_partial`]),
/// the caller's and from the context's device, each with `STORAGE` usage.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// // A shard of 3 classes of a (2, C) call: its (2, 3) logits, records for 2 rows.
/// let (logits, targets, records) = (buffer(24), buffer(8), buffer(2 * xent::VOCAB_RECORD_BYTES));
/// let b = xent::VocabPartialBuffers { logits: logits.slice(..),
///     targets: xent::TargetBuffer::ClassI32(targets.slice(..)), weights: None,
///     precision: xent::Precision::F32, partial: records.slice(..) };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct VocabPartialBuffers<'a> {
    /// The shard's input, `(N, c1 − c0, d1, …)`, in `precision`.
    pub logits: wgpu::BufferSlice<'a>,
    /// The whole call's targets: class indices of the whole call (one per
    /// row), or the shard's slice of probability targets (the input's shape).
    pub targets: TargetBuffer<'a>,
    /// The shard's class weights `w[c0..c1]`; `None` for all ones.
    pub weights: Option<wgpu::BufferSlice<'a>>,
    /// The input's storage.
    pub precision: Precision,
    /// Written: the shard's records, `rows ×` [`VOCAB_RECORD_BYTES`](crate::VOCAB_RECORD_BYTES).
    pub partial: wgpu::BufferSlice<'a>,
}

/// **Recording API** of vocabulary-parallel cross-entropy: a shard's partial, the merge, a shard's finish.
impl Context {
    /// Records a vocabulary shard's partial: for each row of the call of
    /// shape `dims` (the whole call's, class axis `C`), the statistics of
    /// the shard's classes `range` into `buffers.partial`, one record per
    /// row ([`VOCAB_RECORD_WORDS`](crate::VOCAB_RECORD_WORDS) has the
    /// layout). An empty range writes the merge's identity (count 0). The
    /// options are the call's ([`CrossEntropyOptions`]); the records hold
    /// what every one of them needs, the argmax included.
    ///
    /// Then gather every shard's records in shard order (shard `k`'s range
    /// before shard `k + 1`'s, the ranges tiling `[0, C)`), merge them with
    /// [`Context::record_vocab_merge`] and finish each shard with
    /// [`Context::record_vocab_finish`]. For a given split the results
    /// repeat bit for bit; different splits agree within the
    /// [`Tolerance`](crate::Tolerance) held to the CPU twin (the sums run in
    /// another order).
    ///
    /// # Errors
    /// As [`Context::record_cross_entropy`], and
    /// [`Error::InvalidOption`] for a range past `C`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |b: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: b, usage });
    /// // Classes [2, 5) of a (2, 5) call: this shard holds 2 x 3 logits.
    /// let logits = init(bytemuck::cast_slice(&[3.0f32, 0.0, 1.0, 0.5, 0.5, 0.5]));
    /// let targets = init(bytemuck::cast_slice(&[2i32, 0]));
    /// let partial = init(&[0; 2 * xent::VOCAB_RECORD_BYTES as usize]);
    /// let buffers = xent::VocabPartialBuffers {
    ///     logits: logits.slice(..), targets: xent::TargetBuffer::ClassI32(targets.slice(..)), weights: None,
    ///     precision: xent::Precision::F32, partial: partial.slice(..),
    /// };
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// let range = xent::ClassRange::new(2, 5);
    /// ctx.record_vocab_partial(&mut encoder, &[2, 5], range, &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_vocab_partial(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        range: ClassRange,
        opts: &CrossEntropyOptions,
        buffers: &VocabPartialBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_vocab_partial(dims, range, opts, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// The partial's dispatches.
    pub(crate) fn prepare_vocab_partial(
        &self,
        dims: &[usize],
        range: ClassRange,
        opts: &CrossEntropyOptions,
        b: &VocabPartialBuffers<'_>,
    ) -> Result<Dispatches> {
        let layout = Layout::from_dims(dims)?;
        range.check(layout.classes)?;
        opts.validate()?;
        let rows = layout.rows();
        self.check_buffer("partial", b.partial, (rows * VOCAB_RECORD_WORDS) as u64)?;
        if range.is_empty() || rows == 0 {
            return self.prepare_vocab_empty(rows, b.partial);
        }
        // Never bound: the partial writes no loss and no status.
        let d = {
            let s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            s.dummies.clone()
        };
        let ce = CrossEntropyBuffers {
            weights: b.weights,
            precision: b.precision,
            ..CrossEntropyBuffers::new(
                b.logits,
                b.targets,
                d.loss.slice(..),
                None,
                d.correct.slice(..),
            )
        };
        let phases = self.prepare_cross_entropy_phases(
            dims,
            opts,
            &ce,
            None,
            Some(&ShardPass {
                range,
                stage: ShardStage::Partial { out: b.partial },
            }),
        )?;
        Ok(phases.flatten())
    }

    /// An empty range's partial: the merge's identity record for each of
    /// `rows` rows (nothing for none).
    pub(crate) fn prepare_vocab_empty(
        &self,
        rows: usize,
        partial: wgpu::BufferSlice<'_>,
    ) -> Result<Dispatches> {
        let words = (rows * VOCAB_RECORD_WORDS) as u64;
        self.per_row_dispatch(
            "vocab_empty",
            "an empty range's records",
            rows,
            1,
            CrossEntropyVariant::plain(),
            &[(slot::SHARD_OUT, partial.slice(..words * 4))],
        )
    }

    /// Records the merge of `dims.shards` shards' records: `buffers.gathered`
    /// holds them shard after shard (`shards × rows` records, as an
    /// all-gather of each shard's [`Context::record_vocab_partial`] output
    /// lays them out), merged per row in shard order into `buffers.merged`
    /// (`rows` records).
    /// `opts` is the call's (its input kind decides how the sums merge).
    /// The same records give the same bits.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for 0 shards or more than 16 384 (the loop
    /// bound); [`Error::BadOffset`] for a region at an offset the device cannot
    /// bind; [`Error::BadBuffer`] for a buffer too small, without
    /// `STORAGE`, or `merged` the same as `gathered`; [`Error::Gpu`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE;
    /// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, usage, mapped_at_creation: false });
    /// let dims = xent::MergeDims { rows: 8, shards: 2 };
    /// let gathered = buffer(dims.gathered_bytes());
    /// let merged = buffer(8 * xent::VOCAB_RECORD_BYTES);
    /// let buffers = xent::VocabMergeBuffers { gathered: gathered.slice(..), merged: merged.slice(..) };
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_vocab_merge(&mut encoder, &dims, &Default::default(), &buffers)?;
    /// # Ok(()) }
    /// ```
    pub fn record_vocab_merge(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &MergeDims,
        opts: &CrossEntropyOptions,
        buffers: &VocabMergeBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_vocab_merge(dims, opts, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    pub(crate) fn prepare_vocab_merge(
        &self,
        &MergeDims { rows, shards }: &MergeDims,
        opts: &CrossEntropyOptions,
        &VocabMergeBuffers { gathered, merged }: &VocabMergeBuffers<'_>,
    ) -> Result<Dispatches> {
        opts.validate()?;
        if shards == 0 || shards > LOOP_TRIPS_MAX {
            return Err(Error::InvalidOption {
                name: "shards",
                value: shards.to_string(),
                expected: "1 to 16384 shards",
            });
        }
        let words = rows as u64 * VOCAB_RECORD_WORDS as u64;
        self.check_buffer("gathered", gathered, shards as u64 * words)?;
        self.check_buffer("merged", merged, words)?;
        no_aliasing(&[("merged", merged), ("gathered", gathered)])?;
        let variant = CrossEntropyVariant {
            input_kind: opts.input.code(),
            ..CrossEntropyVariant::plain()
        };
        self.per_row_dispatch(
            "vocab_merge",
            "the vocabulary merge",
            rows,
            shards,
            variant,
            &[
                (slot::SHARD_IN, gathered.slice(..shards as u64 * words * 4)),
                (slot::SHARD_OUT, merged.slice(..words * 4)),
            ],
        )
    }

    /// One dispatch of `entry`, an invocation per row of `rows` (none for
    /// no rows), binding the parameters (`rows`, `shards`) and `records`.
    fn per_row_dispatch(
        &self,
        entry: &'static str,
        label: &'static str,
        rows: usize,
        shards: usize,
        variant: CrossEntropyVariant,
        records: &[(u32, wgpu::BufferSlice<'_>)],
    ) -> Result<Dispatches> {
        let mut list = Vec::new();
        if rows > 0 {
            let scope = GpuScope::push(&self.device);
            let params = CrossEntropyParams {
                rows: rows as u32,
                shards: shards as u32,
                nan: f32::NAN,
                ..bytemuck::Zeroable::zeroed()
            };
            let uniform = self.uniform("xent vocab params", bytemuck::bytes_of(&params))?;
            let pipeline = self.cross_entropy_pipeline(variant, entry, &[])?;
            let mut entries = vec![(
                slot::PARAMS,
                &uniform,
                self.whole_range(uniform.slice(..), 4),
            )];
            entries.extend(
                records
                    .iter()
                    .map(|&(slot, r)| (slot, r.buffer(), (r.offset(), r.size()))),
            );
            let group = self.bind_ranges(&pipeline, &entries);
            let grid = self.grid(rows.div_ceil(NARROW_WG))?;
            list.push((entry, pipeline, group, grid));
            scope.pop(&format!("preparing {label}"))?;
        }
        // Records in, records out (`records`' last region is written): each
        // read or written once, the op's minimum.
        let bytes = |r: &wgpu::BufferSlice<'_>| if rows > 0 { r.size() } else { 0 };
        let (out, ins) = records.split_last().expect("a written region");
        let read: u64 = ins.iter().map(|(_, r)| bytes(r)).sum();
        let mut traffic = Traffic::new(read + bytes(&out.1));
        for (_, r) in ins {
            traffic.read(entry, "records", bytes(r));
        }
        traffic.write(entry, "records", bytes(&out.1));
        Ok(Dispatches::new(label, list, Some(traffic)))
    }

    /// Records a vocabulary shard's finish: from the merged records (of
    /// [`Context::record_vocab_merge`]), the gradient of the shard's
    /// classes `range` into `buffers.grad` (or in place), and the whole
    /// call's loss, log-sum-exp and argmax count into `buffers`' outputs,
    /// as [`Context::record_cross_entropy`] writes them for the unsharded
    /// call; every shard writes the same loss. `dims` is the whole call's
    /// shape; `buffers.logits`, `grad`, `weights` and probability targets
    /// are the shard's (its classes only), the class-index targets and
    /// sample weights the whole call's. Besides bad targets, the status
    /// flags merged records that do not cover each of the call's `C` classes
    /// once (a shard's partial missing from the gather, there twice, or in
    /// another's place; word 3, not the bad-target count):
    /// [`CrossEntropyStatus::records_uncovered`](crate::CrossEntropyStatus::records_uncovered),
    /// which [`CrossEntropyStatus::check`](crate::CrossEntropyStatus::check) makes an error.
    ///
    /// # Errors
    /// As [`Context::record_cross_entropy`], and
    /// [`Error::InvalidOption`] for a range past `C`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |b: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: b, usage });
    /// // The (1, 4) call [1, 2 | 3, 4] in two shards, the merged record known
    /// // (m, s, x_t, r, a, b, argmax and its key, none, key 0, 4 classes,
    /// // 0+1+2+3, t = Σ e^(x−m)·(x−m)).
    /// let (logits, targets) = (init(bytemuck::cast_slice(&[3.0f32, 4.0])), init(&[3, 0, 0, 0]));
    /// let e = |d: f32| d.exp();
    /// let s = 1.0f32 + e(-1.0) + e(-2.0) + e(-3.0);
    /// let t = -e(-1.0) - 2.0 * e(-2.0) - 3.0 * e(-3.0);
    /// let record: [u32; xent::VOCAB_RECORD_WORDS] = [4f32.to_bits(), s.to_bits(),
    ///     4f32.to_bits(), 1f32.to_bits(), 0, 0, 3, 4f32.to_bits() | 1 << 31, u32::MAX, 0, 4, 6,
    ///     t.to_bits()];
    /// let merged = init(bytemuck::cast_slice(&record));
    /// let (loss, grad, status) = (init(&[0; 4]), init(&[0; 8]), init(&[0; 16]));
    /// let shard = xent::CrossEntropyBuffers::new(
    ///     logits.slice(..), xent::TargetBuffer::ClassI32(targets.slice(..)), loss.slice(..), Some(grad.slice(..)), status.slice(..));
    /// let buffers = xent::VocabFinishBuffers { shard, merged: merged.slice(..) };
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// let range = xent::ClassRange::new(2, 4);
    /// ctx.record_vocab_finish(&mut encoder, &[1, 4], range, &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_vocab_finish(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        range: ClassRange,
        opts: &CrossEntropyOptions,
        buffers: &VocabFinishBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_vocab_finish(dims, range, opts, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validates and prepares a shard's finish.
    pub(crate) fn prepare_vocab_finish(
        &self,
        dims: &[usize],
        range: ClassRange,
        opts: &CrossEntropyOptions,
        buffers: &VocabFinishBuffers<'_>,
    ) -> Result<Dispatches> {
        let phases = self.prepare_cross_entropy_phases(
            dims,
            opts,
            &buffers.shard,
            None,
            Some(&ShardPass {
                range,
                stage: ShardStage::Finish {
                    merged: buffers.merged,
                },
            }),
        )?;
        Ok(phases.flatten())
    }
}
