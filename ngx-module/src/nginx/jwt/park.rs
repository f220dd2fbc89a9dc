//! Parking a request in the access phase while another request fetches the keys it needs:
//! the same mechanism nginx's limit_req uses for delays (a delayed write event with a timer),
//! so the worker never blocks and a client that goes away is noticed.

use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_http_block_reading, ngx_http_request_t, ngx_http_test_reading, ngx_msec_t,
};

/// How often a parked request looks again.
const PARK_INTERVAL_MS: ngx_msec_t = 10;

/// Re-runs the request's phases after a short timer. The caller returns `NGX_AGAIN`.
///
/// # Safety
/// `r` must be a main request in the access phase.
pub(crate) unsafe fn park(r: *mut ngx_http_request_t) {
    // SAFETY: a main request in the access phase (caller's contract) has a live connection
    // with a write event, which nginx's own limit_req delays the same way.
    unsafe {
        let wev = (*(*r).connection).write;
        (*wev).set_delayed(1);
        ngx_add_timer(wev, PARK_INTERVAL_MS);
        (*r).read_event_handler = Some(ngx_http_test_reading);
    }
}

/// Undoes [`park`] once a parked request goes on (whether or not its timer fired).
///
/// # Safety
/// `r` must be a main request in the access phase that was parked.
pub(crate) unsafe fn unpark(r: *mut ngx_http_request_t) {
    // SAFETY: as for `park`: this request's connection and write event are live.
    unsafe {
        let wev = (*(*r).connection).write;
        (*wev).set_delayed(0);
        if (*wev).timer_set() != 0 {
            ngx_del_timer(wev);
        }
        (*r).read_event_handler = Some(ngx_http_block_reading);
    }
}
