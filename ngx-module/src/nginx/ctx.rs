//! What the module remembers about one request: for the variables, and for the access handler
//! when nginx runs it again (after a gRPC call's message is read, a key fetch, or a parked wait).

use std::rc::Rc;

use ngx::ffi::ngx_http_request_t;
use ngx::http::{HttpModule, Request};

use super::TfgateModule;

use crate::access::Refusal;
use crate::catalog::Resolved;
use crate::grpc::GrpcCall;
use crate::jwt::Verified;
use crate::route::Target;

#[derive(Default)]
pub(crate) struct RequestCtx {
    /// Where the request goes, where `tfgate_route on`.
    pub route: Option<Resolved>,
    /// `$tfgate_model_method`, where `tfgate_route on` (a v2 server call has no `route`).
    pub method: Option<&'static str>,
    /// The accepted token, where `tfgate_jwt on`.
    pub jwt: Option<Rc<Verified>>,
    /// `$tfgate_jwt_result`.
    pub jwt_result: Option<&'static str>,
    /// When the request was first parked waiting for keys (milliseconds, nginx's clock).
    pub parked_since_ms: Option<usize>,
    /// A gRPC request's message, read for its model.
    pub grpc: GrpcBody,
}

/// Where the reading of a gRPC request's body stands.
#[derive(Default)]
pub(crate) enum GrpcBody {
    #[default]
    NotRead,
    /// The body of this call.
    Reading(GrpcCall),
    /// The model it names (checked against the catalog), or why it was refused.
    Read(Result<Target, Refusal>),
}

/// The request's context, if the module made one.
pub(crate) fn get(request: &Request) -> Option<&RequestCtx> {
    request.get_module_ctx::<RequestCtx>(TfgateModule::module())
}

/// The request's context, created on first use (in the request pool, dropped with it).
pub(crate) fn get_or_create(request: &mut Request) -> Option<&mut RequestCtx> {
    let module = TfgateModule::module();
    let r: *mut ngx_http_request_t = request.into();
    // SAFETY: r->ctx has a slot per HTTP module; ours holds null or a RequestCtx from the pool.
    unsafe {
        let slot = (*r).ctx.add(module.ctx_index);
        if (*slot).is_null() {
            let ctx = request.pool().allocate(RequestCtx::default());
            if ctx.is_null() {
                return None;
            }
            *slot = ctx.cast();
        }
        Some(&mut *(*slot).cast::<RequestCtx>())
    }
}
