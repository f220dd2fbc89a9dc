//! The access-phase handler: where a request meets tfgate's decisions.
//!
//! It runs in the access phase (not rewrite) so that later checks of this module, which need the
//! verified identity, sit in the same place; a routing refusal is answered directly and is never
//! turned into "access granted" under `satisfy any`.

use ngx::core::Status;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_int_t,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule, Request};
use ngx::{http_request_handler, ngx_log_debug_http};

use super::{headers, respond, TfgateModule};
use crate::route::{route_request, RouteDecision};

/// Installs [`access_handler`] in the access phase.
///
/// # Safety
/// `cf` must be the configuration nginx passes to `postconfiguration`.
pub(super) unsafe fn register_handler(cf: *mut ngx_conf_t) -> ngx_int_t {
    let Some(cmcf) = (unsafe { cf.as_ref() }).and_then(|cf| NgxHttpCoreModule::main_conf_mut(cf)) else {
        return Status::NGX_ERROR.into();
    };
    let phase = &mut cmcf.phases[ngx_http_phases_NGX_HTTP_ACCESS_PHASE as usize].handlers;
    // SAFETY: the phase handler array holds `ngx_http_handler_pt` elements.
    let slot = unsafe { ngx_array_push(phase) }.cast::<ngx_http_handler_pt>();
    if slot.is_null() {
        return Status::NGX_ERROR.into();
    }
    // SAFETY: `slot` was just allocated for one element.
    unsafe { *slot = Some(access_handler) };
    Status::NGX_OK.into()
}

http_request_handler!(access_handler, |request: &mut Request| {
    let Some(conf) = TfgateModule::location_conf(request) else {
        return Status::NGX_DECLINED;
    };
    if !conf.route_enabled() {
        return Status::NGX_DECLINED;
    }
    let Some(server) = TfgateModule::server_conf(request) else {
        return Status::NGX_ERROR;
    };
    let http_method = request_method(request);
    let decision = route_request(&server.catalog, &http_method, raw_path(request));
    ngx_log_debug_http!(request, "tfgate route: {decision:?}");
    match decision {
        RouteDecision::Refuse { status, message } => {
            let allow = (status == 405).then(|| allowed_method(request));
            let extra: Vec<(&str, &str)> = allow.iter().map(|m| ("Allow", *m)).collect();
            respond::json_error(request, status, &message, &extra)
        }
        RouteDecision::Forward { trusted_headers, .. } => {
            if headers::replace_trusted(request, &trusted_headers).is_err() {
                return Status::NGX_ERROR;
            }
            // Declined, not OK: routing grants nothing, so `satisfy any` still needs a real check.
            Status::NGX_DECLINED
        }
    }
});

/// The request path as the client sent it (before nginx decoded and merged it), without the
/// query string: the daemon receives these same bytes through `proxy_pass`.
fn raw_path(request: &Request) -> &[u8] {
    let uri = request.unparsed_uri().as_bytes();
    uri.split(|&b| b == b'?').next().unwrap_or(uri)
}

fn request_method(request: &Request) -> String {
    // SAFETY: method_name is set by nginx's request-line parser before any phase handler runs.
    let name = unsafe { ngx::core::NgxStr::from_ngx_str(request.as_ref().method_name) };
    name.to_string_lossy().into_owned()
}

/// The method the path needs, for the `Allow` header of a 405.
fn allowed_method(request: &Request) -> &'static str {
    match tfgate_common::parse_rest_path(raw_path(request)) {
        Ok(path) => path.method.http_method(),
        Err(_) => "GET, POST",
    }
}
