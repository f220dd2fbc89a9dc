//! What both v2 encoders make of a model's outcome: readiness from its status, metadata from
//! its signature, and an inference's outputs in hand (whole, or the call's rows of its
//! batches), with the version that answered.

use tfgate_proto::inference::ModelMetadataResponse;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::{GetModelMetadataResponse, GetModelStatusResponse};

use crate::convert::v2_signature::model_metadata;
use crate::convert::{AnswerSource, RowSlice, Signatures};
use crate::pipeline::PredictedOutputs;
use crate::request::CoreError;
use crate::target::{ModelTarget, VersionRef};

/// Whether a model's status (its versions nginx's catalog exposes) lists one that is
/// AVAILABLE.
pub fn is_ready(status: &GetModelStatusResponse) -> bool {
    status.model_version_status.iter().any(|s| s.state == State::Available as i32)
}

/// The v2 metadata of `model` from its GetModelMetadata answer: the version that answered and
/// the signature v2 calls use.
pub fn metadata(model: &str, response: &GetModelMetadataResponse) -> Result<ModelMetadataResponse, CoreError> {
    let signatures = Signatures::from_metadata(response)?;
    let version = match response.model_spec.as_ref().and_then(|s| s.version_choice.as_ref()) {
        Some(VersionChoice::Version(v)) => Some(*v),
        _ => None,
    };
    Ok(model_metadata(model, version, &signatures)?)
}

/// The version an answer names: the one that answered, else the one asked for by number, else
/// none (empty).
pub fn answered_version(version: Option<i64>, target: &ModelTarget) -> String {
    match (version, &target.version) {
        (Some(v), _) | (None, &VersionRef::Number(v)) => v.to_string(),
        (None, _) => String::new(),
    }
}

/// Writes an inference's answer with `write`, given its outputs and the version that answered
/// (`write` says how many bytes it wrote). An answer of rows waits for all of them; its log
/// ends once the answer is written (or could not be).
pub async fn write_outputs<T>(
    outputs: PredictedOutputs,
    write: impl FnOnce(AnswerSource<'_>, Option<i64>) -> Result<(T, usize), CoreError>,
) -> Result<(T, usize), CoreError> {
    match outputs {
        PredictedOutputs::Whole(outputs, facts) => write(AnswerSource::Whole(&outputs), facts.version),
        PredictedOutputs::Rows(mut rows) => {
            let written = rows.collect().await.and_then(|pieces| {
                let version = pieces.first().and_then(|p| p.facts.version);
                let slices: Vec<RowSlice<'_>> =
                    pieces.iter().map(|p| RowSlice { outputs: &p.outputs, rows: p.rows.clone() }).collect();
                write(AnswerSource::Rows(&slices), version)
            });
            match &written {
                Ok((_, bytes)) => {
                    rows.bytes_out(*bytes as u64);
                    rows.finish();
                }
                Err(error) => rows.fail(error),
            }
            written
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_proto::tensorflow::serving::ModelVersionStatus;

    #[test]
    fn ready_when_a_version_is_available() {
        let status = |states: &[State]| GetModelStatusResponse {
            model_version_status: states
                .iter()
                .enumerate()
                .map(|(i, s)| ModelVersionStatus { version: i as i64 + 1, state: *s as i32, status: None })
                .collect(),
        };
        assert!(is_ready(&status(&[State::Loading, State::Available])));
        assert!(!is_ready(&status(&[State::Loading, State::Unloading])));
        assert!(!is_ready(&status(&[])));
    }

    #[test]
    fn the_version_that_answered_else_the_one_asked_for() {
        let target = |version| ModelTarget { model: "m".into(), version };
        assert_eq!(answered_version(Some(3), &target(VersionRef::Latest)), "3");
        assert_eq!(answered_version(None, &target(VersionRef::Number(2))), "2");
        assert_eq!(answered_version(None, &target(VersionRef::Label("l".into()))), "");
    }
}
