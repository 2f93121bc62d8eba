//! What a benchmark case measured, and the figures derived from it
//! (effective bandwidth, its ratio to a copy's, the CPU's time), as text
//! and JSON.

use crate::core::traffic::Traffic;

/// What one case measured. Times are medians over the iterations, in milliseconds.
///
/// ```
/// use xent::bench::BenchResult;
/// let r = BenchResult {
///     name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000,
///     gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75,
///     cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None,
/// };
/// // 8 MB read and written in 0.5 ms: 16 GB/s, half the copy's 32.
/// assert_eq!((r.gbps(), r.copy_gbps(), r.copy_ratio()), (16.0, 32.0, 0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The case's name.
    pub name: String,
    /// The logits' (or input's) shape.
    pub dims: Vec<usize>,
    /// Bytes under the traffic model: logits (input and target) read once, gradient written once.
    pub bytes: u64,
    /// GPU time of the fused forward + backward from timestamp queries, if the adapter has them.
    pub gpu_ms: Option<f64>,
    /// Wall time of record + submit + wait for the fused forward + backward.
    pub wall_ms: f64,
    /// GPU time of the copy kernel over the same bytes, if timestamps exist.
    pub copy_gpu_ms: Option<f64>,
    /// Wall time of the copy kernel over the same bytes.
    pub copy_wall_ms: f64,
    /// Wall time of the CPU path (f64 reference) on the same data, if measured.
    pub cpu_ms: Option<f64>,
    /// Host time to record one call (validation, uniform, bind groups), in microseconds.
    pub record_us: f64,
    /// The call's dispatches timed one by one ([`profile_case`](super::profile_case)); empty
    /// unless a profile was asked for.
    pub dispatches: Vec<DispatchTime>,
    /// The rows checked against the CPU path ([`BenchCase::check_rows`](super::BenchCase::check_rows))
    /// and their gradient's largest |GPU − CPU|; `None` when not asked for.
    pub rows_checked: Option<(usize, f64)>,
    /// The byte yardstick: what the call's plan moves, pass by pass, and
    /// the op's minimum (each input read once, each output written once);
    /// `None` where not counted.
    pub traffic: Option<Traffic>,
}

/// GPU time of one dispatch of a profiled call.
///
/// ```
/// use xent::bench::DispatchTime;
/// let profile = [
///     DispatchTime { entry: "target_stats", gpu_ms: 0.25 },
///     DispatchTime { entry: "rows_wide4", gpu_ms: 1.5 },
///     DispatchTime { entry: "reduce_loss", gpu_ms: 0.25 },
/// ];
/// // The rows pass takes 3/4 of the call's 2 ms.
/// assert_eq!(profile[1].gpu_ms / profile.iter().map(|d| d.gpu_ms).sum::<f64>(), 0.75);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTime {
    /// The shader entry point, e.g. `rows_wide4`.
    pub entry: &'static str,
    /// Median GPU milliseconds over the iterations.
    pub gpu_ms: f64,
}

impl BenchResult {
    /// The best time available for the fused kernel: GPU time, else wall time.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: 0.5 ms on the GPU's clock, 1 on the wall's.
    /// assert_eq!(r.kernel_ms(), 0.5);
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.kernel_ms(), 1.0);
    /// ```
    pub fn kernel_ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }

    /// The copy kernel's time on the same clock as [`BenchResult::kernel_ms`].
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: the copy 0.25 ms on the GPU's clock, 0.75 on the wall's.
    /// assert_eq!(r.copy_ms(), 0.25);
    /// // Without the call's GPU time, both are on the wall clock.
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.copy_ms(), 0.75);
    /// ```
    pub fn copy_ms(&self) -> f64 {
        match (self.gpu_ms, self.copy_gpu_ms) {
            (Some(_), Some(c)) => c,
            _ => self.copy_wall_ms,
        }
    }

    /// Effective GB/s of the fused kernel under the traffic model.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: 8 MB (8·N·C, N = C = 1 000) in 0.5 ms.
    /// assert_eq!(r.gbps(), 16.0);
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.gbps(), 8.0); // in 1 ms
    /// ```
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.kernel_ms() * 1e6)
    }

    /// Effective GB/s of the copy kernel.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: the same 8 MB in 0.25 ms.
    /// assert_eq!(r.copy_gbps(), 32.0);
    /// ```
    pub fn copy_gbps(&self) -> f64 {
        self.bytes as f64 / (self.copy_ms() * 1e6)
    }

    /// Fused bandwidth as a fraction of the copy's (1.0 = as fast as a copy).
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: 0.5 ms against the copy's 0.25.
    /// assert_eq!(r.copy_ratio(), 0.5);
    /// assert_eq!(r.copy_ratio(), r.gbps() / r.copy_gbps());
    /// ```
    pub fn copy_ratio(&self) -> f64 {
        self.copy_ms() / self.kernel_ms()
    }

    /// CPU path time over the fused kernel's wall time.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example: 20 ms on the CPU, 1 on the wall clock.
    /// assert_eq!(r.cpu_speedup(), Some(20.0));
    /// assert_eq!(xent::bench::BenchResult { cpu_ms: None, ..r }.cpu_speedup(), None);
    /// ```
    pub fn cpu_speedup(&self) -> Option<f64> {
        self.cpu_ms.map(|c| c / self.wall_ms)
    }

    /// One JSON object (no external serialiser needed for these flat fields).
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None, traffic: None };
    /// // `r` as in BenchResult's example.
    /// let json = r.to_json();
    /// assert!(json.starts_with(r#"{"name":"1000x1000","dims":[1000, 1000],"bytes":8000000,"gpu_ms":0.500000,"#));
    /// assert!(json.contains(r#""gbps":16.000,"copy_gbps":32.000,"copy_ratio":0.5000,"cpu_speedup":20.000000,"rows_checked":null,"#));
    /// // No byte count in this one.
    /// assert!(json.contains(r#""bytes_min":null,"bytes_planned":null,"bytes_ratio":null,"traffic":null,"#));
    /// ```
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        let int = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        format!(
            "{{\"name\":\"{}\",\"dims\":{:?},\"bytes\":{},\"gpu_ms\":{},\"wall_ms\":{:.6},\"copy_gpu_ms\":{},\
             \"copy_wall_ms\":{:.6},\"cpu_ms\":{},\"record_us\":{:.3},\"gbps\":{:.3},\"copy_gbps\":{:.3},\
             \"copy_ratio\":{:.4},\"cpu_speedup\":{},\"rows_checked\":{},\"rows_max_diff\":{},\
             \"bytes_min\":{},\"bytes_planned\":{},\"bytes_ratio\":{},\"traffic\":{},\
             \"dispatches\":[{}]}}",
            self.name,
            self.dims,
            self.bytes,
            opt(self.gpu_ms),
            self.wall_ms,
            opt(self.copy_gpu_ms),
            self.copy_wall_ms,
            opt(self.cpu_ms),
            self.record_us,
            self.gbps(),
            self.copy_gbps(),
            self.copy_ratio(),
            opt(self.cpu_speedup()),
            self.rows_checked.map_or("null".to_string(), |(n, _)| n.to_string()),
            opt(self.rows_checked.map(|(_, d)| d)),
            int(self.traffic.as_ref().map(|t| t.minimum)),
            int(self.traffic.as_ref().map(Traffic::planned)),
            self.traffic
                .as_ref()
                .map_or("null".to_string(), |t| format!("{:.4}", t.ratio())),
            self.traffic
                .as_ref()
                .map_or("null".to_string(), Traffic::transfers_json),
            self.dispatches
                .iter()
                .map(|d| format!("{{\"entry\":\"{}\",\"gpu_ms\":{:.6}}}", d.entry, d.gpu_ms))
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}
