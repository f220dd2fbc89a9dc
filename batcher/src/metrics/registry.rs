//! A small Prometheus registry: counter, gauge and histogram families with labels, rendered in
//! the text exposition format (version 0.0.4). Written here instead of pulling a metrics crate:
//! the daemon needs a dozen families and nothing else.
//!
//! Label values can come from requests (model names), so every family holds at most
//! [`MAX_SERIES`] series; beyond that, new label sets are counted under `_other`.

use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use indexmap::{Equivalent, IndexMap};

/// Most series per family.
pub const MAX_SERIES: usize = 1000;
const OVERFLOW: &str = "_other";

struct Family<V> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<IndexMap<Vec<String>, V>>,
}

/// A series' label values as the caller has them: every update on the request path looks its
/// series up with these, and only a new series builds its owned key.
struct Labels<'a>(&'a [&'a str]);

impl Hash for Labels<'_> {
    /// As `Vec<String>` hashes: the length, then each value as a `str`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<Vec<String>> for Labels<'_> {
    fn equivalent(&self, key: &Vec<String>) -> bool {
        key.len() == self.0.len() && key.iter().zip(self.0).all(|(owned, value)| owned == value)
    }
}

impl<V: Default> Family<V> {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family { name, help, labels, series: Mutex::new(IndexMap::new()) }
    }

    /// Runs `update` on the series of `values` (created on first use).
    fn with(&self, values: &[&str], update: impl FnOnce(&mut V)) {
        let mut series = self.lock();
        if let Some(value) = series.get_mut(&Labels(values)) {
            update(value);
            return;
        }
        let key = if series.len() >= MAX_SERIES {
            vec![OVERFLOW.to_string(); values.len()]
        } else {
            values.iter().map(|v| v.to_string()).collect()
        };
        update(series.entry(key).or_default());
    }

    /// Drops the series of `values` (e.g. a backend target a reload removed).
    fn remove(&self, values: &[&str]) {
        self.lock().swap_remove(&Labels(values));
    }

    fn lock(&self) -> MutexGuard<'_, IndexMap<Vec<String>, V>> {
        // A panic elsewhere while holding it cannot leave a half-written number.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Series sorted by labels, so the output is stable.
    fn render(&self, kind: &str, out: &mut String, mut line: impl FnMut(&mut String, &str, &V)) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let series = self.lock();
        let mut rows: Vec<(&Vec<String>, &V)> = series.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (values, value) in rows {
            line(out, &label_text(self.labels, values), value);
        }
    }
}

/// `name="value",...` with Prometheus escaping.
fn label_text(names: &[&str], values: &[String]) -> String {
    let mut text = String::new();
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            text.push(',');
        }
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(text, "{name}=\"{escaped}\"");
    }
    text
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

pub struct Counter(Family<u64>);

impl Counter {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Counter(Family::new(name, help, labels))
    }

    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], n: u64) {
        self.0.with(labels, |v| *v += n);
    }

    /// The count of one series (0 if it has none yet).
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.0.lock().get(&Labels(labels)).copied().unwrap_or(0)
    }

    pub fn render(&self, out: &mut String) {
        let name = self.0.name;
        self.0.render("counter", out, |out, labels, v| {
            let _ = writeln!(out, "{name}{} {v}", braces(labels));
        });
    }
}

/// A counter of time, kept in microseconds (exact sums), shown in seconds.
pub struct SecondsCounter(Family<u64>);

impl SecondsCounter {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        SecondsCounter(Family::new(name, help, labels))
    }

    pub fn add(&self, labels: &[&str], time: std::time::Duration) {
        let micros = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
        self.0.with(labels, |v| *v = v.saturating_add(micros));
    }

    pub fn render(&self, out: &mut String) {
        let name = self.0.name;
        self.0.render("counter", out, |out, labels, v| {
            let _ = writeln!(out, "{name}{} {}", braces(labels), *v as f64 / 1e6);
        });
    }
}

pub struct Gauge(Family<i64>);

impl Gauge {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Gauge(Family::new(name, help, labels))
    }

    pub fn set(&self, labels: &[&str], value: i64) {
        self.0.with(labels, |v| *v = value);
    }

    pub fn add(&self, labels: &[&str], delta: i64) {
        self.0.with(labels, |v| *v += delta);
    }

    pub fn remove(&self, labels: &[&str]) {
        self.0.remove(labels);
    }

    pub fn render(&self, out: &mut String) {
        let name = self.0.name;
        self.0.render("gauge", out, |out, labels, v| {
            let _ = writeln!(out, "{name}{} {v}", braces(labels));
        });
    }
}

#[derive(Default)]
struct Buckets {
    /// Per bucket (not cumulative); one more for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

pub struct Histogram {
    family: Family<Buckets>,
    bounds: &'static [f64],
}

impl Histogram {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Histogram { family: Family::new(name, help, labels), bounds }
    }

    pub fn observe(&self, labels: &[&str], value: f64) {
        let bucket = self.bounds.iter().position(|&bound| value <= bound).unwrap_or(self.bounds.len());
        let slots = self.bounds.len() + 1;
        self.family.with(labels, |b| {
            b.counts.resize(slots, 0);
            b.counts[bucket] += 1;
            b.sum += value;
            b.count += 1;
        });
    }

    pub fn render(&self, out: &mut String) {
        let name = self.family.name;
        let bounds = self.bounds;
        self.family.render("histogram", out, |out, labels, b| {
            let sep = if labels.is_empty() { "" } else { "," };
            let mut cumulative = 0;
            for (i, bound) in bounds.iter().enumerate() {
                cumulative += b.counts.get(i).copied().unwrap_or(0);
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", b.count);
            let _ = writeln!(out, "{name}_sum{} {}", braces(labels), b.sum);
            let _ = writeln!(out, "{name}_count{} {}", braces(labels), b.count);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let c = Counter::new("t_total", "A counter.", &["model", "code"]);
        c.inc(&["m", "200"]);
        c.add(&["m", "200"], 2);
        c.inc(&["a\"b", "404"]);
        let mut out = String::new();
        c.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total A counter.\n# TYPE t_total counter\nt_total{model=\"a\\\"b\",code=\"404\"} 1\nt_total{model=\"m\",code=\"200\"} 3\n"
        );
        let g = Gauge::new("g", "A gauge.", &[]);
        g.set(&[], 5);
        g.add(&[], -2);
        let mut out = String::new();
        g.render(&mut out);
        assert!(out.ends_with("g 3\n"), "{out}");
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new("h", "A histogram.", &["m"], &[1.0, 10.0]);
        for v in [0.5, 5.0, 5.0, 50.0] {
            h.observe(&["x"], v);
        }
        let mut out = String::new();
        h.render(&mut out);
        for line in [
            "h_bucket{m=\"x\",le=\"1\"} 1",
            "h_bucket{m=\"x\",le=\"10\"} 3",
            "h_bucket{m=\"x\",le=\"+Inf\"} 4",
            "h_sum{m=\"x\"} 60.5",
            "h_count{m=\"x\"} 4",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
    }

    #[test]
    fn a_series_is_found_again_by_its_values_and_only_by_them() {
        let c = Counter::new("c", "c", &["model", "plan"]);
        let (first, again) = (String::from("ab"), String::from("ab"));
        c.inc(&[&first, "c"]);
        c.add(&[&again, "c"], 2);
        c.inc(&["a", "bc"]);
        assert_eq!(c.get(&["ab", "c"]), 3);
        assert_eq!(c.get(&["a", "bc"]), 1);
        let g = Gauge::new("g", "g", &["target"]);
        g.set(&["t1"], 5);
        g.set(&["t2"], 7);
        g.remove(&["t1"]);
        let mut out = String::new();
        g.render(&mut out);
        assert!(!out.contains("t1") && out.contains("g{target=\"t2\"} 7"), "{out}");
    }

    #[test]
    fn series_are_capped() {
        let c = Counter::new("c", "c", &["model"]);
        for i in 0..MAX_SERIES + 10 {
            c.inc(&[&i.to_string()]);
        }
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("c{model=\"_other\"} 10"), "{}", &out[..200]);
    }
}
