//! Worked examples with values derived outside this crate.
//!
//! The expected numbers come from PyTorch's `F.cross_entropy` / `F.log_softmax`
//! (and agree with an independent f64 implementation of the formulas, see
//! `tests/data/reference.py`), printed to 16 digits. GPU results are held to
//! `GPU_TOL`, the CPU path to `CPU_TOL`. The worked example's softmax and
//! log-softmax are the softmax crate's (`tests/softmax/worked_examples.rs`).

use crate::common::{
    assert_close, ctx, CPU_TOL, GPU_TOL, WORKED_DIMS, WORKED_LOGITS, WORKED_TARGETS,
};
use xent::{cpu, CrossEntropyOptions, Reduction};

struct Case {
    name: &'static str,
    targets: [i64; 3],
    weights: Option<[f32; 5]>,
    opts: CrossEntropyOptions,
    loss: &'static [f64],
    grad: [[f64; 5]; 3],
}

fn cases() -> Vec<Case> {
    [
        plain_and_weighted_cases(),
        ignored_row_cases(),
        smoothing_cases(),
        reduction_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The plain mean (the note's example) and class weights.
fn plain_and_weighted_cases() -> Vec<Case> {
    let o = CrossEntropyOptions::default;
    vec![
        Case {
            name: "mean (the note's 3.7925)",
            targets: [1, 3, 2],
            weights: None,
            opts: o(),
            loss: &[3.7924786392503727],
            grad: [
                [
                    0.3331776470906798,
                    -0.33322156468428193,
                    4.1117388153521626e-05,
                    2.0471142151073803e-06,
                    7.530912334678187e-07,
                ],
                [
                    0.08594009631727943,
                    0.0005790598140821287,
                    0.23360940215528073,
                    -0.3217026060568526,
                    0.0015740477702103235,
                ],
                [
                    7.37434513913968e-07,
                    0.00597549375733564,
                    -0.0070824286482053704,
                    0.0008086951401276299,
                    0.0002975023162282137,
                ],
            ],
        },
        Case {
            name: "class weights [1, 2, 3, 4, 5]",
            targets: [1, 3, 2],
            weights: Some([1.0, 2.0, 3.0, 4.0, 5.0]),
            opts: o(),
            loss: &[3.2763703418485575],
            grad: [
                [
                    0.22211843139378656,
                    -0.22214770978952128,
                    2.741159210234775e-05,
                    1.3647428100715869e-06,
                    5.020608223118791e-07,
                ],
                [
                    0.1145867950897059,
                    0.0007720797521095048,
                    0.3114792028737077,
                    -0.4289368080758034,
                    0.0020987303602804314,
                ],
                [
                    7.374345139139679e-07,
                    0.00597549375733564,
                    -0.0070824286482053704,
                    0.0008086951401276299,
                    0.0002975023162282137,
                ],
            ],
        },
    ]
}

/// A row ignored by the default and by an in-range ignore_index.
fn ignored_row_cases() -> Vec<Case> {
    let o = CrossEntropyOptions::default;
    vec![
        Case {
            name: "default ignore_index -100 on row 1",
            targets: [1, -100, 2],
            weights: None,
            opts: o(),
            loss: &[4.010971713266798],
            grad: [
                [
                    0.49976647063601976,
                    -0.4998323470264229,
                    6.167608223028244e-05,
                    3.0706713226610703e-06,
                    1.129636850201728e-06,
                ],
                [0.0; 5],
                [
                    1.106151770870952e-06,
                    0.008963240636003459,
                    -0.010623642972308056,
                    0.0012130427101914448,
                    0.00044625347434232055,
                ],
            ],
        },
        Case {
            name: "ignore_index 3, inside [0, C)",
            targets: [1, 3, 2],
            weights: None,
            opts: CrossEntropyOptions {
                ignore_index: 3,
                ..o()
            },
            loss: &[4.010971713266798],
            grad: [
                [
                    0.49976647063601976,
                    -0.4998323470264229,
                    6.167608223028244e-05,
                    3.0706713226610703e-06,
                    1.129636850201728e-06,
                ],
                [0.0; 5],
                [
                    1.106151770870952e-06,
                    0.008963240636003459,
                    -0.010623642972308056,
                    0.0012130427101914448,
                    0.00044625347434232055,
                ],
            ],
        },
    ]
}

/// Label smoothing, alone and with weights and an ignored row.
fn smoothing_cases() -> Vec<Case> {
    let o = CrossEntropyOptions::default;
    vec![
        Case {
            name: "label smoothing 0.1",
            targets: [1, 3, 2],
            weights: None,
            opts: CrossEntropyOptions {
                label_smoothing: 0.1,
                ..o()
            },
            loss: &[4.0058119725837065],
            grad: [
                [
                    0.3265109804240132,
                    -0.30655489801761526,
                    -0.006625549278513145,
                    -0.006664619552451559,
                    -0.006665913575433199,
                ],
                [
                    0.07927342965061276,
                    -0.0060876068525845374,
                    0.22694273548861407,
                    -0.2950359393901859,
                    -0.005092618896456343,
                ],
                [
                    -0.006665929232152753,
                    -0.0006911729093310275,
                    0.019584238018461295,
                    -0.0058579715265390355,
                    -0.006369164350438453,
                ],
            ],
        },
        Case {
            name: "smoothing 0.2 with weights and an ignored row",
            targets: [1, 3, -100],
            weights: Some([1.0, 2.0, 3.0, 4.0, 5.0]),
            opts: CrossEntropyOptions {
                label_smoothing: 0.2,
                ..o()
            },
            loss: &[5.331983205976847],
            grad: [
                [
                    0.3598287451330811,
                    -0.27987705448604344,
                    -0.019954770873031123,
                    -0.026664414841030045,
                    -0.03333250493297652,
                ],
                [
                    0.15661951633616425,
                    -0.012233119686577289,
                    0.4238578640950334,
                    -0.5379016181746866,
                    -0.030342642569933718,
                ],
                [0.0; 5],
            ],
        },
    ]
}

/// The sum and per-row (none) reductions.
fn reduction_cases() -> Vec<Case> {
    let o = CrossEntropyOptions::default;
    vec![
        Case {
            name: "sum",
            targets: [1, 3, 2],
            weights: None,
            opts: CrossEntropyOptions {
                reduction: Reduction::Sum,
                ..o()
            },
            loss: &[11.377435917751118],
            grad: [
                [
                    0.9995329412720395,
                    -0.9996646940528457,
                    0.00012335216446056487,
                    6.141342645322141e-06,
                    2.259273700403456e-06,
                ],
                [
                    0.2578202889518383,
                    0.001737179442246386,
                    0.7008282064658422,
                    -0.9651078181705577,
                    0.00472214331063097,
                ],
                [
                    2.212303541741904e-06,
                    0.017926481272006918,
                    -0.021247285944616112,
                    0.0024260854203828897,
                    0.0008925069486846411,
                ],
            ],
        },
        Case {
            name: "none",
            targets: [1, 3, 2],
            weights: None,
            opts: CrossEntropyOptions {
                reduction: Reduction::None,
                ..o()
            },
            loss: &[8.000467167833863, 3.355492491217522, 0.02147625869973374],
            grad: [
                [
                    0.9995329412720395,
                    -0.9996646940528457,
                    0.00012335216446056487,
                    6.141342645322141e-06,
                    2.259273700403456e-06,
                ],
                [
                    0.2578202889518383,
                    0.001737179442246386,
                    0.7008282064658422,
                    -0.9651078181705577,
                    0.00472214331063097,
                ],
                [
                    2.212303541741904e-06,
                    0.017926481272006918,
                    -0.021247285944616112,
                    0.0024260854203828897,
                    0.0008925069486846411,
                ],
            ],
        },
    ]
}

#[test]
fn cpu_path_matches_the_worked_examples() {
    for case in cases() {
        let w = case.weights.as_ref().map(|w| &w[..]);
        let out =
            cpu::cross_entropy(&WORKED_LOGITS, &WORKED_DIMS, &case.targets, w, &case.opts).unwrap();
        let loss: Vec<f32> = out.loss.iter().map(|&v| v as f32).collect();
        for (i, (&got, &want)) in out.loss.iter().zip(case.loss).enumerate() {
            assert!(
                (got - want).abs() <= CPU_TOL,
                "{}: loss[{i}] {got} vs {want}",
                case.name
            );
        }
        assert_eq!(loss.len(), case.loss.len(), "{}", case.name);
        let grad = out.grad.unwrap();
        for (i, (&got, &want)) in grad.iter().zip(case.grad.iter().flatten()).enumerate() {
            assert!(
                (got - want).abs() <= CPU_TOL,
                "{}: grad[{i}] {got} vs {want}",
                case.name
            );
        }
    }
}

#[test]
fn gpu_matches_the_worked_examples() {
    let Some(ctx) = ctx() else { return };
    for case in cases() {
        let w = case.weights.as_ref().map(|w| &w[..]);
        let out = ctx
            .cross_entropy(
                &WORKED_LOGITS,
                &WORKED_DIMS,
                &case.targets,
                w,
                &case.opts,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_close(case.name, &out.loss, case.loss, GPU_TOL);
        let want: Vec<f64> = case.grad.iter().flatten().copied().collect();
        assert_close(case.name, out.grad.as_deref().unwrap(), &want, GPU_TOL);
    }
}

#[test]
fn gpu_gives_the_notes_loss_3_7925() {
    let Some(ctx) = ctx() else { return };
    let out = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &WORKED_TARGETS,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let loss = out.scalar().unwrap();
    assert_eq!(format!("{loss:.4}"), "3.7925");
}

#[test]
fn all_ignored_mean_is_nan_with_zero_gradient() {
    let targets = [-100i64; 3];
    let cpu = cpu::cross_entropy(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &targets,
        None,
        &Default::default(),
    )
    .unwrap();
    assert!(cpu.loss[0].is_nan());
    assert!(cpu.grad.unwrap().iter().all(|&g| g == 0.0));
    let Some(ctx) = ctx() else { return };
    let gpu = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &targets,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert!(gpu.loss[0].is_nan(), "loss {}", gpu.loss[0]);
    assert!(gpu.grad.unwrap().iter().all(|&g| g == 0.0));
    let sum = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &targets,
            None,
            &CrossEntropyOptions {
                reduction: Reduction::Sum,
                ..Default::default()
            },
            &Default::default(),
        )
        .unwrap();
    assert_eq!(sum.loss[0], 0.0);
}

#[test]
fn minus_infinity_away_from_the_target_is_allowed() {
    let inf = f32::NEG_INFINITY;
    let logits = [0.0f32, inf, 0.0, inf, 1.0, 2.0];
    // Row 0: two live classes, loss ln 2. Row 1: softmax of [-inf, 1, 2] at class 2.
    let want_loss = (std::f64::consts::LN_2 + (1.0 + (-1.0f64).exp()).ln()) / 2.0;
    let targets = [0i64, 2];
    let cpu = cpu::cross_entropy(&logits, &[2, 3], &targets, None, &Default::default()).unwrap();
    assert!((cpu.loss[0] - want_loss).abs() < CPU_TOL);
    let Some(ctx) = ctx() else { return };
    let gpu = ctx
        .cross_entropy(
            &logits,
            &[2, 3],
            &targets,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert_close("loss", &gpu.loss, &[want_loss], GPU_TOL);
    let grad = gpu.grad.unwrap();
    assert_eq!(grad[1], 0.0);
    assert_eq!(grad[3], 0.0);
    assert!(grad.iter().all(|g| g.is_finite()));
    // With smoothing, the -inf logits make the smoothing term +inf, as in PyTorch.
    let smooth = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let gpu = ctx
        .cross_entropy(
            &logits,
            &[2, 3],
            &targets,
            None,
            &smooth,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(gpu.loss[0], f32::INFINITY);
}
