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

type Getter = fn(&RequestCtx, &str) -> Option<String>;

const CLAIM_PREFIX: &str = "tfgate_jwt_claim_";

/// (name, flags, getter). Values are computed when read, from the context.
const VARIABLES: [(ngx_str_t, u32, Getter); 8] = [
    (ngx_string!("tfgate_jwt_sub"), 0, |c, _| c.jwt.as_ref()?.sub.clone()),
    (ngx_string!("tfgate_jwt_result"), 0, |c, _| c.jwt_result.map(str::to_owned)),
    (ngx_string!("tfgate_jwt_claim_"), NGX_HTTP_VAR_PREFIX, |c, name| {
        claim_variable(c, name.strip_prefix(CLAIM_PREFIX)?)
    }),
    (ngx_string!("tfgate_model"), 0, |c, _| Some(c.route.as_ref()?.path.model.clone())),
    (ngx_string!("tfgate_model_version"), 0, |c, _| match c.route.as_ref()?.path.selector {
        VersionSelector::Number(n) => Some(n.to_string()),
        _ => None,
    }),
    (ngx_string!("tfgate_model_label"), 0, |c, _| c.route.as_ref()?.label.clone()),
    (ngx_string!("tfgate_model_method"), 0, |c, _| Some(c.route.as_ref()?.path.method.as_str().to_owned())),
    (ngx_string!("tfgate_upstream"), 0, |c, _| c.route.as_ref()?.upstream.clone()),
];

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
    for (index, (name, flags, _)) in VARIABLES.iter().enumerate() {
        let mut name = *name;
        // SAFETY: nginx copies the name; the flags are nginx's own.
        let var = unsafe { ngx_http_add_variable(cf, &mut name, (flags | NGX_HTTP_VAR_NOCACHEABLE) as ngx_uint_t) };
        if var.is_null() {
            return Status::NGX_ERROR;
        }
        // SAFETY: `var` was just returned by nginx.
        unsafe {
            (*var).get_handler = Some(get_variable);
            (*var).data = index;
        }
    }
    Status::NGX_OK
}

unsafe extern "C" fn get_variable(r: *mut ngx_http_request_t, v: *mut ngx_variable_value_t, data: usize) -> isize {
    // SAFETY: nginx calls getters with a live request and value slot. For prefix variables
    // nginx passes the full variable name (an ngx_str_t) in `data` instead of our index.
    unsafe {
        let request = Request::from_ngx_http_request(r);
        let (getter, name) = match VARIABLES.get(data) {
            Some((_, flags, getter)) if flags & NGX_HTTP_VAR_PREFIX == 0 => (*getter, String::new()),
            // `$tfgate_jwt_claim_` itself, with no claim name.
            Some(_) => return set_value(request, v, None),
            None => {
                let name = &*(data as *const ngx_str_t);
                let name = core::slice::from_raw_parts(name.data, name.len);
                (VARIABLES[2].2, String::from_utf8_lossy(name).into_owned())
            }
        };
        let value = ctx::get(request).and_then(|c| getter(c, &name));
        set_value(request, v, value.as_deref())
    }
}

/// # Safety
/// `v` must be the value slot nginx passed to the getter.
unsafe fn set_value(request: &Request, v: *mut ngx_variable_value_t, value: Option<&str>) -> isize {
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
