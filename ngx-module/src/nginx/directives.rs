//! The directive table and the functions that parse each directive into the configuration.
//! Errors are logged with `ngx_conf_log_error`, which appends " in FILE:LINE".

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;
use std::rc::Rc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_t, ngx_parse_size, ngx_parse_time, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_2MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF, NGX_HTTP_SRV_CONF_OFFSET, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_string};

use super::conf::{LocationConf, ServerConf};
use super::jwt::FileKeys;
use crate::catalog::{LabelDecl, ModelDecl};
use crate::jwt::{ClaimRule, Policy};

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn command(
    name: ngx_str_t,
    flags: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: ngx_uint_t,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t { name, type_: flags as ngx_uint_t, set: Some(set), conf, offset, post: ptr::null_mut() }
}

const LOC: ngx_uint_t = NGX_HTTP_LOC_CONF_OFFSET;

pub(crate) static mut COMMANDS: [ngx_command_t; 19] = [
    command(
        ngx_string!("tfgate_route"),
        NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        offset_of!(LocationConf, route),
    ),
    command(
        ngx_string!("tfgate_model"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_1MORE,
        set_model,
        NGX_HTTP_SRV_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("tfgate_model_label"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_2MORE,
        set_model_label,
        NGX_HTTP_SRV_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("tfgate_jwt"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        offset_of!(LocationConf, jwt),
    ),
    command(ngx_string!("tfgate_jwt_key_file"), ANY_LEVEL | NGX_CONF_TAKE1, set_key_file, LOC, 0),
    command(ngx_string!("tfgate_jwt_key_request"), ANY_LEVEL | NGX_CONF_TAKE1, set_key_request, LOC, 0),
    command(ngx_string!("tfgate_jwt_key_cache"), ANY_LEVEL | NGX_CONF_TAKE1, set_key_cache, LOC, 0),
    command(ngx_string!("tfgate_jwt_issuer"), ANY_LEVEL | NGX_CONF_1MORE, set_issuer, LOC, 0),
    command(ngx_string!("tfgate_jwt_audience"), ANY_LEVEL | NGX_CONF_1MORE, set_audience, LOC, 0),
    command(ngx_string!("tfgate_jwt_algorithms"), ANY_LEVEL | NGX_CONF_1MORE, set_algorithms, LOC, 0),
    command(ngx_string!("tfgate_jwt_leeway"), ANY_LEVEL | NGX_CONF_TAKE1, set_leeway, LOC, 0),
    command(ngx_string!("tfgate_jwt_scope"), ANY_LEVEL | NGX_CONF_1MORE, set_scope, LOC, 0),
    command(ngx_string!("tfgate_jwt_require"), ANY_LEVEL | NGX_CONF_2MORE, set_require, LOC, 0),
    command(ngx_string!("tfgate_jwt_cache"), ANY_LEVEL | NGX_CONF_TAKE1, set_cache, LOC, 0),
    command(ngx_string!("tfgate_jwt_realm"), ANY_LEVEL | NGX_CONF_TAKE1, set_realm, LOC, 0),
    command(ngx_string!("tfgate_jwt_typ"), ANY_LEVEL | NGX_CONF_TAKE1, set_typ, LOC, 0),
    command(ngx_string!("tfgate_jwt_require_subject"), ANY_LEVEL | NGX_CONF_FLAG, set_require_subject, LOC, 0),
    command(ngx_string!("tfgate_grpc_max_message_size"), ANY_LEVEL | NGX_CONF_TAKE1, set_grpc_max_message_size, LOC, 0),
    ngx_command_t::empty(),
];

/// Defines a directive handler from a closure over the (typed) configuration and the
/// directive's arguments (without its name).
macro_rules! directive {
    ($name:ident, $conf:ty, |$cf:ident, $c:ident, $args:ident| $body:expr) => {
        unsafe extern "C" fn $name(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
            // SAFETY: nginx passes the configuration structure this directive's `conf` offset
            // names, created by this module; `cf` is the parser state of this call.
            let $c = unsafe { &mut *conf.cast::<$conf>() };
            let $cf = cf;
            // SAFETY: `cf` is the parser state of this directive's call.
            let result: Result<(), String> = unsafe { directive_args(cf) }.and_then(|$args| $body);
            finish(cf, result)
        }
    };
}

directive!(set_model, ServerConf, |_cf, c, args| ModelDecl::parse(&args).and_then(|d| c.catalog.add_model(d)));
directive!(set_model_label, ServerConf, |_cf, c, args| LabelDecl::parse(&args).and_then(|d| c.catalog.add_label(d)));

directive!(set_key_file, LocationConf, |cf, c, args| {
    // SAFETY: `cf` is live for this call; the path is resolved like nginx's own file directives.
    let path = unsafe { full_path(cf, args[0]) }?;
    let files = match c.jwt_settings.key_files.take() {
        Some(existing) => existing.with_file(&path)?,
        None => FileKeys::load(&path)?,
    };
    c.jwt_settings.key_files = Some(Rc::new(files));
    Ok(())
});

directive!(set_key_request, LocationConf, |_cf, c, args| {
    if !args[0].starts_with('/') {
        return Err(format!(
            "\"{}\" must be a local URI (an internal location proxying to the IdP's jwks_uri)",
            args[0]
        ));
    }
    set_once(&mut c.jwt_settings.key_request, args[0].to_owned())
});

directive!(set_key_cache, LocationConf, |_cf, c, args| set_once(
    &mut c.jwt_settings.key_cache_secs,
    parse_seconds(args[0])?
));
directive!(set_leeway, LocationConf, |_cf, c, args| set_once(&mut c.jwt_settings.leeway_secs, parse_seconds(args[0])?));
directive!(set_issuer, LocationConf, |_cf, c, args| set_once(&mut c.jwt_settings.issuers, owned(&args)));
directive!(set_audience, LocationConf, |_cf, c, args| set_once(&mut c.jwt_settings.audiences, owned(&args)));
directive!(set_scope, LocationConf, |_cf, c, args| set_once(&mut c.jwt_settings.scopes, owned(&args)));
directive!(set_algorithms, LocationConf, |_cf, c, args| set_once(
    &mut c.jwt_settings.algorithms,
    Policy::parse_algorithms(&args)?
));
directive!(set_realm, LocationConf, |_cf, c, args| {
    if args[0].chars().any(char::is_control) {
        return Err("the realm cannot contain control characters".into());
    }
    set_once(&mut c.jwt_settings.realm, args[0].to_owned())
});
directive!(set_typ, LocationConf, |_cf, c, args| set_once(&mut c.jwt_settings.typ, args[0].to_owned()));

directive!(set_require_subject, LocationConf, |_cf, c, args| {
    let required = match args[0] {
        "on" => true,
        "off" => false,
        other => return Err(format!("invalid value \"{other}\" (on or off)")),
    };
    set_once(&mut c.jwt_settings.require_subject, required)
});

directive!(set_require, LocationConf, |_cf, c, args| {
    let rule = ClaimRule::parse(&args)?;
    c.jwt_settings.rules.get_or_insert_with(Vec::new).push(rule);
    Ok(())
});

directive!(set_grpc_max_message_size, LocationConf, |_cf, c, args| {
    if c.grpc_max_message_size != u64::MAX {
        return Err("is duplicate".into());
    }
    c.grpc_max_message_size = parse_size(args[0])?;
    Ok(())
});

directive!(set_cache, LocationConf, |_cf, c, args| {
    let size = match args[0] {
        "off" => 0,
        n => n.parse::<usize>().map_err(|_| format!("invalid cache size \"{n}\" (a number of entries, or off)"))?,
    };
    set_once(&mut c.jwt_settings.cache_size, size)
});

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err("is duplicate".into());
    }
    *slot = Some(value);
    Ok(())
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Parses an nginx time ("90", "60s", "10m", "1h") into seconds with nginx's own parser.
fn parse_seconds(text: &str) -> Result<u64, String> {
    let mut value = ngx_str_t { len: text.len(), data: text.as_ptr().cast_mut() };
    // SAFETY: ngx_parse_time only reads `len` bytes of `data`.
    let secs = unsafe { ngx_parse_time(&mut value, 1) };
    u64::try_from(secs).map_err(|_| format!("invalid time \"{text}\""))
}

/// Parses an nginx size ("512k", "4m") with nginx's own parser.
fn parse_size(text: &str) -> Result<u64, String> {
    let mut value = ngx_str_t { len: text.len(), data: text.as_ptr().cast_mut() };
    // SAFETY: ngx_parse_size only reads `len` bytes of `data`.
    let size = unsafe { ngx_parse_size(&mut value) };
    u64::try_from(size).map_err(|_| format!("invalid size \"{text}\""))
}

fn finish(cf: *mut ngx_conf_t, result: Result<(), String>) -> *mut c_char {
    match result {
        Ok(()) => NGX_CONF_OK,
        Err(message) => {
            // SAFETY: `cf` is the live parser state; the message is plain text.
            let name = unsafe { directive_name(cf) };
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{}\": {}", name, message);
            NGX_CONF_ERROR
        }
    }
}

/// # Safety
/// `cf` must be the configuration being parsed, with `args` holding the current directive.
unsafe fn directive_name(cf: *mut ngx_conf_t) -> String {
    // SAFETY: `cf->args` is the array of the current directive's words (caller's contract).
    let args = unsafe { (*(*cf).args).as_slice::<ngx_str_t>() };
    // SAFETY: each word is a (data, len) pair nginx keeps for the whole parse.
    args.first().map(|a| unsafe { NgxStr::from_ngx_str(*a) }.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The arguments of the directive being parsed, without its name.
///
/// # Safety
/// `cf` must be the configuration being parsed, with `args` holding the current directive.
unsafe fn directive_args<'a>(cf: *mut ngx_conf_t) -> Result<Vec<&'a str>, String> {
    // SAFETY: `cf->args` is the array of the current directive's words (caller's contract).
    let args = unsafe { (*(*cf).args).as_slice::<ngx_str_t>() };
    args.iter()
        .skip(1)
        .map(|arg| {
            // SAFETY: each word is a (data, len) pair nginx keeps for the whole parse.
            let arg = unsafe { NgxStr::from_ngx_str(*arg) };
            arg.to_str().map_err(|_| format!("argument \"{}\" is not UTF-8", arg.to_string_lossy()))
        })
        .collect()
}

/// Resolves `path` against nginx's prefix, as `ssl_certificate` and friends do.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn full_path(cf: *mut ngx_conf_t, path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Ok(path.to_owned());
    }
    // SAFETY: the cycle of a configuration being parsed has its prefix set.
    let prefix = unsafe { NgxStr::from_ngx_str((*(*cf).cycle).conf_prefix) };
    Ok(format!("{}{}", prefix.to_string_lossy(), path))
}
