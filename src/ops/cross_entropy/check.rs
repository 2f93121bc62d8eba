//! The checks of a recorded cross-entropy call (its shape, options and
//! buffers), made before anything is planned or created, so a bad call
//! leaves the caller's encoder untouched.

use super::buffers::{CrossEntropyBuffers, TargetBuffer, TARGET_I32, TARGET_PROBS, TARGET_U8};
use super::options::CrossEntropyOptions;
use super::record::RowWindow;
use super::shard::{ShardPass, ShardStage, VOCAB_RECORD_WORDS};
use super::validate;
use crate::core::binding::no_aliasing;

use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::{Context, Precision, Reduction};
use crate::error::{Error, Result};

/// What the checks found of a call, for its plan and its bindings.
pub(crate) struct Checked<'a> {
    /// The whole call's shape.
    pub full: Layout,
    /// The classes this call walks: a shard's range (possibly none), else all.
    pub layout: Layout,
    /// A shard's partial, which writes only its records: no loss, no
    /// status, and always the argmax, which the finish may count.
    pub partial: bool,
    /// Whether the argmax is counted.
    pub correct: bool,
    /// Whether each row's predicted class and entropy are written.
    pub argmax: bool,
    pub entropy: bool,
    pub targets: wgpu::BufferSlice<'a>,
    /// `TARGET_*` of the targets buffer.
    pub target_kind: u32,
    /// Probability targets: bound a chunk at a time, as the input is.
    pub chunked_targets: bool,
    /// Bytes per input element.
    pub elem: u64,
    /// Elements per index of the outer axis.
    pub slab: u64,
    /// Bytes of input the logits buffer holds: a window's rows, or the
    /// tensor's rounded up to whole words.
    pub held: u64,
}

impl Context {
    /// The checks of a call of `prepare_cross_entropy_phases`, in the order
    /// their errors take precedence.
    pub(crate) fn check_cross_entropy<'a>(
        &self,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'a>,
        window: Option<RowWindow>,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<Checked<'a>> {
        let full = Layout::from_dims(dims)?;
        let layout = match shard {
            Some(s) => {
                s.range.check(full.classes)?;
                full.with_classes(s.range.len())
            }
            None => full.clone(),
        };
        let partial = matches!(shard, Some(s) if matches!(s.stage, ShardStage::Partial { .. }));
        opts.validate()?;
        check_options(opts, b)?;
        let rows = layout.rows() as u64;
        let (targets, target_kind, target_words) = match b.targets {
            TargetBuffer::ClassI32(t) => (t, TARGET_I32, rows),
            TargetBuffer::ClassU8(t) => (t, TARGET_U8, rows.div_ceil(4)),
            TargetBuffer::Probs(t) => (t, TARGET_PROBS, layout.len() as u64),
        };
        let elem = b.precision.size();
        let slab = (layout.classes * layout.inner) as u64;
        let held = match window {
            Some(w) => window_bytes(b, w, &layout, slab)?,
            None => (layout.len() as u64 * elem).next_multiple_of(4),
        };
        let checked = Checked {
            full,
            layout,
            partial,
            correct: b.correct.is_some() || partial,
            argmax: b.argmax.is_some() && !partial,
            entropy: b.entropy.is_some() && !partial,
            targets,
            target_kind,
            chunked_targets: target_kind == TARGET_PROBS,
            elem,
            slab,
            held,
        };
        self.check_buffers(&checked, opts, b, target_words, shard)?;
        Ok(checked)
    }

    /// Each buffer's usage and size, and that no output aliases another buffer.
    fn check_buffers(
        &self,
        c: &Checked<'_>,
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'_>,
        target_words: u64,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<()> {
        let rows = c.layout.rows() as u64;
        let has_classes = c.layout.classes > 0;
        if has_classes {
            self.check_bytes("logits", b.logits, c.held)?;
        }
        // Per-row buffers are bound whole; tensors of the input's size a
        // chunk of rows at a time, so they may exceed one binding.
        self.check_size("targets", c.targets, target_words)?;
        if !c.chunked_targets {
            self.check_buffer("targets", c.targets, target_words)?;
        }
        if let (Some(g), true) = (b.grad, has_classes) {
            // Storage bindings are whole words: f16 tensors are padded to 4 bytes.
            let padded = (c.layout.len() as u64 * c.elem).next_multiple_of(4);
            self.check_bytes("grad", g, padded)?;
        }
        let optional = [
            ("weights", b.weights, c.layout.classes as u64),
            ("sample_weights", b.sample_weights, rows),
            ("lse", b.lse, rows),
            ("correct", b.correct, 1),
            ("argmax", b.argmax, rows),
            ("entropy", b.entropy, rows),
        ];
        for (what, buffer, need) in optional {
            if let Some(buffer) = buffer {
                self.check_buffer(what, buffer, need)?;
            }
        }
        if !c.partial {
            let loss_elems = if opts.reduction == Reduction::None {
                rows
            } else {
                1
            };
            self.check_buffer("loss", b.loss, loss_elems)?;
            self.check_buffer("status", b.status, STATUS_SIZE / 4)?;
        }
        let mut all = vec![
            ("logits", b.logits),
            ("targets", c.targets),
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
        of_logits(opts, b)
    }
}

/// The outputs of logits alone (lse, predicted class, entropy) with
/// another input: [`Error::InvalidOption`] naming the input.
fn of_logits(opts: &CrossEntropyOptions, b: &CrossEntropyBuffers<'_>) -> Result<()> {
    let of_logits = [
        (
            b.lse.is_some(),
            "logits when an lse buffer is given (log-sum-exp is of logits)",
        ),
        (
            b.argmax.is_some(),
            "logits when an argmax buffer is given (the predicted class is of logits)",
        ),
        (
            b.entropy.is_some(),
            "logits when an entropy buffer is given (the entropy is of the logits' softmax)",
        ),
    ];
    opts.logits_only(&of_logits)
}

/// The options against the buffers given.
fn check_options(opts: &CrossEntropyOptions, b: &CrossEntropyBuffers<'_>) -> Result<()> {
    if matches!(b.targets, TargetBuffer::Probs(_)) {
        validate::probability_targets_ignore(opts)?;
    }
    if b.in_place && b.grad.is_some() {
        return Err(Error::BadBuffer {
            what: "grad",
            reason: "in_place writes the gradient into `logits`; pass grad: None".into(),
        });
    }
    Ok(())
}

/// Bytes a row window of `w.rows` rows of the outer axis holds: an f32
/// input written in place.
fn window_bytes(
    b: &CrossEntropyBuffers<'_>,
    w: RowWindow,
    layout: &Layout,
    slab: u64,
) -> Result<u64> {
    if !b.in_place || b.precision != Precision::F32 || w.rows == 0 {
        return Err(Error::BadBuffer {
            what: "logits",
            reason: "a row window is an f32 input written in place".into(),
        });
    }
    Ok((w.rows.min(layout.outer) as u64 * slab * 4).next_multiple_of(4))
}
