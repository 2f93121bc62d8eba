//! xent's compute pipelines: the shader modules (assembled in
//! `sources.rs`), the fixed pipelines built with the context, and the
//! cross-entropy and elementwise ones built per entry point on first use in
//! bounded caches.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use super::sources::{
    cross_entropy_source, elementwise_source, matmul_source, softmax_source, COPY_WGSL,
};
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::plan::TEAM_WG;
use crate::ops::cross_entropy::Precision;

/// Compute pipelines, built once per context (cross-entropy variants on first use).
pub(crate) struct Kernels {
    /// Invocations per row of the wide kernels: the adapter's smallest
    /// subgroup size where subgroups are used (`subgroup_lanes`: reductions
    /// by shuffles within the subgroup that holds the workgroup), else
    /// `WIDE_WG_CPU` on software adapters, else `WIDE_WG` (reductions
    /// through workgroup memory).
    pub wide_wg: u32,
    /// Whether the cross-entropy modules use subgroup reductions.
    pub subgroups: bool,
    cross_entropy_module: wgpu::ShaderModule,
    /// The f16 (SHADER_F16 only) and bf16 builds of the same source, made on first use.
    cross_entropy_half_modules: Mutex<HashMap<Precision, wgpu::ShaderModule>>,
    /// The cross-entropy pipelines, one per (variant, entry point, `FIXED_N`
    /// or 0), each built when a call first uses it; at most
    /// [`PIPELINE_CACHE_MAX`], the least recently used dropped past that.
    cross_entropy: Mutex<PipelineCache<PipelineKey>>,
    /// The elementwise modules, one per storage precision, built on first use.
    elementwise_modules: Mutex<HashMap<Precision, wgpu::ShaderModule>>,
    /// The elementwise pipelines, one per (variant, entry point), built on first use.
    elementwise: Mutex<PipelineCache<(ElementwiseVariant, &'static str)>>,
    /// The softmax pipelines in f32, built with the context.
    pub softmax: SoftmaxPipelines,
    /// In f16 and bf16, built on first use.
    softmax_half: Mutex<HashMap<Precision, SoftmaxPipelines>>,
    /// The matrix products' modules, one per (A, B) storage pair, built on first use.
    matmul_modules: Mutex<HashMap<(Precision, Precision), wgpu::ShaderModule>>,
    /// The matrix products' pipelines, one per (variant, entry point).
    matmul: Mutex<PipelineCache<(MatmulVariant, &'static str)>>,
    pub copy: wgpu::ComputePipeline,
}

/// The switches of the matrix products' override constants and the
/// operands' storage (`shaders/matmul/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MatmulVariant {
    pub lhs: Precision,
    pub rhs: Precision,
    pub a_k_contig: bool,
    pub b_k_contig: bool,
    pub a_vec: bool,
    pub b_vec: bool,
    pub has_bias: bool,
}

/// The switches of the cross-entropy module's override constants: one
/// pipeline set per combination in use, so the kernels' loops carry no
/// branches for options that are off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CrossEntropyVariant {
    pub target_kind: u32,
    pub input_kind: u32,
    pub has_weights: bool,
    pub has_sample_weights: bool,
    pub smoothing: bool,
    pub z_loss: bool,
    pub softcap: bool,
    pub write_grad: bool,
    pub write_lse: bool,
    pub count_correct: bool,
    pub in_place: bool,
    /// The input is a window of rows refilled between chunks.
    pub row_window: bool,
    /// The finish of a vocabulary shard (`SHARDED`).
    pub sharded: bool,
    /// The input's and the gradient's storage (the module built for it).
    pub precision: Precision,
}

impl CrossEntropyVariant {
    /// Every switch off, f32 class-index targets and logits: the variant of
    /// entry points that use none of them (the vocabulary merge sets its
    /// input kind).
    pub(crate) fn plain() -> Self {
        Self {
            target_kind: 0,
            input_kind: 0,
            has_weights: false,
            has_sample_weights: false,
            smoothing: false,
            z_loss: false,
            softcap: false,
            write_grad: false,
            write_lse: false,
            count_correct: false,
            in_place: false,
            row_window: false,
            sharded: false,
            precision: Precision::F32,
        }
    }
}

/// The eight softmax pipelines of one storage precision.
#[derive(Clone)]
pub(crate) struct SoftmaxPipelines {
    pub softmax_wide: wgpu::ComputePipeline,
    pub softmax_narrow: wgpu::ComputePipeline,
    pub backward_wide: wgpu::ComputePipeline,
    pub backward_narrow: wgpu::ComputePipeline,
    pub softmax_partial: wgpu::ComputePipeline,
    pub softmax_split: wgpu::ComputePipeline,
    pub backward_partial: wgpu::ComputePipeline,
    pub backward_split: wgpu::ComputePipeline,
}

impl SoftmaxPipelines {
    fn build(device: &wgpu::Device, precision: Precision) -> Self {
        let label = format!("xent softmax ({precision:?})");
        let sm = module(device, &label, &softmax_source(precision));
        Self {
            softmax_wide: pipeline(device, &sm, "softmax_wide"),
            softmax_narrow: pipeline(device, &sm, "softmax_narrow"),
            backward_wide: pipeline(device, &sm, "backward_wide"),
            backward_narrow: pipeline(device, &sm, "backward_narrow"),
            softmax_partial: pipeline(device, &sm, "softmax_partial"),
            softmax_split: pipeline(device, &sm, "softmax_split"),
            backward_partial: pipeline(device, &sm, "backward_partial"),
            backward_split: pipeline(device, &sm, "backward_split"),
        }
    }
}

/// The switches of the elementwise module's override constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ElementwiseVariant {
    /// `LOSS`: [`ElementwiseLoss::code`](crate::ElementwiseLoss).
    pub loss: u32,
    pub has_weight: bool,
    /// The weight has the last axis's length.
    pub weight_last: bool,
    pub has_pos_weight: bool,
    pub write_grad: bool,
    /// The input's, the target's and the gradient's storage.
    pub precision: Precision,
}

/// At most this many specialised cross-entropy pipelines stay cached per
/// context; past it the least recently used is dropped (and rebuilt if used
/// again). A call uses 1 to 7 of the 16 entry points; a pipeline costs about 1 to 2 MB of host
/// memory on lavapipe, so the cache stays near 100 MB there however many
/// option sets and class counts a program goes through.
pub(crate) const PIPELINE_CACHE_MAX: usize = 64;

/// A pipeline's key: variant, entry point, and `FIXED_N` (0 for the entry
/// points that are not specialised for C).
type PipelineKey = (CrossEntropyVariant, &'static str, u32);

/// A bounded cache of specialised pipelines (the cross-entropy ones, the
/// elementwise ones): each pipeline with the tick it was last used at.
pub(crate) struct PipelineCache<K> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (wgpu::ComputePipeline, u64)>,
}

impl<K: Copy + Eq + Hash> PipelineCache<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<wgpu::ComputePipeline> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(p, used)| {
            *used = tick;
            p.clone()
        })
    }

    fn insert(&mut self, key: K, pipeline: wgpu::ComputePipeline) {
        if self.entries.len() >= self.capacity {
            let oldest = self.entries.iter().min_by_key(|(_, (_, used))| *used);
            if let Some(&k) = oldest.map(|(k, _)| k) {
                self.entries.remove(&k);
            }
        }
        self.tick += 1;
        self.entries.insert(key, (pipeline, self.tick));
    }

    /// The keys cached now, least recently used first.
    #[cfg(test)]
    fn keys(&self) -> Vec<K> {
        let mut keys: Vec<_> = self.entries.iter().map(|(k, (_, t))| (*t, *k)).collect();
        keys.sort_by_key(|(t, _)| *t);
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

/// Invocations per row of the wide kernels without subgroups: one SIMD
/// batch (8 lanes of 256 bits) on software adapters, where a workgroup of 8
/// beat one of 16 once rows were walked as two streams (4096 × 4096 on
/// lavapipe without subgroups: 36 → 31 ms; BENCHMARKS.md); 16 elsewhere.
pub(crate) const WIDE_WG_CPU: u32 = 8;
pub(crate) const WIDE_WG: u32 = 16;

impl Kernels {
    pub(crate) fn build(device: &wgpu::Device) -> Self {
        let lanes = subgroup_lanes(device);
        let ce = module(
            device,
            "xent cross_entropy",
            &cross_entropy_source(Precision::F32, lanes.is_some()),
        );

        Self {
            wide_wg: lanes.unwrap_or(
                if device.adapter_info().device_type == wgpu::DeviceType::Cpu {
                    WIDE_WG_CPU
                } else {
                    WIDE_WG
                },
            ),
            subgroups: lanes.is_some(),
            cross_entropy_module: ce,
            cross_entropy_half_modules: Mutex::new(HashMap::new()),
            cross_entropy: Mutex::new(PipelineCache::new(PIPELINE_CACHE_MAX)),
            elementwise_modules: Mutex::new(HashMap::new()),
            elementwise: Mutex::new(PipelineCache::new(PIPELINE_CACHE_MAX)),
            softmax: SoftmaxPipelines::build(device, Precision::F32),
            softmax_half: Mutex::new(HashMap::new()),
            matmul_modules: Mutex::new(HashMap::new()),
            matmul: Mutex::new(PipelineCache::new(PIPELINE_CACHE_MAX)),
            copy: pipeline(
                device,
                &module(device, "xent copy.wgsl", COPY_WGSL),
                "copy_vec4",
            ),
        }
    }
}

impl Kernels {
    /// Entry point `entry` of variant `v`, specialised for the override
    /// constant `spec` names (`FIXED_N` of `rows_narrow4_fixed` and
    /// `rows_pixels4_fixed`, `TEAM` of `rows_team` and `rows_team4`), built
    /// on first use and cached (see [`PIPELINE_CACHE_MAX`]).
    pub fn cross_entropy(
        &self,
        device: &wgpu::Device,
        v: CrossEntropyVariant,
        entry: &'static str,
        spec: Option<(&'static str, u32)>,
    ) -> Result<wgpu::ComputePipeline> {
        let n = spec.map_or(0, |(_, n)| n);
        // The fixed kernels' row array holds MAX_FIXED = 32 vec4s; a team is
        // a power of two of lanes within its workgroup.
        let fits = match spec {
            Some(("TEAM", n)) => n.is_power_of_two() && n as usize <= TEAM_WG,
            Some((_, n)) => n <= 32,
            None => true,
        };
        if !fits {
            return Err(Error::Unsupported {
                what: "a kernel specialised for this shape",
                reason: format!("{spec:?} is outside the shader's range (FIXED_N 1..=32, TEAM a power of two up to {TEAM_WG})"),
            });
        }
        let key = (v, entry, n);
        let mut cache = self.cross_entropy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p);
        }
        let mut constants = self.constants(v);
        constants.extend(spec.map(|(name, n)| (name, f64::from(n))));
        let scope = GpuScope::push(device);
        let module = self.module_for(device, v)?;
        let pipeline = specialised(device, &module, entry, &constants);
        scope.pop(&format!("building {entry} ({spec:?}) for {v:?}"))?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Entry point `entry` of elementwise variant `v`, built on first use
    /// and cached (at most [`PIPELINE_CACHE_MAX`] of them).
    pub fn elementwise(
        &self,
        device: &wgpu::Device,
        v: ElementwiseVariant,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.elementwise.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&(v, entry)) {
            return Ok(p);
        }
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let constants = [
            ("LOSS", f64::from(v.loss)),
            ("HAS_WEIGHT", flag(v.has_weight)),
            ("WEIGHT_LAST", flag(v.weight_last)),
            ("HAS_POS_WEIGHT", flag(v.has_pos_weight)),
            ("WRITE_GRAD", flag(v.write_grad)),
        ];
        v.precision
            .supported_on(device, "f16 inputs and gradients")?;
        let scope = GpuScope::push(device);
        let module = {
            let mut built = self
                .elementwise_modules
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            built
                .entry(v.precision)
                .or_insert_with(|| {
                    let label = format!("xent elementwise ({:?})", v.precision);
                    module(device, &label, &elementwise_source(v.precision))
                })
                .clone()
        };
        let pipeline = specialised(device, &module, entry, &constants);
        scope.pop(&format!("building {entry} for {v:?}"))?;
        cache.insert((v, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// Entry point `entry` (`matmul` or `column_sums`) of the products'
    /// variant `v`, built on first use and cached.
    pub fn matmul(
        &self,
        device: &wgpu::Device,
        v: MatmulVariant,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.matmul.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&(v, entry)) {
            return Ok(p);
        }
        v.lhs.supported_on(device, "f16 operands")?;
        v.rhs.supported_on(device, "f16 operands")?;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let constants: Vec<(&str, f64)> = match entry {
            "matmul" | "matmul_blocks" => vec![
                ("A_K_CONTIG", flag(v.a_k_contig)),
                ("B_K_CONTIG", flag(v.b_k_contig)),
                ("A_VEC", flag(v.a_vec)),
                ("B_VEC", flag(v.b_vec)),
                ("HAS_BIAS", flag(v.has_bias)),
            ],
            _ => Vec::new(),
        };
        let scope = GpuScope::push(device);
        let module = {
            let mut built = self
                .matmul_modules
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            built
                .entry((v.lhs, v.rhs))
                .or_insert_with(|| {
                    let label = format!("xent matmul ({:?} x {:?})", v.lhs, v.rhs);
                    module(device, &label, &matmul_source(v.lhs, v.rhs))
                })
                .clone()
        };
        let pipeline = specialised(device, &module, entry, &constants);
        scope.pop(&format!("building {entry} for {v:?}"))?;
        cache.insert((v, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// The softmax pipelines storing in `precision` (f16 and bf16 built on
    /// first use; f16 needs `SHADER_F16`).
    pub fn softmax(&self, device: &wgpu::Device, precision: Precision) -> Result<SoftmaxPipelines> {
        if precision == Precision::F32 {
            return Ok(self.softmax.clone());
        }
        precision.supported_on(device, "f16 softmax inputs and outputs")?;
        let mut built = self.softmax_half.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = built.get(&precision) {
            return Ok(p.clone());
        }
        let scope = GpuScope::push(device);
        let pipelines = SoftmaxPipelines::build(device, precision);
        scope.pop(&format!("building the softmax pipelines ({precision:?})"))?;
        built.insert(precision, pipelines.clone());
        Ok(pipelines)
    }

    /// The cross-entropy pipelines cached now, least recently used first:
    /// (entry point, `FIXED_N`).
    #[cfg(test)]
    pub(crate) fn cached_entries(&self) -> Vec<(&'static str, u32)> {
        let cache = self.cross_entropy.lock().unwrap_or_else(|e| e.into_inner());
        cache.keys().into_iter().map(|(_, e, n)| (e, n)).collect()
    }
}

impl Kernels {
    /// The override constants of variant `v`.
    fn constants(&self, v: CrossEntropyVariant) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        vec![
            ("TARGET_KIND", f64::from(v.target_kind)),
            ("INPUT_KIND", f64::from(v.input_kind)),
            ("HAS_WEIGHTS", flag(v.has_weights)),
            ("HAS_SAMPLE_WEIGHTS", flag(v.has_sample_weights)),
            ("SMOOTHING", flag(v.smoothing)),
            ("Z_LOSS", flag(v.z_loss)),
            ("SOFTCAP", flag(v.softcap)),
            ("WRITE_GRAD", flag(v.write_grad)),
            ("WRITE_LSE", flag(v.write_lse)),
            ("COUNT_CORRECT", flag(v.count_correct)),
            ("IN_PLACE", flag(v.in_place)),
            ("ROW_WINDOW", flag(v.row_window)),
            ("SHARDED", flag(v.sharded)),
            ("WIDE_WG", f64::from(self.wide_wg)),
        ]
    }

    /// The cross-entropy module variant `v` is built from: f32, f16 or bf16.
    fn module_for(
        &self,
        device: &wgpu::Device,
        v: CrossEntropyVariant,
    ) -> Result<wgpu::ShaderModule> {
        if v.precision == Precision::F32 {
            return Ok(self.cross_entropy_module.clone());
        }
        v.precision
            .supported_on(device, "f16 logits and gradients")?;
        let mut built = self
            .cross_entropy_half_modules
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(m) = built.get(&v.precision) {
            return Ok(m.clone());
        }
        let source = cross_entropy_source(v.precision, self.subgroups);
        let label = format!("xent cross_entropy ({:?})", v.precision);
        let m = module(device, &label, &source);
        built.insert(v.precision, m.clone());
        Ok(m)
    }
}

/// The subgroup size the wide kernels use as their workgroup size, where the
/// device has SUBGROUP and its smallest subgroup is a power of two from 8 to
/// 64: a workgroup of that many invocations lies within one subgroup. `None`
/// (the workgroup-memory reductions) otherwise, on Metal (whose reported
/// minimum of 4 is far below the 32 lanes Apple GPUs run, so rows would get
/// 4 invocations), or when `XENT_SUBGROUPS=0`.
fn subgroup_lanes(device: &wgpu::Device) -> Option<u32> {
    let info = device.adapter_info();
    if std::env::var("XENT_SUBGROUPS").is_ok_and(|v| v == "0")
        || !device.features().contains(wgpu::Features::SUBGROUP)
        || info.backend == wgpu::Backend::Metal
    {
        return None;
    }
    let n = info.subgroup_min_size;
    (n.is_power_of_two() && (8..=64).contains(&n)).then_some(n)
}

fn specialised(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            // Every workgroup variable is written before it is read.
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

fn module(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

fn pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    /// A context on the environment's adapter, or `None` (unless
    /// `XENT_REQUIRE_ADAPTER` is set) without one.
    fn ctx() -> Option<Context> {
        match Context::from_env() {
            Ok(c) => Some(c),
            Err(e) if std::env::var("XENT_REQUIRE_ADAPTER").is_ok_and(|v| v == "1") => {
                panic!("no adapter: {e}")
            }
            Err(_) => None,
        }
    }

    #[test]
    fn every_assembled_module_parses_and_validates() {
        for precision in [Precision::F32, Precision::F16, Precision::BF16] {
            for subgroups in [false, true] {
                let what = format!("cross-entropy, {precision:?}, subgroups {subgroups}");
                validates(&what, &cross_entropy_source(precision, subgroups));
            }
        }
        for precision in [Precision::F32, Precision::F16, Precision::BF16] {
            validates(
                &format!("softmax, {precision:?}"),
                &softmax_source(precision),
            );
        }
        for precision in [Precision::F32, Precision::F16, Precision::BF16] {
            validates(
                &format!("elementwise, {precision:?}"),
                &elementwise_source(precision),
            );
        }
        for lhs in [Precision::F32, Precision::F16, Precision::BF16] {
            for rhs in [Precision::F32, Precision::F16, Precision::BF16] {
                validates(
                    &format!("matmul, {lhs:?} x {rhs:?}"),
                    &matmul_source(lhs, rhs),
                );
            }
        }
        validates("copy", COPY_WGSL);
    }

    fn validates(what: &str, source: &str) {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{what}: {e}"));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }

    #[test]
    fn a_call_builds_only_the_entry_points_it_uses() {
        let Some(ctx) = ctx() else { return };
        let x = vec![0.0f32; 64 * 32];
        ctx.cross_entropy(&x, &[64, 32], &[1i64; 64], None, &Default::default())
            .unwrap();
        let mut built = ctx.kernels.cached_entries();
        built.sort();
        assert_eq!(
            built,
            vec![
                ("reduce_loss", 0),
                ("rows_narrow4_fixed", 8),
                ("target_stats", 0)
            ]
        );
    }

    #[test]
    fn the_pipeline_cache_is_bounded_and_drops_the_least_recently_used() {
        let Some(ctx) = ctx() else { return };
        *ctx.kernels.cross_entropy.lock().unwrap() = PipelineCache::new(4);
        let call = |c: usize| {
            let x = vec![0.0f32; 4 * c];
            let out = ctx
                .cross_entropy(&x, &[4, c], &[0i64; 4], None, &Default::default())
                .unwrap();
            assert!(
                (out.loss[0] - (c as f32).ln()).abs() < 1e-5,
                "{c}: {:?}",
                out.loss
            );
        };
        // Each class count has its own specialised pipeline (plus the two
        // reductions): 8 of them through a cache of 4.
        for c in (4..=32).step_by(4) {
            call(c);
            assert!(ctx.kernels.cached_entries().len() <= 4);
        }
        let cached = ctx.kernels.cached_entries();
        assert!(cached.contains(&("rows_narrow4_fixed", 8)), "{cached:?}");
        assert!(!cached.contains(&("rows_narrow4_fixed", 1)), "{cached:?}");
        // A dropped pipeline is built again when used again.
        call(4);
        assert!(ctx
            .kernels
            .cached_entries()
            .contains(&("rows_narrow4_fixed", 1)));
    }
}
