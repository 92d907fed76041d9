//! The rustls configuration of a `verify-full` connection.

use crate::error::{Error, Result};

/// The certificates a `verify-full` connection trusts.
pub(super) fn tls_config(root_cert: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    crate::store::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Error::invalid_argument(format!("cannot read sslrootcert {}: {e}", path.display()))
            };
            let pem = crate::store::tls::read_file("sslrootcert", path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}
