//! The calls the daemon does not batch: GetModelMetadata and GetModelStatus, asked of the
//! backend for the resolved version; Classify, Regress and MultiInference, forwarded as they
//! are, with the model version nginx resolved written into their `model_spec` (a second
//! occurrence of the field, which protobuf merges into the first: the message is otherwise
//! passed on byte for byte, never decoded).

use bytes::Bytes;
use prost::Message;
use tfgate_common::wire::{put_len_field, put_varint_field, Cursor, Rope, WireError, LEN};
use tfgate_common::Method;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest, GetModelStatusResponse, ModelSpec,
};
use tonic::{Request, Response, Status};

use super::{call, grpc_status, quota, CallTrail};
use crate::app::App;
use crate::request::{CoreError, RequestInfo};
use crate::target::{ModelTarget, VersionRef};

pub(super) async fn model_metadata(
    app: &App,
    info: RequestInfo,
    trail: &CallTrail,
    request: Request<GetModelMetadataRequest>,
) -> Result<GetModelMetadataResponse, CoreError> {
    let (metadata, _, message) = request.into_parts();
    let call = call::understand(app, &metadata, info, message.model_spec.as_ref(), trail)?;
    app.pool().model_metadata(&call.target, call.timeout).await
}

pub(super) async fn model_status(
    app: &App,
    info: RequestInfo,
    trail: &CallTrail,
    request: Request<GetModelStatusRequest>,
) -> Result<GetModelStatusResponse, CoreError> {
    let (metadata, _, message) = request.into_parts();
    let call = call::understand(app, &metadata, info, message.model_spec.as_ref(), trail)?;
    app.pool().model_status(&call.target, call.timeout).await
}

/// A method forwarded as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMethod {
    Classify,
    Regress,
    MultiInference,
}

impl RawMethod {
    pub fn from_path(path: &str) -> Option<RawMethod> {
        match path {
            "/tensorflow.serving.PredictionService/Classify" => Some(RawMethod::Classify),
            "/tensorflow.serving.PredictionService/Regress" => Some(RawMethod::Regress),
            "/tensorflow.serving.PredictionService/MultiInference" => Some(RawMethod::MultiInference),
            _ => None,
        }
    }

    pub fn method(self) -> Method {
        match self {
            RawMethod::Classify => Method::Classify,
            RawMethod::Regress => Method::Regress,
            RawMethod::MultiInference => Method::MultiInference,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            RawMethod::Classify => "/tensorflow.serving.PredictionService/Classify",
            RawMethod::Regress => "/tensorflow.serving.PredictionService/Regress",
            RawMethod::MultiInference => "/tensorflow.serving.PredictionService/MultiInference",
        }
    }
}

/// Forwards the message with the resolved version; counted by quotas as one row per example,
/// as REST's classify and regress are.
pub(super) async fn forward(
    app: &App,
    method: RawMethod,
    info: RequestInfo,
    trail: &CallTrail,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, Status> {
    let (metadata, _, message) = request.into_parts();
    trail.with(|t| t.record().map(|record| record.bytes_in = message.len() as u64));
    let spec = read_spec(method, &message).map_err(grpc_status)?;
    let call = call::understand(app, &metadata, info, Some(&spec), trail).map_err(grpc_status)?;
    let message = with_target(method, &message, &call.target).map_err(grpc_status)?;
    let rows = example_count(&message).map_err(grpc_status)?;
    trail.with(|t| t.record().map(|record| record.rows = Some(rows as usize)));
    let standing = app.quotas.admit(&call.info.caller, &call.target.model, rows).await.map_err(quota::refused)?;
    let answer = app
        .pool()
        .raw(method.path(), &call.target.model, message, call.info.deadline, call.info.traceparent.as_deref())
        .await;
    match answer {
        Ok(answer) => Ok(quota::answer(answer, standing.as_ref())),
        Err(error) => Err(quota::error(error, standing.as_ref())),
    }
}

/// The examples of a Classify, Regress or MultiInference message: in its `input` (field 2),
/// `example_list` (1) or `example_list_with_context` (2), each an `examples` (1). A message whose
/// input does not read is refused rather than counted as nothing: TF Serving's parser may still
/// accept what this reader does not (e.g. unknown groups nested deeper than it follows), and
/// would then run examples no quota counted.
fn example_count(message: &[u8]) -> Result<u64, CoreError> {
    let malformed = |e| CoreError::invalid(format!("the request's input is malformed: {e:?}"));
    let mut count = 0;
    for input in fields(message, 2).map_err(malformed)? {
        for list_field in [1, 2] {
            for list in fields(input, list_field).map_err(malformed)? {
                count += fields(list, 1).map_err(malformed)?.len() as u64;
            }
        }
    }
    Ok(count)
}

/// The message's model spec (for MultiInference, its first task's: nginx checked that every
/// task names the same model), merged from every occurrence as protobuf does, for
/// [`call::understand`].
fn read_spec(method: RawMethod, message: &[u8]) -> Result<ModelSpec, CoreError> {
    let malformed = |e| CoreError::invalid(format!("the request message is malformed: {e:?}"));
    let holder = match method {
        RawMethod::MultiInference => match field_one(message).map_err(malformed)?.first() {
            Some(task) => *task,
            None => return Ok(ModelSpec::default()),
        },
        RawMethod::Classify | RawMethod::Regress => message,
    };
    let merged: Vec<u8> = field_one(holder).map_err(malformed)?.concat();
    ModelSpec::decode(&merged[..]).map_err(|e| CoreError::invalid(format!("model_spec: {e}")))
}

/// Every occurrence of length-delimited field 1 (a model_spec, or a task).
fn field_one(message: &[u8]) -> Result<Vec<&[u8]>, WireError> {
    fields(message, 1)
}

/// Every occurrence of length-delimited field `number`.
fn fields(message: &[u8], number: u32) -> Result<Vec<&[u8]>, WireError> {
    let parts = [message];
    let rope = Rope::new(&parts);
    let mut cursor = Cursor::new(rope, 0, rope.len());
    let mut found = Vec::new();
    while let Some((field, wire)) = cursor.key()? {
        if field == number && wire == LEN {
            let inner = cursor.nested()?;
            found.push(&message[inner.position() as usize..cursor.position() as usize]);
        } else {
            cursor.skip(field, wire)?;
        }
    }
    Ok(found)
}

/// The message with `model_spec { name, version }` of `target` merged in: appended to it (for
/// MultiInference, to every task).
fn with_target(method: RawMethod, message: &Bytes, target: &ModelTarget) -> Result<Bytes, CoreError> {
    let mut spec = Vec::new();
    put_len_field(&mut spec, 1, target.model.as_bytes());
    match &target.version {
        VersionRef::Number(n) => {
            let mut version = Vec::new();
            put_varint_field(&mut version, 1, *n as u64);
            put_len_field(&mut spec, 2, &version);
        }
        VersionRef::Label(label) => put_len_field(&mut spec, 4, label.as_bytes()),
        VersionRef::Latest => {}
    }
    if method != RawMethod::MultiInference {
        let mut out = Vec::with_capacity(message.len() + spec.len() + 4);
        out.extend_from_slice(message);
        put_len_field(&mut out, 1, &spec);
        return Ok(out.into());
    }
    let parts = [&message[..]];
    let rope = Rope::new(&parts);
    let mut fields = Cursor::new(rope, 0, rope.len());
    let malformed = |e| CoreError::invalid(format!("the request message is malformed: {e:?}"));
    let mut out = Vec::with_capacity(message.len() + 8 * (spec.len() + 4));
    // Fields other than tasks are copied as they are, in place.
    let mut copied = 0;
    loop {
        let key_at = fields.position() as usize;
        let Some((field, wire)) = fields.key().map_err(malformed)? else { break };
        if field != 1 || wire != LEN {
            fields.skip(field, wire).map_err(malformed)?;
            continue;
        }
        let inner = fields.nested().map_err(malformed)?;
        let (task_start, task_end) = (inner.position() as usize, fields.position() as usize);
        let mut task = message[task_start..task_end].to_vec();
        put_len_field(&mut task, 1, &spec);
        out.extend_from_slice(&message[copied..key_at]);
        put_len_field(&mut out, 1, &task);
        copied = task_end;
    }
    out.extend_from_slice(&message[copied..]);
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;

    fn spec_bytes(name: &str, label: &str) -> Vec<u8> {
        ModelSpec {
            name: name.into(),
            version_choice: Some(VersionChoice::VersionLabel(label.into())),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn the_resolved_version_is_merged_into_every_model_spec() {
        let target = ModelTarget { model: "m".into(), version: VersionRef::Number(7) };
        // Classify: model_spec = 1, input = 2 (opaque here).
        let mut classify = Vec::new();
        put_len_field(&mut classify, 1, &spec_bytes("m", "canary"));
        put_len_field(&mut classify, 2, b"opaque input");
        let out = with_target(RawMethod::Classify, &classify.clone().into(), &target).unwrap();
        assert!(out.starts_with(&classify), "the original bytes are kept");
        let spec = read_spec(RawMethod::Classify, &out).unwrap();
        assert_eq!((spec.name.as_str(), spec.version_choice), ("m", Some(VersionChoice::Version(7))));
        // MultiInference: tasks = 1 { model_spec = 1, method_name = 2 }, input = 2.
        let mut task = Vec::new();
        put_len_field(&mut task, 1, &spec_bytes("m", "canary"));
        put_len_field(&mut task, 2, b"tensorflow/serving/classify");
        let mut multi = Vec::new();
        put_len_field(&mut multi, 1, &task);
        put_len_field(&mut multi, 2, b"opaque input");
        put_len_field(&mut multi, 1, &task);
        let out = with_target(RawMethod::MultiInference, &multi.into(), &target).unwrap();
        let parts = [&out[..]];
        let rope = Rope::new(&parts);
        let mut fields = Cursor::new(rope, 0, rope.len());
        let mut tasks = 0;
        while let Some((field, wire)) = fields.key().unwrap() {
            if field == 1 {
                let inner = fields.nested().unwrap();
                let bytes = &out[inner.position() as usize..fields.position() as usize];
                let spec = ModelSpec::decode(&field_one(bytes).unwrap().concat()[..]).unwrap();
                assert_eq!(spec.version_choice, Some(VersionChoice::Version(7)));
                tasks += 1;
            } else {
                fields.skip(field, wire).unwrap();
            }
        }
        assert_eq!(tasks, 2);
        assert!(read_spec(RawMethod::Classify, &Bytes::from_static(&[0x0a, 9])).is_err());
    }

    #[test]
    fn quotas_count_the_examples_of_every_list() {
        let examples = |n: usize| {
            let mut list = Vec::new();
            for _ in 0..n {
                put_len_field(&mut list, 1, b"an Example");
            }
            list
        };
        let message = |list_field: u32, n: usize| {
            let mut input = Vec::new();
            put_len_field(&mut input, list_field, &examples(n));
            let mut message = Vec::new();
            put_len_field(&mut message, 1, &spec_bytes("m", "canary"));
            put_len_field(&mut message, 2, &input);
            message
        };
        let example_count = |m: &[u8]| example_count(m).unwrap();
        assert_eq!(example_count(&message(1, 3)), 3);
        // example_list_with_context; a second, empty input adds nothing.
        let mut with_context = message(2, 2);
        assert_eq!(example_count(&with_context), 2);
        with_context.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(example_count(&with_context), 2);
        assert_eq!(example_count(&message(1, 0)), 0);
        assert!(super::example_count(&[0x12, 0x05, 0x0a]).is_err(), "a truncated input is refused");
        // An input this reader cannot follow (unknown groups nested too deep) is refused, never
        // counted as no examples.
        let mut deep = Vec::new();
        deep.extend(std::iter::repeat_n(0x1b_u8, 40)); // start group 3, 40 deep
        deep.extend(std::iter::repeat_n(0x1c_u8, 40)); // end group 3
        let mut input = Vec::new();
        put_len_field(&mut input, 1, &examples(2));
        input.extend_from_slice(&deep);
        let mut message = Vec::new();
        put_len_field(&mut message, 2, &input);
        assert!(super::example_count(&message).is_err());
    }
}
