//! Claim rules (`tfgate_jwt_require CLAIM OP VALUE ...`) and claim helpers.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::canonical::{put_str, put_u64};

/// A rule operator. Every operator is array-aware: a scalar claim is treated as a one-element
/// array, so the same rule works whether the IdP emits `"roles": "admin"` or
/// `"roles": ["admin"]`. An element "equals" a value when it is a string equal to it, or a
/// number/boolean whose canonical text equals it (integers in decimal, a float with an integral
/// value as that integer, `true`/`false`). Objects, nested arrays and `null` elements equal
/// nothing. A claim that is missing or `null` fails every operator except `ne`.
///
/// * `exists` — present and not `null` (an empty string or array exists).
/// * `eq V` — some element equals V (for a scalar: the scalar equals V).
/// * `ne V` — exactly `not eq V`: missing, or no element equals V.
/// * `in V...` — the claim is non-empty and every element equals one of the Vs.
/// * `contains V...` — every V equals some element (for a scalar: every V equals it).
/// * `any V...` — some element equals one of the Vs.
/// * `gt N` / `lt N` — the claim is a JSON number strictly greater/less than N; anything else
///   (strings, arrays, booleans) fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOp {
    Exists,
    Eq,
    Ne,
    In,
    Contains,
    Any,
    Gt,
    Lt,
}

impl ClaimOp {
    fn parse(name: &str) -> Option<ClaimOp> {
        Some(match name {
            "exists" => ClaimOp::Exists,
            "eq" => ClaimOp::Eq,
            "ne" => ClaimOp::Ne,
            "in" => ClaimOp::In,
            "contains" => ClaimOp::Contains,
            "any" => ClaimOp::Any,
            "gt" => ClaimOp::Gt,
            "lt" => ClaimOp::Lt,
            _ => return None,
        })
    }

    /// The operator's configuration name.
    pub fn name(self) -> &'static str {
        match self {
            ClaimOp::Exists => "exists",
            ClaimOp::Eq => "eq",
            ClaimOp::Ne => "ne",
            ClaimOp::In => "in",
            ClaimOp::Contains => "contains",
            ClaimOp::Any => "any",
            ClaimOp::Gt => "gt",
            ClaimOp::Lt => "lt",
        }
    }
}

/// One `tfgate_jwt_require` rule. The claim name is looked up literally first (so namespaced
/// claims such as `https://example.com/roles` work), then as a dotted path into nested objects
/// (`realm_access.roles`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRule {
    claim: String,
    op: ClaimOp,
    values: Vec<String>,
    number: f64,
}

impl ClaimRule {
    /// Parses `CLAIM OP VALUE...`; the error message is meant for the configuration log.
    pub fn parse(args: &[&str]) -> Result<ClaimRule, String> {
        let (claim, op, values) = match args {
            [claim, op, values @ ..] => (*claim, *op, values),
            _ => return Err("expected CLAIM OP [VALUE ...]".to_owned()),
        };
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            return Err(format!("bad claim name \"{}\"", claim.escape_default()));
        }
        let op = ClaimOp::parse(op).ok_or_else(|| {
            format!("unknown operator \"{}\" (expected eq ne in contains any exists gt lt)", op.escape_default())
        })?;
        let wanted = match op {
            ClaimOp::Exists => (0, 0),
            ClaimOp::Eq | ClaimOp::Ne | ClaimOp::Gt | ClaimOp::Lt => (1, 1),
            ClaimOp::In | ClaimOp::Contains | ClaimOp::Any => (1, usize::MAX),
        };
        if values.len() < wanted.0 || values.len() > wanted.1 {
            let count = if wanted.1 == 0 {
                "no value"
            } else if wanted.1 == 1 {
                "one value"
            } else {
                "values"
            };
            return Err(format!("operator \"{}\" takes {count}", op.name()));
        }
        let mut number = 0.0;
        if matches!(op, ClaimOp::Gt | ClaimOp::Lt) {
            let text = values.first().copied().unwrap_or("");
            number = text.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| {
                format!("operator \"{}\" needs a number, got \"{}\"", op.name(), text.escape_default())
            })?;
        }
        Ok(ClaimRule { claim: claim.to_owned(), op, values: values.iter().map(|v| (*v).to_owned()).collect(), number })
    }

    /// The claim name as configured.
    pub fn claim(&self) -> &str {
        &self.claim
    }

    /// The operator.
    pub fn op(&self) -> ClaimOp {
        self.op
    }

    /// Whether the claims satisfy the rule.
    pub fn check(&self, claims: &Map<String, Value>) -> bool {
        let value = match lookup(claims, &self.claim) {
            None | Some(Value::Null) => return self.op == ClaimOp::Ne,
            Some(value) => value,
        };
        let elements: &[Value] = match value {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        let is_value = |element: &Value| self.values.iter().any(|v| scalar_equals(element, v));
        match self.op {
            ClaimOp::Exists => true,
            ClaimOp::Gt => value.as_f64().is_some_and(|n| n > self.number),
            ClaimOp::Lt => value.as_f64().is_some_and(|n| n < self.number),
            // `eq`/`ne` have exactly one value, so "equals one of the values" is "equals V".
            ClaimOp::Eq | ClaimOp::Any => elements.iter().any(is_value),
            ClaimOp::Ne => !elements.iter().any(is_value),
            ClaimOp::In => !elements.is_empty() && elements.iter().all(is_value),
            ClaimOp::Contains => self.values.iter().all(|v| elements.iter().any(|e| scalar_equals(e, v))),
        }
    }

    pub(crate) fn canonical(&self, out: &mut Vec<u8>) {
        put_str(out, &self.claim);
        put_str(out, self.op.name());
        put_u64(out, self.values.len());
        for value in &self.values {
            put_str(out, value);
        }
    }
}

/// The claim `name`: the top-level member with exactly that name, else the dotted path.
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// The canonical text of a scalar (see [`ClaimOp`]); `None` for null, arrays and objects.
pub fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(if let Some(i) = n.as_i64() {
            i.to_string()
        } else if let Some(u) = n.as_u64() {
            u.to_string()
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Integral floats within i64's exact range print as integers: 1.0 is "1".
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                (f as i64).to_string()
            } else {
                f.to_string()
            }
        })),
        _ => None,
    }
}

fn scalar_equals(element: &Value, wanted: &str) -> bool {
    match element {
        Value::String(s) => s == wanted,
        other => scalar_text(other).is_some_and(|text| text == wanted),
    }
}

/// A claim as a variable value: strings as they are, numbers/booleans as canonical text, arrays
/// with their elements joined by `,` (non-scalar elements as JSON text), objects as JSON text;
/// `None` for null.
pub fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| scalar_text(item).map(Cow::into_owned).unwrap_or_else(|| item.to_string()))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some(value.to_string()),
        scalar => scalar_text(scalar).map(Cow::into_owned),
    }
}

/// Whether every required scope is granted, by the `scope` claim (space-delimited string) or
/// the `scp` claim (array of strings, or a space-delimited string). When both are present their
/// union counts.
pub fn has_scopes(claims: &Map<String, Value>, required: &[String]) -> bool {
    let granted = |wanted: &str| {
        ["scope", "scp"].iter().any(|name| match claims.get(*name) {
            Some(Value::String(s)) => s.split(' ').any(|g| g == wanted),
            Some(Value::Array(items)) => items.iter().any(|g| g.as_str() == Some(wanted)),
            _ => false,
        })
    };
    required.iter().all(|r| granted(r))
}

/// A NumericDate (RFC 7519 2): any JSON number, fractions dropped toward negative infinity,
/// saturating at the i64 range. `None` when the value is not a number.
pub fn numeric_date(value: &Value) -> Option<i64> {
    let n = value.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.as_u64().is_some() {
        return Some(i64::MAX);
    }
    // `as` saturates (and cannot see NaN: JSON has none).
    n.as_f64().map(|f| f.floor() as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn check(rule: &[&str], v: Value) -> bool {
        ClaimRule::parse(rule).unwrap().check(&claims(v))
    }

    #[test]
    fn parse_errors_are_clear() {
        assert!(ClaimRule::parse(&["x"]).unwrap_err().contains("CLAIM OP"));
        assert!(ClaimRule::parse(&["x", "like", "a"]).unwrap_err().contains("unknown operator"));
        assert!(ClaimRule::parse(&["x", "eq"]).unwrap_err().contains("one value"));
        assert!(ClaimRule::parse(&["x", "eq", "a", "b"]).unwrap_err().contains("one value"));
        assert!(ClaimRule::parse(&["x", "exists", "a"]).unwrap_err().contains("no value"));
        assert!(ClaimRule::parse(&["x", "in"]).unwrap_err().contains("values"));
        assert!(ClaimRule::parse(&["x", "gt", "ten"]).unwrap_err().contains("number"));
        assert!(ClaimRule::parse(&["x", "lt", "inf"]).unwrap_err().contains("number"));
        assert!(ClaimRule::parse(&["a..b", "exists"]).unwrap_err().contains("claim name"));
        assert!(ClaimRule::parse(&["", "exists"]).is_err());
    }

    #[test]
    fn operators_on_scalars_and_arrays() {
        let c = json!({"s": "admin", "a": ["x", "y"], "n": 5, "f": 1.0, "b": true, "e": [], "z": null,
                       "o": {"k": "v"}, "mixed": ["x", 7, {"k": 1}]});
        assert!(check(&["s", "exists"], c.clone()) && check(&["e", "exists"], c.clone()));
        assert!(!check(&["z", "exists"], c.clone()) && !check(&["nope", "exists"], c.clone()));
        assert!(check(&["s", "eq", "admin"], c.clone()) && !check(&["s", "eq", "adm"], c.clone()));
        assert!(check(&["a", "eq", "y"], c.clone()) && !check(&["a", "eq", "q"], c.clone()));
        assert!(check(&["n", "eq", "5"], c.clone()) && check(&["f", "eq", "1"], c.clone()));
        assert!(check(&["b", "eq", "true"], c.clone()) && !check(&["o", "eq", "v"], c.clone()));
        assert!(check(&["mixed", "eq", "7"], c.clone()));
        assert!(check(&["s", "ne", "x"], c.clone()) && !check(&["s", "ne", "admin"], c.clone()));
        assert!(check(&["nope", "ne", "x"], c.clone()) && check(&["z", "ne", "x"], c.clone()));
        assert!(check(&["a", "ne", "q"], c.clone()) && !check(&["a", "ne", "x"], c.clone()));
        assert!(check(&["a", "in", "x", "y", "z"], c.clone()) && !check(&["a", "in", "x"], c.clone()));
        assert!(check(&["s", "in", "admin", "dev"], c.clone()) && !check(&["s", "in", "dev"], c.clone()));
        assert!(!check(&["e", "in", "x"], c.clone()), "empty array is not `in`");
        assert!(!check(&["mixed", "in", "x", "7"], c.clone()), "objects match nothing");
        assert!(check(&["a", "contains", "x", "y"], c.clone()) && !check(&["a", "contains", "x", "q"], c.clone()));
        assert!(check(&["s", "contains", "admin"], c.clone()) && !check(&["s", "contains", "admin", "x"], c.clone()));
        assert!(check(&["a", "any", "q", "y"], c.clone()) && !check(&["a", "any", "q", "r"], c.clone()));
        assert!(check(&["s", "any", "q", "admin"], c.clone()) && !check(&["e", "any", "x"], c.clone()));
        assert!(check(&["n", "gt", "4"], c.clone()) && !check(&["n", "gt", "5"], c.clone()));
        assert!(check(&["n", "lt", "5.5"], c.clone()) && !check(&["n", "lt", "-1"], c.clone()));
        assert!(!check(&["s", "gt", "0"], c.clone()) && !check(&["a", "lt", "9"], c.clone()));
        assert!(!check(&["nope", "gt", "0"], c.clone()) && !check(&["b", "gt", "0"], c));
    }

    #[test]
    fn nested_and_namespaced_claims() {
        let c = json!({"realm_access": {"roles": ["admin", "user"]}, "https://ex.com/tier": "gold"});
        assert!(check(&["realm_access.roles", "contains", "admin"], c.clone()));
        assert!(!check(&["realm_access.roles.x", "exists"], c.clone()));
        assert!(!check(&["realm_access.nope", "exists"], c.clone()));
        assert!(check(&["https://ex.com/tier", "eq", "gold"], c));
    }

    #[test]
    fn texts_scopes_and_dates() {
        assert_eq!(claim_text(&json!(["a", 1, true, {"k": 2}])), Some("a,1,true,{\"k\":2}".to_owned()));
        assert_eq!(claim_text(&json!({"k": "v"})), Some("{\"k\":\"v\"}".to_owned()));
        assert_eq!(claim_text(&json!(1.5)), Some("1.5".to_owned()));
        assert_eq!(claim_text(&json!(null)), None);
        assert_eq!(claim_text(&json!(1e300)).map(|s| s.len()), Some(301));
        let scope = claims(json!({"scope": "read write"}));
        assert!(has_scopes(&scope, &["write".into(), "read".into()]));
        assert!(!has_scopes(&scope, &["admin".into()]) && !has_scopes(&scope, &["rea".into()]));
        assert!(has_scopes(&claims(json!({"scp": ["read", "write"]})), &["write".into()]));
        assert!(has_scopes(&claims(json!({"scp": "read write"})), &["write".into()]));
        assert!(!has_scopes(&claims(json!({"scp": 5})), &["write".into()]));
        assert!(has_scopes(&claims(json!({})), &[]));
        assert_eq!(numeric_date(&json!(1.9)), Some(1));
        assert_eq!(numeric_date(&json!(-1.5)), Some(-2));
        assert_eq!(numeric_date(&json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!(-1e300)), Some(i64::MIN));
        assert_eq!(numeric_date(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!("1")), None);
    }
}
