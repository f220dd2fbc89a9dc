//! The gRPC side: [`Backend`] is one TF Serving target (or, with `protocol = "v2"`, one Open
//! Inference Protocol server, whose API [`v2`] translates) reached through a lazily connected
//! tonic channel; [`Pool`] spreads calls over all `backend.grpc` targets (least outstanding calls,
//! health, retries that cannot run a call twice, dead targets skipped and probed) and is what the
//! rest of the daemon calls. Every call has a
//! deadline (sent to TF Serving as `grpc-timeout` and enforced here too) and failures come back
//! as [`CoreError`](crate::request::CoreError)s. [`Discovery`] keeps the pool in line with
//! `backend.grpc` as its `dns://` names resolve.

mod balance;
mod connect;
mod discovery;
mod error;
mod health;
pub mod passthrough;
mod pool;
mod raw_codec;
mod settings;
mod signatures;
mod target_state;
mod tls_connector;
pub mod v2;

use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use tfgate_proto::tensorflow::serving::model_service_client::ModelServiceClient;
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest, GetModelStatusResponse, PredictRequest,
    PredictResponse,
};
use tfgate_proto::SIGNATURE_DEF_FIELD;
use tonic::transport::{Channel, Endpoint};

pub use balance::{choose_target, Candidate};
pub use discovery::Discovery;
pub use error::{deadline, from_status, malformed};
pub use pool::{Pool, PoolTarget};
pub use settings::{
    BackendConfig, DnsName, GrpcTarget, Protocol, DEFAULT_BACKEND_TIMEOUT, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_RESOLVE_INTERVAL,
};
pub use signatures::{SignatureCache, SIGNATURE_TTL};
pub use tls_connector::{TargetTls, TlsState};

use crate::metrics::Metrics;
use crate::target::{model_spec, ModelTarget};

use bytes::Bytes;

pub use raw_codec::RawCodec;

/// What gRPC needs of TLS: HTTP/2, negotiated by ALPN.
pub const GRPC_ALPN: &[&[u8]] = &[b"h2"];

/// Largest gRPC message sent or accepted; tonic's 4 MiB default is too small for batches.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// HTTP/2 receive windows of the daemon's gRPC connections, both ways (to TF Serving, from
/// nginx): large enough that an image-sized message or a batch's answer flows without waiting
/// for window updates.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
pub const CONNECTION_WINDOW_BYTES: u32 = 64 << 20;

#[derive(Clone)]
pub struct Backend {
    /// Shared: every call clones the backend, and a batch's facts name the target that answered.
    target: Arc<str>,
    api: Api,
    /// For the calls forwarded as raw bytes.
    channel: Channel,
    /// The last TLS handshake's outcome (`https://` targets).
    tls_state: Option<Arc<TlsState>>,
}

/// The clients of the API the target speaks (`backend.protocol`).
#[derive(Clone)]
enum Api {
    TfServing { prediction: PredictionServiceClient<Channel>, models: ModelServiceClient<Channel> },
    V2(v2::Client),
}

/// Asked when no model is known yet: any answer proves a TF Serving target is alive.
const PROBE_MODEL: &str = "tfgate-health-probe";

impl Backend {
    /// Prepares a channel to `uri`, over TLS when `tls` is given, for the API of `protocol`;
    /// nothing connects until the first call, so the daemon starts (and reports 503s) while the
    /// backend is still down.
    pub fn connect_lazy(uri: &Uri, tls: Option<&TargetTls>, protocol: Protocol, metrics: &Arc<Metrics>) -> Backend {
        let target: Arc<str> = Backend::target_name(uri).into();
        let connector = tls.map(|tls| (tls_connector::TlsConnector::new(tls, target.clone(), metrics.clone()), tls));
        let address = match &connector {
            // tonic's own connector refuses https:// without its TLS features: it is given the
            // address as http://, and the requests carry the https origin.
            Some(_) => plain_address(uri),
            None => uri.clone(),
        };
        let endpoint = Endpoint::from(address)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            // A batch's answer is megabytes: with HTTP/2's default 64 KiB windows the backend
            // would wait for a WINDOW_UPDATE round trip every 64 KiB (TF Serving's own gRPC
            // grows its windows by bandwidth-delay probing; this is the receiving side's).
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
        let (channel, tls_state) = match connector {
            Some((connector, tls)) => {
                let state = connector.state();
                let origin =
                    format!("https://{}:{}", host_for_authority(&tls.server_name), uri.port_u16().unwrap_or(443));
                let endpoint = match origin.parse::<Uri>() {
                    Ok(origin) => endpoint.origin(origin),
                    Err(_) => endpoint,
                };
                (endpoint.connect_with_connector_lazy(connector), Some(state))
            }
            None => {
                let connector = connect::PlainConnector { connect_timeout: connect::CONNECT_TIMEOUT };
                (endpoint.connect_with_connector_lazy(connector), None)
            }
        };
        let api = match protocol {
            Protocol::TfServing => Api::TfServing {
                prediction: PredictionServiceClient::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
                models: ModelServiceClient::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            },
            Protocol::V2 => Api::V2(
                v2::Client::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
        };
        Backend { target, api, channel, tls_state }
    }

    /// The API the target speaks.
    pub fn protocol(&self) -> Protocol {
        match self.api {
            Api::TfServing { .. } => Protocol::TfServing,
            Api::V2(_) => Protocol::V2,
        }
    }

    /// The last TLS handshake's outcome, for `https://` targets.
    pub fn tls_state(&self) -> Option<&Arc<TlsState>> {
        self.tls_state.as_ref()
    }

    /// How a target is named in logs and metrics (and matched across reloads).
    pub fn target_name(uri: &Uri) -> String {
        uri.to_string().trim_end_matches('/').to_string()
    }

    /// The target URL, for messages and logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target URL, to keep (e.g. in the facts of a batch it answered).
    pub fn shared_target(&self) -> Arc<str> {
        self.target.clone()
    }

    pub async fn predict(&self, request: tonic::Request<PredictRequest>) -> Result<PredictResponse, tonic::Status> {
        match &self.api {
            Api::TfServing { prediction, .. } => {
                prediction.clone().predict(request).await.map(tonic::Response::into_inner)
            }
            Api::V2(client) => v2::predict(client, &self.target, request).await,
        }
    }

    pub async fn model_metadata(
        &self,
        request: tonic::Request<GetModelMetadataRequest>,
    ) -> Result<GetModelMetadataResponse, tonic::Status> {
        match &self.api {
            Api::TfServing { prediction, .. } => {
                prediction.clone().get_model_metadata(request).await.map(tonic::Response::into_inner)
            }
            Api::V2(client) => v2::model_metadata(client, &self.target, request).await,
        }
    }

    pub async fn model_status(
        &self,
        request: tonic::Request<GetModelStatusRequest>,
    ) -> Result<GetModelStatusResponse, tonic::Status> {
        match &self.api {
            Api::TfServing { models, .. } => {
                models.clone().get_model_status(request).await.map(tonic::Response::into_inner)
            }
            Api::V2(client) => v2::model_status(client, request).await,
        }
    }

    /// Health probe: whether the target has `model` ready (TF Serving: an AVAILABLE version of
    /// its latest; v2: ModelReady of the server's default version).
    pub async fn model_ready(&self, model: &str, timeout: Duration) -> Result<bool, tonic::Status> {
        match &self.api {
            Api::TfServing { .. } => {
                let spec = ModelTarget { model: model.to_string(), version: crate::target::VersionRef::Latest };
                let status = self.model_status(with_deadline(status_request(&spec), timeout)).await?;
                Ok(status.model_version_status.iter().any(|v| v.state == State::Available as i32))
            }
            Api::V2(client) => v2::model_ready(client, model, timeout).await,
        }
    }

    /// Health probe before any model is known: whether the target answers at all. TF Serving
    /// has no server-wide call, so it is asked for a placeholder model (NOT_FOUND is an
    /// answer); a v2 server is asked ServerReady, and any answer counts, as with TF Serving
    /// (models not ready yet are told apart per model, once known).
    pub async fn answers(&self, timeout: Duration) -> Result<(), tonic::Status> {
        let answer = match &self.api {
            Api::TfServing { .. } => self.model_ready(PROBE_MODEL, timeout).await.map(drop),
            Api::V2(client) => v2::server_ready(client, timeout).await.map(drop),
        };
        match answer {
            Err(status) if error::is_transport_failure(&status) => Err(status),
            _ => Ok(()),
        }
    }

    /// A unary call whose messages are passed through as bytes.
    pub async fn raw(&self, path: &'static str, request: tonic::Request<Bytes>) -> Result<Bytes, tonic::Status> {
        if let Api::V2(_) = self.api {
            return Err(tonic::Status::unimplemented(unforwardable(path)));
        }
        let mut client = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        client.ready().await.map_err(|e| tonic::Status::unavailable(format!("{}: {e}", self.target)))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        client.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
    }
}

/// Why a TF Serving call forwarded as it is (`path`) cannot go to a v2 backend.
pub fn unforwardable(path: &str) -> String {
    let method = path.rsplit('/').next().unwrap_or(path);
    format!("{method} is TF Serving's alone: the backend speaks the Open Inference Protocol (protocol = \"v2\"), which has no such call")
}

/// `https://HOST:PORT` as `http://HOST:PORT`.
fn plain_address(uri: &Uri) -> Uri {
    let authority = uri.authority().map_or("", |a| a.as_str());
    format!("http://{authority}").parse().unwrap_or_else(|_| uri.clone())
}

/// A server name as the host of an authority (IPv6 addresses in brackets).
fn host_for_authority(name: &str) -> String {
    match name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{name}]"),
        Err(_) => name.to_string(),
    }
}

/// The gRPC path of a method forwarded as it is (Classify, Regress, MultiInference; the others
/// have typed clients).
pub fn grpc_path(method: tfgate_common::Method) -> &'static str {
    use tfgate_common::Method;
    match method {
        Method::Classify => "/tensorflow.serving.PredictionService/Classify",
        Method::Regress => "/tensorflow.serving.PredictionService/Regress",
        Method::MultiInference => "/tensorflow.serving.PredictionService/MultiInference",
        Method::Predict => "/tensorflow.serving.PredictionService/Predict",
        Method::Metadata => "/tensorflow.serving.PredictionService/GetModelMetadata",
        Method::Status => "/tensorflow.serving.ModelService/GetModelStatus",
    }
}

/// The GetModelMetadata request for the signatures of `target`.
pub fn metadata_request(target: &ModelTarget) -> GetModelMetadataRequest {
    GetModelMetadataRequest {
        model_spec: Some(model_spec(target, "")),
        metadata_field: vec![SIGNATURE_DEF_FIELD.to_string()],
    }
}

/// The GetModelStatus request for `target`.
pub fn status_request(target: &ModelTarget) -> GetModelStatusRequest {
    GetModelStatusRequest { model_spec: Some(model_spec(target, "")) }
}

/// A tonic request with `grpc-timeout` set.
pub fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}
