//! One host-API call on the device, the part every op's host call shares:
//! the host lock and a GPU error scope held from the first upload to the
//! readback, the buffers the call makes, the submit and wait, the outputs
//! read back in order, and the fault a mutation test injects.

use std::sync::MutexGuard;

use super::shape::Layout;
use super::status::{words, OpStatus, STATUS_SIZE};
use super::transfer::{to_f32, STORAGE_IN, STORAGE_OUT};
use super::{Context, Precision};
use crate::error::{GpuScope, Result};

/// A host call in progress: made by [`Context::host_run`], ended by
/// [`HostRun::finish`]. Dropped early (an error), its scope's errors are
/// discarded and the lock released.
pub(crate) struct HostRun<'c> {
    ctx: &'c Context,
    scope: GpuScope,
    // Declared last: released after the scope is popped.
    _guard: MutexGuard<'c, ()>,
}

impl Context {
    /// Starts a host call: takes the host lock (see `Context::host_lock`)
    /// and opens an error scope over everything the call does on the device.
    pub(crate) fn host_run(&self) -> HostRun<'_> {
        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        HostRun {
            ctx: self,
            scope: GpuScope::push(&self.device),
            _guard: guard,
        }
    }

    /// Applies the injected fault (mutation tests) to a result of shape
    /// `dims` (class axis 1, as [`Layout`] reads it); an empty one is left.
    pub(crate) fn inject_fault(&self, values: Option<&mut Vec<f32>>, dims: &[usize]) {
        if let (Some(fault), Some(v)) = (self.fault, values) {
            if let (false, Ok(layout)) = (v.is_empty(), Layout::from_dims(dims)) {
                fault.apply(v, &layout);
            }
        }
    }
}

impl HostRun<'_> {
    /// An input buffer holding `bytes` (padded with zeros to whole vec4s,
    /// at least one), read by the kernels. An upload finds a lost device
    /// ([`Error::DeviceLost`](crate::Error::DeviceLost)).
    pub(crate) fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.ctx.upload_as(label, bytes, STORAGE_IN)
    }

    /// An input the call also writes and reads back (a gradient in place).
    pub(crate) fn upload_out(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.ctx.upload_as(label, bytes, STORAGE_OUT)
    }

    /// An optional input of plain values (weights, a bias).
    pub(crate) fn upload_opt<T: bytemuck::Pod>(
        &self,
        label: &str,
        values: Option<&[T]>,
    ) -> Result<Option<wgpu::Buffer>> {
        values
            .map(|v| self.upload(label, bytemuck::cast_slice(v)))
            .transpose()
    }

    /// An output of `words` 4-byte words (at least one: an empty output
    /// still reads back a buffer).
    pub(crate) fn output(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.ctx.output(label, words)
    }

    /// An output the call writes when `wanted`.
    pub(crate) fn output_if(
        &self,
        wanted: bool,
        label: &str,
        words: usize,
    ) -> Option<wgpu::Buffer> {
        wanted.then(|| self.output(label, words))
    }

    /// The status output of an op that reports bad input.
    pub(crate) fn status(&self) -> wgpu::Buffer {
        self.output("xent status", STATUS_SIZE as usize / 4)
    }

    /// A command encoder on the context's device.
    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx.device.create_command_encoder(&Default::default())
    }

    /// Submits `encoder` with copies of `wanted`, waits, and returns their
    /// bytes in order. [`Error::Gpu`](crate::Error::Gpu) naming `what` when
    /// the scope caught an error, or the readback's error
    /// ([`Error::DeviceLost`](crate::Error::DeviceLost), [`Error::Gpu`](crate::Error::Gpu)).
    pub(crate) fn finish(
        self,
        encoder: wgpu::CommandEncoder,
        wanted: &[&wgpu::Buffer],
        what: &str,
    ) -> Result<Readback> {
        let bytes = self.ctx.download(encoder, wanted);
        self.scope.pop(what)?;
        Ok(Readback {
            bytes: bytes?.into_iter(),
        })
    }
}

/// The outputs a host call read back, taken in the order they were wanted.
/// Taking past the end gives empty bytes (NaN values, a zero status), never
/// a panic.
pub(crate) struct Readback {
    bytes: std::vec::IntoIter<Vec<u8>>,
}

impl Readback {
    /// The next output's bytes.
    fn next_bytes(&mut self) -> Vec<u8> {
        self.bytes.next().unwrap_or_default()
    }

    /// The next output as `elems` f32 values.
    pub(crate) fn f32s(&mut self, elems: usize) -> Vec<f32> {
        to_f32(&self.next_bytes(), elems)
    }

    /// The next output as `elems` values stored in `precision`, widened
    /// exactly to f32.
    pub(crate) fn widened(&mut self, precision: Precision, elems: usize) -> Vec<f32> {
        precision.widen(&self.next_bytes(), elems)
    }

    /// The next output as a status of type `S`.
    pub(crate) fn status<S: OpStatus>(&mut self) -> S {
        S::from_bytes(&self.next_bytes())
    }

    /// The next output as `elems` i32 values, widened to i64 (missing
    /// bytes read as −1, never a class).
    pub(crate) fn i64s(&mut self, elems: usize) -> Vec<i64> {
        let bytes = self.next_bytes();
        let word = |i: usize| {
            bytes
                .get(4 * i..4 * i + 4)
                .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        };
        (0..elems).map(|i| word(i).map_or(-1, i64::from)).collect()
    }

    /// The next output as a count (its first word).
    pub(crate) fn count(&mut self) -> u64 {
        u64::from(words(&self.next_bytes())[0])
    }
}
