//! The one pipeline cache every op builds its kernels through: shader
//! modules keyed by (op, build), pipelines keyed by (module, entry point,
//! override constants), each built on first use. The cache knows no op: an
//! op names its module, hands over the source to assemble on a miss, and
//! gives the entry point and constants.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::error::{GpuScope, Result};

/// A shader module: the op's name and which build of its source (an op's
/// own code for precisions and source-level switches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ModuleKey {
    pub op: &'static str,
    pub build: u32,
}

/// A pipeline: its module, entry point, and override constants (values as
/// f64 bits, in the order the op gives them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub module: ModuleKey,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u64)>,
}

/// At most this many pipelines stay cached per context, over every op;
/// past it the least recently used is dropped (and rebuilt if used again).
/// A call uses 1 to 10 entry points; a pipeline costs about 1 to 2 MB of
/// host memory on lavapipe, so the cache stays near 100 MB there however
/// many ops, option sets and class counts a program goes through.
pub(crate) const PIPELINE_CACHE_MAX: usize = 64;

/// The context's modules and pipelines.
pub(crate) struct Pipelines {
    /// Every module built so far: a few per op (one per build in use).
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
    pipelines: Mutex<PipelineCache<PipelineKey>>,
}

impl Pipelines {
    pub(crate) fn new() -> Self {
        Self {
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(PipelineCache::new(PIPELINE_CACHE_MAX)),
        }
    }

    /// Entry point `entry` of `module` with override `constants`, built on
    /// first use (the module too, from `source()`) and cached.
    ///
    /// # Errors
    /// [`Error::Gpu`](crate::Error::Gpu) when the device refuses the module
    /// or the pipeline.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        module: ModuleKey,
        source: impl FnOnce() -> String,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey {
            module,
            entry,
            constants: constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        };
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p);
        }
        let scope = GpuScope::push(device);
        let shader = self.module(device, module, source);
        let pipeline = specialised(device, &shader, entry, constants);
        scope.pop(&format!(
            "building {entry} of {module:?} with {constants:?}"
        ))?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn module(
        &self,
        device: &wgpu::Device,
        key: ModuleKey,
        source: impl FnOnce() -> String,
    ) -> wgpu::ShaderModule {
        let mut built = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        built
            .entry(key)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&format!("xent {} ({})", key.op, key.build)),
                    source: wgpu::ShaderSource::Wgsl(source().into()),
                })
            })
            .clone()
    }

    /// The keys of `op`'s pipelines cached now, least recently used first.
    #[cfg(test)]
    pub(crate) fn cached(&self, op: &str) -> Vec<PipelineKey> {
        let cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let keys = cache.keys().into_iter();
        keys.filter(|k| k.module.op == op).collect()
    }

    /// Replaces the cache with an empty one of `capacity` (tests of the bound).
    #[cfg(test)]
    pub(crate) fn reset(&self, capacity: usize) {
        *self.pipelines.lock().unwrap() = PipelineCache::new(capacity);
    }
}

impl super::Context {
    /// Entry point `entry` of op `op`'s module build `build` (assembled by
    /// `source` on first use) with override `constants`, through the
    /// context's cache.
    pub(crate) fn pipeline(
        &self,
        (op, build): (&'static str, u32),
        source: impl FnOnce() -> String,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = ModuleKey { op, build };
        self.pipelines
            .get(&self.device, key, source, entry, constants)
    }
}

/// A bounded cache of pipelines: each with the tick it was last used at.
struct PipelineCache<K> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (wgpu::ComputePipeline, u64)>,
}

impl<K: Clone + Eq + Hash> PipelineCache<K> {
    fn new(capacity: usize) -> Self {
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
            if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                self.entries.remove(&k);
            }
        }
        self.tick += 1;
        self.entries.insert(key, (pipeline, self.tick));
    }

    /// The keys cached now, least recently used first.
    #[cfg(test)]
    fn keys(&self) -> Vec<K> {
        let mut keys: Vec<_> = self.entries.iter().map(|(k, (_, t))| (*t, k)).collect();
        keys.sort_by_key(|(t, _)| *t);
        keys.into_iter().map(|(_, k)| k.clone()).collect()
    }
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

/// Flag value of a boolean override constant.
pub(crate) fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Parses and validates an assembled module with naga (every op's unit
/// test runs each of its builds through this).
#[cfg(test)]
pub(crate) fn validates(what: &str, source: &str) {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{what}: {e}"));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
}
