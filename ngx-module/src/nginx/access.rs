//! The access-phase handler: it gathers what the decision needs (the parsed request, which for
//! a gRPC call means reading its message first; the token's outcome, which may mean fetching
//! keys or parking the request), lets [`crate::access::decide`] decide, and carries the
//! decision out: rewrite the upstream path (REST), replace the trusted headers, answer (in
//! gRPC's terms for a gRPC call), or wait.

use ngx::core::Status;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_current_msec, ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
    ngx_http_phases_NGX_HTTP_POST_READ_PHASE, ngx_http_request_t, ngx_int_t, ngx_time, NGX_HTTP_SATISFY_ANY,
    NGX_HTTP_VERSION_20, NGX_LOG_INFO, NGX_LOG_WARN,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule, Request};
use ngx::{http_request_handler, ngx_log_debug_http, ngx_log_error};

use std::rc::Rc;

use super::conf::DEFAULT_REALM;
use super::ctx::{self, RequestCtx};
use super::grpc::Stage;
use super::jwt::{park, start_fetch, unpark, Fetch, JwtRuntime, Outcome};
use super::{headers, respond, TfgateModule};
use crate::access::{self, Context, Decision, Forward, Ingress, Refusal, Token};
use crate::grpc::{grpc_code_for_http, request_framing, Framing};
use crate::jwt::{extract_bearer, JwtError};
use crate::route::Target;

/// A request parked for keys longer than this is answered 503.
const MAX_KEY_WAIT_MS: usize = 15_000;

/// Installs [`strip_trusted_headers`] in the post-read phase and [`access_handler`] in the
/// access phase.
///
/// # Safety
/// `cf` must be the configuration nginx passes to `postconfiguration`.
pub(super) unsafe fn register_handlers(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: `cf` is the configuration nginx passes to postconfiguration (caller's contract).
    let Some(cmcf) = (unsafe { cf.as_ref() }).and_then(NgxHttpCoreModule::main_conf_mut) else {
        return Status::NGX_ERROR.into();
    };
    let handlers = [
        (ngx_http_phases_NGX_HTTP_POST_READ_PHASE, strip_trusted_headers as RequestHandler),
        (ngx_http_phases_NGX_HTTP_ACCESS_PHASE, access_handler as RequestHandler),
    ];
    for (phase, handler) in handlers {
        let phase = &mut cmcf.phases[phase as usize].handlers;
        // SAFETY: the phase handler array holds `ngx_http_handler_pt` elements.
        let slot = unsafe { ngx_array_push(phase) }.cast::<ngx_http_handler_pt>();
        if slot.is_null() {
            return Status::NGX_ERROR.into();
        }
        // SAFETY: `slot` was just allocated for one element.
        unsafe { *slot = Some(handler) };
    }
    Status::NGX_OK.into()
}

type RequestHandler = unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;

// Client-sent `X-Tfgate-*` headers are dropped from every request once the module is loaded,
// whatever the location: the daemon trusts them. The post-read phase runs once per request
// (not again after an internal redirect; subrequests share the main request's headers).
http_request_handler!(strip_trusted_headers, |request: &mut Request| {
    match headers::remove_trusted_namespace(request) {
        Ok(()) => Status::NGX_DECLINED,
        Err(()) => Status::NGX_ERROR,
    }
});

http_request_handler!(access_handler, |request: &mut Request| {
    let (Some(location), Some(server)) = (TfgateModule::location_conf(request), TfgateModule::server_conf(request))
    else {
        return Status::NGX_ERROR;
    };
    let jwt = location.jwt_runtime.as_deref().filter(|_| location.jwt == 1);
    if !location.route_enabled() && jwt.is_none() {
        return Status::NGX_DECLINED;
    }
    let realm = jwt.map_or(DEFAULT_REALM, |j| j.realm.as_str());
    let catalog = &server.catalog;

    // gRPC calls are answered in gRPC's terms, whatever happens.
    let http2 = request.as_ref().http_version >= NGX_HTTP_VERSION_20 as ngx::ffi::ngx_uint_t;
    let framing = request_framing(headers::content_type(request), http2);
    let grpc = framing != Framing::NotGrpc;

    // Stage 1: is this a request we serve at all? Costs no cryptography (a gRPC request's
    // model is in its body, read first).
    let target = if location.route_enabled() {
        match access::ingress(raw_path(request), framing) {
            Err(refusal) => return answer(request, &refusal, grpc),
            Ok(Ingress::Rest) => match access::parse_rest(catalog, request_method(request), raw_path(request)) {
                Ok(target) => Some(target),
                Err(refusal) => return answer(request, &refusal, grpc),
            },
            Ok(Ingress::GrpcServer(server)) => Some(Target::Server(server)),
            Ok(Ingress::Grpc(call)) => match super::grpc::stage_one(request, call) {
                Stage::Ready(target) => Some(target),
                Stage::Reading(status) => return status,
                Stage::Refused(refusal) => return answer(request, &refusal, grpc),
            },
        }
    } else {
        None
    };

    let token = match jwt {
        None => Token::NotChecked,
        Some(jwt) => {
            let Some(ctx) = ctx::get_or_create(request) else {
                return Status::NGX_ERROR;
            };
            let ctx: *mut RequestCtx = ctx;
            // SAFETY: the context lives in the request pool; no other reference to it is held.
            check_token(request, jwt, unsafe { &mut *ctx })
        }
    };
    let satisfy_any = is_satisfy_any(request);
    let client_key = client_address(request);
    let context = Context { catalog, target, satisfy_any, client_key: &client_key, rewrite_path: !grpc, realm };
    let decision = access::decide(context, token);
    execute(request, decision, grpc)
});

/// Carries out the decision.
fn execute(request: &mut Request, decision: Decision, grpc: bool) -> Status {
    match decision {
        Decision::Wait => Status::NGX_AGAIN,
        Decision::Forward { forward, granted } => {
            if apply(request, forward).is_err() {
                return Status::NGX_ERROR;
            }
            if granted {
                Status::NGX_OK
            } else {
                Status::NGX_DECLINED
            }
        }
        Decision::Refuse { refusal, forward } => {
            if apply(request, forward).is_err() {
                return Status::NGX_ERROR;
            }
            answer(request, &refusal, grpc)
        }
    }
}

/// The changes to a request that goes on (or may, under `satisfy any`).
fn apply(request: &mut Request, forward: Forward) -> Result<(), ()> {
    if let Some(path) = &forward.rewrite {
        rewrite_path(request, path)?;
    }
    if let Some(trusted) = &forward.trusted {
        headers::replace_trusted(request, trusted)?;
    }
    if forward.route.is_some() || forward.method.is_some() {
        let ctx = ctx::get_or_create(request).ok_or(())?;
        ctx.route = forward.route;
        ctx.method = forward.method;
    }
    Ok(())
}

/// Answers the request from the module: JSON with the status and headers (a gRPC status for a
/// gRPC request), or, under `satisfy any`, the bare status so that another access module may
/// still grant it (the gRPC errors snippet words nginx's own statuses for gRPC clients).
fn answer(request: &mut Request, refusal: &Refusal, grpc: bool) -> Status {
    if let Some(result) = refusal.jwt_result {
        if let Some(ctx) = ctx::get_or_create(request) {
            ctx.jwt_result = Some(result);
        }
    }
    ngx_log_debug_http!(request, "tfgate refused: {} {}", refusal.status, refusal.message);
    if refusal.bare {
        if let Some(challenge) = &refusal.challenge {
            if headers::set_www_authenticate(request, challenge).is_err() {
                return Status::NGX_ERROR;
            }
        }
        return Status(isize::from(i16::try_from(refusal.status).unwrap_or(500)));
    }
    let mut extra: Vec<(&str, &str)> = Vec::with_capacity(2);
    if let Some(challenge) = &refusal.challenge {
        extra.push(("WWW-Authenticate", challenge));
    }
    if let Some(allow) = refusal.allow {
        extra.push(("Allow", allow));
    }
    if grpc {
        return respond::grpc_error(request, grpc_code_for_http(refusal.status), &refusal.message, &extra);
    }
    respond::json_error(request, refusal.status, &refusal.message, &extra)
}

/// The token step: extract, verify (cache, keys, fetches), and what the request does next.
fn check_token(request: &mut Request, jwt: &JwtRuntime, ctx: &mut RequestCtx) -> Token {
    let r: *mut ngx_http_request_t = request.into();
    if ctx.parked_since_ms.is_some() {
        // SAFETY: this request was parked by us and is running its access phase again.
        unsafe { unpark(r) };
    }
    let token = match extract_bearer(headers::authorization(request), jwt.policy.max_token_len) {
        Ok(Some(token)) => token,
        Ok(None) => return refused(request, JwtError::Missing),
        Err(e) => return refused(request, e.into()),
    };
    let now = ngx_time();
    let check = jwt.check(token, now);
    if let Some(reload) = &check.file_reload {
        log_file_reload(request, reload);
    }
    if let (Some(fetch), Some(remote)) = (check.fetch, jwt.remote()) {
        let waited = fetch == Fetch::Waited;
        // SAFETY: `r` is this live main request; `remote` belongs to the configuration.
        if unsafe { start_fetch(r, remote, waited) }.is_err() {
            let mut source = remote.source.borrow_mut();
            let id = source.fetch_id();
            source.on_fetch_done(id, Err("cannot start the subrequest".into()), None, now);
            if waited {
                return refused(request, JwtError::KeysUnavailable);
            }
            // A failed background refresh leaves the current keys in use.
        } else if waited {
            // nginx runs this handler again when the subrequest is done.
            return Token::Wait;
        }
    }
    match check.outcome {
        Outcome::Accepted(verified) => {
            ctx.parked_since_ms = None;
            ctx.jwt = Some(Rc::clone(&verified));
            ctx.jwt_result = Some("ok");
            Token::Accepted(verified)
        }
        Outcome::Refused(error) => refused(request, error),
        Outcome::Wait => {
            // SAFETY: reading nginx's cached clock in the worker thread.
            let now_ms = unsafe { ngx_current_msec };
            let since = *ctx.parked_since_ms.get_or_insert(now_ms);
            if now_ms.wrapping_sub(since) > MAX_KEY_WAIT_MS {
                return refused(request, JwtError::KeysUnavailable);
            }
            // SAFETY: a main request in its access phase; the caller returns NGX_AGAIN.
            unsafe { park(r) };
            Token::Wait
        }
    }
}

/// A refused token, logged (the kid of an unknown key too: it says which key the IdP rotated
/// to; it is escaped by the log format).
fn refused(request: &Request, error: JwtError) -> Token {
    let level = if error.status() >= 500 { NGX_LOG_WARN } else { NGX_LOG_INFO };
    let kid = match &error {
        JwtError::UnknownKey { kid } => format!(" kid={kid:?}"),
        _ => String::new(),
    };
    ngx_log_error!(level, request.log(), "tfgate_jwt: {}: {}{}", error.result(), error.description(), kid);
    Token::Refused(error)
}

fn is_satisfy_any(request: &Request) -> bool {
    NgxHttpCoreModule::location_conf(request).is_some_and(|c| c.satisfy == NGX_HTTP_SATISFY_ANY as ngx::ffi::ngx_uint_t)
}

/// The client address as text: the sticky-split key of anonymous callers.
fn client_address(request: &Request) -> String {
    // SAFETY: addr_text is set when nginx accepts the connection.
    let text = unsafe { ngx::core::NgxStr::from_ngx_str((*request.connection()).addr_text) };
    text.to_string_lossy().into_owned()
}

/// Points what `proxy_pass` (without a URI part) sends upstream at the canonical path with the
/// resolved version, keeping the query string.
fn rewrite_path(request: &mut Request, canonical: &str) -> Result<(), ()> {
    let raw = raw_path(request);
    if raw == canonical.as_bytes() {
        return Ok(());
    }
    // SAFETY: args is the query string nginx parsed from the request line (or a rewrite).
    let args = unsafe { ngx::core::NgxStr::from_ngx_str(request.as_ref().args) }.as_bytes();
    let question = if args.is_empty() { 0 } else { 1 };
    let len = canonical.len() + question + args.len();
    let data = request.pool().alloc_unaligned(len).cast::<u8>();
    if data.is_null() {
        return Err(());
    }
    // SAFETY: `data` has room for `len` bytes from the request pool, which outlives the request.
    unsafe {
        core::ptr::copy_nonoverlapping(canonical.as_ptr(), data, canonical.len());
        if question == 1 {
            *data.add(canonical.len()) = b'?';
        }
        core::ptr::copy_nonoverlapping(args.as_ptr(), data.add(canonical.len() + question), args.len());
        let r = request.as_mut();
        r.unparsed_uri = ngx::ffi::ngx_str_t { len, data };
        r.set_valid_unparsed_uri(1);
    }
    Ok(())
}

fn log_file_reload(request: &Request, reload: &super::jwt::Reload) {
    match reload {
        super::jwt::Reload::Unchanged => {}
        super::jwt::Reload::Reloaded { keys } => {
            ngx_log_error!(NGX_LOG_INFO, request.log(), "tfgate_jwt: key files changed, {} key(s) loaded", keys);
        }
        super::jwt::Reload::Failed(reason) => {
            ngx_log_error!(
                NGX_LOG_WARN,
                request.log(),
                "tfgate_jwt: key files changed but {}; keeping the last good keys",
                reason
            );
        }
    }
}

/// The path the upstream will receive, without the query string: as the client sent it
/// (before nginx decoded and merged it) — `proxy_pass` without a URI part forwards these very
/// bytes — or, after a `rewrite` or an internal redirect, nginx's new URI.
fn raw_path(request: &Request) -> &[u8] {
    let r = request.as_ref();
    if r.valid_unparsed_uri() == 0 {
        return request.path().as_bytes();
    }
    let uri = request.unparsed_uri().as_bytes();
    uri.split(|&b| b == b'?').next().unwrap_or(uri)
}

fn request_method(request: &Request) -> &str {
    // SAFETY: method_name is set by nginx's request-line parser before any phase handler runs,
    // and lives as long as the request.
    let name = unsafe { ngx::core::NgxStr::from_ngx_str(request.as_ref().method_name) };
    name.to_str().unwrap_or("")
}
