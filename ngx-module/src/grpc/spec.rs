//! The `ModelSpec` of a TF Serving request message, read from the wire format in any field
//! order without decoding the rest (the tensors are skipped by their length).
//!
//! It must read what the daemon and TF Serving read after it: protobuf merges every occurrence
//! of a singular message field, the last value of a scalar wins, and setting one member of a
//! `oneof` clears the other. A request that names one model in its first `model_spec` and
//! another in a second one is the other model's request, and is authorized as such.

use super::method::GrpcMethod;
use tfgate_common::wire::{Cursor, Rope, WireError, LEN, VARINT};

/// Longest model name, label or signature name read (far beyond any real one).
const MAX_NAME: usize = 1024;

/// `tensorflow.serving.ModelSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSpec {
    /// `name = 1`.
    pub name: String,
    /// `oneof version_choice { Int64Value version = 2; string version_label = 4; }`.
    pub version: Option<VersionChoice>,
    /// `signature_name = 3`.
    pub signature_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionChoice {
    Number(i64),
    Label(String),
}

/// Why a request's model could not be read; worded for the client (`grpc-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl From<WireError> for SpecError {
    fn from(e: WireError) -> SpecError {
        SpecError(match e {
            WireError::Truncated => "the request message is truncated".to_string(),
            WireError::Malformed(why) => format!("the request message is malformed: {why}"),
        })
    }
}

/// The model spec of `method`'s request message at `message[offset..offset + len]`. A
/// MultiInference request must name the same model and version in every task.
pub fn read_model_spec(method: GrpcMethod, body: &Rope<'_>, offset: u64, len: u64) -> Result<ModelSpec, SpecError> {
    let mut message = Cursor::new(*body, offset, offset + len);
    if method.has_tasks() {
        return read_tasks(&mut message);
    }
    let mut spec = ModelSpec::default();
    while let Some((field, wire)) = message.key()? {
        match (field, wire) {
            (1, LEN) => merge_spec(&mut spec, &mut message.nested()?)?,
            (1, _) => return Err(SpecError("model_spec has the wrong wire type".into())),
            _ => message.skip(field, wire)?,
        }
    }
    Ok(spec)
}

/// `repeated InferenceTask tasks = 1`, each `{ ModelSpec model_spec = 1; string method_name = 2; }`.
fn read_tasks(message: &mut Cursor<'_>) -> Result<ModelSpec, SpecError> {
    let mut first: Option<ModelSpec> = None;
    while let Some((field, wire)) = message.key()? {
        match (field, wire) {
            (1, LEN) => {
                let mut task = message.nested()?;
                let mut spec = ModelSpec::default();
                while let Some((field, wire)) = task.key()? {
                    match (field, wire) {
                        (1, LEN) => merge_spec(&mut spec, &mut task.nested()?)?,
                        (1, _) => return Err(SpecError("model_spec has the wrong wire type".into())),
                        _ => task.skip(field, wire)?,
                    }
                }
                match &first {
                    None => first = Some(spec),
                    Some(known) if known.name == spec.name && known.version == spec.version => {}
                    Some(_) => {
                        return Err(SpecError(
                            "every task of a MultiInference request must name one model and version".into(),
                        ))
                    }
                }
            }
            (1, _) => return Err(SpecError("tasks has the wrong wire type".into())),
            _ => message.skip(field, wire)?,
        }
    }
    first.ok_or_else(|| SpecError("a MultiInference request needs at least one task".into()))
}

/// Merges one occurrence of a ModelSpec into `spec`, as protobuf does.
fn merge_spec(spec: &mut ModelSpec, fields: &mut Cursor<'_>) -> Result<(), SpecError> {
    while let Some((field, wire)) = fields.key()? {
        match (field, wire) {
            (1, LEN) => spec.name = text(fields, "name")?,
            (3, LEN) => spec.signature_name = text(fields, "signature_name")?,
            (4, LEN) => spec.version = Some(VersionChoice::Label(text(fields, "version_label")?)),
            (2, LEN) => {
                // An Int64Value merged into the version already set, if it is one.
                let mut value = match spec.version {
                    Some(VersionChoice::Number(n)) => n,
                    _ => 0,
                };
                let mut wrapper = fields.nested()?;
                while let Some((field, wire)) = wrapper.key()? {
                    match (field, wire) {
                        (1, VARINT) => value = wrapper.varint()? as i64,
                        (1, _) => return Err(SpecError("version.value has the wrong wire type".into())),
                        _ => wrapper.skip(field, wire)?,
                    }
                }
                spec.version = Some(VersionChoice::Number(value));
            }
            (1..=4, _) => return Err(SpecError(format!("model_spec field {field} has the wrong wire type"))),
            _ => fields.skip(field, wire)?,
        }
    }
    Ok(())
}

fn text(fields: &mut Cursor<'_>, what: &str) -> Result<String, SpecError> {
    String::from_utf8(fields.bytes(MAX_NAME)?).map_err(|_| SpecError(format!("model_spec.{what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(field << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn read(method: GrpcMethod, message: &[u8]) -> Result<ModelSpec, SpecError> {
        let parts = [message];
        read_model_spec(method, &Rope::new(&parts), 0, message.len() as u64)
    }

    #[test]
    fn finds_the_spec_after_the_tensors() {
        let spec = [len_field(1, b"half"), len_field(2, &[0x08, 7]), len_field(3, b"serving_default")].concat();
        let inputs = len_field(2, &[0xaa; 100]);
        let message = [inputs, len_field(1, &spec)].concat();
        let spec = read(GrpcMethod::Predict, &message).unwrap();
        assert_eq!(spec.name, "half");
        assert_eq!(spec.version, Some(VersionChoice::Number(7)));
        assert_eq!(spec.signature_name, "serving_default");
    }

    #[test]
    fn occurrences_merge_and_the_last_oneof_member_wins() {
        let first = [len_field(1, b"allowed"), len_field(4, b"stable")].concat();
        let second = [len_field(1, b"secret"), len_field(2, &[0x08, 3])].concat();
        let message = [len_field(1, &first), len_field(1, &second)].concat();
        let merged = read(GrpcMethod::Predict, &message).unwrap();
        assert_eq!((merged.name.as_str(), merged.version), ("secret", Some(VersionChoice::Number(3))));
        // A label after a version replaces it; an empty Int64Value is version 0.
        let spec = [len_field(2, &[0x08, 3]), len_field(4, b"canary"), len_field(2, &[])].concat();
        assert_eq!(read(GrpcMethod::Predict, &len_field(1, &spec)).unwrap().version, Some(VersionChoice::Number(0)));
        let spec = [len_field(2, &[0x08, 3]), len_field(4, b"canary")].concat();
        let label = read(GrpcMethod::Predict, &len_field(1, &spec)).unwrap().version;
        assert_eq!(label, Some(VersionChoice::Label("canary".into())));
    }

    #[test]
    fn multi_inference_tasks_must_agree() {
        let task = |name: &[u8]| {
            len_field(1, &[len_field(1, &len_field(1, name)), len_field(2, b"tensorflow/serving/classify")].concat())
        };
        let same = [task(b"m"), task(b"m")].concat();
        assert_eq!(read(GrpcMethod::MultiInference, &same).unwrap().name, "m");
        let mixed = [task(b"m"), task(b"other")].concat();
        assert!(read(GrpcMethod::MultiInference, &mixed).is_err());
        assert!(read(GrpcMethod::MultiInference, &[]).is_err());
    }

    #[test]
    fn no_spec_is_an_empty_name_and_bad_specs_are_errors() {
        assert_eq!(read(GrpcMethod::GetModelStatus, &[]).unwrap(), ModelSpec::default());
        assert!(read(GrpcMethod::Predict, &[0x08, 1]).is_err(), "model_spec as a varint");
        assert!(read(GrpcMethod::Predict, &len_field(1, &len_field(1, &[0xff, 0xfe]))).is_err(), "not UTF-8");
        assert!(read(GrpcMethod::Predict, &len_field(1, &[0x0a, 9, b'a'])).is_err(), "truncated");
        let long = [vec![0x0a, 0x81, 0x08], vec![b'a'; 1025]].concat();
        assert!(read(GrpcMethod::Predict, &[vec![0x0a, 0x84, 0x08], long].concat()).is_err(), "too long");
    }
}
