//! The dispatches of a cross-entropy call: the buffer in each binding slot,
//! each chunk's rows passes (or a vocabulary shard's passes), the target
//! statistics before them and the loss's reduction after them.

use super::check::Checked;
use super::options::CrossEntropyOptions;
use super::params::{slot, CrossEntropyParams};
use super::pipelines::CrossEntropyVariant;
use super::plan::{CallPlan, TILE_ROWS};
use super::record::RowWindow;
use super::shard::{partial_sums, ShardPass, ShardStage};
use super::strategy::{RowStrategy, NARROW_WG};
use super::CrossEntropyBuffers;
use crate::core::binding::Region;
use crate::core::encode::Dispatch;
use crate::core::shape::Layout;
use crate::core::{Context, Reduction};
use crate::error::Result;

/// The buffers a call binds, slot by slot: the caller's where given, the
/// context's scratch, and placeholders the kernels never read in the slots
/// of absent ones (an empty binding is invalid).
pub(crate) struct Bound {
    pub input: Region,
    pub grad: Region,
    pub targets: Region,
    pub weights: Region,
    pub sample_weights: Region,
    pub aux: Region,
    pub row_loss: Region,
    pub lse: Region,
    pub correct: Region,
    pub argmax: Region,
    pub entropy: Region,
    pub loss_out: Region,
    /// A shard's records: the merged ones a finish reads, the partial one
    /// a partial writes.
    pub shard_in: Region,
    pub shard_out: Region,
    pub status: Region,
}

/// How a call's rows run: the strategy, its entry point and specialisation,
/// and the views it reads and writes through.
pub(crate) struct RowsPass {
    pub strategy: RowStrategy,
    pub entry: &'static str,
    pub spec: Vec<(&'static str, u32)>,
    /// `rows_wide_mixed` through its vec4 views, then `mixed_seams`.
    pub mixed: bool,
    /// The rows kernel sums the loss's tiles itself (`TILE_LOSSES`): no
    /// per-row losses, no `loss_tiles`.
    pub tiles: bool,
    pub input_slot: u32,
    pub grad_slot: u32,
}

impl RowsPass {
    /// The pass summing its loss's tiles itself where its kernel can and
    /// the call lets it: a loss reduced over a whole call's rows (no
    /// shard, no window) whose chunks each start at a tile.
    pub(crate) fn with_tiles(
        mut self,
        c: &Checked<'_>,
        reduced: bool,
        chunks: &[(usize, usize)],
    ) -> Self {
        let aligned = chunks
            .iter()
            .all(|&(n0, _)| ((n0 * c.layout.inner) as u64).is_multiple_of(TILE_ROWS));
        self.tiles = reduced && aligned && self.strategy.sums_tiles();
        if self.tiles {
            self.spec.push(("TILE_LOSSES", 1));
        }
        self
    }

    pub(crate) fn new(c: &Checked<'_>, b: &CrossEntropyBuffers<'_>, strategy: RowStrategy) -> Self {
        // The mixed kernel reads the input and writes the gradient in whole
        // vec4s, up to the vec4 that holds the last element: where the
        // caller's buffers reach it, through the vec4 views; else the same
        // walk through the scalar views (`rows_wide_quads`: the same bits).
        let whole_vec4s = c.held.next_multiple_of(4 * c.elem);
        let views4 =
            b.logits.size() >= whole_vec4s && b.grad.is_none_or(|g| g.size() >= whole_vec4s);
        let mixed = strategy == RowStrategy::WideMixed && views4;
        // The vec4 kernels (and the mixed one) read and write through
        // bindings 12 and 13.
        let (input_slot, grad_slot) = match strategy {
            s if s.is_vec4() || mixed => (slot::INPUT4, slot::GRAD4),
            _ => (slot::INPUT, slot::GRAD),
        };
        Self {
            strategy,
            entry: match strategy {
                RowStrategy::WideMixed if !views4 => "rows_wide_quads",
                _ => strategy.entry(c.layout.classes),
            },
            // Short rows of few classes run the pipeline specialised for C,
            // the team kernels one specialised for their lanes per row.
            spec: strategy.specialisation(c.layout.classes),
            mixed,
            tiles: false,
            input_slot,
            grad_slot,
        }
    }
}

/// Everything a call's dispatches are made from.
pub(crate) struct CallState<'a> {
    pub checked: Checked<'a>,
    pub opts: &'a CrossEntropyOptions,
    pub b: &'a CrossEntropyBuffers<'a>,
    pub shard: Option<&'a ShardPass<'a>>,
    pub window: Option<RowWindow>,
    pub params: CrossEntropyParams,
    pub variant: CrossEntropyVariant,
    pub uniform: wgpu::Buffer,
    pub bound: Bound,
    pub rows: RowsPass,
    /// Whether the call runs in more than one chunk (each with a uniform of its own).
    pub chunked: bool,
}

/// The bindings of the passes that walk a span of each row's classes
/// (`split_partial`, `vocab_sums`; the others add to them).
const SPAN_WALK: [u32; 6] = [
    slot::PARAMS,
    slot::INPUT,
    slot::TARGETS,
    slot::WEIGHTS,
    slot::AUX,
    slot::GRAD,
];

/// One chunk's bindings, (slot, buffer, byte range): the rows passes' nine,
/// then a shard's records and the status its finish flags them in.
struct ChunkSlots {
    rows: Vec<(u32, wgpu::Buffer, (u64, u64))>,
    records: Vec<(u32, wgpu::Buffer, (u64, u64))>,
}

impl ChunkSlots {
    /// The rows passes' bindings.
    fn all(&self) -> Vec<(u32, &wgpu::Buffer, (u64, u64))> {
        self.rows.iter().map(|(s, b, r)| (*s, b, *r)).collect()
    }

    /// The bindings of `slots` only: each entry point's automatic layout
    /// holds just the bindings it uses.
    fn pick(&self, slots: &[u32]) -> Vec<(u32, &wgpu::Buffer, (u64, u64))> {
        let every = self.rows.iter().chain(&self.records);
        every
            .filter(|e| slots.contains(&e.0))
            .map(|(s, b, r)| (*s, b, *r))
            .collect()
    }
}

impl Context {
    /// The buffers of each slot for a call planned as `plan`.
    pub(crate) fn bound_buffers(
        &self,
        c: &Checked<'_>,
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'_>,
        plan: &CallPlan,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<Bound> {
        // An empty batch has no rows: per-row buffers may be empty.
        let empty = c.layout.rows() == 0;
        let (aux, row_loss, d) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            let aux = s.aux(&self.device, plan.aux_bytes)?;
            let row_loss = match opts.reduction {
                Reduction::None if !empty => Region::of(b.loss),
                _ => Region::whole(&s.row_loss(&self.device, plan.row_loss_bytes)?),
            };
            (Region::whole(&aux), row_loss, s.dummies.clone())
        };
        let or = |given: Option<wgpu::BufferSlice<'_>>, placeholder: &wgpu::Buffer| {
            given.map_or_else(|| Region::whole(placeholder), Region::of)
        };
        let or_read = |given| or(given, &d.read);
        // An empty shard's probability targets are empty too.
        let no_targets = empty || (c.chunked_targets && c.layout.classes == 0);
        let (shard_in, shard_out) = match shard.map(|s| &s.stage) {
            Some(&ShardStage::Finish { merged }) => (Region::of(merged), Region::whole(&d.grad)),
            Some(&ShardStage::Partial { out }) => (Region::whole(&d.read), Region::of(out)),
            None => (Region::whole(&d.read), Region::whole(&d.grad)),
        };
        // In place, the caller's logits take the gradient slot and the input
        // slot gets a placeholder the kernels never read.
        let (input, grad) = match b.in_place {
            true => (Region::whole(&d.read), Region::of(b.logits)),
            false => (Region::of(b.logits), or(b.grad, &d.grad)),
        };
        Ok(Bound {
            input,
            grad,
            targets: or_read((!no_targets).then_some(c.targets)),
            weights: or_read(b.weights),
            sample_weights: or_read(b.sample_weights.filter(|_| !empty)),
            aux,
            row_loss,
            lse: or(b.lse, &d.lse),
            correct: or(b.correct, &d.correct),
            argmax: or(b.argmax, &d.correct),
            entropy: or(b.entropy, &d.lse),
            loss_out: match opts.reduction {
                Reduction::None => Region::whole(&d.loss),
                _ => Region::of(b.loss),
            },
            shard_in,
            shard_out,
            status: Region::of(b.status),
        })
    }

    /// The bindings of the chunk of outer rows `[n0, n1)`.
    fn chunk_slots(&self, s: &CallState<'_>, (n0, n1): (usize, usize)) -> Result<ChunkSlots> {
        let (c, bound) = (&s.checked, &s.bound);
        let (e0, e1) = (n0 as u64 * c.slab, n1 as u64 * c.slab);
        // A window's chunk lies at its start.
        let (offset, size, shift) = match s.window {
            Some(_) => (0, ((e1 - e0) * c.elem).next_multiple_of(4), 0),
            None => self.chunk_range(e0, e1, c.elem),
        };
        let (target_offset, target_size, target_shift) = self.chunk_range(e0, e1, 4);
        let uniform = if s.chunked || s.window.is_some() {
            let p = CrossEntropyParams {
                row_offset: (n0 * c.layout.inner) as u32,
                row_end: (n1 * c.layout.inner) as u32,
                elem_offset: shift as u32,
                target_delta: (target_shift as u32).wrapping_sub(shift as u32),
                ..s.params
            };
            self.uniform("xent cross-entropy chunk params", bytemuck::bytes_of(&p))?
        } else {
            s.uniform.clone()
        };
        // Buffers bound whole: clamped to one binding and to whole words
        // (the kernels never index past what the shape needs, checked).
        let whole = |b: &Region| (b.buffer.clone(), self.whole_range(b.slice(), 4));
        let targets = match c.chunked_targets {
            true => (
                bound.targets.buffer.clone(),
                (bound.targets.offset + target_offset, target_size),
            ),
            false => whole(&bound.targets),
        };
        // The mixed kernel's vec4 views cover whole vec4s (the buffers'
        // sizes are checked).
        let range = match s.rows.mixed {
            true => (offset, size.next_multiple_of(4 * c.elem)),
            false => (offset, size),
        };
        let tensor = |b: &Region, own: bool| match own {
            true => (b.buffer.clone(), (b.offset + range.0, range.1)),
            false => whole(b),
        };
        let (b, slots) = (s.b, |(slot, (buffer, range))| (slot, buffer, range));
        let rows = [
            (slot::PARAMS, whole(&Region::whole(&uniform))),
            (s.rows.input_slot, tensor(&bound.input, !b.in_place)),
            (slot::TARGETS, targets),
            (slot::WEIGHTS, whole(&bound.weights)),
            (slot::AUX, whole(&bound.aux)),
            (slot::ROW_LOSS, whole(&bound.row_loss)),
            (
                s.rows.grad_slot,
                tensor(&bound.grad, b.grad.is_some() || b.in_place),
            ),
            (slot::SAMPLE_WEIGHTS, whole(&bound.sample_weights)),
            (slot::LSE_OUT, whole(&bound.lse)),
        ];
        let records = [
            (slot::SHARD_IN, whole(&bound.shard_in)),
            (slot::SHARD_OUT, whole(&bound.shard_out)),
            (slot::STATUS, whole(&bound.status)),
        ];
        Ok(ChunkSlots {
            rows: rows.into_iter().map(slots).collect(),
            records: records.into_iter().map(slots).collect(),
        })
    }

    /// One dispatch of `entry` binding `slots` over `grid`.
    pub(super) fn dispatch(
        &self,
        entry: &'static str,
        pipeline: wgpu::ComputePipeline,
        slots: &[(u32, &wgpu::Buffer, (u64, u64))],
        grid: (u32, u32),
    ) -> Dispatch {
        let group = self.bind_ranges(&pipeline, slots);
        (entry, pipeline, group, grid)
    }

    /// The rows passes of the chunk of outer rows `[n0, n1)` (a shard's
    /// passes for a shard).
    pub(crate) fn chunk_dispatches(
        &self,
        s: &CallState<'_>,
        (n0, n1): (usize, usize),
    ) -> Result<Vec<Dispatch>> {
        let slots = self.chunk_slots(s, (n0, n1))?;
        let chunk = Layout {
            outer: n1 - n0,
            ..s.checked.layout.clone()
        };
        match (s.shard, s.rows.strategy) {
            (Some(shard), _) => self.shard_dispatches(s, shard, &slots, chunk.rows()),
            (None, RowStrategy::Split { splits }) => {
                self.split_dispatches(s, &slots, chunk.rows(), splits)
            }
            (None, _) => self.rows_dispatches(s, &slots, &chunk),
        }
    }

    /// The rows kernel over the chunk, then, for the mixed kernel with a
    /// gradient, the vec4s neighbouring rows share (see the shader).
    fn rows_dispatches(
        &self,
        s: &CallState<'_>,
        slots: &ChunkSlots,
        chunk: &Layout,
    ) -> Result<Vec<Dispatch>> {
        let rows = &s.rows;
        let pipeline = self.cross_entropy_pipeline(s.variant, rows.entry, &rows.spec)?;
        let grid = self.grid(rows.strategy.workgroups(chunk))?;
        let mut list = vec![self.dispatch(rows.entry, pipeline, &slots.all(), grid)];
        if rows.mixed && s.variant.write_grad {
            let seams = [
                slot::PARAMS,
                slot::TARGETS,
                slot::WEIGHTS,
                slot::AUX,
                slot::INPUT4,
                slot::GRAD4,
            ];
            let grid = self.grid(chunk.rows().div_ceil(NARROW_WG))?;
            let pipeline = self.cross_entropy_pipeline(s.variant, "mixed_seams", &[])?;
            list.push(self.dispatch("mixed_seams", pipeline, &slots.pick(&seams), grid));
        }
        Ok(list)
    }

    /// Rows split over `splits` spans each: the spans' partials, each span's
    /// gradient and loss terms from the merged partials, each row's loss.
    fn split_dispatches(
        &self,
        s: &CallState<'_>,
        slots: &ChunkSlots,
        rows: usize,
        splits: usize,
    ) -> Result<Vec<Dispatch>> {
        let spans = self.grid(rows * splits)?;
        let per_row = self.grid(rows.div_ceil(NARROW_WG))?;
        let walk = SPAN_WALK;
        let mut rows_slots = walk.to_vec();
        rows_slots.push(slot::SAMPLE_WEIGHTS);
        let finish = [
            slot::PARAMS,
            slot::TARGETS,
            slot::WEIGHTS,
            slot::AUX,
            slot::ROW_LOSS,
            slot::SAMPLE_WEIGHTS,
            slot::LSE_OUT,
        ];
        let passes: [(&str, &[u32], (u32, u32)); 3] = [
            ("split_partial", &walk, spans),
            ("split_rows", &rows_slots, spans),
            ("split_finish", &finish, per_row),
        ];
        self.passes(s, slots, &passes)
    }

    /// A vocabulary shard's passes over the chunk: the partial's records, or
    /// the finish's gradient and loss from the merged records.
    fn shard_dispatches(
        &self,
        s: &CallState<'_>,
        shard: &ShardPass<'_>,
        slots: &ChunkSlots,
        rows: usize,
    ) -> Result<Vec<Dispatch>> {
        let spans = self.grid(rows * s.rows.strategy.splits())?;
        let per_row = self.grid(rows.div_ceil(NARROW_WG))?;
        let walk = SPAN_WALK;
        let mut passes: Vec<(&str, Vec<u32>, (u32, u32))> = Vec::new();
        match shard.stage {
            ShardStage::Partial { .. } => {
                passes.push(("split_partial", walk.to_vec(), spans));
                if partial_sums(s.opts, s.checked.chunked_targets) {
                    passes.push(("vocab_sums", walk.to_vec(), spans));
                }
                let record = [
                    slot::PARAMS,
                    slot::TARGETS,
                    slot::WEIGHTS,
                    slot::AUX,
                    slot::SHARD_OUT,
                ];
                passes.push(("vocab_record", record.to_vec(), per_row));
            }
            ShardStage::Finish { .. } => {
                if s.variant.write_grad && s.checked.layout.classes > 0 {
                    let mut grad = walk.to_vec();
                    grad.extend([slot::SAMPLE_WEIGHTS, slot::SHARD_IN]);
                    passes.push(("vocab_grad", grad, spans));
                }
                let loss = [
                    slot::PARAMS,
                    slot::TARGETS,
                    slot::AUX,
                    slot::ROW_LOSS,
                    slot::SAMPLE_WEIGHTS,
                    slot::LSE_OUT,
                    slot::SHARD_IN,
                    slot::STATUS,
                ];
                passes.push(("vocab_loss", loss.to_vec(), per_row));
            }
        }
        let passes: Vec<_> = passes.iter().map(|(e, v, g)| (*e, &v[..], *g)).collect();
        self.passes(s, slots, &passes)
    }

    /// A dispatch per (entry point, slots, grid), in order.
    fn passes(
        &self,
        s: &CallState<'_>,
        slots: &ChunkSlots,
        passes: &[(&'static str, &[u32], (u32, u32))],
    ) -> Result<Vec<Dispatch>> {
        passes
            .iter()
            .map(|&(entry, wanted, grid)| {
                let pipeline = self.cross_entropy_pipeline(s.variant, entry, &[])?;
                Ok(self.dispatch(entry, pipeline, &slots.pick(wanted), grid))
            })
            .collect()
    }
}
