//! The byte yardstick: what a call's dispatches read from and write to
//! device memory, counted from its plan pass by pass and buffer by buffer,
//! beside the least any implementation of the op must move (each input
//! read once, each output written once). A bandwidth-bound kernel's time
//! follows its bytes, so `planned / minimum` is what a plan costs before
//! anything is timed: 1.0 is a single-read design, 1.5 a row read twice.
//!
//! The counts are a model of the kernels' loads and stores, not a
//! measurement: a second read that a cache happens to serve still counts,
//! and the uniform (a few dozen bytes a dispatch) does not.

/// What one dispatch reads from and writes to one buffer, in bytes.
///
/// ```
/// let t = xent::Transfer { pass: "rows_team4", buffer: "input", read: 2 * 4096, written: 0 };
/// assert_eq!(t.read + t.written, 8192);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The dispatch's entry point, e.g. `rows_team4`.
    pub pass: &'static str,
    /// The buffer: `input`, `targets`, `grad`, `scratch`, `loss`, …
    pub buffer: &'static str,
    /// Bytes the dispatch loads from the buffer.
    pub read: u64,
    /// Bytes the dispatch stores to it.
    pub written: u64,
}

/// A call's planned bytes, pass by pass and buffer by buffer, and the op's
/// minimum for the same call.
///
/// ```
/// // Logits of 4 KiB read twice, a gradient of 4 KiB written once: 1.5× the
/// // least a fused forward + backward must move.
/// let traffic = xent::Traffic {
///     minimum: 8192,
///     transfers: vec![
///         xent::Transfer { pass: "rows_team4", buffer: "input", read: 8192, written: 0 },
///         xent::Transfer { pass: "rows_team4", buffer: "grad", read: 0, written: 4096 },
///     ],
/// };
/// assert_eq!((traffic.planned(), traffic.ratio()), (12288, 1.5));
/// assert_eq!(traffic.passes(), ["rows_team4"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Each input read once and each output written once.
    pub minimum: u64,
    /// What the plan's dispatches move, in dispatch order.
    pub transfers: Vec<Transfer>,
}

impl Traffic {
    /// An empty count over an op's `minimum`.
    pub(crate) fn new(minimum: u64) -> Self {
        Self {
            minimum,
            transfers: Vec::new(),
        }
    }

    /// `pass` loads `bytes` of `buffer` (nothing recorded for 0).
    pub(crate) fn read(&mut self, pass: &'static str, buffer: &'static str, bytes: u64) {
        self.add(pass, buffer, bytes, 0);
    }

    /// `pass` stores `bytes` to `buffer` (nothing recorded for 0).
    pub(crate) fn write(&mut self, pass: &'static str, buffer: &'static str, bytes: u64) {
        self.add(pass, buffer, 0, bytes);
    }

    fn add(&mut self, pass: &'static str, buffer: &'static str, read: u64, written: u64) {
        if read + written == 0 {
            return;
        }
        match self
            .transfers
            .iter_mut()
            .find(|t| t.pass == pass && t.buffer == buffer)
        {
            Some(t) => {
                t.read += read;
                t.written += written;
            }
            None => self.transfers.push(Transfer {
                pass,
                buffer,
                read,
                written,
            }),
        }
    }

    /// `other`'s transfers after this count's, its minimum aside: the
    /// passes of one call counted piece by piece.
    pub(crate) fn extend(&mut self, other: &Traffic) {
        for t in &other.transfers {
            self.add(t.pass, t.buffer, t.read, t.written);
        }
    }

    /// The count with buffer `from` called `to`: a buffer one op names for
    /// its role (a cross-entropy's `input`) and another for what it is (the
    /// fused call's `window`).
    pub(crate) fn renamed(self, from: &'static str, to: &'static str) -> Traffic {
        let mut out = Traffic::new(self.minimum);
        for t in self.transfers {
            let buffer = if t.buffer == from { to } else { t.buffer };
            out.add(t.pass, buffer, t.read, t.written);
        }
        out
    }

    /// Every byte the plan moves.
    pub fn planned(&self) -> u64 {
        self.transfers.iter().map(|t| t.read + t.written).sum()
    }

    /// `planned / minimum` (1.0 for a call that moves nothing).
    pub fn ratio(&self) -> f64 {
        match self.minimum {
            0 => 1.0,
            m => self.planned() as f64 / m as f64,
        }
    }

    /// The passes that move bytes, each once, in order.
    pub fn passes(&self) -> Vec<&'static str> {
        first_occurrences(self.transfers.iter().map(|t| t.pass))
    }

    /// The transfers as a JSON array (`xent bench --json`).
    ///
    /// ```
    /// let traffic = xent::Traffic {
    ///     minimum: 8,
    ///     transfers: vec![xent::Transfer { pass: "copy", buffer: "input", read: 4, written: 0 }],
    /// };
    /// assert_eq!(traffic.transfers_json(), r#"[{"pass":"copy","buffer":"input","read":4,"written":0}]"#);
    /// ```
    pub fn transfers_json(&self) -> String {
        let items: Vec<String> = self
            .transfers
            .iter()
            .map(|t| {
                format!(
                    "{{\"pass\":\"{}\",\"buffer\":\"{}\",\"read\":{},\"written\":{}}}",
                    t.pass, t.buffer, t.read, t.written
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }
}

/// Each name once, in the order of its first occurrence: a count's passes,
/// or the entry points of a call's dispatches (a chunked call repeats them).
pub(crate) fn first_occurrences(names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}
