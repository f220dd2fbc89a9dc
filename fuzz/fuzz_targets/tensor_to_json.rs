//! Output tensors from the backend (any `PredictResponse` bytes) to TF Serving's REST answer,
//! whole and cut into rows the way a batch's answer is split back. The answer is JSON in TF
//! Serving's dialect: NaN and infinities as bare tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tfgate_batcher::batching::rows::check_batch_outputs;
use tfgate_batcher::convert::nonfinite::rewrite_nonfinite;
use tfgate_batcher::convert::{decode_outputs, predict_response_json, AnswerSource, Format, RowSlice};
use tfgate_proto::tensorflow::serving::PredictResponse;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = PredictResponse::decode(data) else { return };
    let Ok(outputs) = decode_outputs(&response.outputs) else { return };
    for format in [Format::Row, Format::Columnar] {
        if let Ok(json) = predict_response_json(format, AnswerSource::Whole(&outputs)) {
            assert_json(&json);
        }
        // A batch's answer is cut into rows only once every output has the batch's rows.
        let rows = outputs.values().next().and_then(|t| t.shape.first().copied()).unwrap_or(0);
        if check_batch_outputs(&outputs, rows).is_err() {
            continue;
        }
        let half = rows / 2;
        let slices = [RowSlice { outputs: &outputs, rows: 0..half }, RowSlice { outputs: &outputs, rows: half..rows }];
        if let Ok(json) = predict_response_json(format, AnswerSource::Rows(&slices)) {
            assert_json(&json);
        }
    }
});

fn assert_json(answer: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&rewrite_nonfinite(answer)) {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(answer));
    }
}
