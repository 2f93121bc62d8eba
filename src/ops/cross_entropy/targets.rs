//! What the loss is taken against: targets and weights, as host slices.

/// The targets of a cross-entropy call.
///
/// Class indices have the input's shape without the class axis (one per
/// row); probabilities have the input's shape. `u8` masks are the common case
/// for segmentation: the GPU path uploads them as they are, four to a word,
/// with no widening copy.
///
/// ```
/// let mask = [0u8, 3, 255, 1];
/// let t = xent::Targets::<f32>::U8(&mask);
/// assert_eq!(t.len(), 4);
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a, P = f32> {
    /// Class indices as PyTorch's int64.
    I64(&'a [i64]),
    /// Class indices as i32.
    I32(&'a [i32]),
    /// Class indices as u8 (segmentation masks, ignore label 255).
    U8(&'a [u8]),
    /// Probabilities with the input's shape (soft labels; one-hot is a special case).
    Probs(&'a [P]),
}

impl<P> Targets<'_, P> {
    /// Number of target elements.
    ///
    /// ```
    /// // Class indices: one per row; probabilities: the input's shape.
    /// assert_eq!(xent::Targets::<f32>::I32(&[2, 0, 1]).len(), 3);
    /// assert_eq!(xent::Targets::Probs(&[0.25f32, 0.75, 1.0, 0.0]).len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            Targets::I64(t) => t.len(),
            Targets::I32(t) => t.len(),
            Targets::U8(t) => t.len(),
            Targets::Probs(t) => t.len(),
        }
    }

    /// Whether there are no targets.
    ///
    /// ```
    /// assert!(xent::Targets::<f32>::I64(&[]).is_empty());
    /// assert!(!xent::Targets::<f32>::U8(&[255]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class indices widened to i64, or `None` for probabilities.
    ///
    /// ```
    /// assert_eq!(xent::Targets::<f32>::U8(&[0, 3, 255]).class_indices(), Some(vec![0, 3, 255]));
    /// assert_eq!(xent::Targets::<f32>::I32(&[-100, 7]).class_indices(), Some(vec![-100, 7]));
    /// assert_eq!(xent::Targets::Probs(&[0.5f32, 0.5]).class_indices(), None);
    /// ```
    pub fn class_indices(&self) -> Option<Vec<i64>> {
        match self {
            Targets::I64(t) => Some(t.to_vec()),
            Targets::I32(t) => Some(t.iter().map(|&v| i64::from(v)).collect()),
            Targets::U8(t) => Some(t.iter().map(|&v| i64::from(v)).collect()),
            Targets::Probs(_) => None,
        }
    }
}

/// Optional weights: per class (length C, PyTorch's `weight`) and per target
/// element (one per row, multiplied with the class weight).
///
/// ```
/// let w = [1.0f32, 2.0];
/// let weights = xent::Weights { class: Some(&w[..]), sample: None };
/// assert!(weights.sample.is_none());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a, W = f32> {
    /// Class weights, length C.
    pub class: Option<&'a [W]>,
    /// Sample weights, one per row (the target's shape for class indices).
    /// Finite, of any sign. With `mean`, weights whose sum cancels to about
    /// zero make an ill-conditioned denominator: the GPU's f32 sum and the
    /// CPU's f64 sum may then disagree (one exactly 0, giving NaN; the other
    /// tiny, giving a huge loss), and verify mode reports it.
    pub sample: Option<&'a [W]>,
}

impl<W> Weights<'_, W> {
    /// No weights at all.
    ///
    /// ```
    /// // Unweighted: two equal logits give ln 2.
    /// let out = xent::cpu::cross_entropy_with(&[0.0f32, 0.0], &[1, 2], xent::Targets::I64(&[1]),
    ///     xent::Weights::none(), &Default::default())?;
    /// assert!((out.scalar().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn none() -> Self {
        Self {
            class: None,
            sample: None,
        }
    }
}

/// Integer types accepted as class-index targets by
/// [`Context::cross_entropy`](crate::Context::cross_entropy).
///
/// ```
/// fn widened<T: xent::ClassIndex>(targets: &[T]) -> Option<Vec<i64>> {
///     T::as_targets::<f32>(targets).class_indices()
/// }
/// assert_eq!(widened(&[2u8, 0, 255]), Some(vec![2, 0, 255]));
/// assert_eq!(widened(&[2i32, 0]), widened(&[2i64, 0]));
/// ```
pub trait ClassIndex: Copy {
    /// The slice as [`Targets`].
    fn as_targets<P>(targets: &[Self]) -> Targets<'_, P>;
}

impl ClassIndex for i64 {
    fn as_targets<P>(targets: &[Self]) -> Targets<'_, P> {
        Targets::I64(targets)
    }
}
impl ClassIndex for i32 {
    fn as_targets<P>(targets: &[Self]) -> Targets<'_, P> {
        Targets::I32(targets)
    }
}
impl ClassIndex for u8 {
    fn as_targets<P>(targets: &[Self]) -> Targets<'_, P> {
        Targets::U8(targets)
    }
}
