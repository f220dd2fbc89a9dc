//! The one path every call takes, whichever ingress decoded it, in this order:
//!
//! 1. **observe** begins ([`CallLog`]): the call's metrics, audit line and prediction-log
//!    sampling start from what the ingress decoded (or why it could not).
//! 2. **policy** ([`policy`]): the trusted headers can be believed; the call's deadline (the
//!    client's, bounded by the model's `timeout_ms`).
//! 3. **budget** ([`convert`]): a call's memory is reserved before it is spent. The ingress
//!    reserved the wire form as it arrived (a REST body, a gRPC message and what decoding it
//!    allocates); the tensors a call will hold are reserved from what it declares (shapes,
//!    JSON text) before any of them is built.
//! 4. **convert** ([`convert`]): the model's signature (cached), the call's input tensors (TF
//!    Serving's JSON read in the signature's dtypes; a gRPC message's tensors, and a v2 request's,
//!    which state their own datatypes, checked against it).
//! 5. **admission** ([`predict`], [`unbatched`]): the caller's quotas, by rows (known once the
//!    inputs are read: columnar JSON says its rows only then).
//! 6. **batching** and the **backend**: Predict joins the model's queue (through the model's
//!    row cache first, where it has one: [`cached`]); status, metadata, classify, regress and
//!    multi-inference go to the backend as they are.
//! 7. The ingress **encodes** the [`Outcome`] in its wire format ([`Encode`]); observe ends
//!    with the answer's status, or with its last row for an answer written as it comes.

mod cached;
mod call;
mod convert;
mod outcome;
mod policy;
mod predict;
mod rows;
mod unbatched;

use std::fmt::Display;
use std::future::Future;

pub use self::call::{Call, Decoded, Forward, Payload, ProtoInputs, Refused, V2Message, V2Payload, V2Reply};
pub use self::outcome::{Answer, Forwarded, Outcome, Predicted, PredictedOutputs};
pub use self::rows::ObservedRows;
use crate::app::App;
use crate::observe::call_log::{CallLog, Ending};
use crate::request::status::code_name;
use crate::trace::{CallFacts, CallSpan};

use tfgate_common::Method;

/// An ingress's way of writing an outcome on its wire.
pub trait Encode {
    type Response;

    /// The answer, and how the call ended for the logs (ignored for an answer written row piece
    /// by row piece: its rows end it).
    fn encode(self, outcome: Outcome) -> impl Future<Output = (Self::Response, Ending)> + Send;
}

/// Serves one call, from its decoding to its encoded answer.
pub async fn serve<E: Encode>(app: &App, decoded: Decoded, encoder: E) -> E::Response {
    let (info, ingress, route, bytes_in) = match &decoded {
        Ok(call) => (&call.info, call.ingress, Some(&call.route), call.bytes_in),
        Err(refused) => (&refused.info, refused.ingress, refused.route.as_ref(), refused.bytes_in),
    };
    let mut log = CallLog::begin(&app.logs, &app.metrics, &app.quotas, info, ingress, route, bytes_in);
    let trace = CallSpan::begin(CallFacts {
        traceparent: info.traceparent.as_deref(),
        ingress: ingress.name(),
        request_id: &info.request_id,
        route: route.map(|r| (r.method.as_str(), r.target.model.as_str(), &r.target.version as &dyn Display)),
    });
    let mut outcome = match decoded {
        Ok(mut call) => {
            call.info.trace = trace.clone();
            // Boxed: the steps' futures would otherwise size every ingress's, and hyper and
            // each await move those whole (docs/benchmarks.md, "Instructions per request").
            Box::pin(run(app, call, &mut log)).await
        }
        Err(refused) => Outcome::failed(refused.error),
    };
    if let Err(error) = &outcome.result {
        trace.failed(code_name(error.code), &error.log_message());
    }
    let log = observe(log, &mut outcome);
    let (response, ending) = encoder.encode(outcome).await;
    if let Some(log) = log {
        log.end(ending);
    }
    response
}

/// Tells the call's log what the call's answer is. An answer written row piece by row piece
/// takes the log with it (`None` is returned): it ends when its last row is written.
fn observe(mut log: CallLog, outcome: &mut Outcome) -> Option<CallLog> {
    let Ok(Answer::Predict(predicted)) = &mut outcome.result else { return Some(log) };
    match &mut predicted.outputs {
        PredictedOutputs::Whole(outputs, facts) => {
            log.outputs_whole(outputs, facts);
            log.answered();
            Some(log)
        }
        PredictedOutputs::Rows(rows) => {
            rows.log = Some(Box::new(log));
            None
        }
    }
}

/// Steps 2 to 6; the call's log learns its rows (and a kept call's inputs) as soon as they are
/// read, so that a call whose client goes away is logged with them.
async fn run(app: &App, mut call: Call, log: &mut CallLog) -> Outcome {
    if let Err(error) = policy::apply(app, &mut call) {
        return Outcome::failed(error);
    }
    let limits = app.quotas.limits(call.info.caller.plan.as_deref(), &call.route.target.model);
    let mut outcome = match (&call.payload, call.route.method) {
        (Payload::Json(_) | Payload::Protos(_) | Payload::V2(_), Method::Predict) => {
            let converting = call.info.trace.convert();
            let read = predict::read(app, call, log.wants_inputs()).await;
            drop(converting);
            match read {
                Ok(mut ready) => {
                    log.learn(Some(ready.rows), ready.kept_inputs.take(), &ready.inputs.output_filter);
                    predict::answer(app, ready).await
                }
                Err(error) => Outcome::failed(error),
            }
        }
        (Payload::Examples { count, .. }, _) => {
            log.learn(Some(*count), None, &[]);
            Box::pin(unbatched::forward(app, call)).await
        }
        // Boxed, as every backend call off the Predict path: their futures would otherwise
        // size every call's (see `backend::SignatureCache::get`).
        (Payload::Empty, Method::Status) => Box::pin(unbatched::status(app, &call)).await,
        (Payload::Empty, Method::Metadata) => Box::pin(unbatched::metadata(app, &call)).await,
        _ => Outcome::failed(crate::request::CoreError::internal("a call its ingress did not decode fully")),
    };
    // A limited caller learns its policy from every answer, counted or not.
    if outcome.standing.is_none() {
        outcome.limits = limits;
    }
    outcome
}
