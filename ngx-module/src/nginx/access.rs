//! The access-phase handler: where a request meets tfgate's decisions.
//!
//! Order: the path is parsed and checked against the catalog first (a malformed or unknown
//! request costs no cryptography), then the bearer token, then per-model authorization, then
//! label/split resolution, the rewritten path and the trusted headers. Routing alone never grants access
//! (`NGX_DECLINED`), so under `satisfy any` another module's verdict still counts; a valid token
//! grants it (`NGX_OK`).

use ngx::core::Status;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_current_msec, ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
    ngx_http_request_t, ngx_int_t, ngx_time, NGX_HTTP_SATISFY_ANY, NGX_LOG_INFO, NGX_LOG_WARN,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule, Request};
use ngx::{http_request_handler, ngx_log_debug_http, ngx_log_error};
use tfgate_common::headers::SUBJECT;

use std::rc::Rc;

use tfgate_common::ModelPath;

use super::conf::DEFAULT_REALM;
use super::ctx::{self, RequestCtx};
use super::jwt::{park, start_fetch, unpark, Fetch, JwtRuntime, Outcome};
use super::{headers, respond, TfgateModule};
use crate::catalog::Catalog;
use crate::jwt::{extract_bearer, JwtError, Verified};
use crate::route::{authorize, parse_request, route_request, Refused};

/// A request parked for keys longer than this is answered 503.
const MAX_KEY_WAIT_MS: usize = 15_000;

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

    // Stage 1: is this a request we serve at all? Costs no cryptography.
    let path = if location.route_enabled() {
        match parse_request(catalog, request_method(request), raw_path(request)) {
            Ok(path) => Some(path),
            Err(refused) => return refuse_route(request, realm, refused),
        }
    } else {
        None
    };

    let mut token = None;
    if let Some(jwt) = jwt {
        let Some(ctx) = ctx::get_or_create(request) else {
            return Status::NGX_ERROR;
        };
        let ctx: *mut RequestCtx = ctx;
        // SAFETY: the context lives in the request pool; no other reference to it is held.
        match check_token(request, jwt, unsafe { &mut *ctx }) {
            TokenStep::Wait => return Status::NGX_AGAIN,
            TokenStep::Accepted(verified) => token = Some(verified),
            TokenStep::Refused(error) => {
                if let Err(status) = before_refusal(request, catalog, path, error.status()) {
                    return status;
                }
                return refuse(request, realm, &error);
            }
        }
    }

    if let Some(checked) = &path {
        if let Err(refused) = authorize(catalog, checked, token.as_deref()) {
            let status = match &refused {
                Refused::Token(error) => error.status(),
                Refused::Status(status, _) => *status,
            };
            if let Err(status) = before_refusal(request, catalog, path, status) {
                return status;
            }
            return refuse_route(request, realm, refused);
        }
    }
    if let Err(status) = forward(request, catalog, path, token.as_deref()) {
        return status;
    }
    // Routing alone grants nothing (`satisfy any` still needs a real check); a token does.
    if token.is_some() {
        Status::NGX_OK
    } else {
        Status::NGX_DECLINED
    }
});

/// Stage 2 and the hand-over: resolves default/label/split, rewrites the path the upstream
/// sees to the resolved one, and replaces the trusted headers.
fn forward(
    request: &mut Request,
    catalog: &Catalog,
    path: Option<ModelPath>,
    token: Option<&Verified>,
) -> Result<(), Status> {
    let mut trusted = Vec::new();
    if let Some(path) = path {
        // Anonymous callers are keyed by address; only then is it worth formatting.
        let subject = match token.and_then(|t| t.sub.as_deref()) {
            Some(sub) => std::borrow::Cow::Borrowed(sub),
            None => std::borrow::Cow::Owned(client_address(request)),
        };
        let requested = path.selector.clone();
        let routed = route_request(catalog, path, &subject);
        // The daemon parses the path with the same grammar, so only a resolution (default,
        // label, split) needs the path rewritten to name the version.
        if routed.resolved.path.selector != requested && rewrite_path(request, &routed.resolved.path.to_path()).is_err()
        {
            return Err(Status::NGX_ERROR);
        }
        trusted = routed.trusted_headers;
        let ctx = ctx::get_or_create(request).ok_or(Status::NGX_ERROR)?;
        ctx.route = Some(routed.resolved);
    }
    if let Some(sub) = token.and_then(|t| t.sub.clone()) {
        trusted.push((SUBJECT, sub));
    }
    headers::replace_trusted(request, &trusted).map_err(|()| Status::NGX_ERROR)
}

/// Gets a request that is being refused after stage 1 ready for what follows. Under
/// `satisfy any` another access module may still grant a 401/403: the request must then go on
/// with trusted headers that are ours, not the client's. Otherwise the access log still gets
/// the model of the refused request.
fn before_refusal(
    request: &mut Request,
    catalog: &Catalog,
    path: Option<ModelPath>,
    status: u16,
) -> Result<(), Status> {
    if is_satisfy_any(request) && matches!(status, 401 | 403) {
        forward(request, catalog, path, None)
    } else {
        remember(request, catalog, path)
    }
}

/// Keeps the routing outcome for the variables of a request that is refused after stage 1.
fn remember(request: &mut Request, catalog: &Catalog, path: Option<ModelPath>) -> Result<(), Status> {
    if let Some(path) = path {
        let resolved = route_request(catalog, path, &client_address(request)).resolved;
        ctx::get_or_create(request).ok_or(Status::NGX_ERROR)?.route = Some(resolved);
    }
    Ok(())
}

fn refuse_route(request: &mut Request, realm: &str, refused: Refused) -> Status {
    match refused {
        Refused::Token(error) => refuse(request, realm, &error),
        Refused::Status(status, message) => {
            ngx_log_debug_http!(request, "tfgate route refused: {status} {message}");
            let allow = (status == 405).then(|| allowed_method(request));
            let extra: Vec<(&str, &str)> = allow.iter().map(|m| ("Allow", *m)).collect();
            respond::json_error(request, status, &message, &extra)
        }
    }
}

enum TokenStep {
    Accepted(Rc<Verified>),
    Refused(JwtError),
    Wait,
}

fn check_token(request: &mut Request, jwt: &JwtRuntime, ctx: &mut RequestCtx) -> TokenStep {
    let r: *mut ngx_http_request_t = request.into();
    if ctx.parked_since_ms.is_some() {
        // SAFETY: this request was parked by us and is running its access phase again.
        unsafe { unpark(r) };
    }
    let token = match extract_bearer(headers::authorization(request), jwt.policy.max_token_len) {
        Ok(Some(token)) => token,
        Ok(None) => return TokenStep::Refused(JwtError::Missing),
        Err(e) => return TokenStep::Refused(e.into()),
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
                return TokenStep::Refused(JwtError::KeysUnavailable);
            }
            // A failed background refresh leaves the current keys in use.
        } else if waited {
            // nginx runs this handler again when the subrequest is done.
            return TokenStep::Wait;
        }
    }
    match check.outcome {
        Outcome::Accepted(verified) => {
            ctx.parked_since_ms = None;
            // The subject becomes a request header: no CR/LF smuggling.
            if verified.sub.as_deref().is_some_and(|sub| sub.chars().any(char::is_control)) {
                return TokenStep::Refused(JwtError::Invalid("subject contains control characters"));
            }
            ctx.jwt = Some(Rc::clone(&verified));
            ctx.jwt_result = Some("ok");
            TokenStep::Accepted(verified)
        }
        Outcome::Refused(error) => TokenStep::Refused(error),
        Outcome::Wait => {
            // SAFETY: reading nginx's cached clock in the worker thread.
            let now_ms = unsafe { ngx_current_msec };
            let since = *ctx.parked_since_ms.get_or_insert(now_ms);
            if now_ms.wrapping_sub(since) > MAX_KEY_WAIT_MS {
                return TokenStep::Refused(JwtError::KeysUnavailable);
            }
            // SAFETY: a main request in its access phase; the caller returns NGX_AGAIN.
            unsafe { park(r) };
            TokenStep::Wait
        }
    }
}

/// Answers a refused token: JSON and `WWW-Authenticate`, or, under `satisfy any`, the bare
/// status so that another access module may still grant the request.
fn refuse(request: &mut Request, realm: &str, error: &JwtError) -> Status {
    if let Some(ctx) = ctx::get_or_create(request) {
        ctx.jwt_result = Some(error.result());
    }
    let level = if error.status() >= 500 { NGX_LOG_WARN } else { NGX_LOG_INFO };
    let kid = match error {
        JwtError::UnknownKey { kid } => format!(" kid={kid:?}"),
        _ => String::new(),
    };
    ngx_log_error!(level, request.log(), "tfgate_jwt: {}: {}{}", error.result(), error.description(), kid);

    let challenge = error.www_authenticate(realm);
    if is_satisfy_any(request) && matches!(error.status(), 401 | 403) {
        if let Some(challenge) = &challenge {
            if headers::set_www_authenticate(request, challenge).is_err() {
                return Status::NGX_ERROR;
            }
        }
        return Status(isize::from(i16::try_from(error.status()).unwrap_or(500)));
    }
    let extra: Vec<(&str, &str)> = challenge.iter().map(|c| ("WWW-Authenticate", c.as_str())).collect();
    respond::json_error(request, error.status(), error.description(), &extra)
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

/// The method the path needs, for the `Allow` header of a 405.
fn allowed_method(request: &Request) -> &'static str {
    match tfgate_common::parse_rest_path(raw_path(request)) {
        Ok(path) => path.method.http_method(),
        Err(_) => "GET, POST",
    }
}
