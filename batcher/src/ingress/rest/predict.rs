//! `:predict`: JSON body -> input tensors (with the model's signature) -> the batcher -> the
//! request's rows of the batch outputs -> JSON answer.

use std::sync::Arc;
use std::time::Instant;

use hyper::HeaderMap;
use tfgate_common::headers;
use tonic::Code;

use super::error::{json_response, ApiError, HttpResponse};
use crate::app::App;
use crate::batching::{BatchAnswer, PredictJob};
use crate::convert::{predict_response_json, AnswerSource, PredictBody, RowSlice, Signatures};
use crate::target::ModelTarget;

pub async fn predict(
    app: &App,
    target: &ModelTarget,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let arrived = Instant::now();
    let timeout = app.config().batching_for(&target.model).timeout;
    // Parse before any backend call: a malformed body costs nothing upstream.
    let parsed = PredictBody::parse(body)?;
    let signatures = app.signatures.get(&app.pool(), target, timeout).await?;
    match predict_with(app, target, headers, parsed, &signatures, arrived).await {
        // TF Serving refused the tensors: if that is because a new version with another
        // signature was loaded meanwhile (the refusal dropped the cached one), convert again
        // with the new signature, once.
        Err(e) if matches!(e.grpc_code, Some(Code::InvalidArgument | Code::FailedPrecondition)) => {
            // Usually the same cached signatures (the cache drops them at most once a second),
            // so a stream of bad requests costs no metadata calls.
            let fresh = app.signatures.get(&app.pool(), target, timeout).await?;
            if Arc::ptr_eq(&fresh, &signatures) || *fresh == *signatures {
                return Err(e);
            }
            let parsed = PredictBody::parse(body)?;
            predict_with(app, target, headers, parsed, &fresh, arrived).await
        }
        other => other,
    }
}

async fn predict_with(
    app: &App,
    target: &ModelTarget,
    headers: &HeaderMap,
    parsed: PredictBody,
    signatures: &Arc<Signatures>,
    arrived: Instant,
) -> Result<HttpResponse, ApiError> {
    let signature = signatures.get(&parsed.signature_name)?;
    let inputs = parsed.into_inputs(signature)?;
    let format = inputs.format;
    let job = PredictJob {
        target: target.clone(),
        signature_name: inputs.signature_name,
        inputs: inputs.tensors,
        signatures: signatures.clone(),
        subject: header_text(headers, headers::SUBJECT).unwrap_or_default(),
        request_id: header_text(headers, headers::REQUEST_ID).unwrap_or_default(),
        traceparent: header_text(headers, "traceparent").filter(|t| is_traceparent(t)),
        arrived,
    };
    let json = match app.batcher.predict(job).await? {
        BatchAnswer::Whole(outputs) => predict_response_json(format, AnswerSource::Whole(&outputs)),
        BatchAnswer::Rows(pieces) => {
            let slices: Vec<RowSlice<'_>> =
                pieces.iter().map(|(outputs, rows)| RowSlice { outputs, rows: rows.clone() }).collect();
            predict_response_json(format, AnswerSource::Rows(&slices))
        }
    }?;
    Ok(json_response(200, json))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A W3C trace context header (`00-<32 hex>-<16 hex>-<2 hex>`, later versions may append
/// fields): only such a value is passed on to the backend.
pub fn is_traceparent(value: &str) -> bool {
    let bytes = value.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        bytes.get(range).is_some_and(|b| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
    };
    bytes.len() >= 55
        && bytes.len() <= 512
        && hex(0..2)
        && bytes[2] == b'-'
        && hex(3..35)
        && bytes[35] == b'-'
        && hex(36..52)
        && bytes[52] == b'-'
        && hex(53..55)
        && (bytes.len() == 55 || bytes[55] == b'-')
        && &bytes[0..2] != b"ff"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_headers_are_checked() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        assert!(!is_traceparent(&good.replace('a', "A")));
        assert!(!is_traceparent(&good[..54]));
        assert!(!is_traceparent(&good.replacen("00", "ff", 1)));
        assert!(!is_traceparent("junk\r\nx"));
    }
}
