//! The model catalog declared in nginx.conf (`tfgate_model`, `tfgate_model_label`): which
//! models a server exposes, their versions and labels, who may call them, and where they go.

mod label;
mod model;

pub use label::LabelDecl;
pub use model::ModelDecl;

use tfgate_common::{shown, Method, ModelPath, VersionSelector};

/// Why a request is refused by the catalog: HTTP status and message.
pub type Refusal = (u16, String);

/// Where a request ends up once the catalog has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The path with the version resolved (a number) wherever the catalog could resolve it.
    pub path: ModelPath,
    /// The label the client asked for (or the default label), kept for logs and headers.
    pub label: Option<String>,
    pub upstream: Option<String>,
    /// For a status request naming no version of a model declared with `versions=`: the
    /// versions to list (TF Serving lists every loaded one). Empty: no restriction.
    pub listed_versions: Vec<i64>,
}

/// The models of one server block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    models: Vec<ModelDecl>,
    labels: Vec<LabelDecl>,
}

impl Catalog {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() && self.labels.is_empty()
    }

    pub fn add_model(&mut self, decl: ModelDecl) -> Result<(), String> {
        if self.model(&decl.name).is_some() {
            return Err(format!("duplicate model \"{}\"", decl.name));
        }
        self.models.push(decl);
        Ok(())
    }

    /// Adds a label of a model declared before it.
    pub fn add_label(&mut self, decl: LabelDecl) -> Result<(), String> {
        let Some(model) = self.model(&decl.model) else {
            return Err(format!("unknown model \"{}\" (declare it with tfgate_model first)", decl.model));
        };
        if let Some(v) = decl.versions().find(|v| !model.declares(*v)) {
            return Err(format!("version {v} is not declared for model \"{}\"", decl.model));
        }
        if self.label(&decl.model, &decl.label).is_some() {
            return Err(format!("duplicate label \"{}\" of model \"{}\"", decl.label, decl.model));
        }
        self.labels.push(decl);
        Ok(())
    }

    /// Checks what can only be checked once the whole block is read.
    pub fn validate(&self) -> Result<(), String> {
        for model in &self.models {
            if let Some(VersionSelector::Label(label)) = &model.default {
                if self.label(&model.name, label).is_none() {
                    return Err(format!("default label \"{label}\" of model \"{}\" is not declared", model.name));
                }
            }
        }
        Ok(())
    }

    /// Model names are case-sensitive, as in TF Serving.
    pub fn model(&self, name: &str) -> Option<&ModelDecl> {
        self.models.iter().find(|m| m.name == name)
    }

    fn label(&self, model: &str, label: &str) -> Option<&LabelDecl> {
        self.labels.iter().find(|l| l.model == model && l.label == label)
    }

    fn has_labels(&self, model: &str) -> bool {
        self.labels.iter().any(|l| l.model == model)
    }

    /// Refuses what the catalog does not serve: an undeclared model, version or label. Runs
    /// before any token check, so unknown models cost nothing. An empty catalog passes all.
    ///
    /// A label the catalog does not declare is TF Serving's to resolve, to any version it has
    /// loaded; so it passes only for a model whose versions are all exposed (no `versions=`)
    /// and whose labels the catalog does not manage.
    pub fn check(&self, path: &ModelPath) -> Result<(), Refusal> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(model) = self.model(&path.model) else {
            return Err((404, format!("Servable not found: model \"{}\" is not served here", shown(&path.model))));
        };
        let name = shown(&model.name);
        match &path.selector {
            VersionSelector::Number(v) if !model.declares(*v) => {
                Err((404, format!("version {v} of model \"{name}\" is not served here")))
            }
            VersionSelector::Label(l) if self.label(&model.name, l).is_none() => {
                let l = shown(l);
                if self.has_labels(&model.name) {
                    Err((404, format!("label \"{l}\" of model \"{name}\" is not served here")))
                } else if !model.versions.is_empty() {
                    Err((
                        404,
                        format!(
                            "label \"{l}\" of model \"{name}\" is not served here: the model exposes versions {} \
                             only, and a label must be declared with tfgate_model_label to be used",
                            tfgate_common::format_version_list(&model.versions)
                        ),
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Resolves the default and labels to a version, choosing the split by `subject` (a
    /// verified subject, or a stable client key when anonymous). Call after [`Catalog::check`].
    pub fn resolve(&self, path: ModelPath, subject: &str) -> Resolved {
        let Some(model) = self.model(&path.model) else {
            let label = match &path.selector {
                VersionSelector::Label(l) => Some(l.clone()),
                _ => None,
            };
            return Resolved { path, label, upstream: None, listed_versions: Vec::new() };
        };
        let upstream = model.upstream.clone();
        let unversioned = path.selector == VersionSelector::Unspecified;
        // The status of a model lists its versions, as TF Serving's does: those exposed here.
        if unversioned && path.method == Method::Status {
            return Resolved { path, label: None, upstream, listed_versions: model.versions.clone() };
        }
        let requested = match &path.selector {
            VersionSelector::Unspecified => model.default_selector().unwrap_or(VersionSelector::Unspecified),
            selector => selector.clone(),
        };
        let (selector, label) = match requested {
            VersionSelector::Label(l) => match self.label(&model.name, &l) {
                Some(decl) => (VersionSelector::Number(decl.version_for(subject)), Some(l)),
                // A label TF Serving knows and the catalog does not manage.
                None => (VersionSelector::Label(l.clone()), Some(l)),
            },
            other => (other, None),
        };
        Resolved { path: ModelPath { selector, ..path }, label, upstream, listed_versions: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::{parse_rest_path, Method};

    fn catalog(models: &[&[&str]], labels: &[&[&str]]) -> Catalog {
        let mut c = Catalog::default();
        for args in models {
            c.add_model(ModelDecl::parse(args).unwrap()).unwrap();
        }
        for args in labels {
            c.add_label(LabelDecl::parse(args).unwrap()).unwrap();
        }
        c.validate().unwrap();
        c
    }

    fn path(p: &str) -> ModelPath {
        parse_rest_path(p.as_bytes()).unwrap()
    }

    fn resolve(c: &Catalog, p: &str, subject: &str) -> Result<Resolved, Refusal> {
        let p = path(p);
        c.check(&p)?;
        Ok(c.resolve(p, subject))
    }

    #[test]
    fn empty_catalog_passes_everything() {
        let r = resolve(&Catalog::default(), "/v1/models/any/labels/x:predict", "s").unwrap();
        assert_eq!(r.path, path("/v1/models/any/labels/x:predict"));
        assert_eq!(r.label.as_deref(), Some("x"));
    }

    #[test]
    fn default_version_fills_unversioned_requests_only() {
        let c = catalog(&[&["m", "versions=1,2", "default=1"]], &[]);
        assert_eq!(resolve(&c, "/v1/models/m:predict", "s").unwrap().path.selector, VersionSelector::Number(1));
        assert_eq!(
            resolve(&c, "/v1/models/m/versions/2:predict", "s").unwrap().path.selector,
            VersionSelector::Number(2)
        );
        assert_eq!(resolve(&c, "/v1/models/m/metadata", "s").unwrap().path.method, Method::Metadata);
    }

    #[test]
    fn without_a_default_unversioned_requests_get_the_highest_exposed_version() {
        let c = catalog(&[&["m", "versions=1,3,2", "scope=s"]], &[]);
        for p in ["/v1/models/m:predict", "/v1/models/m/metadata", "/v1/models/m:classify"] {
            assert_eq!(resolve(&c, p, "s").unwrap().path.selector, VersionSelector::Number(3), "{p}");
        }
        let open = catalog(&[&["m"]], &[]);
        assert_eq!(resolve(&open, "/v1/models/m:predict", "s").unwrap().path.selector, VersionSelector::Unspecified);
    }

    #[test]
    fn status_lists_the_exposed_versions_not_the_default() {
        let c = catalog(&[&["m", "versions=1,2", "default=1"]], &[]);
        let r = resolve(&c, "/v1/models/m", "s").unwrap();
        assert_eq!((r.path.selector, r.listed_versions), (VersionSelector::Unspecified, vec![1, 2]));
        let one = resolve(&c, "/v1/models/m/versions/2", "s").unwrap();
        assert_eq!((one.path.selector, one.listed_versions), (VersionSelector::Number(2), vec![]));
        let open = catalog(&[&["m", "default=1"]], &[]);
        assert!(resolve(&open, "/v1/models/m", "s").unwrap().listed_versions.is_empty());
    }

    #[test]
    fn labels_and_default_labels_resolve_to_versions() {
        let c = catalog(
            &[&["m", "versions=1,2", "default=stable", "upstream=gpu"]],
            &[&["m", "stable", "1"], &["m", "canary", "2"]],
        );
        let r = resolve(&c, "/v1/models/m:predict", "s").unwrap();
        assert_eq!(
            (r.path.selector, r.label.as_deref(), r.upstream.as_deref()),
            (VersionSelector::Number(1), Some("stable"), Some("gpu"))
        );
        let r = resolve(&c, "/v1/models/m/labels/canary:predict", "s").unwrap();
        assert_eq!(r.path.selector, VersionSelector::Number(2));
        assert_eq!(resolve(&c, "/v1/models/m/labels/beta:predict", "s").unwrap_err().0, 404);
    }

    #[test]
    fn undeclared_models_and_versions_are_404() {
        let c = catalog(&[&["m", "versions=1,2"]], &[]);
        assert_eq!(resolve(&c, "/v1/models/other:predict", "s").unwrap_err().0, 404);
        assert_eq!(resolve(&c, "/v1/models/m/versions/3:predict", "s").unwrap_err().0, 404);
        assert_eq!(resolve(&c, "/v1/models/M:predict", "s").unwrap_err().0, 404);
        // A model open to every version, without declared labels: a label is TF Serving's
        // business.
        let open = catalog(&[&["m"]], &[]);
        assert_eq!(
            resolve(&open, "/v1/models/m/labels/x:predict", "s").unwrap().path.selector,
            VersionSelector::Label("x".into())
        );
    }

    #[test]
    fn an_undeclared_label_never_reaches_past_versions() {
        // TF Serving could resolve the label to a version `versions=` does not expose.
        let c = catalog(&[&["m", "versions=1"]], &[]);
        for p in ["/v1/models/m/labels/canary:predict", "/v1/models/m/labels/canary/metadata", "/v1/models/m/labels/x"]
        {
            let (status, message) = resolve(&c, p, "s").unwrap_err();
            assert_eq!(status, 404, "{p}");
            assert!(message.contains("exposes versions 1 only") && message.contains("tfgate_model_label"), "{message}");
        }
        // Declared labels still resolve, to declared versions.
        let labelled = catalog(&[&["m", "versions=1,2"]], &[&["m", "stable", "1"]]);
        assert_eq!(
            resolve(&labelled, "/v1/models/m/labels/stable:predict", "s").unwrap().path.selector,
            VersionSelector::Number(1)
        );
        assert_eq!(resolve(&labelled, "/v1/models/m/labels/canary:predict", "s").unwrap_err().0, 404);
        // A label over 32 bytes is not echoed whole.
        let long = format!("/v1/models/m/labels/{}:predict", "a".repeat(200));
        assert!(!resolve(&c, &long, "s").unwrap_err().1.contains(&"a".repeat(33)));
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let mut c = catalog(&[&["m", "versions=1,2"]], &[&["m", "stable", "1"]]);
        assert!(c.add_model(ModelDecl::parse(&["m"]).unwrap()).unwrap_err().contains("duplicate"));
        assert!(c.add_label(LabelDecl::parse(&["x", "stable", "1"]).unwrap()).unwrap_err().contains("unknown model"));
        assert!(c.add_label(LabelDecl::parse(&["m", "beta", "3"]).unwrap()).unwrap_err().contains("not declared"));
        assert!(c
            .add_label(LabelDecl::parse(&["m", "beta", "1", "3:5"]).unwrap())
            .unwrap_err()
            .contains("not declared"));
        assert!(c.add_label(LabelDecl::parse(&["m", "stable", "2"]).unwrap()).unwrap_err().contains("duplicate"));
        let mut d = Catalog::default();
        d.add_model(ModelDecl::parse(&["m", "default=nope"]).unwrap()).unwrap();
        assert!(d.validate().unwrap_err().contains("nope"));
    }
}
