//! The calls the daemon does not batch: status and metadata, asked of the backend for the
//! version nginx resolved; classify, regress and multi-inference, counted by their examples and
//! forwarded as they are.

use super::call::{Call, Forward, Payload};
use super::outcome::{Answer, Forwarded, Outcome};
use super::policy;
use crate::app::App;
use crate::backend::{unforwardable, Protocol};
use crate::request::CoreError;

/// A model's status, listing only the versions nginx's catalog exposes.
pub async fn status(app: &App, call: &Call) -> Outcome {
    let target = &call.route.target;
    let mut status = match app.pool().model_status(target, call.info.remaining()).await {
        Ok(status) => status,
        Err(error) => return Outcome::failed(error),
    };
    if let Some(exposed) = policy::exposed(call) {
        status.model_version_status.retain(|s| exposed.contains(&s.version));
        if status.model_version_status.is_empty() {
            return Outcome::failed(CoreError::new(
                crate::request::Code::NotFound,
                format!("no exposed version of model {} is loaded", target.model),
            ));
        }
    }
    Outcome::answered(Answer::Status(status))
}

pub async fn metadata(app: &App, call: &Call) -> Outcome {
    match app.pool().model_metadata(&call.route.target, call.info.remaining()).await {
        Ok(metadata) => Outcome::answered(Answer::Metadata(metadata)),
        Err(error) => Outcome::failed(error),
    }
}

/// Classify, regress and multi-inference: counted by the caller's quotas as one row per
/// example (they run the model too), then forwarded.
pub async fn forward(app: &App, call: Call) -> Outcome {
    let Payload::Examples { count, forward } = call.payload else {
        return Outcome::failed(CoreError::internal("a forwarded call without its message"));
    };
    let passthrough = app.passthrough();
    if matches!(forward, Forward::Rest { .. }) && passthrough.is_none() {
        // Nowhere to send it: refused before it is counted.
        return Outcome::failed(CoreError::new(
            crate::request::Code::Unimplemented,
            "classify and regress need [backend] rest = ... (not configured)",
        ));
    }
    if matches!(forward, Forward::Grpc { .. }) && app.config().backend.protocol == Protocol::V2 {
        // A v2 backend has no such call: refused before it is counted, even with no target yet.
        let path = crate::backend::grpc_path(call.route.method);
        return Outcome::failed(CoreError::new(crate::request::Code::Unimplemented, unforwardable(path)));
    }
    let standing = match app.quotas.admit(&call.info.caller, &call.route.target.model, count).await {
        Ok(standing) => standing,
        Err(refusal) => {
            let mut outcome = Outcome::failed(refusal.error);
            outcome.standing = Some(refusal.standing);
            return outcome;
        }
    };
    let target = &call.route.target;
    let timeout = call.info.remaining();
    let result = match forward {
        Forward::Rest { content_type, body } => match passthrough.as_ref() {
            None => Err(CoreError::internal("the REST passthrough went away")),
            Some(passthrough) => {
                let path = tfgate_common::ModelPath {
                    model: target.model.clone(),
                    selector: target.version.to_selector(),
                    method: call.route.method,
                }
                .to_path();
                passthrough.forward(&path, content_type.as_ref(), body, timeout).await.map(Forwarded::Rest)
            }
        },
        Forward::Grpc { message } => {
            let path = crate::backend::grpc_path(call.route.method);
            let pool = app.pool();
            let traceparent = call.info.outgoing_traceparent();
            let answer = pool.raw(path, &target.model, message, call.info.deadline, traceparent.as_deref());
            answer.await.map(Forwarded::Grpc)
        }
    };
    let mut outcome = match result {
        Ok(answer) => Outcome::answered(Answer::Forwarded(answer)),
        Err(error) => Outcome::failed(error),
    };
    outcome.standing = standing;
    outcome
}
