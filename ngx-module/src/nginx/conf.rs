//! Configuration structures and the directives that fill them.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_t, ngx_flag_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE,
    NGX_CONF_FLAG, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF,
    NGX_HTTP_SRV_CONF_OFFSET, NGX_LOG_EMERG,
};
use ngx::http::{Merge, MergeConfigError};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::catalog::{Catalog, ModelDecl};

/// Per server block (declared at http or server level): the model catalog.
#[derive(Debug, Default)]
pub(crate) struct ServerConf {
    pub catalog: Catalog,
}

impl Merge for ServerConf {
    fn merge(&mut self, prev: &ServerConf) -> Result<(), MergeConfigError> {
        // Like most nginx array directives: a server that declares models replaces the http list.
        if self.catalog.is_empty() {
            self.catalog = prev.catalog.clone();
        }
        Ok(())
    }
}

/// nginx's marker for "not set at this level" (`NGX_CONF_UNSET`).
const UNSET: ngx_flag_t = -1;

#[derive(Debug)]
pub(crate) struct LocationConf {
    /// `tfgate_route on|off`: parse TF Serving REST paths and set the trusted headers.
    pub route: ngx_flag_t,
}

impl Default for LocationConf {
    fn default() -> Self {
        LocationConf { route: UNSET }
    }
}

impl LocationConf {
    pub fn route_enabled(&self) -> bool {
        self.route == 1
    }
}

impl Merge for LocationConf {
    fn merge(&mut self, prev: &LocationConf) -> Result<(), MergeConfigError> {
        if self.route == UNSET {
            self.route = if prev.route == UNSET { 0 } else { prev.route };
        }
        Ok(())
    }
}

/// The directive table. nginx's own slot setters give its usual error messages (with file and
/// line) for bad values.
pub(crate) static mut COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx_string!("tfgate_model"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_model),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("tfgate_route"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: offset_of!(LocationConf, route),
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// `tfgate_model NAME [versions=..] [default=..];`
extern "C" fn set_model(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes this module's ServerConf for NGX_HTTP_SRV_CONF_OFFSET directives.
    let conf = unsafe { &mut *conf.cast::<ServerConf>() };
    // SAFETY: `cf` is the live configuration parser state during this call.
    let result = unsafe { directive_args(cf) }
        .and_then(|args| ModelDecl::parse(&args))
        .and_then(|decl| conf.catalog.add(decl));
    match result {
        Ok(()) => NGX_CONF_OK,
        Err(message) => {
            // nginx appends " in FILE:LINE".
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "tfgate_model: {}", message);
            NGX_CONF_ERROR
        }
    }
}

/// The arguments of the directive being parsed, without its name.
///
/// # Safety
/// `cf` must be the configuration being parsed, with `args` holding the current directive.
unsafe fn directive_args<'a>(cf: *mut ngx_conf_t) -> Result<Vec<&'a str>, String> {
    let args = unsafe { (*(*cf).args).as_slice::<ngx_str_t>() };
    args.iter()
        .skip(1)
        .map(|arg| {
            let arg = unsafe { NgxStr::from_ngx_str(*arg) };
            arg.to_str().map_err(|_| format!("argument \"{}\" is not UTF-8", arg.to_string_lossy()))
        })
        .collect()
}
