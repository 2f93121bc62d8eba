//! One test per class of bad input, asserting the typed error variant — and
//! that the context still works afterwards (no panic, no lost device).

use crate::common::{buffer, ctx, still_works, WORKED_DIMS, WORKED_LOGITS, WORKED_TARGETS};
use xent::{cpu, CrossEntropyBuffers, CrossEntropyOptions, Error, Reduction, TargetBuffer};

fn opts() -> CrossEntropyOptions {
    CrossEntropyOptions::default()
}

/// The same error from the GPU host path (when an adapter exists) and the CPU path.
fn both(
    logits: &[f32],
    dims: &[usize],
    targets: &[i64],
    weights: Option<&[f32]>,
    o: &CrossEntropyOptions,
) -> Vec<Error> {
    let mut errors = vec![cpu::cross_entropy(logits, dims, targets, weights, o).unwrap_err()];
    if let Some(ctx) = ctx() {
        errors.push(
            ctx.cross_entropy(logits, dims, targets, weights, o, &Default::default())
                .unwrap_err(),
        );
        still_works();
    }
    errors
}

#[test]
fn logits_that_do_not_fit_the_shape() {
    for e in both(
        &WORKED_LOGITS[..14],
        &WORKED_DIMS,
        &WORKED_TARGETS,
        None,
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::ShapeMismatch {
                    what: "input",
                    expected: 15,
                    actual: 14,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn targets_that_do_not_fit_the_shape() {
    for e in both(&WORKED_LOGITS, &WORKED_DIMS, &[1, 2], None, &opts()) {
        assert!(
            matches!(
                e,
                Error::ShapeMismatch {
                    what: "targets",
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn empty_inputs() {
    // A scalar, or an empty class axis (PyTorch: "Target 0 is out of bounds").
    // Empty batches are not errors (edge_cases.rs).
    for (dims, targets) in [
        (&[][..], &[][..]),
        (&[3, 0][..], &[0, 0, 0][..]),
        (&[0][..], &[0][..]),
    ] {
        for e in both(&[], dims, targets, None, &opts()) {
            assert!(matches!(e, Error::InvalidShape { .. }), "{dims:?}: {e}");
        }
    }
    // Axes past 32 bits, even in an empty batch: refused, never truncated.
    for dims in [&[0, 3, 1 << 40, 1 << 40][..], &[0, 5_000_000_000]] {
        for e in both(&[], dims, &[], None, &opts()) {
            assert!(matches!(e, Error::InvalidShape { .. }), "{dims:?}: {e}");
        }
    }
}

#[test]
fn weights_of_the_wrong_length() {
    for e in both(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &WORKED_TARGETS,
        Some(&[1.0; 4]),
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::WeightsLength {
                    classes: 5,
                    actual: 4
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn nan_weights() {
    let w = [1.0, f32::NAN, 1.0, 1.0, 1.0];
    for e in both(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &WORKED_TARGETS,
        Some(&w),
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "weights",
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn smoothing_outside_0_1_or_nan() {
    for s in [-0.1f64, 1.5, f64::NAN, f64::INFINITY] {
        let o = CrossEntropyOptions {
            label_smoothing: s,
            ..opts()
        };
        for e in both(&WORKED_LOGITS, &WORKED_DIMS, &WORKED_TARGETS, None, &o) {
            assert!(
                matches!(
                    e,
                    Error::InvalidOption {
                        name: "label_smoothing",
                        ..
                    }
                ),
                "{s}: {e}"
            );
        }
    }
}

#[test]
fn ignore_index_outside_i32() {
    let o = CrossEntropyOptions {
        ignore_index: 1 << 40,
        ..opts()
    };
    for e in both(&WORKED_LOGITS, &WORKED_DIMS, &WORKED_TARGETS, None, &o) {
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "ignore_index",
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn targets_out_of_range_name_position_and_value() {
    for (targets, value) in [
        ([1i64, 5, 2], 5i64),
        ([1, -1, 2], -1),
        ([1, 3, 1 << 40], 1 << 40),
    ] {
        for e in both(&WORKED_LOGITS, &WORKED_DIMS, &targets, None, &opts()) {
            let pos = targets.iter().position(|&t| t == value).unwrap();
            match &e {
                Error::TargetOutOfRange {
                    position,
                    value: v,
                    classes: 5,
                    count: 1,
                    ..
                } => {
                    assert_eq!(position, &vec![pos]);
                    assert_eq!(*v, value);
                }
                _ => panic!("{e}"),
            }
            assert!(e.to_string().contains(&value.to_string()));
        }
    }
}

#[test]
fn out_of_range_target_in_a_map_is_found_on_the_gpu() {
    // (N, C, H, W) = (2, 3, 2, 2); a bad class at (n=1, h=0, w=1).
    let logits = vec![0.5f32; 2 * 3 * 2 * 2];
    let mut targets = vec![0i64; 8];
    targets[5] = 7;
    targets[7] = 9;
    for e in both(&logits, &[2, 3, 2, 2], &targets, None, &opts()) {
        match e {
            Error::TargetOutOfRange {
                position,
                value: 7,
                count: 2,
                ..
            } => assert_eq!(position, vec![1, 0, 1]),
            _ => panic!("{e}"),
        }
    }
}

#[test]
fn the_first_bad_target_is_found_across_blocks_of_rows() {
    // Targets are checked in blocks of at most 8 192 rows (rows / blocks,
    // rounded up to a multiple of 4). 20 000 rows: three blocks of 6 668,
    // the bad targets in the second and third. 600 000 rows: 74 blocks of
    // 8 112, more than the 64 invocations that merge them, so blocks 65 and
    // 72 are folded into the partials of blocks 1 and 8 before the tree. 20 003 rows: both
    // in the last rows, which are read after the blocks' quads of four. The
    // first bad target is named each time.
    for (rows, first, second) in [
        (20_000, 9_000, 17_000),
        (600_000, 530_000, 590_000),
        (20_003, 20_001, 20_002),
    ] {
        let logits = vec![0.25f32; rows * 3];
        let mut targets = vec![1i64; rows];
        targets[second] = 9;
        targets[first] = 7;
        for e in both(&logits, &[rows, 3], &targets, None, &opts()) {
            match e {
                Error::TargetOutOfRange {
                    position,
                    value: 7,
                    count: 2,
                    ..
                } => assert_eq!(position, vec![first], "{rows} rows"),
                _ => panic!("{rows} rows: {e}"),
            }
        }
    }
}

/// A call's buffers with one bad, the buffer its error names, and the options.
type BadBuffers<'a> = (&'static str, CrossEntropyBuffers<'a>, CrossEntropyOptions);

/// Cross-entropy's buffers `good` (of `logits` and `loss`) with one of them
/// too short, not storage, of the wrong length for its shape or in two roles.
fn bad_buffer_cases<'a>(
    good: CrossEntropyBuffers<'a>,
    [logits, loss]: [&'a wgpu::Buffer; 2],
    [short, not_storage, weights4]: [&'a wgpu::Buffer; 3],
) -> Vec<BadBuffers<'a>> {
    vec![
        (
            "grad",
            CrossEntropyBuffers {
                grad: Some(short.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "logits",
            CrossEntropyBuffers {
                logits: short.slice(..),
                ..good
            },
            opts(),
        ),
        (
            "grad",
            CrossEntropyBuffers {
                grad: Some(not_storage.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "weights",
            CrossEntropyBuffers {
                weights: Some(weights4.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "loss",
            CrossEntropyBuffers {
                loss: loss.slice(..),
                ..good
            },
            CrossEntropyOptions {
                reduction: Reduction::None,
                ..opts()
            },
        ),
        (
            "logits",
            CrossEntropyBuffers {
                grad: Some(logits.slice(..)),
                ..good
            },
            opts(),
        ),
    ]
}

#[test]
fn recording_rejects_bad_buffers() {
    let Some(ctx) = ctx() else { return };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let logits = buffer(ctx, bytemuck::cast_slice(&WORKED_LOGITS), s);
    let targets = buffer(ctx, bytemuck::cast_slice(&[1i32, 3, 2]), s);
    let loss = buffer(ctx, &[0; 4], s);
    let grad = buffer(ctx, &[0; 60], s);
    let status = buffer(ctx, &[0; 16], s);
    let short = buffer(ctx, &[0; 56], s);
    let not_storage = buffer(ctx, &[0; 60], wgpu::BufferUsages::COPY_SRC);
    let weights4 = buffer(ctx, &[0; 16], s);
    let good = CrossEntropyBuffers::new(
        logits.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        Some(grad.slice(..)),
        status.slice(..),
    );
    let record = |b: &CrossEntropyBuffers, o: &CrossEntropyOptions| {
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        ctx.record_cross_entropy(&mut enc, &WORKED_DIMS, o, b)
    };
    let bad = [&short, &not_storage, &weights4];
    let cases = bad_buffer_cases(good, [&logits, &loss], bad);
    for (what, b, o) in cases {
        match record(&b, &o) {
            Err(Error::BadBuffer { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(record(&good, &opts()).is_ok());
    still_works();
}

/// The error of an output of logits asked of another input: `InvalidOption`
/// naming the input, its message naming `what`.
fn refused(e: Error, what: &str) {
    match e {
        Error::InvalidOption {
            name: "input",
            expected,
            ..
        } => assert!(expected.contains(what), "{expected}"),
        e => panic!("{what}: {e:?}"),
    }
}

fn log_probs() -> CrossEntropyOptions {
    CrossEntropyOptions {
        input: xent::InputKind::LogProbs,
        ..opts()
    }
}

/// The outputs of logits (log-sum-exp, predicted class, entropy) asked of
/// another input kind through `Returns`, each alone.
#[test]
fn outputs_of_logits_refuse_another_input() {
    let Some(ctx) = ctx() else { return };
    let x = [0.25f32, 0.75];
    for (returns, what) in [
        (
            xent::Returns {
                lse: true,
                ..Default::default()
            },
            "log-sum-exp",
        ),
        (
            xent::Returns {
                argmax: true,
                ..Default::default()
            },
            "predicted class",
        ),
        (
            xent::Returns {
                entropy: true,
                ..Default::default()
            },
            "entropy",
        ),
    ] {
        let e = ctx
            .cross_entropy(&x, &[1, 2], &[0], None, &log_probs(), &returns)
            .unwrap_err();
        refused(e, what);
    }
    still_works();
}

/// The same through the recording API: a predicted-class or entropy buffer
/// given with another input kind.
#[test]
fn buffers_of_logits_outputs_refuse_another_input() {
    let Some(ctx) = ctx() else { return };
    let usage = wgpu::BufferUsages::STORAGE;
    let init = |bytes: &[u8]| buffer(ctx, bytes, usage);
    let (logits, targets) = (init(bytemuck::cast_slice(&[0.25f32, 0.75])), init(&[0; 4]));
    let (loss, status, out) = (init(&[0; 4]), init(&[0; 16]), init(&[0; 4]));
    let base = CrossEntropyBuffers::new(
        logits.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        None,
        status.slice(..),
    );
    for (b, what) in [
        (
            CrossEntropyBuffers {
                argmax: Some(out.slice(..)),
                ..base
            },
            "predicted class",
        ),
        (
            CrossEntropyBuffers {
                entropy: Some(out.slice(..)),
                ..base
            },
            "entropy",
        ),
    ] {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        refused(
            ctx.record_cross_entropy(&mut encoder, &[1, 2], &log_probs(), &b)
                .unwrap_err(),
            what,
        );
    }
    still_works();
}
