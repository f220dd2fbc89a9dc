//! The core's outcome as a TF Serving REST answer: JSON outputs, status and metadata in TF
//! Serving's JSON, the REST backend's answer as it came, errors as `{"error": ...}`, and the
//! RateLimit fields. A large answer (a call split across batches) is written while its later
//! batches still run, each batch's outputs freed once written.

use std::future::Future;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tfgate_common::error_body::ERROR_CONTENT_TYPE;

use super::body;
use super::error::{error_response, json_response, HttpResponse};
use crate::admission::Reservation;
use crate::backend::passthrough::PassthroughAnswer;
use crate::batching::RowPiece;
use crate::convert::model_json::{metadata_json, status_json};
use crate::convert::{predict_response_json, AnswerSource, Format, RowSlice, RowsWriter};
use crate::ingress::ratelimit;
use crate::observe::call_log::Ending;
use crate::pipeline::{Answer, Encode, Forwarded, ObservedRows, Outcome, Predicted, PredictedOutputs};
use crate::request::status::code_of_http_status;
use crate::request::{Code, CoreError};

pub struct RestEncoder;

impl Encode for RestEncoder {
    type Response = HttpResponse;

    fn encode(self, outcome: Outcome) -> impl Future<Output = (HttpResponse, Ending)> + Send {
        encode(outcome)
    }
}

async fn encode(outcome: Outcome) -> (HttpResponse, Ending) {
    let Outcome { result, standing, limits, .. } = outcome;
    let written = match result {
        Ok(answer) => answer_response(answer).await,
        Err(error) => Err(error),
    };
    let (mut response, ending) = written.unwrap_or_else(|error| (error_response(&error), Ending::of_error(&error)));
    ratelimit::write_fields(response.headers_mut(), standing.as_ref(), limits.as_deref());
    (response, ending)
}

async fn answer_response(answer: Answer) -> Result<(HttpResponse, Ending), CoreError> {
    match answer {
        Answer::Predict(predicted) => predict_response(*predicted).await,
        Answer::Status(status) => Ok(ok_json(status_json(&status))),
        Answer::Metadata(metadata) => Ok(ok_json(metadata_json(&metadata)?)),
        Answer::Forwarded(Forwarded::Rest(answer)) => Ok(passthrough(answer)),
        Answer::Forwarded(Forwarded::Grpc(_)) => Err(CoreError::internal("a gRPC answer to a REST request")),
    }
}

fn ok_json(body: Vec<u8>) -> (HttpResponse, Ending) {
    let bytes_out = Some(body.len() as u64);
    (json_response(200, body), Ending::answered(bytes_out))
}

/// TF Serving's REST answer, as it came.
fn passthrough(answer: PassthroughAnswer) -> (HttpResponse, Ending) {
    let PassthroughAnswer { status, content_type, body } = answer;
    let bytes_out = Some(body.len() as u64);
    let ending = Ending { status, code: code_of_http_status(status), error: None, bytes_out, reason: None };
    let mut response = Response::new(body::full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    (response, ending)
}

async fn predict_response(predicted: Predicted) -> Result<(HttpResponse, Ending), CoreError> {
    let Predicted { format, outputs, memory, .. } = predicted;
    let mut rows = match outputs {
        PredictedOutputs::Whole(outputs, _) => {
            return Ok(ok_json(predict_response_json(format, AnswerSource::Whole(&outputs))?));
        }
        PredictedOutputs::Rows(rows) => rows,
    };
    if !rows.all_received() {
        return stream_answer(format, rows, memory).await;
    }
    match rows.collect().await.and_then(|pieces| rows_json(format, &pieces)) {
        Ok(body) => {
            rows.bytes_out(body.len() as u64);
            rows.finish();
            Ok(ok_json(body))
        }
        Err(error) => {
            rows.fail(&error);
            Err(error)
        }
    }
}

fn rows_json(format: Format, pieces: &[RowPiece]) -> Result<Vec<u8>, CoreError> {
    let slices: Vec<RowSlice<'_>> =
        pieces.iter().map(|p| RowSlice { outputs: &p.outputs, rows: p.rows.clone() }).collect();
    Ok(predict_response_json(format, AnswerSource::Rows(&slices))?)
}

/// A split call's answer, written piece by piece as its batches come back in order. An error
/// after the first piece ends the answer midway (the status was sent already).
async fn stream_answer(
    format: Format,
    mut rows: ObservedRows,
    memory: Reservation,
) -> Result<(HttpResponse, Ending), CoreError> {
    let first = match rows.next(true).await {
        Some(Ok(piece)) => piece,
        Some(Err(error)) => return Err(failed(&mut rows, error)),
        None => return Err(failed(&mut rows, CoreError::internal("an answer without rows"))),
    };
    let mut head = Vec::with_capacity(64);
    let Some(mut writer) = RowsWriter::start(format, &first.outputs, &mut head) else {
        // Written output by output: every piece is needed first.
        let mut pieces = vec![first];
        let written = rows.collect().await.and_then(|more| {
            pieces.extend(more);
            rows_json(format, &pieces)
        });
        return match written {
            Ok(body) => {
                rows.bytes_out(body.len() as u64);
                rows.finish();
                Ok(ok_json(body))
            }
            Err(error) => Err(failed(&mut rows, error)),
        };
    };
    let mut chunk = head;
    if let Err(error) = writer.rows(&mut chunk, &RowSlice { outputs: &first.outputs, rows: first.rows.clone() }) {
        return Err(failed(&mut rows, error.into()));
    }
    drop(first);
    rows.status_sent();
    let (sender, body) = body::channel();
    tokio::spawn(async move {
        // The call's memory stays reserved until its answer is written.
        let _memory = memory;
        let mut sent = 0u64;
        let ended = loop {
            sent += chunk.len() as u64;
            if sender.send(Ok(Bytes::from(std::mem::take(&mut chunk)))).await.is_err() {
                // The client went away: dropping the stream cancels the rows not sent yet.
                break Err(CoreError::new(Code::Cancelled, "the client went away before the end of the answer"));
            }
            let piece = match rows.next(true).await {
                None => break Ok(()),
                Some(Ok(piece)) => piece,
                Some(Err(error)) => break Err(error),
            };
            if let Err(error) = writer.rows(&mut chunk, &RowSlice { outputs: &piece.outputs, rows: piece.rows.clone() })
            {
                break Err(error.into());
            }
        };
        match ended {
            Ok(()) => {
                writer.finish(&mut chunk);
                sent += chunk.len() as u64;
                let _ = sender.send(Ok(Bytes::from(chunk))).await;
                rows.bytes_out(sent);
                rows.finish();
            }
            Err(error) => {
                if error.code != Code::Cancelled {
                    tracing::warn!("answer ended midway: {error}");
                    let _ = sender.send(Err(error.client_message().into_owned().into())).await;
                }
                rows.bytes_out(sent);
                rows.fail(&error);
            }
        }
    });
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ERROR_CONTENT_TYPE));
    // The call's end is its last row's.
    Ok((response, Ending::answered(None)))
}

fn failed(rows: &mut ObservedRows, error: CoreError) -> CoreError {
    rows.fail(&error);
    error
}
