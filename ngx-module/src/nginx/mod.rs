//! The nginx edge of the module: the module table, directives, and the request handler.
//! Every `unsafe` block of the module lives in this folder.

mod access;
mod conf;
mod headers;
mod respond;

use core::ptr::addr_of;

use ngx::ffi::{ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleServerConf};

pub(crate) struct TfgateModule;

impl HttpModule for TfgateModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the module's index fields only while loading configuration,
        // on the single master thread, never while a handler runs.
        unsafe { &*addr_of!(ngx_http_tfgate_module) }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        access::register_handler(cf)
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

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(TfgateModule::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(TfgateModule::create_srv_conf),
    merge_srv_conf: Some(TfgateModule::merge_srv_conf),
    create_loc_conf: Some(TfgateModule::create_loc_conf),
    merge_loc_conf: Some(TfgateModule::merge_loc_conf),
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_tfgate_module);

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_tfgate_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as _,
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
