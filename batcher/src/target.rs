//! Which model version a request is for, once the trusted headers and the path have been read.
//!
//! This is the key the rest of the daemon works with: the signature cache is keyed by it, and
//! requests for different versions never share a batch.

use tfgate_common::VersionSelector;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::ModelSpec;

/// The version a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionRef {
    /// TF Serving's default (its latest loaded version).
    Latest,
    Number(i64),
    /// A label TF Serving resolves itself (the module did not resolve it).
    Label(String),
}

/// A model and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelTarget {
    pub model: String,
    pub version: VersionRef,
}

impl VersionRef {
    /// The version to use: the trusted `X-Tfgate-Version` header when it holds a number (nginx
    /// already resolved labels, defaults and traffic splits), else what the path says.
    pub fn resolve(trusted_version: Option<&[u8]>, selector: &VersionSelector) -> VersionRef {
        if let Some(number) = trusted_version.and_then(tfgate_common::parse_version) {
            return VersionRef::Number(number);
        }
        match selector {
            VersionSelector::Unspecified => VersionRef::Latest,
            VersionSelector::Number(n) => VersionRef::Number(*n),
            VersionSelector::Label(label) => VersionRef::Label(label.clone()),
        }
    }

    /// The same choice as a path selector, for rebuilding a REST path.
    pub fn to_selector(&self) -> VersionSelector {
        match self {
            VersionRef::Latest => VersionSelector::Unspecified,
            VersionRef::Number(n) => VersionSelector::Number(*n),
            VersionRef::Label(label) => VersionSelector::Label(label.clone()),
        }
    }
}

/// As metrics labels and logs write it: `latest`, `2`, `label:canary`.
impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "{n}"),
            VersionRef::Label(label) => write!(f, "label:{label}"),
        }
    }
}

impl std::fmt::Display for ModelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            VersionRef::Latest => write!(f, "{}", self.model),
            VersionRef::Number(n) => write!(f, "{} version {n}", self.model),
            VersionRef::Label(label) => write!(f, "{} label {label}", self.model),
        }
    }
}

/// The `ModelSpec` naming `target` (and a signature; empty means TF Serving's default).
pub fn model_spec(target: &ModelTarget, signature_name: &str) -> ModelSpec {
    let version_choice = match &target.version {
        VersionRef::Latest => None,
        VersionRef::Number(n) => Some(VersionChoice::Version(*n)),
        VersionRef::Label(label) => Some(VersionChoice::VersionLabel(label.clone())),
    };
    ModelSpec { name: target.model.clone(), signature_name: signature_name.to_string(), version_choice }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_numeric_header_wins() {
        let label = VersionSelector::Label("stable".into());
        assert_eq!(VersionRef::resolve(Some(b"2"), &label), VersionRef::Number(2));
        assert_eq!(VersionRef::resolve(Some(b"7"), &VersionSelector::Number(1)), VersionRef::Number(7));
    }

    #[test]
    fn otherwise_the_path_decides() {
        assert_eq!(VersionRef::resolve(None, &VersionSelector::Unspecified), VersionRef::Latest);
        assert_eq!(VersionRef::resolve(Some(b""), &VersionSelector::Number(3)), VersionRef::Number(3));
        assert_eq!(
            VersionRef::resolve(Some(b"x1"), &VersionSelector::Label("a".into())),
            VersionRef::Label("a".into())
        );
        assert_eq!(VersionRef::resolve(Some(b"-1"), &VersionSelector::Unspecified), VersionRef::Latest);
        assert_eq!(
            VersionRef::resolve(Some(b"99999999999999999999"), &VersionSelector::Unspecified),
            VersionRef::Latest
        );
    }

    #[test]
    fn model_specs_carry_the_version_choice() {
        let target = |version| ModelTarget { model: "m".into(), version };
        assert_eq!(model_spec(&target(VersionRef::Latest), "").version_choice, None);
        assert_eq!(model_spec(&target(VersionRef::Number(3)), "s").version_choice, Some(VersionChoice::Version(3)));
        assert_eq!(model_spec(&target(VersionRef::Number(3)), "s").signature_name, "s");
        assert_eq!(
            model_spec(&target(VersionRef::Label("canary".into())), "").version_choice,
            Some(VersionChoice::VersionLabel("canary".into()))
        );
    }
}
