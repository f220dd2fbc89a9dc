//! Per-location configuration and the directives that fill it.

use core::mem::offset_of;
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_flag_t, ngx_uint_t, NGX_CONF_FLAG, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET,
};
use ngx::http::{Merge, MergeConfigError};
use ngx::ngx_string;

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
pub(crate) static mut COMMANDS: [ngx_command_t; 2] = [
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
