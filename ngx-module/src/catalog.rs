//! The model catalog declared in nginx.conf with `tfgate_model`: which models a server exposes,
//! which versions, and what a request naming no version gets.

use tfgate_common::{ModelPath, VersionSelector};

/// One `tfgate_model NAME [versions=V,V] [default=V|LABEL];` (`scope=` and `upstream=` are
/// refused until they are enforced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDecl {
    pub name: String,
    /// Declared versions; empty means any version the backend serves.
    pub versions: Vec<i64>,
    /// What a request naming neither a version nor a label gets; `None` leaves it to TF Serving
    /// (its latest version).
    pub default: Option<VersionSelector>,
}

impl ModelDecl {
    /// Parses the directive's arguments (without the directive name).
    pub fn parse(args: &[&str]) -> Result<ModelDecl, String> {
        let (name, options) = args.split_first().ok_or("a model name is required")?;
        if name.is_empty() || name.contains('=') {
            return Err(format!("invalid model name \"{name}\""));
        }
        let mut decl = ModelDecl { name: (*name).to_owned(), versions: vec![], default: None };
        for option in options {
            let (key, value) = option.split_once('=').ok_or_else(|| format!("invalid parameter \"{option}\""))?;
            match key {
                "versions" => decl.versions = value.split(',').map(parse_version).collect::<Result<_, _>>()?,
                "default" => decl.default = Some(parse_selector(value)?),
                // Refused rather than silently ignored until per-model authorization and upstream
                // choice exist: a scope that is not enforced would be a hole.
                "scope" | "upstream" => return Err(format!("parameter \"{key}=\" is not supported by this build yet")),
                _ => return Err(format!("invalid parameter \"{option}\"")),
            }
        }
        if let Some(VersionSelector::Number(v)) = decl.default {
            if !decl.versions.is_empty() && !decl.versions.contains(&v) {
                return Err(format!("default version {v} of model \"{name}\" is not among its versions"));
            }
        }
        Ok(decl)
    }
}

fn parse_version(raw: &str) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(v) if v >= 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(format!("invalid version \"{raw}\"")),
    }
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

/// Why a request is refused by the catalog: HTTP status and message.
pub type Refusal = (u16, String);

/// The models of one server block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    models: Vec<ModelDecl>,
}

impl Catalog {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn add(&mut self, decl: ModelDecl) -> Result<(), String> {
        if self.get(&decl.name).is_some() {
            return Err(format!("duplicate model \"{}\"", decl.name));
        }
        self.models.push(decl);
        Ok(())
    }

    /// Model names are case-sensitive, as in TF Serving.
    pub fn get(&self, name: &str) -> Option<&ModelDecl> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Applies the catalog to a parsed path: refuses undeclared models and versions, and fills
    /// in the default. An empty catalog lets everything through unchanged.
    pub fn resolve(&self, mut path: ModelPath) -> Result<ModelPath, Refusal> {
        if self.is_empty() {
            return Ok(path);
        }
        let Some(model) = self.get(&path.model) else {
            return Err((404, format!("Servable not found: model \"{}\" is not served here", path.model)));
        };
        match &path.selector {
            VersionSelector::Number(v) if !model.versions.is_empty() && !model.versions.contains(v) => {
                return Err((404, format!("version {v} of model \"{}\" is not served here", model.name)));
            }
            VersionSelector::Unspecified => {
                if let Some(default) = &model.default {
                    path.selector = default.clone();
                }
            }
            _ => {}
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::{parse_rest_path, Method};

    fn catalog(lines: &[&[&str]]) -> Catalog {
        let mut c = Catalog::default();
        for args in lines {
            c.add(ModelDecl::parse(args).unwrap()).unwrap();
        }
        c
    }

    fn path(p: &str) -> ModelPath {
        parse_rest_path(p.as_bytes()).unwrap()
    }

    #[test]
    fn parses_every_parameter() {
        let d = ModelDecl::parse(&["m", "versions=1,2", "default=1"]).unwrap();
        assert_eq!(d.versions, vec![1, 2]);
        assert_eq!(d.default, Some(VersionSelector::Number(1)));
        assert_eq!(ModelDecl::parse(&["m", "default=stable"]).unwrap().default, Some(VersionSelector::Label("stable".into())));
    }

    #[test]
    fn rejects_bad_declarations() {
        for args in [&["m", "versions=1,x"][..], &["m", "versions="], &["m", "bogus=1"], &["m", "nonsense"], &["m", "default=3", "versions=1,2"], &["m", "scope=a"], &["m", "upstream=gpu"], &[]] {
            assert!(ModelDecl::parse(args).is_err(), "{args:?}");
        }
        let mut c = catalog(&[&["m"]]);
        assert!(c.add(ModelDecl::parse(&["m"]).unwrap()).unwrap_err().contains("duplicate"));
    }

    #[test]
    fn empty_catalog_passes_everything() {
        assert_eq!(Catalog::default().resolve(path("/v1/models/any:predict")), Ok(path("/v1/models/any:predict")));
    }

    #[test]
    fn default_version_fills_unversioned_requests_only() {
        let c = catalog(&[&["m", "versions=1,2", "default=1"]]);
        assert_eq!(c.resolve(path("/v1/models/m:predict")).unwrap().selector, VersionSelector::Number(1));
        assert_eq!(c.resolve(path("/v1/models/m/versions/2:predict")).unwrap().selector, VersionSelector::Number(2));
        assert_eq!(c.resolve(path("/v1/models/m/metadata")).unwrap().method, Method::Metadata);
    }

    #[test]
    fn undeclared_models_and_versions_are_404() {
        let c = catalog(&[&["m", "versions=1,2"]]);
        assert_eq!(c.resolve(path("/v1/models/other:predict")).unwrap_err().0, 404);
        assert_eq!(c.resolve(path("/v1/models/m/versions/3:predict")).unwrap_err().0, 404);
        assert_eq!(c.resolve(path("/v1/models/M:predict")).unwrap_err().0, 404);
    }
}
