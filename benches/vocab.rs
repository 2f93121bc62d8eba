//! Criterion benchmark of the vocabulary-parallel split on one device: the
//! unsharded cross-entropy against the same call split into K shards
//! (K partials, the gather by copies, the merge, K finishes), every buffer
//! resident, one submission per iteration. On one device the split can only
//! cost: what it measures is that cost (the partials read the logits once
//! more than the fused pass does, and each pass is K dispatches of 1/K of
//! the work). Both run on `xent::bench::Prepared`'s data (the benchmarks'
//! generator) and submit through its `run`. `cargo bench --bench vocab`;
//! `XENT_BENCH_CASES=4096x32000` picks shapes, `XENT_BENCH_SHARDS=2,8` the
//! splits.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu::util::DeviceExt;
use xent::bench::{BenchCase, Prepared};
use xent::{
    ClassRange, Context, CrossEntropyBuffers, CrossEntropyOptions, TargetBuffer,
    VocabPartialBuffers, VOCAB_RECORD_BYTES,
};

fn list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A (rows, classes) problem split into shards: the targets and, per
/// shard, its slice of the logits, its gradient and its records; the
/// gathered and merged records; the loss and status every finish writes.
struct Split {
    rows: usize,
    targets: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    ranges: Vec<ClassRange>,
    logits: Vec<wgpu::Buffer>,
    grads: Vec<wgpu::Buffer>,
    partials: Vec<wgpu::Buffer>,
    gathered: wgpu::Buffer,
    merged: wgpu::Buffer,
}

fn storage(ctx: &Context, bytes: &[u8]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

fn zeros(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    storage(ctx, &vec![0u8; bytes.max(16) as usize])
}

impl Split {
    fn new(ctx: &Context, x: &[f32], t: &[i64], classes: usize, shards: usize) -> Self {
        let rows = t.len();
        let t: Vec<i32> = t.iter().map(|&c| c as i32).collect();
        let ranges = ClassRange::split(classes, shards).expect("shards");
        let slice = |r: &ClassRange| -> Vec<f32> {
            x.chunks(classes)
                .flat_map(|row| row[r.start..r.end].to_vec())
                .collect()
        };
        let records = rows as u64 * VOCAB_RECORD_BYTES;
        Split {
            rows,
            targets: storage(ctx, bytemuck::cast_slice(&t)),
            loss: zeros(ctx, 4),
            status: zeros(ctx, xent::STATUS_SIZE),
            logits: ranges
                .iter()
                .map(|r| storage(ctx, bytemuck::cast_slice(&slice(r))))
                .collect(),
            grads: ranges
                .iter()
                .map(|r| zeros(ctx, 4 * (rows * r.len()) as u64))
                .collect(),
            partials: ranges.iter().map(|_| zeros(ctx, records)).collect(),
            gathered: zeros(ctx, records * shards as u64),
            merged: zeros(ctx, records),
            ranges,
        }
    }

    fn record(
        &self,
        ctx: &Context,
        enc: &mut wgpu::CommandEncoder,
        dims: &[usize],
        opts: &CrossEntropyOptions,
    ) -> xent::Result<()> {
        let targets = &self.targets;
        let block = self.rows as u64 * VOCAB_RECORD_BYTES;
        for (k, range) in self.ranges.iter().enumerate() {
            let b = VocabPartialBuffers {
                logits: self.logits[k].slice(..),
                targets: TargetBuffer::ClassI32(targets.slice(..)),
                weights: None,
                precision: xent::Precision::F32,
                partial: self.partials[k].slice(..),
            };
            ctx.record_vocab_partial(enc, dims, *range, opts, &b)?;
            enc.copy_buffer_to_buffer(
                &self.partials[k],
                0,
                &self.gathered,
                k as u64 * block,
                block,
            );
        }
        let shards = self.ranges.len();
        ctx.record_vocab_merge(
            enc,
            &xent::MergeDims {
                rows: self.rows,
                shards,
            },
            opts,
            &xent::VocabMergeBuffers {
                gathered: self.gathered.slice(..),
                merged: self.merged.slice(..),
            },
        )?;
        for (k, range) in self.ranges.iter().enumerate() {
            let b = CrossEntropyBuffers::new(
                self.logits[k].slice(..),
                TargetBuffer::ClassI32(targets.slice(..)),
                self.loss.slice(..),
                Some(self.grads[k].slice(..)),
                self.status.slice(..),
            );
            ctx.record_vocab_finish(
                enc,
                dims,
                *range,
                opts,
                &xent::VocabFinishBuffers {
                    shard: b,
                    merged: self.merged.slice(..),
                },
            )?;
        }
        Ok(())
    }
}

fn split(c: &mut Criterion) {
    let ctx = Context::from_env()
        .expect("a GPU adapter (install mesa-vulkan-drivers for a software one)");
    eprintln!("adapter: {}", ctx.adapter_summary());
    let opts = CrossEntropyOptions::default();
    let mut group = c.benchmark_group("vocab_split");
    group.sample_size(10);
    for case in list("XENT_BENCH_CASES", "4096x32000") {
        let dims: Vec<usize> = case
            .split('x')
            .map(|d| d.parse().expect("a shape like 4096x32000"))
            .collect();
        let [_, classes] = dims[..] else {
            panic!("a (rows, classes) shape, not {case}")
        };
        // The unsharded call as `benches/cross_entropy.rs` times it; its
        // data, sliced, for the shards.
        let prepared = Prepared::new(&ctx, &BenchCase::new(&dims)).expect("case");
        group.throughput(Throughput::Bytes(2 * 4 * prepared.logits.len() as u64));
        group.bench_function(BenchmarkId::new("unsharded", &case), |b| {
            b.iter(|| {
                prepared
                    .run(|p, enc| p.record_fused(enc, None))
                    .expect("run")
            })
        });
        for shards in list("XENT_BENCH_SHARDS", "2,8") {
            let k: usize = shards.parse().expect("a shard count");
            let s = Split::new(&ctx, &prepared.logits, &prepared.targets, classes, k);
            group.bench_function(BenchmarkId::new(format!("{k}_shards"), &case), |b| {
                b.iter(|| {
                    prepared
                        .run(|_, enc| s.record(&ctx, enc, &dims, &opts))
                        .expect("run")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, split);
criterion_main!(benches);
