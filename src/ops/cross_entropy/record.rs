//! Recording a cross-entropy call into the caller's encoder: its uniform,
//! its pipelines and bind groups, and its dispatches in order.

use super::buffers::{CrossEntropyBuffers, TargetBuffer, TARGET_I32, TARGET_PROBS, TARGET_U8};
use super::params::{slot, CrossEntropyParams};
use super::plan::{CallPlan, PlanInputs, RowStrategy, NARROW_WG};
use super::shard::{ShardPass, ShardStage, VOCAB_RECORD_WORDS};
use super::validate;
use crate::core::binding::no_aliasing;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::Context;
use crate::core::Precision;
use crate::core::Reduction;
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::options::Strategy;
use crate::ops::cross_entropy::options::{CrossEntropyOptions, EmptyMean, InputKind};
use crate::ops::cross_entropy::pipelines::CrossEntropyVariant;

impl Context {
    /// Records the fused cross-entropy forward and backward into `encoder`.
    ///
    /// `dims` is the logits' shape: `(C)`, `(N, C)` or `(N, C, d1, …, dK)`,
    /// class axis 1. One compute pass is recorded: target statistics (the
    /// mean's denominator and the class-index range check, into
    /// `buffers.status`; two dispatches past 8 192 rows, per block of rows
    /// and then their merge), the per-row loss and gradient (one dispatch per
    /// chunk of a tensor larger than one binding; three for few long rows,
    /// split over several workgroups each; two for long rows of C % 4 ≠ 0
    /// with a gradient, the second writing the vec4s that neighbouring rows
    /// share), and the fixed-order reduction of the loss and of the argmax
    /// count (over the same blocks; none for `Reduction::None` without a
    /// count). Nothing is submitted; results are in the caller's buffers
    /// once the caller submits.
    ///
    /// The formulas of every option are on [`CrossEntropyOptions`]; the
    /// gradient is written when `buffers.grad` is given (`compute_grad` and
    /// `count_correct` are host-API switches). Probability targets are not
    /// range-checked on the GPU: the host API checks them on upload.
    ///
    /// Speed: long rows whose class count is not a multiple of 4 run a vec4
    /// kernel when the logits buffer (and `buffers.grad`, if given) is
    /// allocated in whole vec4s (its size rounded up to 16 bytes in f32, 8
    /// in f16), and a slower scalar kernel otherwise. Bytes past the tensor
    /// are read and keep their values.
    ///
    /// Out-of-range targets do not fault the device: their rows get NaN loss
    /// and gradient, and the status buffer names the first of them.
    ///
    /// **The buffers and the encoder must come from this context's device**
    /// ([`Context::device`](crate::Context::device)). A buffer of another device on the same
    /// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`](crate::Error::Gpu), and then
    /// nothing is recorded into `encoder`. Two mistakes cannot be detected:
    /// a buffer of another `wgpu::Instance` (wgpu's ids are per instance, so
    /// it is silently bound as whichever buffer of this device has its id,
    /// or wgpu panics on an id unknown here; see [`CrossEntropyBuffers`]),
    /// and an encoder of another device (wgpu exposes no encoder's device
    /// and checks a pass when the encoder is finished): the call returns
    /// `Ok`, and wgpu reports the mismatch at the caller's
    /// `encoder.finish()`, to the encoder's device (a panic in wgpu's default
    /// handler unless an error scope or `on_uncaptured_error` takes it), and
    /// the submit fails.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::InvalidOption`](crate::Error::InvalidOption);
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a shape no strategy serves within the
    /// loop bound (more than ~268 M rows, class weights over more than ~1 M
    /// classes); [`Error::BadBuffer`](crate::Error::BadBuffer) for a buffer too small for `dims`, without
    /// `STORAGE` usage, one whose part the shape needs is larger than the
    /// device binds (per-row buffers; larger buffers are bound only as far as
    /// the shape needs), or an output that aliases another buffer;
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) when one `(C, d1…dK)` slice, or the per-row
    /// scratch, exceeds the device's largest binding; [`Error::Gpu`](crate::Error::Gpu) for what
    /// wgpu rejects (a buffer of another device, a destroyed buffer, out of
    /// memory), with wgpu's message; [`Error::DeviceLost`](crate::Error::DeviceLost) once the device is
    /// lost.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |contents: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents, usage: storage });
    /// let logits = init(bytemuck::cast_slice(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0]));
    /// let targets = init(bytemuck::cast_slice(&[2i32, 0]));
    /// let empty = |size| dev.create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, usage: storage, mapped_at_creation: false });
    /// let (loss, grad, status) = (empty(4), empty(24), empty(xent::STATUS_SIZE));
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// let buffers = xent::CrossEntropyBuffers::new(
    ///     &logits, xent::TargetBuffer::ClassI32(&targets), &loss, Some(&grad), &status);
    /// ctx.record_cross_entropy(&mut encoder, &[2, 3], &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_cross_entropy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_cross_entropy(dims, opts, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validates a call of [`Context::record_cross_entropy`](crate::Context::record_cross_entropy),
    /// plans it and prepares its dispatches (its uniforms, pipelines and bind
    /// groups), recording nothing: [`Context::encode`] records them, as
    /// `record_cross_entropy` does, or between timestamps for `bench`.
    pub(crate) fn prepare_cross_entropy(
        &self,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
    ) -> Result<Dispatches> {
        let phases = self.prepare_cross_entropy_phases(dims, opts, buffers, None, None)?;
        Ok(phases.flatten())
    }

    /// [`Context::prepare_cross_entropy`] in its three phases, for callers
    /// that interleave their own dispatches with the rows passes. With
    /// `window`, the input is not `buffers.logits` whole but a window of
    /// `window.rows` rows (of the outer axis) that the caller refills before
    /// each chunk's passes: `buffers.logits` is that window (in place, f32),
    /// and chunk `k` covers rows `[k·rows, (k+1)·rows)`.
    ///
    /// With `shard`, `dims` is the whole call's shape and the buffers hold
    /// the shard's range of classes (its input, gradient, class weights and
    /// probability targets): the passes are the shard's partial or finish
    /// (`shaders/cross_entropy/vocab.wgsl`) instead of the rows passes.
    pub(crate) fn prepare_cross_entropy_phases(
        &self,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
        window: Option<RowWindow>,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<Phases> {
        // Catches wgpu's errors on the objects made below (a buffer of
        // another device, a destroyed one); popped before anything is
        // recorded, so a failed call leaves the caller's encoder untouched.
        let scope = GpuScope::push(&self.device);
        let full = Layout::from_dims(dims)?;
        // A shard's own classes (possibly none).
        let layout = match shard {
            Some(s) => {
                s.range.check(full.classes)?;
                full.with_classes(s.range.len())
            }
            None => full.clone(),
        };
        let has_classes = layout.classes > 0;
        // A shard's partial writes only its records: no loss, no status, and
        // always the argmax, which the finish may count.
        let partial = matches!(shard, Some(s) if matches!(s.stage, ShardStage::Partial { .. }));
        let correct = buffers.correct.is_some() || partial;
        opts.validate()?;
        let b = buffers;
        let elems = layout.len() as u64;
        let rows = layout.rows() as u64;
        let loss_elems = if opts.reduction == Reduction::None {
            rows
        } else {
            1
        };
        if matches!(b.targets, TargetBuffer::Probs(_)) {
            validate::probability_targets_ignore(opts)?;
        }
        let (targets, target_kind, target_words) = match b.targets {
            TargetBuffer::ClassI32(t) => (t, TARGET_I32, rows),
            TargetBuffer::ClassU8(t) => (t, TARGET_U8, rows.div_ceil(4)),
            TargetBuffer::Probs(t) => (t, TARGET_PROBS, elems),
        };
        if b.in_place && b.grad.is_some() {
            return Err(Error::BadBuffer {
                what: "grad",
                reason: "in_place writes the gradient into `logits`; pass grad: None".into(),
            });
        }
        if opts.return_lse && b.lse.is_none() && !partial {
            return Err(Error::BadBuffer {
                what: "lse",
                reason: "return_lse is set but no lse buffer was given".into(),
            });
        }
        // Tensors of the input's size are bound a chunk of rows at a time, so
        // they may exceed one binding; per-row buffers are bound whole.
        let chunked_targets = target_kind == TARGET_PROBS;
        let elem = b.precision.size();
        // Storage bindings are whole words: f16 tensors are padded to 4 bytes.
        let padded = (elems * elem).next_multiple_of(4);
        // A window holds `window.rows` rows of the outer axis at a time.
        let slab = (layout.classes * layout.inner) as u64;
        let held = match window {
            Some(w) => {
                if !b.in_place || b.precision != Precision::F32 || w.rows == 0 {
                    return Err(Error::BadBuffer {
                        what: "logits",
                        reason: "a row window is an f32 input written in place".into(),
                    });
                }
                (w.rows.min(layout.outer) as u64 * slab * elem).next_multiple_of(4)
            }
            None => padded,
        };
        if has_classes {
            self.check_bytes("logits", b.logits, held)?;
        }
        self.check_size("targets", targets, target_words)?;
        if !chunked_targets {
            self.check_buffer("targets", targets, target_words)?;
        }
        if let (Some(g), true) = (b.grad, has_classes) {
            self.check_bytes("grad", g, padded)?;
        }
        let optional = [
            ("weights", b.weights, layout.classes as u64),
            ("sample_weights", b.sample_weights, rows),
            ("lse", b.lse, rows),
            ("correct", b.correct, 1),
        ];
        for (what, buffer, need) in optional {
            if let Some(buffer) = buffer {
                self.check_buffer(what, buffer, need)?;
            }
        }
        // An empty batch (no rows) records only the statistics and the
        // reduced loss: NaN for `mean` (0 / 0, as PyTorch), 0 for `sum`.
        let empty = rows == 0;
        if !partial {
            self.check_buffer("loss", b.loss, loss_elems)?;
            self.check_buffer("status", b.status, STATUS_SIZE / 4)?;
        }
        let mut all: Vec<(&'static str, &wgpu::Buffer)> = vec![
            ("logits", b.logits),
            ("targets", targets),
            ("loss", b.loss),
            ("status", b.status),
        ];
        all.extend(b.grad.map(|g| ("grad", g)));
        if let Some(s) = shard {
            let (what, records) = match s.stage {
                ShardStage::Partial { out } => ("partial", out),
                ShardStage::Finish { merged } => ("merged", merged),
            };
            self.check_buffer(what, records, rows * VOCAB_RECORD_WORDS as u64)?;
            all.push((what, records));
        }
        all.extend(
            optional
                .iter()
                .filter_map(|&(what, buffer, _)| buffer.map(|b| (what, b))),
        );
        no_aliasing(&all)?;
        if b.lse.is_some() && opts.input != InputKind::Logits {
            return Err(Error::InvalidOption {
                name: "input",
                value: format!("{:?}", opts.input),
                expected: "logits when an lse buffer is given (log-sum-exp is of logits)",
            });
        }

        // The mixed kernel reads the input and writes the gradient in whole
        // vec4s, up to the vec4 that holds the last element: where the
        // caller's buffers reach it, through the vec4 views; else the same
        // walk through the scalar views (`rows_wide_quads`: the same bits).
        let whole_vec4s = held.next_multiple_of(4 * elem);
        let views4 =
            b.logits.size() >= whole_vec4s && b.grad.is_none_or(|g| g.size() >= whole_vec4s);
        let write_grad = b.grad.is_some() || b.in_place;
        // A shard's passes walk spans of its classes (the split kernels'); an
        // empty shard walks none, planned as one class.
        let planned = match shard {
            Some(_) if !has_classes => layout.with_classes(1),
            _ => layout.clone(),
        };
        let plan = self.plan_cross_entropy(
            &planned,
            PlanInputs {
                elem,
                chunked_targets,
                write_grad,
                weights: b.weights.is_some(),
                correct,
                reduction: opts.reduction,
                strategy: match shard {
                    Some(_) => Strategy::Split,
                    None => opts.strategy,
                },
                vocab: shard.is_some(),
            },
        )?;
        let CallPlan {
            strategy,
            mut chunks,
            flags,
            partials,
            groups,
            aux_bytes,
            row_loss_bytes,
        } = plan;
        if let Some(w) = window {
            chunks = (0..layout.outer)
                .step_by(w.rows)
                .map(|n0| (n0, (n0 + w.rows).min(layout.outer)))
                .collect();
        }
        let params = CrossEntropyParams {
            outer: layout.outer as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            rows: rows as u32,
            ignore_index: opts.ignore_index as i32,
            reduction: opts.reduction.code(),
            smoothing: opts.label_smoothing as f32,
            nan: f32::NAN,
            z_loss: opts.z_loss as f32,
            empty_mean_zero: u32::from(opts.empty_mean == EmptyMean::Zero),
            row_offset: 0,
            row_end: rows as u32,
            splits: strategy.splits() as u32,
            span: match strategy.splits() {
                0 => 0,
                splits => layout.classes.div_ceil(splits) as u32,
            },
            elem_offset: 0,
            target_delta: 0,
            flags: flags as u32,
            neg_inf: f32::NEG_INFINITY,
            groups: groups as u32,
            partials: partials as u32,
            softcap: opts.softcap.unwrap_or(0.0) as f32,
            all_classes: full.classes as u32,
            class_offset: shard.map_or(0, |s| s.range.start) as u32,
            shards: 0,
        };
        let variant = CrossEntropyVariant {
            target_kind,
            input_kind: opts.input.code(),
            has_weights: b.weights.is_some(),
            has_sample_weights: b.sample_weights.is_some(),
            smoothing: opts.label_smoothing != 0.0,
            z_loss: opts.z_loss != 0.0,
            softcap: opts.softcap.is_some(),
            write_grad,
            in_place: b.in_place,
            row_window: window.is_some(),
            sharded: matches!(shard, Some(s) if matches!(s.stage, ShardStage::Finish { .. })),
            precision: b.precision,
            write_lse: b.lse.is_some(),
            count_correct: correct,
        };
        // First, as it finds a lost device (Error::DeviceLost).
        let uniform = self.uniform("xent cross-entropy params", bytemuck::bytes_of(&params))?;
        // Each entry point's pipeline is built when first used.
        let k = |entry: &'static str| self.cross_entropy_pipeline(variant, entry, None);

        let (aux, row_loss, d) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            let aux = s.aux(&self.device, aux_bytes)?;
            let row_loss = match opts.reduction {
                Reduction::None if !empty => b.loss.clone(),
                _ => s.row_loss(&self.device, row_loss_bytes)?,
            };
            (aux, row_loss, s.dummies.clone())
        };
        let weights = b.weights.unwrap_or(&d.read);
        // Without rows, per-row buffers may be empty, and an empty binding is
        // invalid: placeholders the kernels never read take their slots.
        let sample_weights = match b.sample_weights {
            Some(s) if !empty => s,
            _ => &d.read,
        };
        // An empty shard's probability targets are empty too.
        let targets = if empty || (chunked_targets && !has_classes) {
            &d.read
        } else {
            targets
        };
        // A shard's records: the merged ones a finish reads, the partial one
        // a partial writes.
        let (shard_in, shard_out) = match shard.map(|s| &s.stage) {
            Some(ShardStage::Finish { merged }) => (*merged, &d.grad),
            Some(ShardStage::Partial { out }) => (&d.read, *out),
            None => (&d.read, &d.grad),
        };
        // In place, the caller's logits take the gradient slot and the input
        // slot gets a placeholder the kernels never read.
        let (input, grad) = if b.in_place {
            (&d.read, b.logits)
        } else {
            (b.logits, b.grad.unwrap_or(&d.grad))
        };
        let lse = b.lse.unwrap_or(&d.lse);
        let correct = b.correct.unwrap_or(&d.correct);
        let loss_out = if opts.reduction == Reduction::None {
            &d.loss
        } else {
            b.loss
        };

        // Short rows of few classes run the pipeline specialised for C, the
        // team kernels one specialised for their lanes per row.
        let spec = strategy.specialisation(layout.classes);
        // The mixed kernel through its vec4 views (then `mixed_seams`), or
        // through the scalar ones.
        let mixed = strategy == RowStrategy::WideMixed && views4;
        let rows_entry = match strategy {
            RowStrategy::WideMixed if !views4 => "rows_wide_quads",
            _ => strategy.entry(layout.classes),
        };
        // The vec4 kernels (and the mixed one) read and write through
        // bindings 12 and 13.
        let (input_slot, grad_slot) = match strategy {
            s if s.is_vec4() || mixed => (slot::INPUT4, slot::GRAD4),
            _ => (slot::INPUT, slot::GRAD),
        };
        let mut chunk_passes: Vec<Vec<Dispatch>> = Vec::with_capacity(chunks.len());
        for &(n0, n1) in &chunks {
            let mut rows_passes: Vec<Dispatch> = Vec::new();
            let (row0, row1) = (n0 * layout.inner, n1 * layout.inner);
            let (e0, e1) = (n0 as u64 * slab, n1 as u64 * slab);
            // A window's chunk lies at its start.
            let (offset, size, shift) = match window {
                Some(_) => (0, ((e1 - e0) * elem).next_multiple_of(4), 0),
                None => self.chunk_range(e0, e1, elem),
            };
            let (target_offset, target_size, target_shift) = self.chunk_range(e0, e1, 4);
            let (range, target_range) = ((offset, size), (target_offset, target_size));
            let chunk_uniform = if chunks.len() == 1 && window.is_none() {
                uniform.clone()
            } else {
                let p = CrossEntropyParams {
                    row_offset: row0 as u32,
                    row_end: row1 as u32,
                    elem_offset: shift as u32,
                    target_delta: (target_shift as u32).wrapping_sub(shift as u32),
                    ..params
                };
                self.uniform("xent cross-entropy chunk params", bytemuck::bytes_of(&p))?
            };
            // Buffers bound whole: clamped to one binding and to whole words
            // (the kernels never index past what the shape needs, checked above).
            let whole = |b: &wgpu::Buffer| self.whole_range(b, 4);
            let targets_range = if chunked_targets {
                target_range
            } else {
                whole(targets)
            };
            // The mixed kernel's views cover whole vec4s (the buffers' sizes
            // are checked above).
            let range = if mixed {
                (range.0, range.1.next_multiple_of(4 * elem))
            } else {
                range
            };
            let grad_range = if b.grad.is_some() || b.in_place {
                range
            } else {
                whole(grad)
            };
            let input_range = if b.in_place { whole(input) } else { range };
            let all = [
                (slot::PARAMS, &chunk_uniform, whole(&chunk_uniform)),
                (input_slot, input, input_range),
                (slot::TARGETS, targets, targets_range),
                (slot::WEIGHTS, weights, whole(weights)),
                (slot::AUX, &aux, whole(&aux)),
                (slot::ROW_LOSS, &row_loss, whole(&row_loss)),
                (grad_slot, grad, grad_range),
                (slot::SAMPLE_WEIGHTS, sample_weights, whole(sample_weights)),
                (slot::LSE_OUT, lse, whole(lse)),
            ];
            // A shard's buffers, and the status its finish flags uncovered
            // records in (vocab_loss).
            let records = [
                (slot::SHARD_IN, shard_in, whole(shard_in)),
                (slot::SHARD_OUT, shard_out, whole(shard_out)),
                (slot::STATUS, b.status, whole(b.status)),
            ];
            // Each entry point's automatic layout holds just the bindings it uses.
            let pick = |slots: &[u32]| -> Vec<(u32, &wgpu::Buffer, (u64, u64))> {
                all.iter()
                    .chain(&records)
                    .copied()
                    .filter(|e| slots.contains(&e.0))
                    .collect()
            };
            let chunk = Layout {
                outer: n1 - n0,
                ..layout.clone()
            };
            let rows_in_chunk = chunk.rows();
            // One dispatch of `entry` binding `slots`.
            let mut push =
                |entry: &'static str, pipeline: wgpu::ComputePipeline, slots: Vec<_>, grid| {
                    let group = self.bind_ranges(&pipeline, &slots);
                    rows_passes.push((entry, pipeline, group, grid));
                };
            if let Some(shard) = shard {
                let spans = self.grid(rows_in_chunk * strategy.splits())?;
                let per_row = self.grid(rows_in_chunk.div_ceil(NARROW_WG))?;
                let walk = [
                    slot::PARAMS,
                    slot::INPUT,
                    slot::TARGETS,
                    slot::WEIGHTS,
                    slot::AUX,
                    slot::GRAD,
                ];
                match shard.stage {
                    ShardStage::Partial { .. } => {
                        push("split_partial", k("split_partial")?, pick(&walk), spans);
                        if opts.label_smoothing != 0.0 || chunked_targets {
                            push("vocab_sums", k("vocab_sums")?, pick(&walk), spans);
                        }
                        push(
                            "vocab_record",
                            k("vocab_record")?,
                            pick(&[
                                slot::PARAMS,
                                slot::TARGETS,
                                slot::WEIGHTS,
                                slot::AUX,
                                slot::SHARD_OUT,
                            ]),
                            per_row,
                        );
                    }
                    ShardStage::Finish { .. } => {
                        if write_grad && has_classes {
                            let mut slots = walk.to_vec();
                            slots.extend([slot::SAMPLE_WEIGHTS, slot::SHARD_IN]);
                            push("vocab_grad", k("vocab_grad")?, pick(&slots), spans);
                        }
                        push(
                            "vocab_loss",
                            k("vocab_loss")?,
                            pick(&[
                                slot::PARAMS,
                                slot::TARGETS,
                                slot::AUX,
                                slot::ROW_LOSS,
                                slot::SAMPLE_WEIGHTS,
                                slot::LSE_OUT,
                                slot::SHARD_IN,
                                slot::STATUS,
                            ]),
                            per_row,
                        );
                    }
                }
            } else if let RowStrategy::Split { splits } = strategy {
                let spans = self.grid(rows_in_chunk * splits)?;
                push(
                    "split_partial",
                    k("split_partial")?,
                    pick(&[
                        slot::PARAMS,
                        slot::INPUT,
                        slot::TARGETS,
                        slot::WEIGHTS,
                        slot::AUX,
                        slot::GRAD,
                    ]),
                    spans,
                );
                push(
                    "split_rows",
                    k("split_rows")?,
                    pick(&[
                        slot::PARAMS,
                        slot::INPUT,
                        slot::TARGETS,
                        slot::WEIGHTS,
                        slot::AUX,
                        slot::GRAD,
                        slot::SAMPLE_WEIGHTS,
                    ]),
                    spans,
                );
                let finish = self.grid(rows_in_chunk.div_ceil(NARROW_WG))?;
                push(
                    "split_finish",
                    k("split_finish")?,
                    pick(&[
                        slot::PARAMS,
                        slot::TARGETS,
                        slot::WEIGHTS,
                        slot::AUX,
                        slot::ROW_LOSS,
                        slot::SAMPLE_WEIGHTS,
                        slot::LSE_OUT,
                    ]),
                    finish,
                );
            } else {
                let pipeline = self.cross_entropy_pipeline(variant, rows_entry, spec)?;
                push(
                    rows_entry,
                    pipeline,
                    all.to_vec(),
                    self.grid(strategy.workgroups(&chunk))?,
                );
                if mixed && write_grad {
                    // The vec4s shared by neighbouring rows (see the shader).
                    let seams = self.grid(rows_in_chunk.div_ceil(NARROW_WG))?;
                    push(
                        "mixed_seams",
                        k("mixed_seams")?,
                        pick(&[
                            slot::PARAMS,
                            slot::TARGETS,
                            slot::WEIGHTS,
                            slot::AUX,
                            slot::INPUT4,
                            slot::GRAD4,
                        ]),
                        seams,
                    );
                }
            }
            chunk_passes.push(rows_passes);
        }
        // Every dispatch of the pass, in order. Past one block of rows the
        // statistics and the loss take a dispatch per block, then a merge.
        let blocks = groups > 1;
        let reduce = opts.reduction != Reduction::None || b.correct.is_some();
        if partial {
            scope.pop("preparing a vocabulary shard's partial")?;
            return Ok(Phases {
                before: Vec::new(),
                chunks: chunk_passes,
                after: Vec::new(),
            });
        }
        // The block passes bind all but the last entry of their merge's.
        let mut stats_slots = vec![
            (slot::PARAMS, &uniform),
            (slot::TARGETS, targets),
            (slot::WEIGHTS, weights),
            (slot::AUX, &aux),
            (slot::SAMPLE_WEIGHTS, sample_weights),
        ];
        // A shard's finish reads each row's target weight from the merged
        // records (a placeholder otherwise).
        stats_slots.extend([(slot::SHARD_IN, shard_in), (slot::STATUS, b.status)]);
        let loss_slots = [
            (slot::PARAMS, &uniform),
            (slot::AUX, &aux),
            (slot::ROW_LOSS, &row_loss),
            (slot::LOSS_OUT, loss_out),
            (slot::CORRECT_OUT, correct),
        ];
        let mut before: Vec<Dispatch> = Vec::with_capacity(2);
        let mut after: Vec<Dispatch> = Vec::with_capacity(2);
        if blocks {
            // With `targets` again as vec4s over its whole 16-byte units
            // (at least 8 192 rows' worth here).
            let mut entries: Vec<_> = stats_slots[..stats_slots.len() - 1]
                .iter()
                .map(|&(slot, buffer)| (slot, buffer, self.whole_range(buffer, 4)))
                .collect();
            entries.push((slot::TARGETS4, targets, self.whole_range(targets, 16)));
            let pipeline = k("target_partials")?;
            let group = self.bind_ranges(&pipeline, &entries);
            before.push(("target_partials", pipeline, group, (groups as u32, 1)));
        }
        let pipeline = k("target_stats")?;
        let group = self.bind(&pipeline, &stats_slots);
        before.push(("target_stats", pipeline, group, (1, 1)));
        if reduce && blocks {
            let pipeline = k("loss_partials")?;
            let group = self.bind(&pipeline, &loss_slots[..3]);
            after.push(("loss_partials", pipeline, group, (groups as u32, 1)));
        }
        if reduce {
            let pipeline = k("reduce_loss")?;
            let group = self.bind(&pipeline, &loss_slots);
            after.push(("reduce_loss", pipeline, group, (1, 1)));
        }
        scope.pop("preparing the cross-entropy passes")?;
        Ok(Phases {
            before,
            chunks: chunk_passes,
            after,
        })
    }
}

/// A window of rows that holds a call's input a chunk at a time (see
/// [`Context::prepare_cross_entropy_phases`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowWindow {
    /// Rows of the outer axis the window holds.
    pub rows: usize,
}

/// A cross-entropy call's dispatches in three phases: the target
/// statistics, each chunk's rows passes, the reduction.
pub(crate) struct Phases {
    pub before: Vec<Dispatch>,
    pub chunks: Vec<Vec<Dispatch>>,
    pub after: Vec<Dispatch>,
}

impl Phases {
    /// Every dispatch in order, as one call.
    pub(crate) fn flatten(self) -> Dispatches {
        let mut list = self.before;
        list.extend(self.chunks.into_iter().flatten());
        list.extend(self.after);
        Dispatches {
            label: "the cross-entropy pass",
            list,
        }
    }
}
