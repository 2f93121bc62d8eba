//! Criterion benchmarks of the fused cross-entropy on the reference shapes,
//! next to a copy kernel over the same bytes (this adapter's bandwidth bound)
//! and the host cost of recording one call. `cargo bench`; the HTML report
//! is in target/criterion/report/index.html. `XENT_BENCH_CASES=4096x4096,65536x32`
//! picks shapes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xent::bench::{reference_cases, BenchCase, Prepared};

fn cases() -> Vec<BenchCase> {
    match std::env::var("XENT_BENCH_CASES") {
        Ok(list) => list
            .split(',')
            .map(|c| {
                BenchCase::new(
                    &c.split('x')
                        .map(|d| d.parse().expect("a shape like 4096x4096"))
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
        Err(_) => reference_cases(),
    }
}

fn fused(c: &mut Criterion) {
    let ctx = xent::Context::from_env()
        .expect("a GPU adapter (install mesa-vulkan-drivers for a software one)");
    eprintln!("adapter: {}", ctx.adapter_summary());
    let mut group = c.benchmark_group("cross_entropy");
    group.sample_size(10);
    for case in cases() {
        let prepared = Prepared::new(&ctx, &case).expect("case");
        // Traffic model: logits read once + gradient written once.
        group.throughput(Throughput::Bytes(2 * 4 * prepared.logits.len() as u64));
        group.bench_function(BenchmarkId::new("fused_fwd_bwd", &case.name), |b| {
            b.iter(|| {
                prepared
                    .run(|p, enc| p.record_fused(enc, None))
                    .expect("run")
            })
        });
        group.bench_function(BenchmarkId::new("copy_same_bytes", &case.name), |b| {
            b.iter(|| {
                prepared
                    .run(|p, enc| p.record_copy(enc, None))
                    .expect("run")
            })
        });
        group.bench_function(BenchmarkId::new("record_only", &case.name), |b| {
            b.iter(|| {
                let mut enc = ctx.device().create_command_encoder(&Default::default());
                prepared.record_fused(&mut enc, None).expect("record");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fused);
criterion_main!(benches);
