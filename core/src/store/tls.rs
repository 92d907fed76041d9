//! What the Redis and PostgreSQL stores share for TLS: rustls' crypto provider, and reading the
//! files a URL names.

use std::path::Path;

use crate::error::{Error, Result};

/// Installs rustls' process-wide crypto provider (ring, no system OpenSSL); a later call, or one
/// after the application installed its own, changes nothing.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The bytes of the TLS file a URL names as `option`, or `invalid_argument` naming both.
pub(crate) fn read_file(option: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid_argument(format!("cannot read {option} {}: {e}", path.display())))
}
