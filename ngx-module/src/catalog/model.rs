//! `tfgate_model NAME [versions=V,V] [default=V|LABEL] [scope=S,S] [upstream=VALUE];`

use tfgate_common::VersionSelector;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDecl {
    pub name: String,
    /// Declared versions; empty means any version the backend serves.
    pub versions: Vec<i64>,
    /// What a request naming neither a version nor a label gets; `None` leaves it to TF Serving
    /// (its latest version).
    pub default: Option<VersionSelector>,
    /// Scopes a verified token must carry to call this model (all of them).
    pub scopes: Vec<String>,
    /// `$tfgate_upstream` for this model.
    pub upstream: Option<String>,
}

impl ModelDecl {
    /// Parses the directive's arguments (without the directive name).
    pub fn parse(args: &[&str]) -> Result<ModelDecl, String> {
        let (name, options) = args.split_first().ok_or("a model name is required")?;
        // A name no request could carry (the shared rule) would be a declaration nobody reaches.
        if name.is_empty() || name.contains('=') || tfgate_common::check_name(name, "model name").is_err() {
            return Err(format!("invalid model name \"{name}\""));
        }
        let mut decl =
            ModelDecl { name: (*name).to_owned(), versions: vec![], default: None, scopes: vec![], upstream: None };
        for option in options {
            let (key, value) = option.split_once('=').ok_or_else(|| format!("invalid parameter \"{option}\""))?;
            match key {
                "versions" => decl.versions = value.split(',').map(parse_version).collect::<Result<_, _>>()?,
                "default" => decl.default = Some(parse_selector(value)?),
                "scope" => decl.scopes = split_list(value, "scope")?,
                "upstream" if !value.is_empty() && !value.chars().any(char::is_control) => {
                    decl.upstream = Some(value.to_owned());
                }
                _ => return Err(format!("invalid parameter \"{option}\"")),
            }
        }
        if let Some(VersionSelector::Number(v)) = decl.default {
            if !decl.declares(v) {
                return Err(format!("default version {v} of model \"{name}\" is not among its versions"));
            }
        }
        Ok(decl)
    }

    /// Whether requests may name version `v`.
    pub fn declares(&self, v: i64) -> bool {
        self.versions.is_empty() || self.versions.contains(&v)
    }

    /// What a request naming neither a version nor a label gets: `default=`, else the highest
    /// of `versions=` (a version the operator did not expose is never served), else nothing
    /// (TF Serving's latest).
    pub fn default_selector(&self) -> Option<VersionSelector> {
        self.default.clone().or_else(|| self.versions.iter().max().map(|&v| VersionSelector::Number(v)))
    }
}

pub(super) fn parse_version(raw: &str) -> Result<i64, String> {
    tfgate_common::parse_version(raw.as_bytes()).ok_or_else(|| format!("invalid version \"{raw}\""))
}

fn parse_selector(raw: &str) -> Result<VersionSelector, String> {
    if raw.is_empty() {
        return Err("empty default".into());
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return parse_version(raw).map(VersionSelector::Number);
    }
    Ok(VersionSelector::Label(raw.to_owned()))
}

fn split_list(raw: &str, what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = raw.split(',').map(str::to_owned).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!("empty {what} in \"{raw}\""));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter() {
        let d = ModelDecl::parse(&["m", "versions=1,2", "default=1", "scope=read,predict", "upstream=gpu"]).unwrap();
        assert_eq!(d.versions, vec![1, 2]);
        assert_eq!(d.default, Some(VersionSelector::Number(1)));
        assert_eq!(d.scopes, vec!["read", "predict"]);
        assert_eq!(d.upstream.as_deref(), Some("gpu"));
        assert_eq!(
            ModelDecl::parse(&["m", "default=stable"]).unwrap().default,
            Some(VersionSelector::Label("stable".into()))
        );
    }

    #[test]
    fn rejects_bad_declarations() {
        for args in [
            &["m", "versions=1,x"][..],
            &["m", "versions="],
            &["m", "versions=-1"],
            &["m", "bogus=1"],
            &["m", "nonsense"],
            &["m", "default=3", "versions=1,2"],
            &["m", "scope=a,,b"],
            &["m", "upstream="],
            &["a/b"],
            &["a#b"],
            &["a?b"],
            &[".."],
            &[],
        ] {
            assert!(ModelDecl::parse(args).is_err(), "{args:?}");
        }
    }
}
