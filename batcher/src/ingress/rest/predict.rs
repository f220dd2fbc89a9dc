//! `:predict`: JSON body -> input tensors (with the model's signature) -> the batcher -> the
//! request's rows of the batch outputs -> JSON answer. A large answer (a request split across
//! batches) is written while its later batches still run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tfgate_common::error_body::ERROR_CONTENT_TYPE;

use super::error::{json_response, ApiError, HttpResponse};
use super::{body, quota};
use crate::admission::Reservation;
use crate::app::App;
use crate::batching::{BatchAnswer, RowPiece, RowStream};
use crate::convert::{
    predict_response_json, AnswerSource, Format, PredictBody, PredictInputs, RowSlice, RowsWriter, Signatures,
};
use crate::observe::Trail;
use crate::request::{instance_count, Code, CoreError, PredictCall, RequestInfo};
use crate::target::ModelTarget;

/// Bodies at least this large are parsed on tokio's blocking pool: the daemon serves every
/// connection from one thread by default, which a large body would otherwise hold for as long
/// as its parse takes (tens of milliseconds for tens of megabytes).
const PARSE_ASIDE: usize = 256 << 10;

/// Bodies up to this size are kept until the answer, to be converted again if the model's
/// signature changed meanwhile; larger ones are freed once converted (their tensors are held).
const KEEP_FOR_RETRY: usize = 1 << 20;

pub async fn predict(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    body: Bytes,
    mut reservation: Reservation,
    timeout: Duration,
    trail: &mut Trail,
) -> Result<HttpResponse, ApiError> {
    let (inputs, signatures) = convert(app, target, &body, timeout).await?;
    // Counted once, before the queue, however many batches its rows take; a malformed body
    // (refused above) counts nothing.
    let rows = instance_count(&inputs.tensors);
    if let Some(record) = trail.record() {
        record.rows = Some(rows as usize);
    }
    let body = (body.len() <= KEEP_FOR_RETRY).then_some(body);
    // From now on the request holds its tensors (and a small body).
    let tensors: usize = inputs.tensors.values().map(|t| t.values.heap_bytes()).sum();
    reservation.resize(tensors + body.as_ref().map_or(0, Bytes::len))?;
    let standing = match app.quotas.admit(&info.caller, &target.model, rows).await {
        Ok(standing) => standing,
        Err(refusal) => return Ok(quota::refused(refusal)),
    };
    let converted = Converted { inputs, signatures, body };
    let result = serve(app, target, info, converted, reservation, timeout, trail).await;
    // Every answer to a counted request says where the caller stands, errors included.
    let mut response = result.unwrap_or_else(ApiError::into_response);
    if let Some(standing) = &standing {
        quota::write(response.headers_mut(), standing);
    }
    Ok(response)
}

/// A request's tensors, the signatures they were read with, and its body when small enough to
/// be kept for a second conversion.
struct Converted {
    inputs: PredictInputs,
    signatures: Arc<Signatures>,
    body: Option<Bytes>,
}

/// The admitted request through the batcher; converted again, once, if the model's signature
/// changed meanwhile.
async fn serve(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    converted: Converted,
    reservation: Reservation,
    timeout: Duration,
    trail: &mut Trail,
) -> Result<HttpResponse, ApiError> {
    let Converted { inputs, signatures, body } = converted;
    match answer(app, target, info.clone(), inputs, &signatures, reservation, trail).await {
        // TF Serving refused the tensors: if that is because a new version with another
        // signature was loaded meanwhile (the refusal dropped the cached one), convert again
        // with the new signature, once.
        Err(e) if matches!(e.code, Code::InvalidArgument | Code::FailedPrecondition) => {
            let Some(body) = body else { return Err(e.into()) };
            // Usually the same cached signatures (the cache drops them at most once a second),
            // so a stream of bad requests costs no metadata calls.
            let fresh = app.signatures.get(&app.pool(), target, timeout).await?;
            if Arc::ptr_eq(&fresh, &signatures) || *fresh == *signatures {
                return Err(e.into());
            }
            let inputs = to_inputs(&body, &fresh)?;
            // The first attempt's reservation went with it; this one is small (a small body).
            let mut reservation = app.memory.reservation();
            reservation.grow(body.len())?;
            Ok(answer(app, target, info, inputs, &fresh, reservation, trail).await?)
        }
        other => Ok(other?),
    }
}

/// The body's input tensors, and the signatures they were converted with.
async fn convert(
    app: &App,
    target: &ModelTarget,
    body: &Bytes,
    timeout: Duration,
) -> Result<(PredictInputs, Arc<Signatures>), ApiError> {
    if body.len() < PARSE_ASIDE {
        // Parse before any backend call: a malformed body costs nothing upstream.
        let parsed = PredictBody::parse(body)?;
        let signatures = app.signatures.get(&app.pool(), target, timeout).await?;
        let signature = signatures.get(&parsed.signature_name)?;
        let inputs = parsed.into_inputs(signature)?;
        return Ok((inputs, signatures));
    }
    let signatures = app.signatures.get(&app.pool(), target, timeout).await?;
    let (body, aside) = (body.clone(), signatures.clone());
    let inputs = tokio::task::spawn_blocking(move || to_inputs(&body, &aside))
        .await
        .map_err(|e| CoreError::internal(format!("the body's conversion failed: {e}")))??;
    Ok((inputs, signatures))
}

fn to_inputs(body: &[u8], signatures: &Signatures) -> Result<PredictInputs, ApiError> {
    let parsed = PredictBody::parse(body)?;
    let signature = signatures.get(&parsed.signature_name)?;
    Ok(parsed.into_inputs(signature)?)
}

async fn answer(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    inputs: PredictInputs,
    signatures: &Arc<Signatures>,
    reservation: Reservation,
    trail: &mut Trail,
) -> Result<HttpResponse, CoreError> {
    let format = inputs.format;
    // Decided before the inputs are handed over: only a kept request's inputs are copied.
    trail.sample(&app.logs, &info.request_id, target, &inputs.signature_name, &inputs.tensors);
    let call = PredictCall {
        target: target.clone(),
        signature_name: inputs.signature_name,
        inputs: inputs.tensors,
        signatures: signatures.clone(),
        info,
    };
    match app.batcher.predict(call).await? {
        BatchAnswer::Whole(outputs, facts) => {
            trail.batch(&facts);
            trail.outputs_whole(&outputs);
            let body = predict_response_json(format, AnswerSource::Whole(&outputs))?;
            trail.answered();
            Ok(json_response(200, body))
        }
        BatchAnswer::Rows(stream) if stream.all_received() => {
            let pieces = stream.collect().await?;
            for piece in &pieces {
                trail.batch(&piece.facts);
                trail.output_rows(&piece.outputs, piece.rows.clone(), false);
            }
            let body = rows_json(format, &pieces)?;
            trail.answered();
            Ok(json_response(200, body))
        }
        BatchAnswer::Rows(stream) => stream_answer(format, stream, reservation, trail).await,
    }
}

fn rows_json(format: Format, pieces: &[RowPiece]) -> Result<Vec<u8>, CoreError> {
    let slices: Vec<RowSlice<'_>> =
        pieces.iter().map(|p| RowSlice { outputs: &p.outputs, rows: p.rows.clone() }).collect();
    Ok(predict_response_json(format, AnswerSource::Rows(&slices))?)
}

/// A split request's answer, written piece by piece as its batches come back in order; each
/// batch's outputs are freed once written (a request the prediction log keeps copies its own
/// rows first). An error after the first piece ends the answer midway (the status was sent
/// already); the audit record is written when the answer ends, however it ends.
async fn stream_answer(
    format: Format,
    mut stream: RowStream,
    reservation: Reservation,
    trail: &mut Trail,
) -> Result<HttpResponse, CoreError> {
    let first = match stream.next().await {
        Some(piece) => piece?,
        None => return Err(CoreError::internal("an answer without rows")),
    };
    let mut head = Vec::with_capacity(64);
    let Some(mut writer) = RowsWriter::start(format, &first.outputs, &mut head) else {
        // Written output by output: every piece is needed first.
        let mut pieces = vec![first];
        pieces.extend(stream.collect().await?);
        for piece in &pieces {
            trail.batch(&piece.facts);
            trail.output_rows(&piece.outputs, piece.rows.clone(), false);
        }
        let body = rows_json(format, &pieces)?;
        trail.answered();
        return Ok(json_response(200, body));
    };
    let mut chunk = head;
    writer.rows(&mut chunk, &RowSlice { outputs: &first.outputs, rows: first.rows.clone() })?;
    trail.batch(&first.facts);
    trail.output_rows(&first.outputs, first.rows.clone(), true);
    drop(first);
    let (sender, body) = body::channel();
    let mut trail = trail.hand_over();
    tokio::spawn(async move {
        // The request's memory stays reserved until its answer is written.
        let _reservation = reservation;
        let mut chunk = chunk;
        let mut sent = 0u64;
        let ended = loop {
            sent += chunk.len() as u64;
            if sender.send(Ok(Bytes::from(std::mem::take(&mut chunk)))).await.is_err() {
                // The client went away: dropping the stream cancels the rows not sent yet.
                break Err(CoreError::new(Code::Cancelled, "the client went away before the end of the answer"));
            }
            let piece = match stream.next().await {
                None => break Ok(()),
                Some(Ok(piece)) => piece,
                Some(Err(e)) => break Err(e),
            };
            if let Err(e) = writer.rows(&mut chunk, &RowSlice { outputs: &piece.outputs, rows: piece.rows.clone() }) {
                break Err(e.into());
            }
            trail.batch(&piece.facts);
            trail.output_rows(&piece.outputs, piece.rows.clone(), true);
        };
        match ended {
            Ok(()) => {
                writer.finish(&mut chunk);
                sent += chunk.len() as u64;
                let _ = sender.send(Ok(Bytes::from(chunk))).await;
                trail.answered();
                trail.finish(200, Code::Ok, None, Some(sent));
            }
            Err(e) => {
                if e.code != Code::Cancelled {
                    tracing::warn!("answer ended midway: {e}");
                    let _ = sender.send(Err(e.message.clone().into())).await;
                }
                trail.finish(200, e.code, Some(format!("answer ended midway: {}", e.message)), Some(sent));
            }
        }
    });
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ERROR_CONTENT_TYPE));
    Ok(response)
}
