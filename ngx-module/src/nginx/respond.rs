//! Answering a request from the module itself: tfgate's JSON error body, or for a gRPC
//! request a gRPC status (a trailers-only answer).

use ngx::core::Status;
use ngx::ffi::{
    ngx_chain_t, ngx_create_temp_buf, ngx_http_discard_request_body, ngx_http_finalize_request, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_header, ngx_str_t, NGX_ERROR, NGX_OK,
};
use ngx::http::Request;
use tfgate_common::error_body::{error_body, ERROR_CONTENT_TYPE};

use crate::grpc::percent_encode_message;

/// Sends `{"error": message}` with `status` and finishes the request.
///
/// Returns `NGX_DONE`: the response is complete, and the phase engine must stop here (in the
/// access phase a plain `NGX_OK` would mean "access granted").
pub(super) fn json_error(request: &mut Request, status: u16, message: &str, headers: &[(&str, &str)]) -> Status {
    let body = error_body(message);
    for (name, value) in headers {
        if request.add_header_out(name, value).is_none() {
            return Status::NGX_ERROR;
        }
    }
    let r: *mut ngx_http_request_t = request.into();
    // SAFETY: `r` is the live request nginx handed to the phase handler; every pointer below is
    // allocated from its pool, which outlives the response.
    unsafe {
        let rc = send(r, status, body.as_bytes());
        ngx_http_finalize_request(r, rc);
    }
    Status::NGX_DONE
}

/// Answers a gRPC request with status `code`: HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the only HEADERS frame, which ends the stream. Returns
/// `NGX_DONE` like [`json_error`].
pub(super) fn grpc_error(request: &mut Request, code: u32, message: &str, headers: &[(&str, &str)]) -> Status {
    let code = code.to_string();
    let message = percent_encode_message(message);
    let grpc_headers = [("grpc-status", code.as_str()), ("grpc-message", message.as_str())];
    for (name, value) in grpc_headers.iter().chain(headers) {
        if request.add_header_out(name, value).is_none() {
            return Status::NGX_ERROR;
        }
    }
    let r: *mut ngx_http_request_t = request.into();
    // SAFETY: `r` is the live request nginx handed to the phase handler.
    unsafe {
        let rc = send_headers_only(r);
        ngx_http_finalize_request(r, rc);
    }
    Status::NGX_DONE
}

/// # Safety
/// `r` must be a live request whose response header has not been sent.
unsafe fn send_headers_only(r: *mut ngx_http_request_t) -> isize {
    let rc = ngx_http_discard_request_body(r);
    if rc != NGX_OK as isize {
        return rc;
    }
    let headers = &mut (*r).headers_out;
    headers.status = 200;
    headers.content_type_len = GRPC_CONTENT_TYPE.len();
    headers.content_type = ngx_str_t { len: GRPC_CONTENT_TYPE.len(), data: GRPC_CONTENT_TYPE.as_ptr() as *mut u8 };
    headers.content_type_lowcase = core::ptr::null_mut();
    headers.content_length_n = -1;
    (*r).set_header_only(1);
    ngx_http_send_header(r)
}

const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// # Safety
/// `r` must be a live request whose response header has not been sent.
unsafe fn send(r: *mut ngx_http_request_t, status: u16, body: &[u8]) -> isize {
    let rc = ngx_http_discard_request_body(r);
    if rc != NGX_OK as isize {
        return rc;
    }
    let headers = &mut (*r).headers_out;
    headers.status = status.into();
    headers.content_type_len = ERROR_CONTENT_TYPE.len();
    headers.content_type = ngx_str_t { len: ERROR_CONTENT_TYPE.len(), data: ERROR_CONTENT_TYPE.as_ptr() as *mut u8 };
    headers.content_type_lowcase = core::ptr::null_mut();
    headers.content_length_n = body.len() as _;

    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR as isize || rc > NGX_OK as isize || (*r).header_only() != 0 {
        return rc;
    }
    let buf = ngx_create_temp_buf((*r).pool, body.len());
    if buf.is_null() {
        return NGX_ERROR as isize;
    }
    core::ptr::copy_nonoverlapping(body.as_ptr(), (*buf).last, body.len());
    (*buf).last = (*buf).last.add(body.len());
    (*buf).set_last_buf(if r == (*r).main { 1 } else { 0 });
    (*buf).set_last_in_chain(1);
    let mut out = ngx_chain_t { buf, next: core::ptr::null_mut() };
    ngx_http_output_filter(r, &mut out)
}
