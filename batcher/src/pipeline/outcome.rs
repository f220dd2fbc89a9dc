//! What the pipeline hands back to the ingress that decoded the call: the answer or the error,
//! and where the caller stands with its quotas.

use std::sync::Arc;

use bytes::Bytes;
use tfgate_proto::tensorflow::serving::{GetModelMetadataResponse, GetModelStatusResponse};

use super::call::V2Reply;
use super::rows::ObservedRows;
use crate::admission::quota::plan::LimitSet;
use crate::admission::quota::Standing;
use crate::admission::Reservation;
use crate::backend::passthrough::PassthroughAnswer;
use crate::batching::BatchFacts;
use crate::convert::{Format, Outputs};
use crate::request::CoreError;
use crate::target::ModelTarget;

pub struct Outcome {
    pub result: Result<Answer, CoreError>,
    /// Where a caller whose call was counted stands (on answers and errors alike).
    pub standing: Option<Standing>,
    /// The limits of a caller whose call was not counted, for `RateLimit-Policy`.
    pub limits: Option<Arc<LimitSet>>,
}

pub enum Answer {
    Predict(Box<Predicted>),
    Status(GetModelStatusResponse),
    Metadata(GetModelMetadataResponse),
    Forwarded(Forwarded),
}

/// The backend's answer to a call forwarded as it was.
pub enum Forwarded {
    /// TF Serving's REST answer (status, type and body as they came).
    Rest(PassthroughAnswer),
    /// TF Serving's gRPC answer message.
    Grpc(Bytes),
}

/// A Predict call's outputs.
pub struct Predicted {
    /// How a REST body was written (its answer is written the same way).
    pub format: Format,
    pub target: ModelTarget,
    pub signature_name: String,
    /// The outputs the caller asked for (gRPC `output_filter`, v2 `outputs`); empty: all.
    pub output_filter: Vec<String>,
    /// For a v2 call: what its answer must say and hold.
    pub v2: Option<V2Reply>,
    pub outputs: PredictedOutputs,
    /// The call's memory, held until its answer is written.
    pub memory: Reservation,
}

pub enum PredictedOutputs {
    /// From a backend call made for this call alone.
    Whole(Arc<Outputs>, Arc<BatchFacts>),
    /// The call's rows of one or more batches, as they come back.
    Rows(ObservedRows),
}

impl Outcome {
    pub fn answered(answer: Answer) -> Outcome {
        Outcome { result: Ok(answer), standing: None, limits: None }
    }

    pub fn failed(error: CoreError) -> Outcome {
        Outcome { result: Err(error), standing: None, limits: None }
    }
}
