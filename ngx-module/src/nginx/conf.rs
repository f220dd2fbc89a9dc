//! Configuration structures: what the directives write, and what a request reads after merging.

use std::rc::Rc;

use ngx::ffi::ngx_flag_t;

use super::jwt::{FileKeys, JwtRuntime, RemoteKeys};
use crate::catalog::Catalog;
use crate::jwt::{Alg, ClaimRule, Policy};

/// nginx's marker for "not set at this level" (`NGX_CONF_UNSET`).
pub(crate) const UNSET: ngx_flag_t = -1;

/// Per server block (declared at http or server level): the model catalog.
#[derive(Debug, Default)]
pub(crate) struct ServerConf {
    pub catalog: Catalog,
}

impl ServerConf {
    pub fn merge(&mut self, prev: &ServerConf) -> Result<(), String> {
        // Like most nginx array directives: a server that declares models replaces the http list.
        if self.catalog.is_empty() {
            self.catalog = prev.catalog.clone();
        }
        self.catalog.validate()
    }
}

/// The `tfgate_jwt*` directives as written at one level; `None` means inherited.
#[derive(Default)]
pub(crate) struct JwtSettings {
    pub key_files: Option<Rc<FileKeys>>,
    pub key_request: Option<String>,
    pub key_cache_secs: Option<u64>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub algorithms: Option<Vec<Alg>>,
    pub leeway_secs: Option<u64>,
    pub scopes: Option<Vec<String>>,
    pub rules: Option<Vec<ClaimRule>>,
    pub cache_size: Option<usize>,
    pub realm: Option<String>,
    pub typ: Option<String>,
    pub require_subject: Option<bool>,
}

impl JwtSettings {
    fn inherit(&mut self, prev: &JwtSettings) {
        fn take<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        take(&mut self.key_files, &prev.key_files);
        take(&mut self.key_request, &prev.key_request);
        take(&mut self.key_cache_secs, &prev.key_cache_secs);
        take(&mut self.issuers, &prev.issuers);
        take(&mut self.audiences, &prev.audiences);
        take(&mut self.algorithms, &prev.algorithms);
        take(&mut self.leeway_secs, &prev.leeway_secs);
        take(&mut self.scopes, &prev.scopes);
        take(&mut self.rules, &prev.rules);
        take(&mut self.cache_size, &prev.cache_size);
        take(&mut self.realm, &prev.realm);
        take(&mut self.typ, &prev.typ);
        take(&mut self.require_subject, &prev.require_subject);
    }

    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        if let Some(algorithms) = &self.algorithms {
            policy.algorithms.clone_from(algorithms);
        }
        policy.issuers = self.issuers.clone().unwrap_or_default();
        policy.audiences = self.audiences.clone().unwrap_or_default();
        if let Some(leeway) = self.leeway_secs {
            policy.leeway_secs = leeway;
        }
        policy.scopes = self.scopes.clone().unwrap_or_default();
        policy.rules = self.rules.clone().unwrap_or_default();
        policy.typ.clone_from(&self.typ);
        if let Some(required) = self.require_subject {
            policy.require_subject = required;
        }
        policy
    }
}

/// Per location.
pub(crate) struct LocationConf {
    /// `tfgate_route on|off`.
    pub route: ngx_flag_t,
    /// `tfgate_jwt on|off`.
    pub jwt: ngx_flag_t,
    pub jwt_settings: JwtSettings,
    /// Built at merge time where `tfgate_jwt on`: the policy, its keys and caches.
    pub jwt_runtime: Option<Rc<JwtRuntime>>,
    /// The remote key source of this level (shared with the levels that inherit it).
    pub remote_keys: Option<Rc<RemoteKeys>>,
    /// `tfgate_grpc_max_message_size`: the largest gRPC request message read for its model.
    pub grpc_max_message_size: u64,
}

impl Default for LocationConf {
    fn default() -> Self {
        LocationConf {
            route: UNSET,
            jwt: UNSET,
            jwt_settings: JwtSettings::default(),
            jwt_runtime: None,
            remote_keys: None,
            grpc_max_message_size: UNSET_SIZE,
        }
    }
}

impl LocationConf {
    pub fn route_enabled(&self) -> bool {
        self.route == 1
    }

    pub fn merge(&mut self, prev: &LocationConf) -> Result<(), String> {
        merge_flag(&mut self.route, prev.route);
        merge_flag(&mut self.jwt, prev.jwt);
        if self.grpc_max_message_size == UNSET_SIZE {
            self.grpc_max_message_size = if prev.grpc_max_message_size == UNSET_SIZE {
                DEFAULT_GRPC_MAX_MESSAGE_SIZE
            } else {
                prev.grpc_max_message_size
            };
        }

        let request_set_here = self.jwt_settings.key_request.is_some() || self.jwt_settings.key_cache_secs.is_some();
        self.jwt_settings.inherit(&prev.jwt_settings);
        self.remote_keys = match (&self.jwt_settings.key_request, &prev.remote_keys) {
            (None, _) => None,
            (Some(_), Some(shared)) if !request_set_here => Some(Rc::clone(shared)),
            (Some(uri), _) => Some(Rc::new(RemoteKeys::new(uri.clone(), self.jwt_settings.key_cache_secs))),
        };

        if self.jwt != 1 {
            return Ok(());
        }
        let settings = &self.jwt_settings;
        if settings.key_files.is_none() && self.remote_keys.is_none() {
            return Err("\"tfgate_jwt on\" needs \"tfgate_jwt_key_file\" or \"tfgate_jwt_key_request\"".into());
        }
        let policy = settings.policy();
        if policy.algorithms.iter().any(|alg| alg.is_hmac()) && self.remote_keys.is_some() {
            // A shared secret has no business in a document fetched from an IdP.
            return Err("HS* algorithms need an \"oct\" key from \"tfgate_jwt_key_file\", not a fetched JWKS".into());
        }
        let cache_size = settings.cache_size.unwrap_or(DEFAULT_CACHE_SIZE);
        let shared_cache = prev
            .jwt_runtime
            .as_ref()
            .filter(|p| p.cache_size() == cache_size && p.uses_keys(&settings.key_files, &self.remote_keys))
            .map(|p| p.cache());
        let realm = settings.realm.clone().unwrap_or_else(|| DEFAULT_REALM.to_owned());
        self.jwt_runtime = Some(Rc::new(JwtRuntime::new(
            policy,
            realm,
            settings.key_files.clone(),
            self.remote_keys.clone(),
            cache_size,
            shared_cache,
        )));
        Ok(())
    }
}

/// `tfgate_grpc_max_message_size` default: gRPC's own default limit on a received message.
pub(crate) const DEFAULT_GRPC_MAX_MESSAGE_SIZE: u64 = 4 << 20;
const UNSET_SIZE: u64 = u64::MAX;

/// `tfgate_jwt_cache` default: verified tokens kept per worker.
pub(crate) const DEFAULT_CACHE_SIZE: usize = 10_000;
/// `tfgate_jwt_realm` default.
pub(crate) const DEFAULT_REALM: &str = "tfgate";

fn merge_flag(flag: &mut ngx_flag_t, prev: ngx_flag_t) {
    if *flag == UNSET {
        *flag = if prev == UNSET { 0 } else { prev };
    }
}
