//! Shared by the benchmark binaries: the result line every binary prints, which
//! `tests/tools/bench.py` collects into `BENCHMARKS.md` and `target/bench/results.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod counting;

use serde_json::Value;

/// One measured figure next to its goal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// e.g. ">= 0.9" or "<= 1" (None when the figure is informational).
    pub goal: Option<String>,
    /// Spread over repeated runs (e.g. "p10–p90 1.2–1.9 ms"), when there is one.
    pub spread: Option<String>,
    /// The reference it is compared with (measured in the same run, or a stated minimum).
    pub reference: Option<String>,
}

impl Metric {
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            value,
            unit: unit.into(),
            goal: None,
            spread: None,
            reference: None,
        }
    }
    pub fn goal(mut self, goal: &str) -> Self {
        self.goal = Some(goal.into());
        self
    }
    pub fn spread(mut self, spread: String) -> Self {
        self.spread = Some(spread);
        self
    }
    pub fn reference(mut self, reference: String) -> Self {
        self.reference = Some(reference);
        self
    }
}

/// Prints the result line: `BENCH {"bench": ..., "how": ..., "metrics": [...], "extra": ...}`.
#[allow(clippy::print_stdout)]
pub fn report(bench: &str, how: &str, metrics: &[Metric], extra: Value) {
    let line = serde_json::json!({"bench": bench, "how": how, "metrics": metrics, "extra": extra});
    println!("BENCH {line}");
}

/// The `q` quantile (0..=1) of a sample, nearest rank.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Median and 10th/90th percentiles of a sample.
pub fn percentiles(mut xs: Vec<f64>) -> (f64, f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}
