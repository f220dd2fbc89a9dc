//! One sampled Predict call and its two written forms: a `tensorflow.serving.PredictionLog`
//! (for TFRecord files) and a JSON line. Built in the writer thread: the request path only
//! hands over the tensors it already had.
//!
//! The `PredictionLog` holds:
//! - `log_metadata.model_spec`: name, signature and the version that answered (else the one
//!   asked for); `sampling_config.sampling_rate`: the rate the request was kept at;
//!   `timestamp_secs`: its arrival; `request_origin`: its request id (nginx's `$request_id`,
//!   LogMetadata's one free-text field), which joins it to the audit and access logs.
//! - `predict_log.request`: the request's own inputs (after redaction), and its model spec as
//!   asked (version, label or neither).
//! - `predict_log.response`: the request's own rows of the outputs (not its batch's), and the
//!   resolved model spec.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_log::LogType;
use tfgate_proto::tensorflow::serving::{
    LogMetadata, ModelSpec, PredictLog, PredictRequest, PredictResponse, PredictionLog, SamplingConfig,
};
use tfgate_proto::tensorflow::TensorProto;

use super::redact::Redaction;
use crate::batching::rows::extend_values;
use crate::clock;
use crate::convert::json_writer::{write_nested, write_object, write_str, Strings};
use crate::convert::{Outputs, Tensor, Values};
use crate::target::model_spec;
use crate::target::{ModelTarget, VersionRef};

/// A request's outputs as its batches returned them.
pub enum OutputRows {
    /// From a call made for the request alone: all of it is the request's.
    Whole(Arc<Outputs>),
    /// Rows of batch outputs, in request order.
    Rows(Vec<(Arc<Outputs>, Range<usize>)>),
}

impl OutputRows {
    /// Bytes of output the request's own rows take (for the queue's memory bound).
    pub fn bytes(&self) -> usize {
        match self {
            OutputRows::Whole(outputs) => outputs.values().map(|t| t.values.heap_bytes()).sum(),
            OutputRows::Rows(pieces) => pieces
                .iter()
                .map(|(outputs, rows)| {
                    let share = |t: &Tensor| {
                        let total = t.shape.first().copied().unwrap_or(1).max(1);
                        t.values.heap_bytes() * rows.len() / total
                    };
                    outputs.values().map(share).sum::<usize>()
                })
                .sum(),
        }
    }

    /// The request's own outputs, its rows cut out of the batches'.
    pub fn collect(self) -> Result<Outputs, String> {
        let pieces = match self {
            OutputRows::Whole(outputs) => return Ok(Arc::unwrap_or_clone(outputs)),
            OutputRows::Rows(pieces) => pieces,
        };
        let Some((first, _)) = pieces.first() else {
            return Ok(Outputs::new());
        };
        let rows: usize = pieces.iter().map(|(_, r)| r.len()).sum();
        let mut collected = Outputs::new();
        for (name, model) in first.iter() {
            let row_shape = model.shape.get(1..).unwrap_or(&[]);
            let stride: usize = row_shape.iter().product();
            let mut values = Values::empty(model.dtype);
            for (outputs, range) in &pieces {
                let tensor = outputs.get(name).ok_or_else(|| format!("output {name} missing from a batch"))?;
                extend_values(&mut values, &tensor.values, range.start * stride..range.end * stride)?;
            }
            let mut shape = Vec::with_capacity(row_shape.len() + 1);
            shape.push(rows);
            shape.extend_from_slice(row_shape);
            collected.insert(name.clone(), Tensor { dtype: model.dtype, shape, values });
        }
        Ok(collected)
    }
}

/// A sampled request and its answer.
pub struct PredictionEntry {
    pub time: SystemTime,
    pub request_id: String,
    pub target: ModelTarget,
    pub signature_name: String,
    /// The version that answered, as TF Serving said.
    pub version: Option<i64>,
    pub sampling_rate: f64,
    /// The request's inputs (those redaction drops were never copied).
    pub inputs: BTreeMap<String, Tensor>,
    pub outputs: OutputRows,
    /// The request's `output_filter` (gRPC): only these outputs were answered, and are logged;
    /// empty: all.
    pub output_filter: Vec<String>,
}

/// The entry with its tensors redacted, ready to be written in either form.
pub struct Redacted {
    pub entry: PredictionEntry,
    pub inputs: BTreeMap<String, Tensor>,
    pub outputs: BTreeMap<String, Tensor>,
}

impl PredictionEntry {
    pub fn redact(mut self, redaction: &Redaction) -> Result<Redacted, String> {
        let inputs = redaction.apply(std::mem::take(&mut self.inputs));
        let mut outputs = std::mem::replace(&mut self.outputs, OutputRows::Rows(Vec::new())).collect()?;
        if !self.output_filter.is_empty() {
            outputs.retain(|name, _| self.output_filter.contains(name));
        }
        let outputs = redaction.apply(outputs);
        Ok(Redacted { entry: self, inputs, outputs })
    }
}

impl Redacted {
    /// The version recorded as the one that served the request.
    fn resolved(&self) -> ModelTarget {
        let version = match self.entry.version {
            Some(n) => VersionRef::Number(n),
            None => self.entry.target.version.clone(),
        };
        ModelTarget { model: self.entry.target.model.clone(), version }
    }

    pub fn into_proto(self) -> PredictionLog {
        let resolved = model_spec(&self.resolved(), &self.entry.signature_name);
        let requested = model_spec(&self.entry.target, &self.entry.signature_name);
        let protos = |tensors: BTreeMap<String, Tensor>| -> HashMap<String, TensorProto> {
            tensors.into_iter().map(|(name, t)| (name, t.into_proto())).collect()
        };
        PredictionLog {
            log_metadata: Some(LogMetadata {
                model_spec: Some(resolved.clone()),
                sampling_config: Some(SamplingConfig { sampling_rate: self.entry.sampling_rate, attributes: 0 }),
                timestamp_secs: clock::unix_seconds(self.entry.time),
                request_origin: self.entry.request_id,
                ..Default::default()
            }),
            log_type: Some(LogType::PredictLog(PredictLog {
                request: Some(PredictRequest {
                    model_spec: Some(requested),
                    inputs: protos(self.inputs),
                    output_filter: self.entry.output_filter,
                }),
                response: Some(PredictResponse { outputs: protos(self.outputs), model_spec: Some(resolved) }),
            })),
        }
    }

    /// One line: the metadata, then `inputs` and `outputs` in TF Serving's columnar JSON (a
    /// record's `inputs` can be sent again as a `:predict` body).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let entry = &self.entry;
        out.extend_from_slice(b"{\"time\":");
        write_str(out, &clock::rfc3339(entry.time));
        out.extend_from_slice(b",\"request_id\":");
        write_str(out, &entry.request_id);
        out.extend_from_slice(b",\"model\":");
        write_str(out, &entry.target.model);
        out.extend_from_slice(b",\"version\":");
        let version = match self.resolved().version {
            VersionRef::Number(n) => n.to_string(),
            _ => "null".to_string(),
        };
        out.extend_from_slice(version.as_bytes());
        out.extend_from_slice(b",\"requested\":");
        write_str(out, &entry.target.version.to_string());
        out.extend_from_slice(b",\"signature_name\":");
        write_str(out, &entry.signature_name);
        out.extend_from_slice(b",\"sampling_rate\":");
        out.extend_from_slice(
            serde_json::Number::from_f64(entry.sampling_rate).map_or("0".to_string(), |n| n.to_string()).as_bytes(),
        );
        out.extend_from_slice(b",\"inputs\":");
        write_tensors(out, &self.inputs);
        out.extend_from_slice(b",\"outputs\":");
        write_tensors(out, &self.outputs);
        out.extend_from_slice(b"}\n");
    }
}

fn write_tensors(out: &mut Vec<u8>, tensors: &BTreeMap<String, Tensor>) {
    write_object(out, tensors, |out, name, tensor| {
        write_nested(out, &tensor.values, &tensor.shape, 0, Strings::for_output(name))
    });
}

/// The version a `ModelSpec` names, if a number.
pub fn spec_version(spec: &ModelSpec) -> Option<i64> {
    match spec.version_choice {
        Some(VersionChoice::Version(n)) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Dtype;
    use prost::Message;
    use std::collections::BTreeSet;
    use std::time::{Duration, UNIX_EPOCH};

    fn floats(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor { dtype: Dtype::Float, shape: shape.to_vec(), values: Values::F32(values.to_vec()) }
    }

    fn batch(values: &[f32]) -> Arc<Outputs> {
        let mut outputs = Outputs::new();
        outputs.insert("y".to_string(), floats(&[values.len(), 1], values));
        Arc::new(outputs)
    }

    fn entry(outputs: OutputRows) -> PredictionEntry {
        let mut inputs = BTreeMap::new();
        inputs.insert("x".to_string(), floats(&[3, 1], &[1.0, 2.0, 3.0]));
        PredictionEntry {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            request_id: "abc".to_string(),
            target: ModelTarget { model: "m".to_string(), version: VersionRef::Label("canary".to_string()) },
            signature_name: "serving_default".to_string(),
            version: Some(2),
            sampling_rate: 0.25,
            inputs,
            outputs,
            output_filter: Vec::new(),
        }
    }

    #[test]
    fn only_the_requests_own_rows_are_logged() {
        // The request's 3 rows: 2 at the end of one batch, 1 at the start of the next.
        let rows = OutputRows::Rows(vec![(batch(&[9.0, 9.0, 10.0, 11.0]), 2..4), (batch(&[12.0, 9.0]), 0..1)]);
        let collected = rows.collect().unwrap();
        assert_eq!(collected["y"], floats(&[3, 1], &[10.0, 11.0, 12.0]));
        assert_eq!(OutputRows::Whole(batch(&[1.0])).collect().unwrap()["y"], floats(&[1, 1], &[1.0]));
    }

    #[test]
    fn the_record_carries_request_response_and_metadata() {
        let rows = OutputRows::Rows(vec![(batch(&[0.0, 10.0, 11.0, 12.0]), 1..4)]);
        let redacted = entry(rows).redact(&Redaction::none()).unwrap();
        let log = PredictionLog::decode(redacted.into_proto().encode_to_vec().as_slice()).unwrap();
        let metadata = log.log_metadata.unwrap();
        let spec = metadata.model_spec.unwrap();
        assert_eq!((spec.name.as_str(), spec_version(&spec)), ("m", Some(2)));
        assert_eq!(metadata.sampling_config.unwrap().sampling_rate, 0.25);
        assert_eq!(metadata.timestamp_secs, 1_700_000_000);
        assert_eq!(metadata.request_origin, "abc");
        let Some(LogType::PredictLog(predict)) = log.log_type else { panic!() };
        let request = predict.request.unwrap();
        assert_eq!(request.model_spec.unwrap().version_choice, Some(VersionChoice::VersionLabel("canary".into())));
        assert_eq!(Tensor::from_proto(&request.inputs["x"]).unwrap(), floats(&[3, 1], &[1.0, 2.0, 3.0]));
        let response = predict.response.unwrap();
        assert_eq!(Tensor::from_proto(&response.outputs["y"]).unwrap(), floats(&[3, 1], &[10.0, 11.0, 12.0]));
    }

    #[test]
    fn json_lines_are_replayable_columnar_bodies() {
        let rows = OutputRows::Whole(batch(&[10.0, 11.0, 12.0]));
        let redaction = Redaction::new(BTreeSet::from(["y".to_string()]), BTreeSet::new(), None);
        let redacted = entry(rows).redact(&redaction).unwrap();
        let mut out = Vec::new();
        redacted.write_json(&mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["inputs"]["x"], serde_json::json!([[1.0], [2.0], [3.0]]));
        assert_eq!(value["outputs"], serde_json::json!({}), "y was dropped");
        assert_eq!(value["version"], 2);
        assert_eq!(value["requested"], "label:canary");
        assert_eq!(value["time"], "2023-11-14T22:13:20.000000Z");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn a_grpc_output_filter_keeps_only_the_outputs_answered() {
        let mut outputs = Arc::unwrap_or_clone(batch(&[1.0]));
        outputs.insert("z".to_string(), floats(&[1, 1], &[5.0]));
        let mut filtered = entry(OutputRows::Whole(Arc::new(outputs)));
        filtered.output_filter = vec!["z".to_string()];
        let none = Redaction::new(BTreeSet::new(), BTreeSet::new(), None);
        let redacted = filtered.redact(&none).unwrap();
        assert_eq!(redacted.outputs.keys().collect::<Vec<_>>(), ["z"]);
        let Some(LogType::PredictLog(log)) = redacted.into_proto().log_type else { panic!("a PredictLog") };
        assert_eq!(log.request.unwrap().output_filter, ["z"]);
    }
}
