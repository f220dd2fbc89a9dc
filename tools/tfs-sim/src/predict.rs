//! Predict: validating a request against the signature (a `Plan`) and computing the outputs.
//!
//! Validation and computing are separate so that the cost model can run the computation on an
//! executor thread after the request was accepted.

use std::collections::{BTreeMap, HashSet};

use tfgate_proto::tensorflow::serving::{model_spec::VersionChoice, ModelSpec, PredictRequest, PredictResponse};
use tfgate_proto::DEFAULT_SIGNATURE;
use tonic::Status;

use crate::kind::Kind;
use crate::models::{Catalog, Output, Signature};
use crate::tensor::{dtype_name, Tensor, Values};

/// A validated Predict call, ready to run.
#[derive(Debug)]
pub struct Plan {
    model: &'static str,
    kind: Kind,
    version: i64,
    signature_name: String,
    /// Decoded inputs, in signature order.
    inputs: Vec<(&'static str, Tensor)>,
    /// Outputs to produce, in signature order.
    outputs: Vec<Output>,
}

impl Plan {
    /// Resolves the model and signature and checks the inputs and output filter.
    pub fn new(catalog: &Catalog, req: &PredictRequest) -> Result<Plan, Status> {
        let resolved = catalog.resolve(req.model_spec.as_ref())?;
        let model = resolved.model;
        let spec = req.model_spec.as_ref().expect("resolve checked the spec");
        let sig = model.signature(&spec.signature_name, resolved.version)?;
        let signature_name = if spec.signature_name.is_empty() { DEFAULT_SIGNATURE } else { &spec.signature_name };
        let inputs = check_inputs(model.name, signature_name, &sig, req)?;
        let outputs = select_outputs(signature_name, &sig, &inputs, &req.output_filter)?;
        Ok(Plan {
            model: model.name,
            kind: model.kind,
            version: resolved.version,
            signature_name: signature_name.to_string(),
            inputs,
            outputs,
        })
    }

    /// The batch size for the cost model: dim 0 of the first input (1 for a scalar).
    pub fn batch_size(&self) -> u64 {
        match self.inputs.first() {
            Some((_, t)) => t.shape.first().map_or(1, |&d| d as u64),
            None => 0,
        }
    }

    /// Computes the outputs.
    pub fn run(self) -> PredictResponse {
        let outputs = self
            .outputs
            .iter()
            .filter_map(|o| {
                let (_, input) = self.inputs.iter().find(|(n, _)| *n == o.from_input)?;
                Some((o.name.to_string(), compute(self.kind, self.version, input).to_proto()))
            })
            .collect();
        PredictResponse {
            outputs,
            model_spec: Some(ModelSpec {
                name: self.model.to_string(),
                version_choice: Some(VersionChoice::Version(self.version)),
                signature_name: self.signature_name,
            }),
        }
    }
}

fn compute(kind: Kind, version: i64, input: &Tensor) -> Tensor {
    match (kind, &input.values) {
        (Kind::HalfPlusTwo, Values::Float(x)) => {
            let offset = if version == 1 { 2.0 } else { 3.0 };
            Tensor { shape: input.shape.clone(), values: Values::Float(x.iter().map(|v| 0.5 * v + offset).collect()) }
        }
        (Kind::Fixed3, Values::Float(x)) => {
            Tensor { shape: input.shape.clone(), values: Values::Float(x.iter().map(|v| 2.0 * v).collect()) }
        }
        _ => input.clone(),
    }
}

/// Whether `shape` fits the signature's static shape (TF Serving checks this before running).
fn fits(shape: &[i64], expected: &[i64]) -> bool {
    shape.len() == expected.len() && shape.iter().zip(expected).all(|(&d, &e)| e < 0 || d == e)
}

fn names(items: impl Iterator<Item = &'static str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn check_inputs(
    model: &str,
    signature_name: &str,
    sig: &Signature,
    req: &PredictRequest,
) -> Result<Vec<(&'static str, Tensor)>, Status> {
    let expected = || names(sig.inputs.iter().map(|(n, _)| *n));
    let mut sent: Vec<&String> = req.inputs.keys().collect();
    sent.sort();
    for name in sent {
        if !sig.inputs.iter().any(|(n, _)| n == name) {
            return Err(Status::invalid_argument(format!(
                "input '{name}' is not an input of signature '{signature_name}' of model {model} (inputs: {})",
                expected()
            )));
        }
    }
    let mut inputs = Vec::new();
    for &(name, dtype) in sig.inputs {
        let Some(proto) = req.inputs.get(name) else {
            if sig.all_inputs_required {
                return Err(Status::invalid_argument(format!(
                    "missing input '{name}' of signature '{signature_name}' of model {model} (inputs: {})",
                    expected()
                )));
            }
            continue;
        };
        if proto.dtype != dtype as i32 {
            return Err(Status::invalid_argument(format!(
                "input '{name}' must be {} but {} was sent",
                dtype.as_str_name(),
                dtype_name(proto.dtype)
            )));
        }
        let tensor = Tensor::from_proto(name, proto)?;
        if let Some(wanted) = sig.fixed_shape.filter(|e| !fits(&tensor.shape, e)) {
            return Err(Status::invalid_argument(format!(
                "input '{name}' has shape {:?}, which does not fit the signature's {:?}",
                tensor.shape, wanted
            )));
        }
        inputs.push((name, tensor));
    }
    if inputs.is_empty() {
        return Err(Status::invalid_argument(format!(
            "signature '{signature_name}' of model {model} needs at least one input (inputs: {})",
            expected()
        )));
    }
    Ok(inputs)
}

fn select_outputs(
    signature_name: &str,
    sig: &Signature,
    inputs: &[(&'static str, Tensor)],
    filter: &[String],
) -> Result<Vec<Output>, Status> {
    let have = |o: &Output| inputs.iter().any(|(n, _)| *n == o.from_input);
    if filter.is_empty() {
        return Ok(sig.outputs.iter().filter(|o| have(o)).copied().collect());
    }
    let mut seen = HashSet::new();
    let mut selected = BTreeMap::new();
    for name in filter {
        if !seen.insert(name.as_str()) {
            return Err(Status::invalid_argument(format!("duplicate output '{name}' in output_filter")));
        }
        let Some((pos, o)) = sig.outputs.iter().enumerate().find(|(_, o)| o.name == name) else {
            return Err(Status::invalid_argument(format!(
                "output_filter names '{name}', which is not an output of signature '{signature_name}' (outputs: {})",
                names(sig.outputs.iter().map(|o| o.name))
            )));
        };
        if !have(o) {
            return Err(Status::invalid_argument(format!(
                "output '{name}' needs input '{}', which was not sent",
                o.from_input
            )));
        }
        selected.insert(pos, *o);
    }
    Ok(selected.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::shape_proto;
    use tfgate_proto::tensorflow::{DataType, TensorProto};

    fn request(model: &str, version: Option<i64>, inputs: Vec<(&str, TensorProto)>) -> PredictRequest {
        PredictRequest {
            model_spec: Some(ModelSpec {
                name: model.into(),
                version_choice: version.map(VersionChoice::Version),
                signature_name: String::new(),
            }),
            inputs: inputs.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
            output_filter: vec![],
        }
    }

    fn floats(shape: &[i64], v: &[f32]) -> TensorProto {
        Tensor { shape: shape.to_vec(), values: Values::Float(v.to_vec()) }.to_proto()
    }

    fn predict(req: &PredictRequest) -> Result<PredictResponse, Status> {
        Plan::new(&Catalog::builtin(), req).map(Plan::run)
    }

    #[test]
    fn half_plus_two_versions() {
        let x = floats(&[3], &[1.0, 2.0, 5.0]);
        let r1 = predict(&request("half_plus_two", Some(1), vec![("x", x.clone())])).unwrap();
        assert_eq!(r1.outputs["y"].float_val, [2.5, 3.0, 4.5]);
        assert_eq!(r1.outputs["y"].tensor_shape, Some(shape_proto(&[3])));
        let r2 = predict(&request("half_plus_two", None, vec![("x", x)])).unwrap();
        assert_eq!(r2.outputs["y"].float_val, [3.5, 4.0, 5.5]);
        let spec = r2.model_spec.unwrap();
        assert_eq!(spec.version_choice, Some(VersionChoice::Version(2)));
        assert_eq!(spec.signature_name, "serving_default");
    }

    #[test]
    fn reads_tensor_content_and_fill() {
        let mut x = floats(&[2, 1], &[]);
        x.tensor_content = [2.0f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = predict(&request("half_plus_two", Some(1), vec![("x", x)])).unwrap();
        assert_eq!(r.outputs["y"].float_val, [3.0, 4.0]);
        assert_eq!(r.outputs["y"].tensor_shape, Some(shape_proto(&[2, 1])));
        let r = predict(&request("half_plus_two", Some(1), vec![("x", floats(&[3], &[0.0]))])).unwrap();
        assert_eq!(r.outputs["y"].float_val, [2.0, 2.0, 2.0]);
    }

    #[test]
    fn batch_size_is_dim0_of_first_input() {
        let c = Catalog::builtin();
        let plan = |shape: &[i64], n: usize| {
            Plan::new(&c, &request("half_plus_two", None, vec![("x", floats(shape, &vec![1.0; n]))])).unwrap()
        };
        assert_eq!(plan(&[4, 2], 8).batch_size(), 4);
        assert_eq!(plan(&[], 1).batch_size(), 1);
    }

    #[test]
    fn invalid_requests() {
        let check = |req: PredictRequest, needle: &str| {
            let e = predict(&req).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
            assert!(e.message().contains(needle), "{:?} lacks {needle:?}", e.message());
        };
        let x = floats(&[1], &[1.0]);
        check(request("half_plus_two", None, vec![]), "missing input 'x'");
        check(request("half_plus_two", None, vec![("x", x.clone()), ("z", x.clone())]), "input 'z'");
        let mut d = x.clone();
        d.dtype = DataType::DtDouble as i32;
        check(request("half_plus_two", None, vec![("x", d)]), "must be DT_FLOAT but DT_DOUBLE");
        check(request("half_plus_two", None, vec![("x", floats(&[3], &[1.0, 2.0]))]), "2 values");
        let mut req = request("half_plus_two", None, vec![("x", x.clone())]);
        req.model_spec.as_mut().unwrap().signature_name = "nope".into();
        check(req, "\"nope\" not found");
        let mut req = request("half_plus_two", None, vec![("x", x.clone())]);
        req.output_filter = vec!["q".into()];
        check(req, "'q'");
        check(request("echo_types", None, vec![]), "at least one input");
        let e = predict(&request("nope", None, vec![("x", x)])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }

    #[test]
    fn echo_types_echoes_sent_inputs() {
        let i64s = Tensor { shape: vec![2], values: Values::Int64(vec![1 << 40, -3]) }.to_proto();
        let s = Tensor { shape: vec![1], values: Values::String(vec![vec![0, 0xff]]) }.to_proto();
        let bools = TensorProto {
            dtype: DataType::DtBool as i32,
            tensor_shape: Some(shape_proto(&[2, 2])),
            bool_val: vec![true],
            ..Default::default()
        };
        let req = request("echo_types", None, vec![("i64", i64s.clone()), ("s", s.clone()), ("b", bools)]);
        let r = predict(&req).unwrap();
        let mut keys: Vec<_> = r.outputs.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["b_out", "i64_out", "s_bytes", "s_out"]);
        assert_eq!(r.outputs["i64_out"], i64s);
        assert_eq!(r.outputs["s_bytes"], s);
        assert_eq!(r.outputs["b_out"].bool_val, [true; 4]);

        let mut req = request("echo_types", None, vec![("s", s.clone())]);
        req.output_filter = vec!["s_bytes".into()];
        let r = predict(&req).unwrap();
        assert_eq!(r.outputs.len(), 1);
        req.output_filter = vec!["f32_out".into()];
        assert!(predict(&req).is_err());
    }
}
