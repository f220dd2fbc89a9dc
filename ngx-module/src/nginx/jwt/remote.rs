//! Keys from the IdP (`tfgate_jwt_key_request`): a JWKS fetched with an nginx subrequest, so
//! nginx's own TLS, resolver, timeouts and proxy_cache do the fetching.

use core::ffi::c_void;
use std::cell::RefCell;

use ngx::ffi::{
    ngx_http_post_subrequest_t, ngx_http_request_body_t, ngx_http_request_t, ngx_http_subrequest, ngx_int_t,
    ngx_list_init, ngx_pcalloc, ngx_str_t, ngx_table_elt_t, ngx_time, NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_GET,
    NGX_HTTP_SUBREQUEST_BACKGROUND, NGX_HTTP_SUBREQUEST_IN_MEMORY, NGX_HTTP_SUBREQUEST_WAITED, NGX_LOG_ERR,
    NGX_LOG_INFO, NGX_LOG_WARN, NGX_OK,
};
use ngx::ngx_log_error;

use super::key_generation;
use crate::jwt::{max_age_of, KeySet, KeySource, RefreshConfig};

pub(crate) struct RemoteKeys {
    uri: String,
    /// `tfgate_jwt_key_cache`: overrides the IdP's `Cache-Control: max-age`.
    ttl_override: Option<u64>,
    pub source: RefCell<KeySource>,
}

impl RemoteKeys {
    pub fn new(uri: String, ttl_override: Option<u64>) -> RemoteKeys {
        RemoteKeys { uri, ttl_override, source: RefCell::new(KeySource::new(RefreshConfig::default())) }
    }
}

/// One fetch in flight: nginx may run the post-subrequest handler more than once.
struct FetchState {
    remote: *const RemoteKeys,
    /// The key source's id of this fetch.
    fetch: u64,
    reported: bool,
}

/// Starts the JWKS subrequest. `wait`: the request waits for it (nginx resumes it when the
/// subrequest is done); otherwise it runs in the background while the request goes on.
///
/// # Safety
/// `r` must be a live main request; `remote` must outlive the subrequest (it belongs to the
/// configuration, which outlives every request of its cycle).
pub(crate) unsafe fn start_fetch(r: *mut ngx_http_request_t, remote: &RemoteKeys, wait: bool) -> Result<(), ()> {
    // SAFETY: `r` is a live main request (caller's contract); everything allocated here comes
    // from its pool and lives as long as it, which outlives the subrequest.
    unsafe {
        let pool = (*r).pool;
        let state = ngx_pcalloc(pool, size_of::<FetchState>()).cast::<FetchState>();
        let post = ngx_pcalloc(pool, size_of::<ngx_http_post_subrequest_t>()).cast::<ngx_http_post_subrequest_t>();
        let body = ngx_pcalloc(pool, size_of::<ngx_http_request_body_t>()).cast::<ngx_http_request_body_t>();
        if state.is_null() || post.is_null() || body.is_null() {
            return Err(());
        }
        state.write(FetchState { remote, fetch: remote.source.borrow().fetch_id(), reported: false });
        (*post).handler = Some(keys_fetched);
        (*post).data = state.cast();

        let mut uri = ngx_str_t { len: remote.uri.len(), data: remote.uri.as_ptr().cast_mut() };
        let flags = NGX_HTTP_SUBREQUEST_IN_MEMORY
            | if wait { NGX_HTTP_SUBREQUEST_WAITED } else { NGX_HTTP_SUBREQUEST_BACKGROUND };
        let mut sr: *mut ngx_http_request_t = core::ptr::null_mut();
        if ngx_http_subrequest(r, &mut uri, core::ptr::null_mut(), &mut sr, post, flags as _) != NGX_OK as ngx_int_t
            || sr.is_null()
        {
            return Err(());
        }
        // A plain GET: none of the client's body or headers (its Authorization, cookies, Range,
        // conditionals, Content-Length) go to the IdP.
        (*sr).request_body = body;
        (*sr).method = NGX_HTTP_GET as _;
        (*sr).method_name = ngx_str_t { len: 3, data: c"GET".as_ptr().cast_mut().cast() };
        (*sr).headers_in = core::mem::zeroed();
        if ngx_list_init(&mut (*sr).headers_in.headers, pool, 1, size_of::<ngx_table_elt_t>()) != NGX_OK as ngx_int_t {
            return Err(());
        }
        (*sr).headers_in.content_length_n = -1;
        (*sr).headers_in.keep_alive_n = -1;
        ngx_log_error!(NGX_LOG_INFO, (*(*r).connection).log, "tfgate_jwt: fetching keys from \"{}\"", remote.uri);
    }
    Ok(())
}

/// Post-subrequest handler: hands the JWKS (or the failure) to the key source.
unsafe extern "C" fn keys_fetched(sr: *mut ngx_http_request_t, data: *mut c_void, rc: ngx_int_t) -> ngx_int_t {
    // SAFETY: `data` is the FetchState allocated in start_fetch from the parent's pool, which
    // outlives the subrequest; `sr` is the finished subrequest.
    unsafe {
        let state = &mut *data.cast::<FetchState>();
        if state.reported {
            return rc;
        }
        state.reported = true;
        let remote = &*state.remote;
        let log = (*(*sr).connection).log;
        if rc == NGX_HTTP_CLIENT_CLOSED_REQUEST as ngx_int_t || (*(*sr).connection).error() != 0 {
            // The fetch rode on a client connection that went away: not the IdP's failure.
            ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "tfgate_jwt: key fetch from \"{}\" abandoned: the client went away",
                remote.uri
            );
            remote.source.borrow_mut().on_fetch_aborted(state.fetch);
            return rc;
        }
        let result = fetched_keys(sr, rc);
        let ttl = remote.ttl_override.or_else(|| max_age(sr));
        match &result {
            Ok((keys, skipped)) => {
                ngx_log_error!(NGX_LOG_INFO, log, "tfgate_jwt: {} key(s) from \"{}\"", keys.len(), remote.uri);
                for reason in skipped {
                    ngx_log_error!(NGX_LOG_WARN, log, "tfgate_jwt: key skipped from \"{}\": {}", remote.uri, reason);
                }
            }
            Err(reason) => {
                ngx_log_error!(
                    NGX_LOG_ERR,
                    log,
                    "tfgate_jwt: fetching keys from \"{}\" failed: {}; keeping the last good keys",
                    remote.uri,
                    reason
                );
            }
        }
        let replaced =
            remote.source.borrow_mut().on_fetch_done(state.fetch, result.map(|(keys, _)| keys), ttl, ngx_time());
        if replaced {
            key_generation::bump();
        }
    }
    rc
}

/// # Safety
/// `sr` must be a finished in-memory subrequest.
unsafe fn fetched_keys(sr: *mut ngx_http_request_t, rc: ngx_int_t) -> Result<(KeySet, Vec<String>), String> {
    // SAFETY: a finished in-memory subrequest (caller's contract) holds its whole answer in
    // one buffer of its `out` chain, between `pos` and `last`.
    unsafe {
        let status = (*sr).headers_out.status;
        if rc != NGX_OK as ngx_int_t || status != 200 {
            return Err(format!("status {status}"));
        }
        let out = (*sr).out;
        if out.is_null() || (*out).buf.is_null() {
            return Err("empty response".into());
        }
        let buf = (*out).buf;
        let len = usize::try_from((*buf).last.offset_from((*buf).pos)).map_err(|_| "bad buffer")?;
        let body = core::slice::from_raw_parts((*buf).pos, len);
        KeySet::parse(body)
    }
}

/// `Cache-Control: max-age=N` of the JWKS answer.
///
/// # Safety
/// `sr` must be a finished subrequest.
unsafe fn max_age(sr: *mut ngx_http_request_t) -> Option<u64> {
    // SAFETY: a finished subrequest's output headers are a valid nginx list.
    let mut part = unsafe { &(*sr).headers_out.headers.part as *const ngx::ffi::ngx_list_part_t };
    while !part.is_null() {
        // SAFETY: list parts hold `nelts` initialised header elements.
        let headers = unsafe { core::slice::from_raw_parts((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts) };
        for h in headers {
            // SAFETY: header names and values are (data, len) pairs from the pool.
            let (name, value) = unsafe {
                (
                    core::slice::from_raw_parts(h.key.data, h.key.len),
                    core::slice::from_raw_parts(h.value.data, h.value.len),
                )
            };
            if h.hash != 0 && name.eq_ignore_ascii_case(b"cache-control") {
                if let Some(age) = max_age_of(value) {
                    return Some(age);
                }
            }
        }
        // SAFETY: the parts form a null-terminated chain.
        part = unsafe { (*part).next };
    }
    None
}
