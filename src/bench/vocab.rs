//! The vocabulary split on one device as a benchmark case
//! (`vocab-split-K:NxC`): K shards, each with its own logits and gradient
//! buffers as on devices of their own; per shard a partial (its records),
//! the records gathered (a copy each) and merged, per shard a finish (its
//! gradient and the loss from the merged records). Timed as one unit, from
//! the first pass's start to the last one's end on the GPU's clock. Its
//! byte count is every call's (and the gather's copies), beside the
//! unsharded call's minimum: split over calls, each row is read twice (by
//! the partial and by the finish), and the records move besides.

use super::data::stored;
use super::{BenchCase, BenchOp};
use crate::core::encode::{Dispatches, Timing};
use crate::core::scratch::buffer_with;
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
use crate::core::{Context, Precision};
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::options::Strategy;
use crate::ops::cross_entropy::traffic::{minimum, TrafficInputs};
use crate::ops::cross_entropy::{CrossEntropyBuffers, TargetBuffer};
use crate::ops::vocab::host::{class_slice, Records};
use crate::ops::vocab::{ClassRange, VocabFinishBuffers, VocabPartialBuffers, VOCAB_RECORD_BYTES};

/// One shard's buffers.
struct Shard {
    range: ClassRange,
    logits: wgpu::Buffer,
    grad: wgpu::Buffer,
    partial: wgpu::Buffer,
}

/// A split case's shards and their records.
pub(crate) struct VocabShards {
    shards: Vec<Shard>,
    records: Records,
}

/// What a split case's calls share: the whole call's shape and precision,
/// its targets, loss and status.
pub(crate) struct SplitCall<'a> {
    pub dims: &'a [usize],
    pub precision: Precision,
    pub targets: wgpu::BufferSlice<'a>,
    pub loss: wgpu::BufferSlice<'a>,
    pub status: wgpu::BufferSlice<'a>,
}

/// A split case's steps in order: a call's dispatches, or shard `k`'s
/// records copied to their place among the gathered ones.
enum Step {
    Call(Dispatches),
    Gather(usize),
}

impl VocabShards {
    /// The shards of a split case (`None` for another op): its logits as
    /// stored, cut.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a forced strategy (the shards run split
    /// rows); the device's refusals of the buffers.
    pub(crate) fn of_case(
        ctx: &Context,
        case: &BenchCase,
        layout: &Layout,
        logits: &[f32],
    ) -> Result<Option<Self>> {
        match case.op {
            BenchOp::VocabSplit(_) if case.strategy != Strategy::Auto => {
                Err(Error::InvalidOption {
                    name: "strategy",
                    value: case.strategy.name().to_string(),
                    expected: "auto for a vocab-split case (its shards run split rows)",
                })
            }
            BenchOp::VocabSplit(k) => Self::new(ctx, layout, k, case.precision, logits).map(Some),
            _ => Ok(None),
        }
    }

    /// `logits` (as stored in `precision`) of `layout` cut into `shards`
    /// ranges of classes, each uploaded on its own.
    pub(crate) fn new(
        ctx: &Context,
        layout: &Layout,
        shards: usize,
        precision: Precision,
        logits: &[f32],
    ) -> Result<Self> {
        let records = Records::new(ctx, layout.rows(), shards);
        let dev = &ctx.device;
        let shards = ClassRange::split(layout.classes, shards)?
            .into_iter()
            .map(|range| {
                let (_, bytes) = stored(precision, &class_slice(logits, layout, range));
                let usage = wgpu::BufferUsages::STORAGE;
                Ok(Shard {
                    range,
                    logits: buffer_with(dev, "bench shard logits", &bytes, usage)?,
                    grad: buffer_with(
                        dev,
                        "bench shard grad",
                        &vec![0; bytes.len()],
                        usage | wgpu::BufferUsages::COPY_SRC,
                    )?,
                    partial: records.shard("bench shard records"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { shards, records })
    }

    /// The steps of one split call, prepared.
    fn steps(&self, ctx: &Context, call: &SplitCall<'_>) -> Result<Vec<Step>> {
        let opts = CrossEntropyOptions::default();
        let targets = TargetBuffer::ClassI32(call.targets);
        let mut steps = Vec::new();
        for (k, s) in self.shards.iter().enumerate() {
            let partial = VocabPartialBuffers {
                logits: s.logits.slice(..),
                targets,
                weights: None,
                precision: call.precision,
                partial: s.partial.slice(..),
            };
            steps.push(Step::Call(
                ctx.prepare_vocab_partial(call.dims, s.range, &opts, &partial)?,
            ));
            steps.push(Step::Gather(k));
        }
        steps.push(Step::Call(self.records.prepare_merge(ctx, &opts)?));
        for s in &self.shards {
            let shard = CrossEntropyBuffers {
                precision: call.precision,
                ..CrossEntropyBuffers::new(
                    s.logits.slice(..),
                    targets,
                    call.loss,
                    Some(s.grad.slice(..)),
                    call.status,
                )
            };
            let merged = self.records.merged.slice(..);
            let buffers = VocabFinishBuffers { shard, merged };
            steps.push(Step::Call(
                ctx.prepare_vocab_finish(call.dims, s.range, &opts, &buffers)?,
            ));
        }
        Ok(steps)
    }

    /// Records the split call, the first pass's start and the last one's
    /// end at timestamps 0 and 1 of `set`; its entry points in order.
    pub(crate) fn record(
        &self,
        ctx: &Context,
        call: &SplitCall<'_>,
        encoder: &mut wgpu::CommandEncoder,
        set: Option<&wgpu::QuerySet>,
    ) -> Result<Vec<&'static str>> {
        let steps = self.steps(ctx, call)?;
        let last = steps.len() - 1;
        let mut entries = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Call(d) => {
                    let writes = set.map(|query_set| wgpu::ComputePassTimestampWrites {
                        query_set,
                        beginning_of_pass_write_index: (i == 0).then_some(0),
                        end_of_pass_write_index: (i == last).then_some(1),
                    });
                    let timing = match writes {
                        Some(w) if i == 0 || i == last => Timing::Whole(w),
                        _ => Timing::Off,
                    };
                    ctx.encode(encoder, d, timing)?;
                    entries.extend(d.entries());
                }
                Step::Gather(k) => self.records.gather(encoder, *k, &self.shards[*k].partial),
            }
        }
        Ok(entries)
    }

    /// Every call's count and the gather's copies, beside the unsharded
    /// call's minimum (the logits and targets read, the gradient, the loss
    /// and the status written).
    pub(crate) fn traffic(&self, ctx: &Context, call: &SplitCall<'_>) -> Result<Traffic> {
        let layout = Layout::from_dims(call.dims)?;
        let inputs = TrafficInputs::bench(call.precision.size(), 1);
        let mut traffic = Traffic::new(minimum(&layout, &inputs));
        for step in self.steps(ctx, call)? {
            match step {
                Step::Call(d) => traffic.extend(&d.traffic.expect("the split's calls are counted")),
                Step::Gather(_) => {
                    let bytes = layout.rows() as u64 * VOCAB_RECORD_BYTES;
                    traffic.read("gather", "records", bytes);
                    traffic.write("gather", "records", bytes);
                }
            }
        }
        Ok(traffic)
    }

    /// Where row `r`'s gradient lies: in each shard, its buffer, first
    /// element and length.
    pub(crate) fn row_pieces(&self, r: usize) -> Vec<(&wgpu::Buffer, usize, usize)> {
        self.shards
            .iter()
            .map(|s| (&s.grad, r * s.range.len(), s.range.len()))
            .collect()
    }
}
