//! The byte yardstick of softmax and its backward (`src/core/traffic.rs`).
//! The minimum reads each input once and writes the output once: x and y
//! forward; y and dy in, dx out backward. A team that holds its row reads it
//! once; every other kernel reads its row twice (the row's statistics, then
//! the output), and split rows also write and read their spans' partials.

use super::plan::{SoftmaxDirection, SoftmaxStrategy};
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
use crate::core::Precision;

/// Bytes of one split span's partial (a vec2 of f32).
const PARTIAL_BYTES: u64 = 8;

/// What the count needs of a call besides its strategy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoftmaxTraffic {
    /// Bytes of one tensor (input, output or gradient) and its rows.
    tensor: u64,
    rows: u64,
    direction: SoftmaxDirection,
}

impl SoftmaxTraffic {
    pub(crate) fn new(layout: &Layout, precision: Precision, direction: SoftmaxDirection) -> Self {
        Self {
            tensor: layout.len() as u64 * precision.size(),
            rows: layout.rows() as u64,
            direction,
        }
    }

    /// The tensors read, and the one written.
    fn buffers(&self) -> (&'static [&'static str], &'static str) {
        match self.direction {
            SoftmaxDirection::Forward => (&["input"], "output"),
            SoftmaxDirection::Backward => (&["output", "grad_output"], "grad_input"),
        }
    }

    /// The count of `strategy`'s passes, dispatched as `entries`.
    pub(crate) fn count(&self, strategy: SoftmaxStrategy, entries: &[&'static str]) -> Traffic {
        let (read, written) = self.buffers();
        let mut traffic = Traffic::new(self.tensor * (read.len() as u64 + 1));
        match (strategy, entries) {
            (SoftmaxStrategy::Split { splits }, &[partial, split]) => {
                let parts = PARTIAL_BYTES * self.rows * splits as u64;
                for &buffer in read {
                    traffic.read(partial, buffer, self.tensor);
                }
                traffic.write(partial, "scratch", parts);
                // Every span's workgroup merges all of its row's partials.
                traffic.read(split, "scratch", parts * splits as u64);
                for &buffer in read {
                    traffic.read(split, buffer, self.tensor);
                }
                traffic.write(split, written, self.tensor);
            }
            (_, &[entry]) => {
                let reads = if strategy.reads_once() { 1 } else { 2 };
                for &buffer in read {
                    traffic.read(entry, buffer, reads * self.tensor);
                }
                traffic.write(entry, written, self.tensor);
            }
            _ => unreachable!("{strategy:?} dispatches {entries:?}"),
        }
        traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::DeviceClass;
    use SoftmaxDirection::{Backward, Forward};

    fn ratio(dims: &[usize], precision: Precision, class: DeviceClass, d: SoftmaxDirection) -> f64 {
        let layout = Layout::from_dims(dims).unwrap();
        let strategy = SoftmaxStrategy::choose(&layout, class, d).unwrap();
        let count = SoftmaxTraffic::new(&layout, precision, d);
        count.count(strategy, d.entries(strategy)).ratio()
    }

    /// The reference shapes in both tables: on GPUs a team holds rows of up
    /// to 16 384 classes forward and 8 192 backward and reads them once, an
    /// invocation a map's pixel of up to 64 classes forward and 32 backward;
    /// software adapters read every row twice (1.5 forward: two reads and a
    /// write where the minimum is one of each; 5/3 backward).
    #[test]
    fn the_reference_shapes_in_both_tables() {
        let (gpu, software) = (DeviceClass::Gpu, DeviceClass::Software);
        for precision in [Precision::F32, Precision::BF16] {
            for dims in [&[4096, 4096][..], &[65_536, 32], &[1024, 8192]] {
                for d in [Forward, Backward] {
                    assert_eq!(ratio(dims, precision, gpu, d), 1.0, "{dims:?} {d:?}");
                }
                assert_eq!(ratio(dims, precision, software, Forward), 1.5);
                assert_eq!(ratio(dims, precision, software, Backward), 5.0 / 3.0);
            }
            // Maps: an invocation per pixel, holding its 21 classes on GPUs.
            let map = [8, 21, 256 * 256];
            for d in [Forward, Backward] {
                assert_eq!(ratio(&map, precision, gpu, d), 1.0, "{d:?}");
            }
            assert_eq!(ratio(&map, precision, software, Forward), 1.5);
            // Past what an invocation holds: read twice; so are the (B, V, T)
            // maps a team per pixel runs.
            assert_eq!(ratio(&[8, 65, 1024], precision, gpu, Forward), 1.5);
            assert_eq!(ratio(&[8, 32_000, 512], precision, gpu, Forward), 1.5);
            assert_eq!(
                ratio(&[8, 32_000, 512], precision, gpu, Backward),
                5.0 / 3.0
            );
        }
    }

    /// A split row counted by hand: 16 rows of 128 256 f32 classes in 62
    /// spans on a GPU: the row read twice, the output written once, and
    /// each span's 8-byte partial written once and read by all 62 spans.
    #[test]
    fn split_rows_count_their_partials() {
        let layout = Layout::from_dims(&[16, 128_256]).unwrap();
        let s = SoftmaxStrategy::choose(&layout, DeviceClass::Gpu, Forward).unwrap();
        assert_eq!(s, SoftmaxStrategy::Split { splits: 62 });
        let t = SoftmaxTraffic::new(&layout, Precision::F32, Forward).count(s, Forward.entries(s));
        let tensor = 16 * 128_256 * 4;
        let parts = 8 * 16 * 62;
        assert_eq!(t.minimum, 2 * tensor);
        assert_eq!(t.planned(), 3 * tensor + parts + 62 * parts);
        assert_eq!(t.passes(), ["softmax_partial", "softmax_split"]);
    }
}
