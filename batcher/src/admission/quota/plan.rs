//! Plans: the limits a caller gets for a model, resolved once from the configuration into a
//! [`LimitSet`], and the counters ([`Check`]s) one admission looks at.
//!
//! Counters belong to the caller, not to the plan: a caller whose plan changes (a new token
//! with another `plan` claim) keeps what it used so far, measured against the new plan's
//! limits. A limit a `[quotas.plans.P.models.M]` table sets is counted per model; the others
//! count the caller's requests to every model together.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;

use super::calendar;
use super::decide::{Admission, Bucket, Check, Rule};
use super::limits::{RateSpec, Window};

/// The plan of callers whose `X-Tfgate-Plan` names no plan.
pub const DEFAULT_PLAN: &str = "default";
/// Longest plan name (in the configuration and in `X-Tfgate-Plan`).
pub const MAX_PLAN_NAME: usize = 64;

/// Plan names: letters, digits, `_`, `-`, `.`; at most [`MAX_PLAN_NAME`] bytes.
pub fn is_plan_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PLAN_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Requests,
    Rows,
    /// Accelerator time, in microseconds: charged after the call (its cost is known only
    /// then); a caller already past the limit is refused.
    Compute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A token bucket of requests: `rate` as written, and the bucket it makes with `burst`.
    Rate { rate: RateSpec, bucket: Bucket },
    /// A count per calendar window.
    Quota { counted: Counted, count: u64, window: Window },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub kind: LimitKind,
    /// The model this limit counts alone (set in a `models.M` table); `None`: every model.
    pub model: Option<String>,
}

impl Limit {
    /// `rate`, `requests_day`, `rows_month`...: the metric label and the last part of the
    /// policy's name.
    pub fn id(&self) -> &'static str {
        match self.kind {
            LimitKind::Rate { .. } => "rate",
            LimitKind::Quota { counted, window, .. } => match (counted, window) {
                (Counted::Requests, Window::Minute) => "requests_minute",
                (Counted::Requests, Window::Hour) => "requests_hour",
                (Counted::Requests, Window::Day) => "requests_day",
                (Counted::Requests, Window::Month) => "requests_month",
                (Counted::Rows, Window::Minute) => "rows_minute",
                (Counted::Rows, Window::Hour) => "rows_hour",
                (Counted::Rows, Window::Day) => "rows_day",
                (Counted::Rows, Window::Month) => "rows_month",
                (Counted::Compute, Window::Minute) => "compute_minute",
                (Counted::Compute, Window::Hour) => "compute_hour",
                (Counted::Compute, Window::Day) => "compute_day",
                (Counted::Compute, Window::Month) => "compute_month",
            },
        }
    }

    /// In words, for messages: `20 requests per second (burst 40)`, `10000 rows per day of
    /// model m`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            LimitKind::Rate { rate, bucket } => {
                format!("{} requests per {} (burst {})", rate.count, rate.period.as_str(), bucket.burst)
            }
            LimitKind::Quota { counted: Counted::Requests, count, window } => {
                format!("{count} requests per {}", window.as_str())
            }
            LimitKind::Quota { counted: Counted::Rows, count, window } => {
                format!("{count} rows per {}", window.as_str())
            }
            LimitKind::Quota { counted: Counted::Compute, count, window } => {
                format!("{} s of compute per {}", count as f64 / 1e6, window.as_str())
            }
        };
        match &self.model {
            Some(model) => format!("{what} of model {model}"),
            None => what,
        }
    }

    fn counted(&self) -> Counted {
        match self.kind {
            LimitKind::Rate { .. } => Counted::Requests,
            LimitKind::Quota { counted, .. } => counted,
        }
    }

    /// This limit's check for a request of `rows` rows at `now_us`, kept in `record`. Compute
    /// costs nothing up front (what a call costs is charged after it: see [`LimitSet::charge`]):
    /// the check refuses a caller already past the limit.
    fn check(&self, record: usize, rows: u64, now_us: u64) -> Check {
        let cost = match self.counted() {
            Counted::Requests => 1,
            Counted::Rows => rows,
            Counted::Compute => 0,
        };
        let rule = match self.kind {
            LimitKind::Rate { bucket, .. } => Rule::Bucket(bucket),
            LimitKind::Quota { count, window, .. } => {
                Rule::Window { limit: count, end_us: calendar::span(window, now_us / 1_000_000).end * 1_000_000 }
            }
        };
        Check { record, field: self.id(), rule, cost }
    }

    /// The policy's name as a structured-field String: `"PLAN:LIMIT"`, or `"PLAN:MODEL:LIMIT"`
    /// for a model's own limit.
    fn quoted_name(&self, plan: &str) -> String {
        let mut out = String::with_capacity(plan.len() + 24);
        out.push('"');
        sf_string_into(&mut out, plan);
        if let Some(model) = &self.model {
            out.push(':');
            sf_string_into(&mut out, model);
        }
        let _ = write!(out, ":{}\"", self.id());
        out
    }

    /// This limit as a quota policy item (`RateLimit-Policy`), after its quoted name.
    fn policy_params(&self, out: &mut String) {
        let (quota, window) = match self.kind {
            // `burst` requests, refilled in the time they take to come back.
            LimitKind::Rate { bucket, .. } => (bucket.burst, bucket.capacity_us().div_ceil(1_000_000).max(1)),
            LimitKind::Quota { count, window, .. } => (count, nominal_seconds(window)),
        };
        let _ = write!(out, ";q={quota}");
        // Not registered units (the draft registers requests, content-bytes and
        // concurrent-requests); without one the quota would read as requests.
        match self.counted() {
            Counted::Rows => out.push_str(";qu=\"rows\""),
            Counted::Compute => out.push_str(";qu=\"compute-microseconds\""),
            Counted::Requests => {}
        }
        let _ = write!(out, ";w={window}");
    }
}

/// A window's length in the policy field: a month counts as 30 days there (the field is meant
/// to stay the same from answer to answer; `RateLimit`'s `t` says when this month ends).
fn nominal_seconds(window: Window) -> u64 {
    match window {
        Window::Minute => 60,
        Window::Hour => 3600,
        Window::Day => 86_400,
        Window::Month => 30 * 86_400,
    }
}

/// The limits that apply to one plan (and model), with their names and policy field written
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSet {
    pub plan: String,
    pub limits: Vec<Limit>,
    /// Each limit's policy name, quoted (a structured-field String).
    names: Vec<String>,
    /// Written once, handed to every answer without a copy.
    policy: Bytes,
}

impl LimitSet {
    pub fn new(plan: &str, limits: Vec<Limit>) -> LimitSet {
        let names: Vec<String> = limits.iter().map(|limit| limit.quoted_name(plan)).collect();
        let mut policy = String::new();
        for (i, (limit, name)) in limits.iter().zip(&names).enumerate() {
            if i > 0 {
                policy.push_str(", ");
            }
            policy.push_str(name);
            limit.policy_params(&mut policy);
        }
        LimitSet { plan: plan.to_string(), limits, names, policy: Bytes::from(policy) }
    }

    /// The quoted policy name of `self.limits[index]`.
    pub fn quoted_name(&self, index: usize) -> &str {
        self.names.get(index).map_or("\"?\"", String::as_str)
    }

    /// No limit at all: such callers get no header and cost no store access.
    pub fn is_unlimited(&self) -> bool {
        self.limits.is_empty()
    }

    /// The `RateLimit-Policy` field value: every limit, in configuration order.
    pub fn policy_field(&self) -> &str {
        // Built from `String`s in `new`.
        std::str::from_utf8(&self.policy).unwrap_or_default()
    }

    /// [`LimitSet::policy_field`], shared.
    pub fn policy_bytes(&self) -> Bytes {
        self.policy.clone()
    }

    /// The counters a request of `rows` rows by `caller` (a [`Caller::quota_key`]) checks at
    /// `now_us`: the caller's record (`PREFIX{CALLER}`) holds the limits every model shares, and
    /// a record per model (`PREFIX{CALLER}:m=MODEL`) the limits a model table sets.
    ///
    /// [`Caller::quota_key`]: crate::request::Caller::quota_key
    pub fn admission(&self, prefix: &str, caller: &str, rows: u64, now_us: u64) -> Admission {
        let mut records: Vec<String> = Vec::with_capacity(1);
        let mut scopes: Vec<Option<&str>> = Vec::with_capacity(1);
        let mut checks = Vec::with_capacity(self.limits.len());
        for limit in &self.limits {
            let scope = limit.model.as_deref();
            let record = match scopes.iter().position(|s| *s == scope) {
                Some(record) => record,
                None => {
                    scopes.push(scope);
                    records.push(record_key(prefix, caller, scope));
                    records.len() - 1
                }
            };
            checks.push(limit.check(record, rows, now_us));
        }
        Admission { records, checks }
    }

    /// The charge of `micros` of accelerator time to `caller`'s compute limits at `now_us`,
    /// as an admission that always has room (the check before the call refused a caller
    /// already past them); `None` when the plan has no compute limit.
    pub fn charge(&self, prefix: &str, caller: &str, micros: u64, now_us: u64) -> Option<Admission> {
        let mut admission = Admission { records: Vec::new(), checks: Vec::new() };
        for limit in self.limits.iter().filter(|l| l.counted() == Counted::Compute) {
            let LimitKind::Quota { window, .. } = limit.kind else { continue };
            let key = record_key(prefix, caller, limit.model.as_deref());
            let record = match admission.records.iter().position(|r| *r == key) {
                Some(record) => record,
                None => {
                    admission.records.push(key);
                    admission.records.len() - 1
                }
            };
            let end_us = calendar::span(window, now_us / 1_000_000).end * 1_000_000;
            let rule = Rule::Window { limit: u64::MAX, end_us };
            admission.checks.push(Check { record, field: limit.id(), rule, cost: micros });
        }
        (!admission.checks.is_empty()).then_some(admission)
    }

    pub fn has_compute(&self) -> bool {
        self.limits.iter().any(|l| l.counted() == Counted::Compute)
    }
}

/// `PREFIX{CALLER}` or `PREFIX{CALLER}:m=MODEL`.
fn record_key(prefix: &str, caller: &str, model: Option<&str>) -> String {
    let mut key = String::with_capacity(prefix.len() + caller.len() + 8);
    key.push_str(prefix);
    key.push('{');
    escape_into(&mut key, caller);
    key.push('}');
    if let Some(model) = model {
        key.push_str(":m=");
        escape_into(&mut key, model);
    }
    key
}

/// One plan: its limits for every model, and for the models it sets apart; and the class its
/// callers' requests queue in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub limits: Arc<LimitSet>,
    pub models: BTreeMap<String, Arc<LimitSet>>,
    pub class: crate::request::Class,
}

impl Plan {
    pub fn for_model(&self, model: &str) -> &Arc<LimitSet> {
        self.models.get(model).unwrap_or(&self.limits)
    }
}

/// Why a request gets the default plan although it named another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// A well-formed name that is not configured.
    Unknown,
    /// Not a plan name at all (characters outside the grammar, too long).
    Malformed,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Unknown => "unknown",
            Fallback::Malformed => "malformed",
        }
    }
}

/// The plan a request's `X-Tfgate-Plan` value selects from `plans` (which always holds
/// [`DEFAULT_PLAN`]), and why it fell back to the default, if it did.
pub fn choose<'a>(plans: &'a BTreeMap<String, Plan>, named: Option<&str>) -> (Option<&'a Plan>, Option<Fallback>) {
    let default = plans.get(DEFAULT_PLAN);
    match named {
        None => (default, None),
        Some(name) => match plans.get(name) {
            Some(plan) => (Some(plan), None),
            None if is_plan_name(name) => (default, Some(Fallback::Unknown)),
            None => (default, Some(Fallback::Malformed)),
        },
    }
}

/// In keys, the parts that come from outside (caller, model) have `%`, `:`, `{` and `}`
/// escaped, so no caller can name another's record, and the caller sits in a Redis Cluster hash
/// tag (all of one admission's keys in one slot).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// The inside of a structured-field String (RFC 9651 3.3.3): printable ASCII, `"` and `\`
/// escaped; anything else (a model named in UTF-8) becomes `?`.
fn sf_string_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::quota::limits::{parse_rate, Period, RateSpec};

    const NOW_US: u64 = 1_776_085_542_000_000; // 2026-04-13T13:05:42Z

    fn quota(counted: Counted, count: u64, window: Window) -> Limit {
        Limit { kind: LimitKind::Quota { counted, count, window }, model: None }
    }

    fn rate_limit(rate: RateSpec, burst: u64) -> Limit {
        Limit { kind: LimitKind::Rate { rate, bucket: Bucket::new(rate, burst) }, model: None }
    }

    fn default_set() -> LimitSet {
        LimitSet::new(
            "default",
            vec![
                rate_limit(parse_rate("20/s").unwrap(), 40),
                quota(Counted::Requests, 10_000, Window::Day),
                quota(Counted::Rows, 100_000, Window::Month),
            ],
        )
    }

    #[test]
    fn the_policy_field_lists_every_limit() {
        assert_eq!(
            default_set().policy_field(),
            "\"default:rate\";q=40;w=2, \"default:requests_day\";q=10000;w=86400, \
             \"default:rows_month\";q=100000;qu=\"rows\";w=2592000"
        );
        let per_model = LimitSet::new(
            "gold",
            vec![Limit {
                model: Some("a \"b\"\\é".into()),
                ..rate_limit(RateSpec { count: 1, period: Period::Minute }, 1)
            }],
        );
        assert_eq!(per_model.policy_field(), "\"gold:a \\\"b\\\"\\\\?:rate\";q=1;w=60");
    }

    #[test]
    fn an_admission_names_the_callers_records_and_each_limits_window() {
        let admission = default_set().admission("tfgate:quota:", "sub:alice", 7, NOW_US);
        assert_eq!(admission.records, ["tfgate:quota:{sub%3Aalice}"]);
        let checks: Vec<(usize, &str, u64)> = admission.checks.iter().map(|c| (c.record, c.field, c.cost)).collect();
        assert_eq!(checks, [(0, "rate", 1), (0, "requests_day", 1), (0, "rows_month", 7)]);
        assert_eq!(admission.checks[1].rule, Rule::Window { limit: 10_000, end_us: 1_776_124_800_000_000 });
        // 2026-05-01T00:00:00Z.
        assert_eq!(admission.checks[2].window_end(), 1_777_593_600_000_000);
        let set = LimitSet::new(
            "p",
            vec![
                Limit { model: Some("m:1".into()), ..quota(Counted::Requests, 5, Window::Hour) },
                quota(Counted::Rows, 5, Window::Hour),
                Limit { model: Some("m:1".into()), ..quota(Counted::Rows, 5, Window::Day) },
            ],
        );
        let admission = set.admission("", "a}{b", 1, NOW_US);
        assert_eq!(admission.records, ["{a%7D%7Bb}:m=m%3A1", "{a%7D%7Bb}"]);
        assert_eq!(admission.checks.iter().map(|c| c.record).collect::<Vec<_>>(), [0, 1, 0]);
    }

    #[test]
    fn unknown_and_malformed_plans_fall_back_to_default() {
        let set = Arc::new(default_set());
        let plan = Plan { limits: set.clone(), models: BTreeMap::new(), class: Default::default() };
        let plans: BTreeMap<String, Plan> =
            [("default".to_string(), plan.clone()), ("gold".to_string(), plan)].into_iter().collect();
        assert_eq!(choose(&plans, Some("gold")).1, None);
        assert_eq!(choose(&plans, None).1, None);
        assert_eq!(choose(&plans, Some("platinum")).1, Some(Fallback::Unknown));
        for malformed in ["gold,silver", "g\u{fffd}ld", &"x".repeat(65), "a b"] {
            assert_eq!(choose(&plans, Some(malformed)).1, Some(Fallback::Malformed), "{malformed}");
        }
        assert!(is_plan_name("free-tier_2.0"));
    }

    #[test]
    fn limits_describe_themselves() {
        let set = default_set();
        let words: Vec<String> = set.limits.iter().map(Limit::describe).collect();
        assert_eq!(words, ["20 requests per second (burst 40)", "10000 requests per day", "100000 rows per month"]);
        let model = Limit { model: Some("m".into()), ..quota(Counted::Rows, 5, Window::Hour) };
        assert_eq!(model.describe(), "5 rows per hour of model m");
    }
}
