//! The files of a TLS client (`ca_file`, `cert_file`, `key_file`), read and checked into a
//! rustls configuration. Each problem is reported with the key that names the file, at start-up
//! and on reload, before any connection is tried. Two loads compare equal when the settings and
//! the files' contents are the same, so a reload with rotated files builds new connections and
//! one without changes keeps the old ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::digest;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::expiry;

/// What an operator wrote: the files, by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// PEM CA bundle the server's certificate must chain to; `None`: the system's CA store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key presented to the server (mTLS).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// When a file was last seen changed: its modification time and size (checked every few seconds
/// to pick up rotated certificates without a SIGHUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp { modified: metadata.modified().ok(), len: metadata.len() })
    }
}

/// A loaded TLS client: the rustls configuration (ALPN as given) and what the files hold.
pub struct ClientTls {
    pub files: TlsFiles,
    pub config: Arc<ClientConfig>,
    /// The CA bundle and client chain as read (PEM), for users that build their own
    /// configuration from them (the Redis client).
    pub ca_pem: Option<Vec<u8>>,
    pub cert_pem: Option<Vec<u8>>,
    /// The key as read. Never printed (see `Debug`).
    pub key_pem: Option<Vec<u8>>,
    /// Earliest expiry of the certificates of `ca_file` and of `cert_file`.
    pub ca_not_after: Option<SystemTime>,
    pub cert_not_after: Option<SystemTime>,
    /// SHA-256 over every file's contents: equality without comparing (or keeping twice) the key.
    digest: [u8; 32],
    stamps: Vec<Option<FileStamp>>,
}

impl ClientTls {
    /// Reads and checks the files; `section` names the TOML table in messages (e.g.
    /// `backend.tls`), `alpn` the protocols offered (`h2` for gRPC).
    pub fn load(files: &TlsFiles, section: &str, alpn: &[&[u8]]) -> Result<ClientTls, String> {
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{section}.{key}: cannot read {}: {e}", path.display()))
        };
        let certificates = |key: &str, path: &Path, pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, String> {
            let found = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{section}.{key}: {} is not a PEM certificate file: {e}", path.display()))?;
            if found.is_empty() {
                return Err(format!(
                    "{section}.{key}: {} holds no certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
            Ok(found)
        };
        let mut hash = digest::Context::new(&digest::SHA256);
        let mut roots = RootCertStore::empty();
        let (ca_pem, ca_not_after) = match &files.ca_file {
            Some(path) => {
                let pem = read("ca_file", path)?;
                let cas = certificates("ca_file", path, &pem)?;
                for ca in &cas {
                    roots.add(ca.clone()).map_err(|e| {
                        format!("{section}.ca_file: {}: a certificate cannot be a trust anchor: {e}", path.display())
                    })?;
                }
                let not_after = expiry::earliest_not_after(cas.iter().map(|c| c.as_ref()))
                    .map_err(|e| format!("{section}.ca_file: {}: {e}", path.display()))?;
                hash.update(&pem);
                (Some(pem), not_after)
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(format!(
                        "{section}: no ca_file and no usable certificate in the system's CA store (install ca-certificates or set {section}.ca_file)"
                    ));
                }
                (None, None)
            }
        };
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let (mut config, cert_pem, key_pem, cert_not_after) = match (&files.cert_file, &files.key_file) {
            (None, None) => (builder.with_no_client_auth(), None, None, None),
            (Some(cert_path), Some(key_path)) => {
                let cert_pem = read("cert_file", cert_path)?;
                let chain = certificates("cert_file", cert_path, &cert_pem)?;
                let not_after = expiry::not_after(&chain[0])
                    .map_err(|e| format!("{section}.cert_file: {}: {e}", cert_path.display()))?;
                let key_pem = read("key_file", key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    format!(
                        "{section}.key_file: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                        key_path.display()
                    )
                })?;
                let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!(
                        "{section}.key_file: {} does not go with {section}.cert_file {}: {e}",
                        key_path.display(),
                        cert_path.display()
                    )
                })?;
                hash.update(&cert_pem);
                hash.update(&key_pem);
                (config, Some(cert_pem), Some(key_pem), Some(not_after))
            }
            _ => return Err(format!("{section}: cert_file and key_file go together (mTLS); set both or neither")),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut digest = [0; 32];
        digest.copy_from_slice(hash.finish().as_ref());
        Ok(ClientTls {
            stamps: ClientTls::stamps_of(files),
            files: files.clone(),
            config: Arc::new(config),
            ca_pem,
            cert_pem,
            key_pem,
            ca_not_after,
            cert_not_after,
            digest,
        })
    }

    fn stamps_of(files: &TlsFiles) -> Vec<Option<FileStamp>> {
        [&files.ca_file, &files.cert_file, &files.key_file].into_iter().flatten().map(|p| FileStamp::of(p)).collect()
    }

    /// Whether a file changed on disk since it was loaded (modification time or size).
    pub fn files_changed(&self) -> bool {
        ClientTls::stamps_of(&self.files) != self.stamps
    }

    /// A warning about certificates that expired or expire soon, `now` given.
    pub fn expiry_warnings(&self, section: &str, now: SystemTime) -> Vec<String> {
        let soon = std::time::Duration::from_secs(7 * 86_400);
        let mut warnings = Vec::new();
        for (key, at) in [("ca_file", self.ca_not_after), ("cert_file", self.cert_not_after)] {
            let Some(at) = at else { continue };
            if at <= now {
                warnings.push(format!("{section}.{key}: a certificate expired at {}", expiry::show(at)));
            } else if expiry::remaining(at, now) < soon {
                warnings.push(format!("{section}.{key}: a certificate expires at {}", expiry::show(at)));
            }
        }
        warnings
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        self.files == other.files
            && self.digest == other.digest
            && self.config.alpn_protocols == other.config.alpn_protocols
    }
}

impl Eq for ClientTls {}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .field("ca_not_after", &self.ca_not_after.map(expiry::show))
            .field("cert_not_after", &self.cert_not_after.map(expiry::show))
            .finish_non_exhaustive()
    }
}
