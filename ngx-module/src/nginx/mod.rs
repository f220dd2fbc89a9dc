//! The nginx edge of the module: the module table, configuration, directives, variables, the
//! access handler and what it needs (key sources, a gRPC call's message read from its body, the
//! trusted headers), and the module's own answers (a JSON error body, or a gRPC status). Every
//! `unsafe` block of the module lives in this folder.
#![allow(unsafe_code)]

mod access;
mod conf;
mod ctx;
mod directives;
mod grpc;
mod headers;
mod jwt;
mod respond;
mod variables;

use core::ffi::{c_char, c_void};
use core::ptr::addr_of;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE, NGX_LOG_EMERG};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleServerConf};
use ngx::ngx_conf_log_error;

pub(crate) struct TfgateModule;

impl HttpModule for TfgateModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the module's index fields only while loading configuration,
        // on the single master thread, never while a handler runs.
        unsafe { &*addr_of!(ngx_http_tfgate_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: forwarded from nginx.
        unsafe { variables::register(cf) }.into()
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: forwarded from nginx.
        unsafe { access::register_handlers(cf) }
    }
}

// SAFETY: the server configuration slot of this module always holds a `conf::ServerConf`,
// created by `create_srv_conf` below.
unsafe impl HttpModuleServerConf for TfgateModule {
    type ServerConf = conf::ServerConf;
}

// SAFETY: the location configuration slot of this module always holds a `conf::LocationConf`,
// created by `create_loc_conf` below.
unsafe impl HttpModuleLocationConf for TfgateModule {
    type LocationConf = conf::LocationConf;
}

/// Merges with nginx's error reporting (ngx's `Merge` trait cannot carry a message).
macro_rules! merge_fn {
    ($name:ident, $ty:ty) => {
        unsafe extern "C" fn $name(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
            // SAFETY: nginx passes two configurations of this module's type for this slot.
            let (prev, conf) = unsafe { (&*prev.cast::<$ty>(), &mut *conf.cast::<$ty>()) };
            match conf.merge(prev) {
                Ok(()) => NGX_CONF_OK,
                Err(message) => {
                    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
                    NGX_CONF_ERROR
                }
            }
        }
    };
}

merge_fn!(merge_srv_conf, conf::ServerConf);
merge_fn!(merge_loc_conf, conf::LocationConf);

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(TfgateModule::preconfiguration),
    postconfiguration: Some(TfgateModule::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(TfgateModule::create_srv_conf),
    merge_srv_conf: Some(merge_srv_conf),
    create_loc_conf: Some(TfgateModule::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_tfgate_module);

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_tfgate_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as _,
    commands: addr_of!(directives::COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
