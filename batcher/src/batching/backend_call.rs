//! One batch's trip to the backend: join the parts' inputs (padding up to an allowed size),
//! call Predict through the pool, and hand every request its rows of the outputs.
//!
//! When TF Serving refuses a batch as invalid, one bad request would otherwise fail every
//! request batched with it; the batch is then re-sent in halves to isolate the requests at
//! fault, within a budget of calls so that bad requests cannot multiply the backend's work.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::PredictRequest;
use tfgate_proto::tensorflow::TensorProto;
use tokio::sync::mpsc::UnboundedSender;
use tonic::Code;

use super::inbox::Msg;
use super::policy::{padded_size, BatchId};
use super::rows::{check_batch_outputs, join_rows};
use super::{BatchFacts, Piece, RequestData, Shared};
use crate::backend::malformed;
use crate::convert::decode_outputs;
use crate::request::status::code_name;
use crate::request::CoreError;
use crate::target::model_spec;
use crate::trace;

/// Rows `rows` of one request.
pub(super) struct ReadyPart {
    pub data: Arc<RequestData>,
    pub rows: Range<usize>,
}

pub(super) struct ReadyBatch {
    pub parts: Vec<ReadyPart>,
    /// A request that goes as it is (never joined or padded).
    pub alone: bool,
    pub allowed_batch_sizes: Vec<usize>,
    /// For the model task's bookkeeping when it is done.
    pub id: BatchId,
    /// What the backend is expected to spend on it (the learnt cost), for metering.
    pub cost: Option<Duration>,
}

/// Sends the batch, answers its requests, then frees the model's backend slot.
pub(super) async fn run(shared: Arc<Shared>, mut batch: ReadyBatch, done: UnboundedSender<Msg>) {
    let started = Instant::now();
    let mut alone_inputs = if batch.alone { batch.parts.first_mut().map(take_inputs) } else { None };
    let parts = &batch.parts;
    // Enough calls to isolate one bad request by halving: 1 + 2 per level.
    let mut budget = 1 + 2 * parts.len().next_power_of_two().trailing_zeros() as usize;
    let mut work: Vec<Range<usize>> = Vec::new();
    work.push(0..parts.len());
    // Whether the whole batch was refused as invalid and halved, and whether any part of it
    // then failed: refused joined but answered in parts means joining itself is at fault.
    let (mut halved, mut any_failed, mut abandoned) = (false, false, false);
    while let Some(range) = work.pop() {
        let group = &parts[range.clone()];
        budget = budget.saturating_sub(1);
        let error = match call(&shared, group, &batch, alone_inputs.take()).await {
            Ok(Called::Answered) => continue,
            // Its callers have their answer already; the backend's own outcome only says
            // whether its time can be learnt from.
            Ok(Called::Overran { backend_failed }) => {
                any_failed |= backend_failed;
                continue;
            }
            Err(error) => error,
        };
        let request_fault = matches!(error.code, Code::InvalidArgument | Code::OutOfRange);
        if request_fault && group.len() > 1 && budget >= 2 {
            if range.start == 0 && range.end == parts.len() {
                // Only a refusal of the tensors says joining may be at fault; a batch over the
                // backend's message size (OUT_OF_RANGE) is halved too, but says nothing of it.
                halved = error.code == Code::InvalidArgument;
                if let Some(first) = parts.first() {
                    shared.metrics.bisected_batches.inc(&[&first.data.target.model]);
                }
            }
            let middle = range.start + group.len() / 2;
            work.push(middle..range.end);
            work.push(range.start..middle);
            continue;
        }
        tracing::warn!(
            model = %group.first().map_or("", |p| p.data.target.model.as_str()),
            requests = %RequestIds(group),
            "batch failed: {error}"
        );
        any_failed = true;
        // Given up at backend.timeout_ms: TF Serving may still be computing it.
        abandoned |= error.code == Code::DeadlineExceeded;
        for part in group {
            let _ = part.data.reply.send(Err(error.clone()));
        }
    }
    if halved && !any_failed {
        if let Some(first) = parts.first() {
            let data = &first.data;
            shared.unbatchable.remember(&data.target, &data.signature_name, &data.signatures);
        }
    }
    // Only a batch answered in one call says how long the backend takes for a batch (even one
    // answered after its callers' deadline: the backend's time is what it is).
    let latency = (!halved && !any_failed).then(|| started.elapsed());
    let _ = done.send(Msg::Done { batch: batch.id, latency, abandoned });
}

/// A request that goes alone, as it is: its tensors are taken rather than copied when nothing
/// else holds the request any more (its queue entry has gone), as is usual.
fn take_inputs(part: &mut ReadyPart) -> HashMap<String, TensorProto> {
    match Arc::get_mut(&mut part.data) {
        Some(data) => std::mem::take(&mut data.inputs).into_iter().map(|(name, t)| (name, t.into_proto())).collect(),
        None => part.data.inputs.iter().map(|(name, t)| (name.clone(), t.clone().into_proto())).collect(),
    }
}

/// How a Predict call for some parts ended, when it did not fail in time to tell them.
enum Called {
    /// Each part has its rows.
    Answered,
    /// The callers' deadline came first: each part was answered DEADLINE_EXCEEDED then, and
    /// the call was awaited to its end all the same.
    Overran { backend_failed: bool },
}

/// One Predict call for `parts`, answered to each of them on success; `prepared`: the inputs
/// of a request going alone. The call is the batch's span; its calls' queue wait ends.
async fn call(
    shared: &Shared,
    parts: &[ReadyPart],
    batch: &ReadyBatch,
    prepared: Option<HashMap<String, TensorProto>>,
) -> Result<Called, CoreError> {
    let Some(first) = parts.first() else {
        return Ok(Called::Answered);
    };
    let target = &first.data.target;
    let rows: usize = parts.iter().map(|p| p.rows.len()).sum();
    let padded_rows = if batch.alone { rows } else { padded_size(rows, &batch.allowed_batch_sizes) };
    // The rows left their queue when the batch was formed: their wait ends before the batch's
    // span begins, so a call's steps never overlap the batch that carries it.
    for part in parts {
        part.data.queued.end();
    }
    let span =
        trace::batch_span(&target.model, &target.version, parts.iter().map(|p| &p.data.trace), rows, padded_rows);
    // TF Serving's spans are the batch's children; for a batch not traced, a caller's.
    let traceparent = match trace::traceparent(&span) {
        Some(own) => Some(own),
        None => parts.iter().find_map(|p| p.data.traceparent.clone()),
    };
    let result = send(shared, parts, batch, prepared, rows, padded_rows, traceparent.as_deref(), &span).await;
    if let Err(error) = &result {
        trace::failed(&span, code_name(error.code), &error.log_message());
    }
    result
}

/// [`call`]'s Predict call and its answers.
#[allow(clippy::too_many_arguments)]
async fn send(
    shared: &Shared,
    parts: &[ReadyPart],
    batch: &ReadyBatch,
    prepared: Option<HashMap<String, TensorProto>>,
    rows: usize,
    padded_rows: usize,
    traceparent: Option<&str>,
    span: &tracing::Span,
) -> Result<Called, CoreError> {
    let Some(first) = parts.first() else {
        return Ok(Called::Answered);
    };
    let target = &first.data.target;
    let inputs = match prepared {
        Some(inputs) => inputs,
        None => join_inputs(parts, padded_rows)?,
    };
    let request = PredictRequest {
        model_spec: Some(model_spec(target, &first.data.signature_name)),
        inputs,
        ..Default::default()
    };
    // The call may run as long as the most patient request in it.
    let deadline = parts.iter().map(|p| p.data.deadline).max().unwrap_or_else(Instant::now);
    tracing::debug!(
        model = %target.model,
        rows,
        padded_rows,
        requests = %RequestIds(parts),
        "sending batch"
    );
    let pool = shared.pool.get();
    let sent = Instant::now();
    // The call is not cut at the callers' deadline: TF Serving computes a batch to its end
    // whatever becomes of the call, so the batch keeps its backend slot until the answer comes
    // (within backend.timeout_ms) and its time still teaches the cost. Cutting it would let the
    // daemon send more work to a backend still busy with this, a backlog it could not see.
    let predict = pool.predict(request, traceparent);
    tokio::pin!(predict);
    let answer = tokio::select! {
        answer = &mut predict => answer,
        () = tokio::time::sleep_until(deadline.into()) => {
            for part in parts {
                let allowed = part.data.deadline.saturating_duration_since(part.data.arrived);
                let _ = part.data.reply.send(Err(overran(allowed)));
            }
            let backend_failed = predict.await.is_err();
            return Ok(Called::Overran { backend_failed });
        }
    };
    let (response, answered_by) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            // The cached signature may be stale (a new version with other inputs was loaded);
            // the cache rate-limits this, since most refusals are just bad requests.
            if matches!(error.code, Code::InvalidArgument | Code::FailedPrecondition) {
                shared.signatures.invalidate(target);
            }
            return Err(error);
        }
    };
    let version = match response.model_spec.as_ref().and_then(|s| s.version_choice.as_ref()) {
        Some(VersionChoice::Version(version)) => Some(*version),
        _ => None,
    };
    if let Some(version) = version {
        shared.signatures.observe_version(target, version);
        span.record("tfgate.backend.version", version);
    }
    let packed = response.outputs.iter().filter(|(_, t)| !t.tensor_content.is_empty()).map(|(n, _)| n.clone());
    let facts = Arc::new(BatchFacts {
        id: shared.calls.fetch_add(1, Ordering::Relaxed),
        rows: padded_rows,
        target: answered_by,
        sent,
        backend: sent.elapsed(),
        version,
        cost: match batch.cost {
            Some(cost) if parts.len() == batch.parts.len() => cost,
            _ => sent.elapsed(),
        },
        packed: packed.collect(),
        shared: false,
    });
    let outputs = decode_outputs(&response.outputs).map_err(|e| malformed(e.message))?;
    let whole_request =
        parts.len() == 1 && first.rows.start == 0 && first.rows.end == first.data.rows && padded_rows == rows;
    if batch.alone {
        let _ = first.data.reply.send(Ok(Piece::Whole(Arc::new(outputs), facts)));
        return Ok(Called::Answered);
    }
    if let Err(message) = check_batch_outputs(&outputs, padded_rows) {
        if whole_request {
            // Nothing to split: answer it as if it had not been batched.
            let _ = first.data.reply.send(Ok(Piece::Whole(Arc::new(outputs), facts)));
            return Ok(Called::Answered);
        }
        return Err(malformed(message));
    }
    let outputs = Arc::new(outputs);
    let mut offset = 0;
    for part in parts {
        let count = part.rows.len();
        let _ = part.data.reply.send(Ok(Piece::Rows {
            outputs: outputs.clone(),
            batch_rows: offset..offset + count,
            request_start: part.rows.start,
            facts: facts.clone(),
        }));
        offset += count;
    }
    Ok(Called::Answered)
}

/// The answer of a caller whose batch was still running at its deadline.
fn overran(allowed: Duration) -> CoreError {
    CoreError::new(
        Code::DeadlineExceeded,
        format!("TF Serving did not answer within {} ms, this request's deadline", allowed.as_millis()),
    )
    .with_reason("timeout")
}

/// The request ids (`X-Request-Id`) of the parts, for logs: formatted only when logged.
struct RequestIds<'a>(&'a [ReadyPart]);

impl std::fmt::Display for RequestIds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            write!(f, "{separator}{}", part.data.request_id)?;
        }
        Ok(())
    }
}

/// Every input of the signature, joined across the parts.
fn join_inputs(parts: &[ReadyPart], padded_rows: usize) -> Result<HashMap<String, TensorProto>, CoreError> {
    let Some(first) = parts.first() else {
        return Ok(HashMap::new());
    };
    let mut inputs = HashMap::with_capacity(first.data.inputs.len());
    for name in first.data.inputs.keys() {
        let columns = parts
            .iter()
            .map(|p| {
                p.data
                    .inputs
                    .get(name)
                    .map(|tensor| (tensor, p.rows.clone()))
                    .ok_or_else(|| format!("input {name} missing from a batched request"))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(malformed)?;
        inputs.insert(name.clone(), join_rows(&columns, padded_rows, true).map_err(malformed)?);
    }
    Ok(inputs)
}
