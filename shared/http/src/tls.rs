//! The shared rustls configuration and its lazily rooted verifier.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, LazyLock, OnceLock};

/// The process-wide client configuration: aws-lc, safe default protocol versions, the lazily
/// rooted verifier. Cloning it shares the verifier, hence the one root store.
pub fn tls_config() -> Result<ClientConfig, rustls::Error> {
    static CONFIG: LazyLock<Result<ClientConfig, rustls::Error>> = LazyLock::new(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(LazyRootsVerifier::new(provider.clone()));
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    });
    CONFIG.clone()
}

/// Standard WebPKI verification against the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are
/// honoured), with the roots loaded and parsed on the first certificate to verify rather than
/// when a client is built. Signature checks need no roots and never wait for them.
#[derive(Debug)]
struct LazyRootsVerifier {
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
    inner: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRootsVerifier {
    fn new(provider: Arc<CryptoProvider>) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            provider,
            inner: OnceLock::new(),
        }
    }

    fn inner(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let loaded = rustls_native_certs::load_native_certs();
                if !loaded.errors.is_empty() {
                    tracing::warn!(
                        errors = loaded.errors.len(),
                        "some root certificates could not be loaded"
                    );
                }
                let mut roots = RootCertStore::empty();
                let (valid, invalid) = roots.add_parsable_certificates(loaded.certs);
                tracing::debug!(valid, invalid, "root certificates loaded");
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .map_err(|e| format!("no usable root certificate: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for LazyRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_the_configuration_loads_no_root_certificate() {
        assert!(tls_config().is_ok());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = LazyRootsVerifier::new(provider);
        assert!(verifier.inner.get().is_none());
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(
            verifier.inner.get().is_none(),
            "listing schemes must not load the roots"
        );
    }

    #[test]
    fn a_certificate_that_chains_to_no_root_is_refused() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = LazyRootsVerifier::new(provider);
        let name = ServerName::try_from("example.com").unwrap_or_else(|_| unreachable!());
        let bogus = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let result = verifier.verify_server_cert(&bogus, &[], &name, &[], UnixTime::now());
        assert!(result.is_err());
    }
}
