//! What a failed TLS handshake means, for the log, `/healthz`, metrics and the callers' errors:
//! a short reason label and a sentence naming what to check. rustls reports the cause precisely;
//! this only words it.

use tokio_rustls::rustls::{AlertDescription, CertificateError, Error};

/// Why a handshake failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The server's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The server's certificate has expired (or is not valid yet).
    Expired,
    /// The server's certificate does not name the server.
    NameMismatch,
    /// The server's certificate is malformed, revoked or otherwise unusable.
    BadCertificate,
    /// The server refused the handshake: usually our client certificate (mTLS).
    RefusedByServer,
    /// Anything else: no common protocol version or cipher, not TLS at all.
    Handshake,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::UnknownCa => "unknown_ca",
            Reason::Expired => "expired",
            Reason::NameMismatch => "name_mismatch",
            Reason::BadCertificate => "bad_certificate",
            Reason::RefusedByServer => "refused_by_server",
            Reason::Handshake => "handshake",
        }
    }

    pub const ALL: [Reason; 6] = [
        Reason::UnknownCa,
        Reason::Expired,
        Reason::NameMismatch,
        Reason::BadCertificate,
        Reason::RefusedByServer,
        Reason::Handshake,
    ];
}

/// A failed handshake: its reason and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

/// Where the settings that decide a handshake are, for messages: e.g. `backend.tls`.
pub struct Context<'a> {
    pub section: &'a str,
    /// The name the server's certificate must carry.
    pub server_name: &'a str,
    /// Whether `ca_file` is set (otherwise the system's CA store is used).
    pub own_ca: bool,
}

/// Words a handshake error of rustls.
pub fn classify(error: &Error, context: &Context<'_>) -> Failure {
    let section = context.section;
    let trusted = match context.own_ca {
        true => format!("{section}.ca_file"),
        false => "the system's CA store".to_string(),
    };
    let (reason, message) = match error {
        Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => (
                Reason::UnknownCa,
                format!("the server's certificate is not signed by a CA in {trusted} (unknown issuer)"),
            ),
            CertificateError::BadSignature => (
                Reason::UnknownCa,
                format!("the server's certificate chain does not verify against {trusted} (bad signature)"),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                (Reason::Expired, "the server's certificate has expired".to_string())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                (Reason::Expired, "the server's certificate is not valid yet (check the clocks)".to_string())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
                Reason::NameMismatch,
                format!(
                    "the server's certificate is not valid for {:?} (set {section}.server_name to the name it carries)",
                    context.server_name
                ),
            ),
            other => (Reason::BadCertificate, format!("the server's certificate was refused: {other:?}")),
        },
        Error::AlertReceived(alert) => {
            let hint = match alert {
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateRequired
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::AccessDenied
                | AlertDescription::HandshakeFailure => {
                    format!(": check {section}.cert_file and key_file (the client certificate for mTLS)")
                }
                _ => String::new(),
            };
            (Reason::RefusedByServer, format!("the server refused the handshake ({alert:?}){hint}"))
        }
        Error::NoApplicationProtocol => {
            (Reason::Handshake, "the server does not offer HTTP/2 over TLS (ALPN h2), which gRPC needs".to_string())
        }
        Error::InvalidMessage(_) => (
            Reason::Handshake,
            "the server did not answer with TLS (is it a plaintext port? then write http://)".to_string(),
        ),
        other => (Reason::Handshake, format!("TLS handshake failed: {other}")),
    };
    Failure { reason, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::InvalidMessage;

    fn context() -> Context<'static> {
        Context { section: "backend.tls", server_name: "tfs.internal", own_ca: true }
    }

    #[test]
    fn each_cause_names_what_to_check() {
        let unknown = classify(&Error::InvalidCertificate(CertificateError::UnknownIssuer), &context());
        assert_eq!(unknown.reason, Reason::UnknownCa);
        assert!(unknown.message.contains("backend.tls.ca_file"), "{}", unknown.message);
        let expired = classify(&Error::InvalidCertificate(CertificateError::Expired), &context());
        assert_eq!((expired.reason, expired.reason.label()), (Reason::Expired, "expired"));
        let name = classify(&Error::InvalidCertificate(CertificateError::NotValidForName), &context());
        assert_eq!(name.reason, Reason::NameMismatch);
        assert!(name.message.contains("\"tfs.internal\"") && name.message.contains("backend.tls.server_name"));
        let refused = classify(&Error::AlertReceived(AlertDescription::CertificateRequired), &context());
        assert_eq!(refused.reason, Reason::RefusedByServer);
        assert!(refused.message.contains("backend.tls.cert_file"), "{}", refused.message);
        let plaintext = classify(&Error::InvalidMessage(InvalidMessage::InvalidContentType), &context());
        assert!(plaintext.message.contains("plaintext"), "{}", plaintext.message);
        let system = Context { own_ca: false, ..context() };
        let unknown = classify(&Error::InvalidCertificate(CertificateError::UnknownIssuer), &system);
        assert!(unknown.message.contains("system's CA store"), "{}", unknown.message);
    }
}
