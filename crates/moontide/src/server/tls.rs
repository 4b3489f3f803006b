//! TLS for Moontide's server (rustls): a certificate and key from PEM files,
//! and optionally client certificates checked against a CA (mutual TLS:
//! a client without a certificate that CA signed cannot connect).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[server.tls]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// With this CA (PEM), every client must present a certificate it signed.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let list: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if list.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(list)
}

impl TlsConfig {
    /// The rustls configuration; the error names the file at fault.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = certs(&self.cert_file)?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| format!("{}: not a PEM private key: {e}", self.key_file.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca)? {
                    roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "{} and {} do not make a certificate and its key: {e}",
                self.cert_file.display(),
                self.key_file.display()
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
