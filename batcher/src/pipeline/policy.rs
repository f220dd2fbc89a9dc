//! Step 2: what nginx's trusted headers decide, checked once for every call. The version was
//! resolved by nginx (labels, defaults, splits: `X-Tfgate-Version`); the versions its catalog
//! exposes (`X-Tfgate-Versions`) limit what a status lists (`unbatched::status`).

use super::call::Call;
use crate::app::App;
use crate::request::CoreError;

/// Refuses a call whose trusted headers cannot be believed as they are, and sets its deadline:
/// the client's timeout (gRPC `grpc-timeout`), bounded by the model's `timeout_ms`.
pub fn apply(app: &App, call: &mut Call) -> Result<(), CoreError> {
    if let Some(why) = &call.info.untrusted {
        return Err(CoreError::invalid(why.clone()));
    }
    let timeout = app.config().batching_for(&call.route.target.model).timeout;
    let allowed = call.info.client_timeout.map_or(timeout, |t| t.min(timeout));
    call.info.deadline = call.info.received + allowed;
    Ok(())
}

/// The versions of a status answer the catalog lets the caller see; `None` when it exposes
/// them all.
pub fn exposed(call: &Call) -> Option<&[i64]> {
    (!call.route.exposed_versions.is_empty()).then_some(&call.route.exposed_versions[..])
}
