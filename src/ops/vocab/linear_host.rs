//! The host API of a vocabulary-split fused linear cross-entropy run on one
//! device.

use super::host::Records;
use super::{ClassRange, LinearFinishBuffers, LinearPartialBuffers};
use crate::core::precision::widen_all;
use crate::core::shape::Layout;
use crate::core::status::{words, OpStatus, STATUS_SIZE};
use crate::core::transfer::to_f32;
use crate::core::Reduction;
use crate::core::{Context, Element, Returns};
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::host::narrow_targets;
use crate::ops::cross_entropy::CrossEntropyStatus;
use crate::ops::cross_entropy::TargetBuffer;
use crate::ops::linear::cpu;
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
    /// [`Error::InvalidOption`] for 0 shards.
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
        let dims = *dims;
        let LinearDims { n, h, v } = dims;
        opts.validate()?;
        opts.loss.check_returns(returns)?;
        let ranges = ClassRange::split(v, shards)?;
        crate::ops::linear::check_lengths(
            dims,
            hidden.len(),
            weight.len(),
            bias.map(<[T]>::len),
            targets.len(),
        )?;
        if let Some(w) = class_weights {
            if w.len() != v {
                return Err(Error::WeightsLength {
                    classes: v,
                    actual: w.len(),
                });
            }
        }
        let layout = Layout::from_dims(&[n, v])?;
        let targets32 = narrow_targets(&layout, targets, opts.loss.ignore_index)?;
        let p = T::PRECISION;
        p.supported_on(&self.device, "f16 hidden states and weights")?;
        let (hidden_r, weight_r) = (widen_all(hidden), widen_all(weight));
        let bias_r = bias.map(widen_all);

        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        let output = |label, elems| self.output(label, elems);
        let hidden_buf = self.upload("xent hidden", bytemuck::cast_slice(hidden))?;
        let targets_buf = self.upload("xent targets", bytemuck::cast_slice(&targets32))?;
        let grads = returns.grad;
        let loss_elems = if opts.loss.reduction == Reduction::None {
            n
        } else {
            1
        };
        let records = Records::new(self, n, shards);
        struct Shard {
            weight: wgpu::Buffer,
            bias: Option<wgpu::Buffer>,
            class_weights: Option<wgpu::Buffer>,
            partial: wgpu::Buffer,
            loss: wgpu::Buffer,
            status: wgpu::Buffer,
            gh: Option<wgpu::Buffer>,
            gw: Option<wgpu::Buffer>,
            gb: Option<wgpu::Buffer>,
            lse: Option<wgpu::Buffer>,
            correct: Option<wgpu::Buffer>,
        }
        let mut shard_bufs = Vec::with_capacity(shards);
        for r in &ranges {
            let (c0, c1) = (r.start, r.end);
            shard_bufs.push(Shard {
                weight: self.upload(
                    "xent shard weight",
                    bytemuck::cast_slice(&weight[c0 * h..c1 * h]),
                )?,
                bias: bias
                    .map(|b| self.upload("xent shard bias", bytemuck::cast_slice(&b[c0..c1])))
                    .transpose()?,
                class_weights: class_weights
                    .map(|w| {
                        self.upload("xent shard class weights", bytemuck::cast_slice(&w[c0..c1]))
                    })
                    .transpose()?,
                partial: records.shard("xent shard records"),
                loss: output("xent loss", loss_elems),
                status: output("xent status", STATUS_SIZE as usize / 4),
                gh: grads.then(|| output("xent grad hidden", n * h)),
                gw: grads.then(|| output("xent grad weight", r.len() * h)),
                gb: (grads && bias.is_some()).then(|| output("xent grad bias", r.len())),
                lse: returns.lse.then(|| output("xent lse", n)),
                correct: returns.correct.then(|| output("xent correct", 1)),
            });
        }

        let mut encoder = self.device.create_command_encoder(&Default::default());
        for (k, (s, &range)) in shard_bufs.iter().zip(&ranges).enumerate() {
            let buffers = LinearPartialBuffers {
                hidden: hidden_buf.slice(..),
                weight: s.weight.slice(..),
                bias: s.bias.as_ref().map(|b| b.slice(..)),
                targets: TargetBuffer::ClassI32(targets_buf.slice(..)),
                weights: s.class_weights.as_ref().map(|b| b.slice(..)),
                partial: s.partial.slice(..),
                precision: p,
            };
            self.record_linear_vocab_partial(&mut encoder, &dims, range, opts, &buffers)?;
            records.gather(&mut encoder, k, &s.partial);
        }
        records.merge(self, &mut encoder, &opts.loss)?;
        let merged = &records.merged;
        for (s, &range) in shard_bufs.iter().zip(&ranges) {
            let shard = LinearBuffers {
                bias: s.bias.as_ref().map(|b| b.slice(..)),
                weights: s.class_weights.as_ref().map(|b| b.slice(..)),
                precision: p,
                grad_hidden: s.gh.as_ref().map(|b| b.slice(..)),
                grad_weight: s.gw.as_ref().map(|b| b.slice(..)),
                grad_bias: s.gb.as_ref().map(|b| b.slice(..)),
                lse: s.lse.as_ref().map(|b| b.slice(..)),
                correct: s.correct.as_ref().map(|b| b.slice(..)),
                ..LinearBuffers::new(
                    hidden_buf.slice(..),
                    s.weight.slice(..),
                    TargetBuffer::ClassI32(targets_buf.slice(..)),
                    s.loss.slice(..),
                    s.status.slice(..),
                )
            };
            let buffers = LinearFinishBuffers {
                shard,
                merged: merged.slice(..),
            };
            self.record_linear_vocab_finish(&mut encoder, &dims, range, opts, &buffers)?;
        }
        let first = &shard_bufs[0];
        let mut wanted = vec![&first.status, &first.loss];
        wanted.extend(first.lse.as_ref());
        wanted.extend(first.correct.as_ref());
        for s in &shard_bufs {
            for b in [&s.gh, &s.gw, &s.gb] {
                wanted.extend(b.as_ref());
            }
        }
        let bytes = self.download(encoder, &wanted);
        scope.pop("running the vocabulary-split fused linear cross-entropy")?;
        drop(guard);
        let bytes = bytes?;
        let mut bytes = bytes.iter();
        let mut next = || bytes.next().map_or(&[][..], |b| &b[..]);
        CrossEntropyStatus::from_bytes(next()).check(&layout, opts.loss.ignore_index)?;
        let loss = to_f32(next(), loss_elems);
        let lse = returns.lse.then(|| to_f32(next(), n));
        let correct = returns.correct.then(|| u64::from(words(next())[0]));
        let mut grad_hidden = grads.then(|| vec![0.0f32; n * h]);
        let mut grad_weight = grads.then(|| Vec::with_capacity(v * h));
        let mut grad_bias = (grads && bias.is_some()).then(|| Vec::with_capacity(v));
        for r in &ranges {
            if let Some(sum) = grad_hidden.as_mut() {
                // The shards' parts of ∂L/∂h, added in shard order.
                for (a, b) in sum.iter_mut().zip(to_f32(next(), n * h)) {
                    *a += b;
                }
            }
            if let Some(gw) = grad_weight.as_mut() {
                gw.extend(to_f32(next(), r.len() * h));
            }
            if let Some(gb) = grad_bias.as_mut() {
                gb.extend(to_f32(next(), r.len()));
            }
        }
        let out = LinearOutput {
            loss,
            grad_hidden,
            grad_weight,
            grad_bias,
            lse,
            correct,
            magnitude: None,
        };
        if let Some(tol) = self.verify {
            let reference = cpu::linear_cross_entropy(
                &hidden_r,
                &weight_r,
                bias_r.as_deref(),
                targets,
                class_weights,
                &dims,
                opts,
            )?;
            tol.compare_linear(&out, &reference)?;
        }
        Ok(out)
    }
}
