//! The server-level calls of the protocol: liveness (the daemon runs, as `/healthz` says),
//! readiness (the daemon can serve: some backend target of the pool in force is up), and the
//! server's metadata.

use tfgate_proto::inference::ServerMetadataResponse;

use crate::app::App;

/// The server's name in its metadata.
pub const NAME: &str = "tfgate";

/// The protocol extensions the daemon serves: the binary tensor data of REST bodies.
pub const EXTENSIONS: [&str; 1] = ["binary_tensor_data"];

pub fn metadata() -> ServerMetadataResponse {
    ServerMetadataResponse {
        name: NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    }
}

/// `{"name": "tfgate", "version": ..., "extensions": [...]}`.
pub fn metadata_json() -> Vec<u8> {
    let metadata = metadata();
    let value = serde_json::json!({
        "name": metadata.name,
        "version": metadata.version,
        "extensions": metadata.extensions,
    });
    // Strings only: always serialises.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Why the daemon cannot serve calls now, if it cannot (the pool's own health).
pub fn not_ready(app: &App) -> Option<&'static str> {
    app.pool().unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_daemon_and_its_extension() {
        let json: serde_json::Value = serde_json::from_slice(&metadata_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "tfgate", "version": env!("CARGO_PKG_VERSION"),
                "extensions": ["binary_tensor_data"]})
        );
    }
}
