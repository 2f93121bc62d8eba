//! Same inputs, same bits: a cross-entropy call's results depend on its
//! shapes, options, precision and adapter, never on how far the caller's
//! buffers reach past their tensors, where in a buffer a region starts, nor
//! on whether the host or the recording API ran it. (Each op's tests have a
//! `same_bits` module.)
//!
//! The shapes include rows of C % 4 != 0 and C >= 128, whose kernel walks
//! rows through vec4 views where the buffers reach the vec4 holding the
//! tensor's last element and through scalar views where they do not
//! (`rows_wide_mixed` and `rows_wide_quads`): an exact buffer and one padded
//! by 16 bytes take the two views.

use crate::common::ctx;
use crate::common::placed::{
    placed, read_region, region, rows_and_classes as data, stored, Place, EXACT, OFFSET, PADDED,
};
use xent::{
    CrossEntropyBuffers, CrossEntropyOptions, Precision, Reduction, TargetBuffer, Targets, Weights,
};

/// What one recorded cross-entropy call runs with besides its input.
#[derive(Clone, Copy)]
struct Case<'a> {
    opts: &'a CrossEntropyOptions,
    precision: Precision,
    in_place: bool,
    /// Probability targets (the input's shape) instead of class ids.
    probs: Option<&'a [f32]>,
    /// Class weights, lse, the argmax count, predicted classes and entropies.
    extras: bool,
}

/// One recorded cross-entropy call with every buffer placed as `place`
/// says: the bytes of the gradient (the input's, in place), the loss, the
/// lse, the argmax count, the predicted classes and the entropies.
fn recorded(
    ctx: &xent::Context,
    dims: &[usize],
    x: &[f32],
    targets: &[i32],
    case: Case<'_>,
    place: Place,
) -> Vec<Vec<u8>> {
    let init = |contents: &[u8]| placed(ctx, contents, place);
    let bytes = stored(x, case.precision);
    let len = bytes.len();
    let input = init(&bytes);
    let grad = init(&vec![0xa5; len]);
    let t = match case.probs {
        Some(q) => init(bytemuck::cast_slice(q)),
        None => init(bytemuck::cast_slice(targets)),
    };
    let rows = targets.len().max(1);
    let weights: Vec<f32> = (0..dims[1]).map(|c| 0.5 + (c % 7) as f32 / 4.0).collect();
    let weights = init(bytemuck::cast_slice(&weights));
    let (loss, lse) = (init(&vec![0; 4 * rows]), init(&vec![0; 4 * rows]));
    let (correct, status) = (init(&[0; 4]), init(&[0; 16]));
    let (argmax, entropy) = (init(&vec![0; 4 * rows]), init(&vec![0; 4 * rows]));
    let r = |b| region(b, place);
    let b = CrossEntropyBuffers {
        in_place: case.in_place,
        precision: case.precision,
        weights: case.extras.then_some(r(&weights)),
        lse: case.extras.then_some(r(&lse)),
        correct: case.extras.then_some(r(&correct)),
        argmax: case.extras.then_some(r(&argmax)),
        entropy: case.extras.then_some(r(&entropy)),
        ..CrossEntropyBuffers::new(
            r(&input),
            match case.probs {
                Some(_) => TargetBuffer::Probs(r(&t)),
                None => TargetBuffer::ClassI32(r(&t)),
            },
            r(&loss),
            (!case.in_place).then_some(r(&grad)),
            r(&status),
        )
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, dims, case.opts, &b)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let out = if case.in_place { &input } else { &grad };
    vec![
        read_region(ctx, out, place, len),
        read_region(ctx, &loss, place, 4 * rows),
        read_region(ctx, &lse, place, 4 * rows),
        read_region(ctx, &correct, place, 4),
        read_region(ctx, &argmax, place, 4 * rows),
        read_region(ctx, &entropy, place, 4 * rows),
    ]
}

#[test]
fn cross_entropy_bits_do_not_depend_on_buffer_sizes_or_offsets() {
    let Some(ctx) = ctx() else { return };
    let half = ctx.device().features().contains(wgpu::Features::SHADER_F16);
    let precisions = [Precision::F32, Precision::BF16, Precision::F16];
    let smoothing = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let none = CrossEntropyOptions {
        reduction: Reduction::None,
        z_loss: 1e-3,
        softcap: Some(15.0),
        ..Default::default()
    };
    // The argmax count: a correct buffer given (the extras).
    let counted = CrossEntropyOptions::default();
    // A temperature, whose division every logit takes before the cap.
    let tempered = CrossEntropyOptions {
        temperature: 0.7,
        softcap: Some(15.0),
        ..Default::default()
    };
    // C % 4 != 0 past 128 (the mixed walk, rows starting at every offset
    // within a vec4), and C % 4 == 0 for contrast.
    let shapes: [&[usize]; 5] = [&[3, 1030], &[2, 4099], &[5, 131], &[7, 257], &[3, 1028]];
    for (i, dims) in shapes.into_iter().enumerate() {
        let (x, t) = data(dims, 17 + i as u64);
        let probs = crate::common::soft_targets(&x, dims);
        for precision in precisions {
            if precision == Precision::F16 && !half {
                continue;
            }
            for in_place in [false, true] {
                let case = Case {
                    opts: &smoothing,
                    precision,
                    in_place,
                    probs: None,
                    extras: false,
                };
                let cases = [
                    case,
                    Case {
                        opts: &none,
                        extras: true,
                        ..case
                    },
                    Case {
                        opts: &counted,
                        extras: true,
                        ..case
                    },
                    Case {
                        probs: Some(&probs),
                        ..case
                    },
                    Case {
                        opts: &tempered,
                        extras: true,
                        ..case
                    },
                ];
                for (k, case) in cases.into_iter().enumerate() {
                    let what = format!("{dims:?} {precision:?} in place {in_place}, case {k}");
                    same_bits_at_every_place(ctx, dims, (&x, &t), case, &what);
                }
            }
        }
    }
}

/// `case` recorded with its buffers exact, padded and at an offset: every
/// output the same bits.
fn same_bits_at_every_place(
    ctx: &xent::Context,
    dims: &[usize],
    (x, t): (&[f32], &[i32]),
    case: Case<'_>,
    what: &str,
) {
    let run = |place| recorded(ctx, dims, x, t, case, place);
    let exact = run(EXACT);
    for place in [PADDED, OFFSET] {
        let other = run(place);
        let outputs = ["grad", "loss", "lse", "correct", "argmax", "entropy"];
        for (j, output) in outputs.iter().enumerate() {
            assert!(exact[j] == other[j], "{what}, {place:?}: {output} differs");
        }
    }
}

#[test]
fn cross_entropy_host_and_recording_give_the_same_bits() {
    let Some(ctx) = ctx() else { return };
    for (i, dims) in [[3usize, 1030], [2, 4099], [64, 100]].iter().enumerate() {
        let (x, t) = data(dims, 41 + i as u64);
        let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
        let opts = CrossEntropyOptions::default();
        let host = ctx
            .cross_entropy_with(
                &x,
                dims,
                Targets::I64(&t64),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap();
        let host_grad: Vec<u8> = bytemuck::cast_slice(&host.grad.unwrap()).to_vec();
        let case = |precision| Case {
            opts: &opts,
            precision,
            in_place: false,
            probs: None,
            extras: false,
        };
        for place in [EXACT, PADDED, OFFSET] {
            let out = recorded(ctx, dims, &x, &t, case(Precision::F32), place);
            let (grad, loss) = (&out[0], &out[1]);
            assert!(*grad == host_grad, "{dims:?}, {place:?}: gradients differ");
            let host_loss = bytemuck::cast_slice::<f32, u8>(&host.loss);
            assert_eq!(&loss[..4], host_loss, "{dims:?}");
        }
        let bf: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let host = ctx
            .cross_entropy_with(
                &bf,
                dims,
                Targets::I64(&t64),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap();
        let host_grad = stored(&host.grad.unwrap(), Precision::BF16);
        for place in [EXACT, PADDED, OFFSET] {
            let grad = &recorded(ctx, dims, &x, &t, case(Precision::BF16), place)[0];
            assert!(
                *grad == host_grad,
                "{dims:?} bf16, {place:?}: gradients differ"
            );
        }
    }
}

#[test]
fn the_scalar_views_keep_the_bits_at_the_loop_bound() {
    // 524 099 classes: the longest rows of C % 4 != 0 the mixed walk takes
    // on 8-invocation workgroups (loop_bounds.rs holds the vec4 views
    // to the CPU there).
    let Some(ctx) = ctx() else { return };
    let dims = [4usize, 524_099];
    let (x, t) = data(&dims, 5);
    let opts = CrossEntropyOptions::default();
    let case = Case {
        opts: &opts,
        precision: Precision::F32,
        in_place: false,
        probs: None,
        extras: false,
    };
    let run = |place| recorded(ctx, &dims, &x, &t, case, place);
    let exact = run(EXACT);
    assert!(exact == run(PADDED), "padded: results differ");
    assert!(exact == run(OFFSET), "at an offset: results differ");
}

/// The loss's tiles of 64 rows are summed by the rows kernel where its
/// workgroups hold whole tiles and every chunk starts at one, else by
/// `loss_tiles` from the rows' losses: the same tree, the same bits.
/// Bindings of 64 KiB put chunk starts mid-tile (819 rows of 20 classes;
/// 8 slabs of 100 pixels), so the two paths meet here, for the short rows'
/// kernels of both tables (fixed quads; teams of 4 lanes) and the map's
/// (fixed pixels).
#[test]
fn the_loss_has_the_same_bits_whoever_sums_its_tiles() {
    use xent::bench::{BenchCase, Prepared};
    for class in [xent::DeviceClass::Software, xent::DeviceClass::Gpu] {
        let Some(whole) =
            ctx().map(|_| xent::Context::from_env().unwrap().with_device_class(class))
        else {
            return;
        };
        let Some(chunked) = crate::common::small_binding_ctx(64 * 1024) else {
            return;
        };
        let chunked = chunked.with_device_class(class);
        for dims in [vec![3000usize, 20], vec![40, 20, 100]] {
            let passes = |c: &xent::Context| {
                let p = Prepared::new(c, &BenchCase::new(&dims)).unwrap();
                p.traffic().unwrap().passes()
            };
            let what = format!("{dims:?} on the {} class", class.name());
            // On a GPU the whole call's kernel sums its tiles; a software
            // adapter always sums them in loss_tiles.
            let gpu = class == xent::DeviceClass::Gpu;
            assert_eq!(passes(&whole).contains(&"loss_tiles"), !gpu, "{what}");
            assert!(passes(&chunked).contains(&"loss_tiles"), "{what}");
            let layout = xent::Layout::from_dims(&dims).unwrap();
            let (x, t) = xent::bench::bench_data(&layout, 11);
            // Sample weights of either sign over six decades in one tile
            // (rows 320 to 383), a millionth elsewhere: the loss is about
            // that tile's sum, whose terms cancel, so any other order of
            // its additions shows in the loss's bits.
            let mut rng = crate::common::Rng(5);
            let sw: Vec<f32> = (0..layout.rows())
                .map(|r| match r / 64 {
                    5 => rng.uniform(-1.0, 1.0).signum() * 10f32.powf(rng.uniform(0.0, 6.0)),
                    _ => 1e-6,
                })
                .collect();
            let weights = Weights {
                class: None,
                sample: Some(&sw),
            };
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let opts = CrossEntropyOptions {
                    reduction,
                    ..Default::default()
                };
                let run = |c: &xent::Context| {
                    c.cross_entropy_with(
                        &x,
                        &dims,
                        Targets::I64(&t),
                        weights,
                        &opts,
                        &Default::default(),
                    )
                    .unwrap()
                };
                let (a, b) = (run(&whole), run(&chunked));
                assert_eq!(
                    a.loss[0].to_bits(),
                    b.loss[0].to_bits(),
                    "{what} {reduction:?}"
                );
                let bits = |g: &[f32]| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(a.grad.as_deref().unwrap()),
                    bits(b.grad.as_deref().unwrap()),
                    "{what}"
                );
            }
        }
    }
}
