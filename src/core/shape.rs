//! Shapes: how a tensor of logits maps onto rows of classes.

use crate::error::{Error, Result};

/// The class-axis view of an input shape, as the kernels see it.
///
/// An input of shape `(N, C, d1, …, dK)` is `outer = N`, `classes = C`,
/// `inner = d1·…·dK`; `(N, C)` has `inner = 1`; an unbatched `(C)` has
/// `outer = 1, inner = 1`. Element `(n, c, s)` lives at `(n·C + c)·inner + s`,
/// so a row of classes is strided by `inner` and each class plane is contiguous.
///
/// ```
/// let layout = xent::Layout::from_dims(&[2, 21, 4, 4]).unwrap();
/// assert_eq!((layout.outer, layout.classes, layout.inner), (2, 21, 16));
/// assert_eq!(layout.rows(), 32);
/// assert_eq!(layout.target_dims(), vec![2, 4, 4]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The input's dimensions as given.
    pub dims: Vec<usize>,
    /// Product of the axes before the class axis (1 for an unbatched input).
    pub outer: usize,
    /// Number of classes: the size of the class axis.
    pub classes: usize,
    /// Product of the axes after the class axis.
    pub inner: usize,
}

impl Layout {
    /// Reads an input shape: `(C)`, `(N, C)` or `(N, C, d1, …, dK)`, class axis 1
    /// (axis 0 for a one-axis input), as in PyTorch's `F.cross_entropy`.
    ///
    /// # Errors
    /// [`Error::InvalidShape`] when the shape has no axes, a class axis of size
    /// 0, an axis (or the product of the spatial axes) or a row count past
    /// 2^32 − 1 (the kernels index rows with 32-bit integers). The element
    /// count may pass 2^32: the kernels address a tensor a chunk of the outer
    /// axis at a time (65 536 × 65 537 is one shape).
    /// Other axes may be 0: an empty batch has no rows (PyTorch's `mean` of it
    /// is NaN, its `sum` 0).
    ///
    /// ```
    /// assert_eq!(xent::Layout::from_dims(&[7]).unwrap().rows(), 1); // unbatched (C)
    /// assert!(xent::Layout::from_dims(&[3, 0]).is_err());
    /// assert_eq!(xent::Layout::from_dims(&[65_536, 65_537]).unwrap().len(), 65_536 * 65_537);
    /// assert!(xent::Layout::from_dims(&[1 << 17, 2, 1 << 16]).is_err()); // 2^33 rows
    /// assert_eq!(xent::Layout::from_dims(&[0, 5]).unwrap().rows(), 0);
    /// ```
    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidShape {
            shape: dims.to_vec(),
            reason: reason.to_string(),
        };
        if dims.is_empty() {
            return Err(bad(
                "expected (C), (N, C) or (N, C, d1, ..., dK); got a scalar",
            ));
        }
        let (outer, classes, inner) = if dims.len() == 1 {
            (1, dims[0], 1)
        } else {
            let inner = dims[2..]
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad("the number of elements overflows usize"))?;
            (dims[0], dims[1], inner)
        };
        // The kernels take each axis product as a u32, even for an empty batch.
        if [outer, classes, inner]
            .iter()
            .any(|&d| d > u32::MAX as usize)
        {
            return Err(bad(
                "an axis (or the product of the spatial axes) exceeds 2^32 - 1",
            ));
        }
        if classes == 0 {
            return Err(Error::InvalidShape {
                shape: dims.to_vec(),
                reason: format!(
                    "the class axis ({}) has size 0: a distribution over no classes",
                    usize::from(dims.len() > 1)
                ),
            });
        }
        // The total may pass 2^32: kernels index a chunk of the outer axis
        // at a time (each within one binding, so below 2^32 elements), and
        // rows by a u32.
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad("the number of elements overflows usize"))?;
        let rows = outer as u64 * inner as u64;
        if rows > u64::from(u32::MAX) {
            return Err(Error::InvalidShape {
                shape: dims.to_vec(),
                reason: format!("{rows} rows (one per target) exceed the 2^32 - 1 that 32-bit row indices address"),
            });
        }
        Ok(Self {
            dims: dims.to_vec(),
            outer,
            classes,
            inner,
        })
    }

    /// Number of rows (one per target): `outer · inner`.
    ///
    /// ```
    /// // A batch of 8 maps of 4 × 4 pixels over 21 classes: a row per pixel.
    /// assert_eq!(xent::Layout::from_dims(&[8, 21, 4, 4])?.rows(), 128);
    /// assert_eq!(xent::Layout::from_dims(&[3, 10])?.rows(), 3);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }

    /// Number of elements of the input: `outer · classes · inner`.
    ///
    /// ```
    /// assert_eq!(xent::Layout::from_dims(&[2, 3, 5])?.len(), 30);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.outer * self.classes * self.inner
    }

    /// Whether the input has no elements: an empty batch (no rows).
    ///
    /// ```
    /// assert!(xent::Layout::from_dims(&[0, 5])?.is_empty());
    /// assert!(!xent::Layout::from_dims(&[1, 5])?.is_empty());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the targets and of a `none` loss: the input's without the class axis.
    ///
    /// ```
    /// assert_eq!(xent::Layout::from_dims(&[8, 21, 4, 4])?.target_dims(), [8, 4, 4]);
    /// // An unbatched (C) input has a single, scalar target.
    /// assert!(xent::Layout::from_dims(&[7])?.target_dims().is_empty());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn target_dims(&self) -> Vec<usize> {
        match self.dims.len() {
            1 => Vec::new(),
            _ => {
                let mut d = vec![self.dims[0]];
                d.extend_from_slice(&self.dims[2..]);
                d
            }
        }
    }

    /// The multi-index, in the target's shape, of flat target position `flat`.
    ///
    /// ```
    /// // Targets of shape (2, 4, 5): 27 = 1·20 + 1·5 + 2.
    /// let layout = xent::Layout::from_dims(&[2, 3, 4, 5])?;
    /// assert_eq!(layout.target_position(27), [1, 1, 2]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn target_position(&self, flat: usize) -> Vec<usize> {
        multi_index(&self.target_dims(), flat)
    }

    /// The layout of a range of `classes` of this one's classes (a
    /// vocabulary shard's input): the class axis resized, possibly to 0.
    pub(crate) fn with_classes(&self, classes: usize) -> Layout {
        let mut dims = self.dims.clone();
        let axis = usize::from(dims.len() > 1);
        dims[axis] = classes;
        Layout {
            dims,
            classes,
            ..self.clone()
        }
    }

    /// The layout of `outer` of this one's outer rows (a window of a fused
    /// call's rows): the outer axis resized.
    pub(crate) fn with_outer(&self, outer: usize) -> Layout {
        let mut dims = self.dims.clone();
        if dims.len() > 1 {
            dims[0] = outer;
        }
        Layout {
            dims,
            outer,
            ..self.clone()
        }
    }

    /// Flat index of element (row, class), with row = n·inner + s.
    ///
    /// ```
    /// // (N, C, S) = (2, 3, 4): row 5 is n = 1, s = 1; class 2 is at (1·3 + 2)·4 + 1.
    /// let layout = xent::Layout::from_dims(&[2, 3, 4])?;
    /// assert_eq!(layout.element(5, 2), 21);
    /// // (N, C): row-major, row·C + class.
    /// assert_eq!(xent::Layout::from_dims(&[4, 10])?.element(3, 7), 37);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn element(&self, row: usize, class: usize) -> usize {
        let n = row / self.inner;
        let s = row % self.inner;
        (n * self.classes + class) * self.inner + s
    }
}

/// A tensor's length against the number of elements its shape needs.
pub(crate) fn length(
    what: &'static str,
    dims: &[usize],
    expected: usize,
    actual: usize,
) -> Result<()> {
    if expected != actual {
        return Err(Error::ShapeMismatch {
            what,
            shape: dims.to_vec(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// The multi-index of flat position `flat` in a row-major tensor of shape `dims`.
pub(crate) fn multi_index(dims: &[usize], flat: usize) -> Vec<usize> {
    let mut pos = vec![0; dims.len()];
    let mut rest = flat;
    for (slot, &d) in pos.iter_mut().zip(dims).rev() {
        *slot = rest % d;
        rest /= d;
    }
    pos
}
