//! `$tfgate_*` variables, read from the request's context (empty where the module did nothing).

use ngx::core::Status;
use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_str_t, ngx_uint_t, ngx_variable_value_t,
    NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX,
};
use ngx::http::Request;
use ngx::ngx_string;

use super::ctx::{self, RequestCtx};
use tfgate_common::VersionSelector;

/// A variable computed when read, from the request's context.
struct Variable {
    name: ngx_str_t,
    get: fn(&RequestCtx) -> Option<String>,
}

// SAFETY: the names point at static string literals; nothing writes through them.
unsafe impl Sync for Variable {}

/// Each getter is registered with its own entry's address as `data`, so the getter finds its
/// variable without an index into this table.
static VARIABLES: [Variable; 7] = [
    Variable { name: ngx_string!("tfgate_jwt_sub"), get: |c| c.jwt.as_ref()?.sub.clone() },
    Variable { name: ngx_string!("tfgate_jwt_result"), get: |c| c.jwt_result.map(str::to_owned) },
    Variable { name: ngx_string!("tfgate_model"), get: |c| Some(c.route.as_ref()?.path.model.clone()) },
    Variable {
        name: ngx_string!("tfgate_model_version"),
        get: |c| match c.route.as_ref()?.path.selector {
            VersionSelector::Number(n) => Some(n.to_string()),
            _ => None,
        },
    },
    Variable { name: ngx_string!("tfgate_model_label"), get: |c| c.route.as_ref()?.label.clone() },
    Variable { name: ngx_string!("tfgate_model_method"), get: |c| c.method.map(str::to_owned) },
    Variable { name: ngx_string!("tfgate_upstream"), get: |c| c.route.as_ref()?.upstream.clone() },
];

/// `$tfgate_jwt_claim_NAME`: a prefix variable; nginx passes the full name to its getter.
const CLAIM_PREFIX: &str = "tfgate_jwt_claim_";

/// `$tfgate_jwt_claim_NAME`. nginx lower-cases variable names, so a claim such as `givenName`
/// is found case-insensitively when there is no exact match. A value with control characters
/// is left out: it could smuggle a header into `proxy_set_header`.
fn claim_variable(ctx: &RequestCtx, name: &str) -> Option<String> {
    let token = ctx.jwt.as_ref()?;
    let value = token.claim_as_string(name).or_else(|| {
        let actual = token.claims.keys().find(|k| k.eq_ignore_ascii_case(name))?;
        token.claim_as_string(actual)
    })?;
    (!value.chars().any(char::is_control)).then_some(value)
}

/// Registers the variables (called from preconfiguration).
///
/// # Safety
/// `cf` must be the configuration nginx passes to `preconfiguration`.
pub(super) unsafe fn register(cf: *mut ngx_conf_t) -> Status {
    for variable in &VARIABLES {
        // SAFETY: forwarded from nginx; the entry is static.
        if unsafe { add(cf, variable.name, 0, get_variable, core::ptr::from_ref(variable) as usize) }.is_err() {
            return Status::NGX_ERROR;
        }
    }
    let claims = ngx_string!("tfgate_jwt_claim_");
    // SAFETY: forwarded from nginx; nginx passes prefix variables their full name as `data`.
    if unsafe { add(cf, claims, NGX_HTTP_VAR_PREFIX, get_claim_variable, 0) }.is_err() {
        return Status::NGX_ERROR;
    }
    Status::NGX_OK
}

type Getter = unsafe extern "C" fn(*mut ngx_http_request_t, *mut ngx_variable_value_t, usize) -> isize;

/// # Safety
/// `cf` must be the configuration nginx passes to `preconfiguration`.
unsafe fn add(cf: *mut ngx_conf_t, mut name: ngx_str_t, flags: u32, get: Getter, data: usize) -> Result<(), ()> {
    // SAFETY: nginx copies the name; the flags are nginx's own.
    let var = unsafe { ngx_http_add_variable(cf, &mut name, (flags | NGX_HTTP_VAR_NOCACHEABLE) as ngx_uint_t) };
    if var.is_null() {
        return Err(());
    }
    // SAFETY: `var` was just returned by nginx.
    unsafe {
        (*var).get_handler = Some(get);
        (*var).data = data;
    }
    Ok(())
}

unsafe extern "C" fn get_variable(r: *mut ngx_http_request_t, v: *mut ngx_variable_value_t, data: usize) -> isize {
    // SAFETY: `data` is the address of a static `Variable`, registered in `register`; nginx
    // calls getters with a live request and value slot.
    unsafe {
        let variable = &*(data as *const Variable);
        let request = Request::from_ngx_http_request(r);
        let value = ctx::get(request).and_then(|c| (variable.get)(c));
        set_value(request, v, value.as_deref())
    }
}

unsafe extern "C" fn get_claim_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    data: usize,
) -> isize {
    // SAFETY: for prefix variables nginx passes the full variable name (an ngx_str_t) in
    // `data`; the request and value slot are live.
    unsafe {
        let request = Request::from_ngx_http_request(r);
        let name = &*(data as *const ngx_str_t);
        let name = String::from_utf8_lossy(core::slice::from_raw_parts(name.data, name.len));
        let claim = name.strip_prefix(CLAIM_PREFIX).filter(|claim| !claim.is_empty());
        let value = claim.and_then(|claim| ctx::get(request).and_then(|c| claim_variable(c, claim)));
        set_value(request, v, value.as_deref())
    }
}

/// # Safety
/// `v` must be the value slot nginx passed to the getter.
unsafe fn set_value(request: &Request, v: *mut ngx_variable_value_t, value: Option<&str>) -> isize {
    // SAFETY: `v` is nginx's value slot for this call (caller's contract); the copy goes into
    // the request's pool, which outlives the value.
    unsafe {
        let Some(value) = value else {
            (*v).set_not_found(1);
            return Status::NGX_OK.into();
        };
        let data = request.pool().alloc_unaligned(value.len().max(1)).cast::<u8>();
        if data.is_null() {
            return Status::NGX_ERROR.into();
        }
        core::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        (*v).data = data;
        (*v).set_len(value.len() as u32);
        (*v).set_valid(1);
        (*v).set_no_cacheable(1);
        (*v).set_not_found(0);
    }
    Status::NGX_OK.into()
}
