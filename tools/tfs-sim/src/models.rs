//! The simulated model catalog: which models, versions, labels and signatures exist, and how a
//! `ModelSpec` resolves to one of them (with TF Serving's error codes and wording).

use std::collections::HashMap;

use tfgate_proto::tensorflow::serving::{model_spec::VersionChoice, ModelSpec, SignatureDefMap};
use tfgate_proto::tensorflow::{tensor_info::Encoding, DataType, SignatureDef, TensorInfo};
use tfgate_proto::{DEFAULT_SIGNATURE, PREDICT_METHOD_NAME};
use tonic::Status;

use crate::kind::Kind;
use crate::signatures::signature_of;
pub use crate::signatures::{Output, Signature};
use crate::tensor::shape_proto;

/// A servable model with its versions (ascending) and labels.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: &'static str,
    pub kind: Kind,
    pub versions: Vec<i64>,
    pub labels: Vec<(&'static str, i64)>,
}

/// A model and the version a spec resolved to.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub model: &'a Model,
    pub version: i64,
}

/// All models served by the simulator.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
}

impl Catalog {
    /// The built-in catalog: `half_plus_two` (versions 1, 2; labels stable -> 1, canary -> 2),
    /// `echo_types`, `all_types`, `evolving`, `fixed3` and `echo_string` (version 1 each).
    pub fn builtin() -> Catalog {
        Catalog {
            models: vec![
                Model {
                    name: "half_plus_two",
                    kind: Kind::HalfPlusTwo,
                    versions: vec![1, 2],
                    labels: vec![("stable", 1), ("canary", 2)],
                },
                Model { name: "echo_types", kind: Kind::EchoTypes, versions: vec![1], labels: vec![] },
                Model { name: "all_types", kind: Kind::AllTypes, versions: vec![1], labels: vec![] },
                Model { name: "evolving", kind: Kind::Evolving, versions: vec![1], labels: vec![] },
                Model { name: "fixed3", kind: Kind::Fixed3, versions: vec![1], labels: vec![] },
                Model { name: "echo_string", kind: Kind::EchoString, versions: vec![1], labels: vec![] },
            ],
        }
    }

    /// Makes `version` of `model` available (a new latest version, as when TF Serving loads
    /// one from disk).
    pub fn load_version(&mut self, model: &str, version: i64) -> Result<(), String> {
        let model =
            self.models.iter_mut().find(|m| m.name == model).ok_or_else(|| format!("no model named {model:?}"))?;
        if version < 1 {
            return Err(format!("version must be positive, got {version}"));
        }
        if !model.versions.contains(&version) {
            model.versions.push(version);
            model.versions.sort_unstable();
        }
        Ok(())
    }

    /// Looks a model up by name.
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Resolves a request's `ModelSpec` to a model and one version: the given version, the
    /// label's version, or the latest.
    pub fn resolve(&self, spec: Option<&ModelSpec>) -> Result<Resolved<'_>, Status> {
        let spec = spec.ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        let name = spec.name.as_str();
        let not_found = || {
            let request = match &spec.version_choice {
                None => format!("Latest({name})"),
                Some(VersionChoice::Version(v)) => format!("Specific({name}, {v})"),
                Some(VersionChoice::VersionLabel(l)) => format!("Label({name}, {l})"),
            };
            Status::not_found(format!("Servable not found for request: {request}"))
        };
        let model = self.model(name).ok_or_else(not_found)?;
        let version = match &spec.version_choice {
            None => *model.versions.last().expect("a model has versions"),
            Some(VersionChoice::Version(v)) => model.versions.iter().copied().find(|x| x == v).ok_or_else(not_found)?,
            Some(VersionChoice::VersionLabel(label)) => model.label(label)?,
        };
        Ok(Resolved { model, version })
    }

    /// The versions a status request reports: all versions of the model, or the one requested.
    pub fn status_versions(&self, spec: Option<&ModelSpec>) -> Result<(&Model, Vec<i64>), Status> {
        let spec = spec.ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        let name = spec.name.as_str();
        let model = self
            .model(name)
            .ok_or_else(|| Status::not_found(format!("Could not find any versions of model {name}")))?;
        let versions = match &spec.version_choice {
            None => model.versions.clone(),
            Some(VersionChoice::Version(v)) => {
                if !model.versions.contains(v) {
                    return Err(Status::not_found(format!("Could not find version {v} of model {name}")));
                }
                vec![*v]
            }
            Some(VersionChoice::VersionLabel(label)) => vec![model.label(label)?],
        };
        Ok((model, versions))
    }
}

impl Model {
    fn label(&self, label: &str) -> Result<i64, Status> {
        self.labels
            .iter()
            .find(|(l, _)| *l == label)
            .map(|&(_, v)| v)
            .ok_or_else(|| Status::invalid_argument(format!("Unrecognized servable version label: {label}")))
    }

    /// Looks a signature of `version` up; an empty name means `serving_default`.
    pub fn signature(&self, name: &str, version: i64) -> Result<Signature, Status> {
        let name = if name.is_empty() { DEFAULT_SIGNATURE } else { name };
        if name != DEFAULT_SIGNATURE {
            return Err(Status::invalid_argument(format!("Serving signature key \"{name}\" not found.")));
        }
        Ok(signature_of(self.kind, version))
    }

    /// The signatures of `version` as TF Serving's metadata reports them.
    pub fn signature_def_map(&self, version: i64) -> SignatureDefMap {
        let sig = signature_of(self.kind, version);
        let info = |name: &str, dtype: DataType| TensorInfo {
            dtype: dtype as i32,
            tensor_shape: Some(shape_proto(sig.fixed_shape.unwrap_or(&[-1]))),
            encoding: Some(Encoding::Name(format!("{name}:0"))),
        };
        let def = SignatureDef {
            inputs: sig.inputs.iter().map(|&(n, d)| (n.to_string(), info(n, d))).collect(),
            outputs: sig.outputs.iter().map(|o| (o.name.to_string(), info(o.name, o.dtype))).collect(),
            method_name: PREDICT_METHOD_NAME.to_string(),
        };
        SignatureDefMap { signature_def: HashMap::from([(DEFAULT_SIGNATURE.to_string(), def)]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, choice: Option<VersionChoice>) -> ModelSpec {
        ModelSpec { name: name.into(), version_choice: choice, signature_name: String::new() }
    }

    #[test]
    fn resolves_latest_version_and_label() {
        let c = Catalog::builtin();
        let v = |choice| c.resolve(Some(&spec("half_plus_two", choice))).map(|r| r.version);
        assert_eq!(v(None).unwrap(), 2);
        assert_eq!(v(Some(VersionChoice::Version(1))).unwrap(), 1);
        assert_eq!(v(Some(VersionChoice::VersionLabel("stable".into()))).unwrap(), 1);
        assert_eq!(v(Some(VersionChoice::VersionLabel("canary".into()))).unwrap(), 2);
        let r = c.resolve(Some(&spec("echo_types", None))).unwrap();
        assert_eq!((r.model.kind, r.version), (Kind::EchoTypes, 1));
    }

    #[test]
    fn resolution_errors_match_tf_serving() {
        let c = Catalog::builtin();
        let e = c.resolve(Some(&spec("nope", None))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(e.message(), "Servable not found for request: Latest(nope)");
        let e = c.resolve(Some(&spec("half_plus_two", Some(VersionChoice::Version(3))))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(e.message(), "Servable not found for request: Specific(half_plus_two, 3)");
        let e = c.resolve(Some(&spec("half_plus_two", Some(VersionChoice::VersionLabel("x".into()))))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(c.resolve(None).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn status_versions() {
        let c = Catalog::builtin();
        assert_eq!(c.status_versions(Some(&spec("half_plus_two", None))).unwrap().1, vec![1, 2]);
        let one = spec("half_plus_two", Some(VersionChoice::Version(1)));
        assert_eq!(c.status_versions(Some(&one)).unwrap().1, vec![1]);
        let canary = spec("half_plus_two", Some(VersionChoice::VersionLabel("canary".into())));
        assert_eq!(c.status_versions(Some(&canary)).unwrap().1, vec![2]);
        let bad = spec("half_plus_two", Some(VersionChoice::Version(9)));
        assert_eq!(c.status_versions(Some(&bad)).unwrap_err().code(), tonic::Code::NotFound);
        assert_eq!(c.status_versions(Some(&spec("x", None))).unwrap_err().code(), tonic::Code::NotFound);
    }

    #[test]
    fn signatures() {
        let c = Catalog::builtin();
        let m = c.model("half_plus_two").unwrap();
        assert_eq!(m.signature("", 1).unwrap(), m.signature("serving_default", 1).unwrap());
        assert_eq!(m.signature("other", 1).unwrap_err().code(), tonic::Code::InvalidArgument);
        let map = m.signature_def_map(1);
        let def = &map.signature_def["serving_default"];
        assert_eq!(def.method_name, "tensorflow/serving/predict");
        assert_eq!(def.inputs["x"].dtype, DataType::DtFloat as i32);
        assert_eq!(def.outputs["y"].tensor_shape, Some(shape_proto(&[-1])));

        let echo = c.model("echo_types").unwrap().signature_def_map(1);
        let def = &echo.signature_def["serving_default"];
        assert_eq!(def.inputs.len(), 6);
        assert_eq!(def.outputs.len(), 7);
        assert_eq!(def.outputs["s_bytes"].dtype, DataType::DtString as i32);
        assert_eq!(def.outputs["i64_out"].dtype, DataType::DtInt64 as i32);
    }

    #[test]
    fn loading_a_version_makes_it_the_latest_with_its_signature() {
        let mut c = Catalog::builtin();
        let latest = |c: &Catalog| c.resolve(Some(&spec("evolving", None))).unwrap().version;
        assert_eq!(latest(&c), 1);
        c.load_version("evolving", 2).unwrap();
        assert_eq!(latest(&c), 2);
        let m = c.model("evolving").unwrap();
        assert_eq!(m.signature("", 2).unwrap().inputs[0].1, DataType::DtInt64);
        assert_eq!(m.signature("", 1).unwrap().inputs[0].1, DataType::DtFloat);
        assert!(c.load_version("nope", 2).is_err());
        assert!(c.load_version("evolving", 0).is_err());
    }
}
