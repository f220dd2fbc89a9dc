//! The trusted `X-Tfgate-*` request headers: whatever the client sent under that prefix is
//! dropped, then the module's own decisions are added.

use core::mem::size_of;

use ngx::ffi::{ngx_list_init, ngx_list_part_t, ngx_list_t, ngx_table_elt_t, NGX_OK};
use ngx::http::Request;
use tfgate_common::headers::is_trusted_name;

/// Replaces every `X-Tfgate-*` request header with `trusted`. Idempotent, so it is safe when
/// the access phase runs again after an internal redirect.
pub(super) fn replace_trusted(request: &mut Request, trusted: &[(&'static str, String)]) -> Result<(), ()> {
    remove_trusted_namespace(request)?;
    for (name, value) in trusted {
        request.add_header_in(name, value).ok_or(())?;
    }
    Ok(())
}

/// Drops every client-sent header of the trusted namespace. Costs one pass over the header
/// names when there is none.
pub(super) fn remove_trusted_namespace(request: &mut Request) -> Result<(), ()> {
    let r = request.as_mut();
    // SAFETY: headers_in.headers is the list nginx filled while reading the request.
    let any_trusted = unsafe { list_elements(&r.headers_in.headers) }.any(|h| is_trusted_name(header_name(h)));
    if !any_trusted {
        return Ok(());
    }
    // SAFETY: as above.
    let kept: Vec<ngx_table_elt_t> =
        unsafe { list_elements(&r.headers_in.headers) }.filter(|h| !is_trusted_name(header_name(h))).copied().collect();
    // nginx lists cannot drop elements, so the list is rebuilt without them. The old elements
    // stay in the pool, so nginx's shortcuts into them (headers_in.host, ...) remain valid.
    let list: *mut ngx_list_t = &mut r.headers_in.headers;
    // SAFETY: `list` is the request's header list and `r.pool` its pool; the new array has room
    // for every kept element.
    unsafe {
        if ngx_list_init(list, r.pool, kept.len().max(1), size_of::<ngx_table_elt_t>()) != NGX_OK as isize {
            return Err(());
        }
        let elts = (*list).part.elts.cast::<ngx_table_elt_t>();
        core::ptr::copy_nonoverlapping(kept.as_ptr(), elts, kept.len());
        (*list).part.nelts = kept.len();
    }
    Ok(())
}

fn header_name(h: &ngx_table_elt_t) -> &[u8] {
    if h.key.data.is_null() {
        return &[];
    }
    // SAFETY: nginx stores header names as (data, len) pairs valid for the request's lifetime.
    unsafe { core::slice::from_raw_parts(h.key.data, h.key.len) }
}

/// Iterates the elements of an nginx list of `ngx_table_elt_t`.
///
/// # Safety
/// `list` must be a valid nginx list of `ngx_table_elt_t`, not modified while iterating.
unsafe fn list_elements(list: &ngx_list_t) -> impl Iterator<Item = &ngx_table_elt_t> {
    let mut part: *const ngx_list_part_t = &list.part;
    core::iter::from_fn(move || {
        // SAFETY: parts form a null-terminated chain, each with `nelts` initialised elements.
        unsafe {
            while !part.is_null() {
                let p = &*part;
                part = p.next;
                if p.nelts > 0 {
                    return Some(core::slice::from_raw_parts(p.elts.cast::<ngx_table_elt_t>(), p.nelts));
                }
            }
        }
        None
    })
    .flatten()
}

/// The `Authorization` request header, if any.
pub(super) fn authorization(request: &Request) -> Option<&[u8]> {
    let h = request.as_ref().headers_in.authorization;
    // SAFETY: nginx points headers_in.authorization at an element of the header list.
    unsafe { h.as_ref() }.map(|h| unsafe { core::slice::from_raw_parts(h.value.data, h.value.len) })
}

/// The `Content-Type` request header, if any.
pub(super) fn content_type(request: &Request) -> Option<&[u8]> {
    let h = request.as_ref().headers_in.content_type;
    // SAFETY: nginx points headers_in.content_type at an element of the header list (kept in
    // the pool when the list is rebuilt without the trusted headers).
    let h = unsafe { h.as_ref() }?;
    if h.value.data.is_null() {
        return Some(&[]);
    }
    // SAFETY: header values are (data, len) pairs valid for the request's lifetime.
    Some(unsafe { core::slice::from_raw_parts(h.value.data, h.value.len) })
}

/// Sets `WWW-Authenticate` as nginx's own auth modules do, so that under `satisfy any` nginx
/// withdraws it when another module grants access.
pub(super) fn set_www_authenticate(request: &mut Request, value: &str) -> Result<(), ()> {
    let r = request.as_mut();
    // SAFETY: pushing onto the request's own header list, with strings copied into its pool.
    unsafe {
        let h = ngx::ffi::ngx_list_push(&mut r.headers_out.headers).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return Err(());
        }
        ngx::ffi::add_to_ngx_table(h, r.pool, "WWW-Authenticate", value).ok_or(())?;
        r.headers_out.www_authenticate = h;
    }
    Ok(())
}
