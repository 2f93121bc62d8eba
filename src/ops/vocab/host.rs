//! The host API of a vocabulary-split call run on one device: the shards'
//! partials, their records gathered by copies, the merge, the finishes.

use super::VOCAB_RECORD_BYTES;
use super::{ClassRange, MergeDims, VocabFinishBuffers, VocabMergeBuffers, VocabPartialBuffers};
use crate::core::precision::widen_all;
use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::status::{words, OpStatus};
use crate::core::transfer::{to_f32, STORAGE_OUT};
use crate::core::Context;
use crate::core::Reduction;
use crate::core::{Element, Returns};
use crate::error::{GpuScope, Result};
use crate::ops::cross_entropy::cpu::{self, CrossEntropyOutput};
use crate::ops::cross_entropy::host::narrow_targets;
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::{Targets, Weights};
use crate::ops::cross_entropy::validate;
use crate::ops::cross_entropy::CrossEntropyStatus;
use crate::ops::cross_entropy::{CrossEntropyBuffers, TargetBuffer};

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
        let widen = |w: &[f32]| w.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let (class64, sample64) = (weights.class.map(widen), weights.sample.map(widen));
        validate::inputs(
            &layout,
            input.len(),
            &targets,
            class64.as_deref(),
            sample64.as_deref(),
            opts,
        )?;
        opts.check_returns(returns)?;
        let narrowed = match targets {
            Targets::I64(t) => Some(narrow_targets(&layout, t, opts.ignore_index)?),
            _ => None,
        };
        let class_bytes: Option<&[u8]> = match (&targets, &narrowed) {
            (_, Some(t)) => Some(bytemuck::cast_slice(t)),
            (Targets::I32(t), _) => Some(bytemuck::cast_slice(t)),
            (Targets::U8(t), _) => Some(t),
            _ => None,
        };
        precision.supported_on(&self.device, "f16 logits and gradients")?;
        let input_r = widen_all(input);
        let rows = layout.rows();
        let loss_elems = if opts.reduction == Reduction::None {
            rows
        } else {
            1
        };

        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        let output = |label, elems| self.output(label, elems);
        let class_buf = class_bytes
            .map(|t| self.upload("xent targets", t))
            .transpose()?;
        let sample_buf = weights
            .sample
            .map(|w| self.upload("xent sample weights", bytemuck::cast_slice(w)))
            .transpose()?;
        let records = Records::new(self, rows, shards);
        // Each shard's own slices and outputs, as on its own device.
        struct Shard {
            logits: wgpu::Buffer,
            probs: Option<wgpu::Buffer>,
            weights: Option<wgpu::Buffer>,
            partial: wgpu::Buffer,
            loss: wgpu::Buffer,
            status: wgpu::Buffer,
            lse: Option<wgpu::Buffer>,
            correct: Option<wgpu::Buffer>,
        }
        let mut shard_bufs = Vec::with_capacity(shards);
        for &range in &ranges {
            let logits = self.upload_as(
                "xent shard input",
                bytemuck::cast_slice(&class_slice(input, &layout, range)),
                STORAGE_OUT,
            )?;
            let probs = match targets {
                Targets::Probs(y) => Some(self.upload(
                    "xent shard targets",
                    bytemuck::cast_slice(&class_slice(y, &layout, range)),
                )?),
                _ => None,
            };
            let weights = weights
                .class
                .map(|w| {
                    self.upload(
                        "xent shard class weights",
                        bytemuck::cast_slice(&w[range.start..range.end]),
                    )
                })
                .transpose()?;
            shard_bufs.push(Shard {
                logits,
                probs,
                weights,
                partial: records.shard("xent shard records"),
                loss: output("xent loss", loss_elems),
                status: output("xent status", STATUS_SIZE as usize / 4),
                lse: returns.lse.then(|| output("xent lse", rows)),
                correct: returns.correct.then(|| output("xent correct", 1)),
            });
        }
        let u8_targets = matches!(targets, Targets::U8(_));
        fn target_buffer<'a>(
            class: Option<&'a wgpu::Buffer>,
            probs: Option<&'a wgpu::Buffer>,
            u8_targets: bool,
        ) -> TargetBuffer<'a> {
            match (class, probs) {
                (Some(t), _) if u8_targets => TargetBuffer::ClassU8(t.slice(..)),
                (Some(t), _) => TargetBuffer::ClassI32(t.slice(..)),
                (None, Some(y)) => TargetBuffer::Probs(y.slice(..)),
                (None, None) => unreachable!("probability targets are sliced per shard"),
            }
        }

        let mut encoder = self.device.create_command_encoder(&Default::default());
        for (k, (s, &range)) in shard_bufs.iter().zip(&ranges).enumerate() {
            let partial = VocabPartialBuffers {
                logits: s.logits.slice(..),
                targets: target_buffer(class_buf.as_ref(), s.probs.as_ref(), u8_targets),
                weights: s.weights.as_ref().map(|b| b.slice(..)),
                precision,
                partial: s.partial.slice(..),
            };
            self.record_vocab_partial(&mut encoder, dims, range, opts, &partial)?;
            records.gather(&mut encoder, k, &s.partial);
        }
        records.merge(self, &mut encoder, opts)?;
        let merged = &records.merged;
        for (s, &range) in shard_bufs.iter().zip(&ranges) {
            let shard = CrossEntropyBuffers {
                weights: s.weights.as_ref().map(|b| b.slice(..)),
                sample_weights: sample_buf.as_ref().map(|b| b.slice(..)),
                lse: s.lse.as_ref().map(|b| b.slice(..)),
                correct: s.correct.as_ref().map(|b| b.slice(..)),
                in_place: returns.grad,
                precision,
                ..CrossEntropyBuffers::new(
                    s.logits.slice(..),
                    target_buffer(class_buf.as_ref(), s.probs.as_ref(), u8_targets),
                    s.loss.slice(..),
                    None,
                    s.status.slice(..),
                )
            };
            let buffers = VocabFinishBuffers {
                shard,
                merged: merged.slice(..),
            };
            self.record_vocab_finish(&mut encoder, dims, range, opts, &buffers)?;
        }
        let first = &shard_bufs[0];
        let mut wanted = vec![&first.status, &first.loss];
        wanted.extend(first.lse.as_ref());
        wanted.extend(first.correct.as_ref());
        if returns.grad {
            wanted.extend(shard_bufs.iter().map(|s| &s.logits));
        }
        let bytes = self.download(encoder, &wanted);
        scope.pop("running the vocabulary-split cross-entropy")?;
        drop(guard);
        let bytes = bytes?;
        let mut bytes = bytes.iter();
        let mut next = || bytes.next().map_or(&[][..], |b| &b[..]);
        CrossEntropyStatus::from_bytes(next()).check(&layout, opts.ignore_index)?;
        let loss = to_f32(next(), loss_elems);
        let lse = returns.lse.then(|| to_f32(next(), rows));
        let correct = returns.correct.then(|| u64::from(words(next())[0]));
        let mut grad = returns.grad.then(|| {
            let mut g = vec![0.0f32; layout.len()];
            for &range in &ranges {
                let slice = precision.widen(next(), layout.rows() * range.len());
                scatter_classes(&mut g, &slice, &layout, range);
            }
            g
        });
        if let (Some(fault), Some(g)) = (self.fault, grad.as_mut()) {
            fault.apply(g, &layout);
        }
        let out = CrossEntropyOutput {
            loss,
            loss_dims: if opts.reduction == Reduction::None {
                layout.target_dims()
            } else {
                Vec::new()
            },
            grad,
            lse,
            correct,
            magnitude: None,
        };
        if let Some(tol) = self.verify {
            let reference = cpu::cross_entropy_with(&input_r, dims, targets, weights, opts)?;
            tol.compare_cross_entropy(&out, &reference, &precision.tolerance(tol))?;
        }
        Ok(out)
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
        let dims = MergeDims {
            rows: self.rows,
            shards: self.shards,
        };
        let buffers = VocabMergeBuffers {
            gathered: self.gathered.slice(..),
            merged: self.merged.slice(..),
        };
        ctx.record_vocab_merge(encoder, &dims, opts, &buffers)
    }
}
