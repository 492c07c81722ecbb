//! The checks' TLS: rustls's webpki verification against the system's roots
//! (and a check's extra CA), noting when the chain it verified first expires.
//!
//! A server may send more certificates than the path it is trusted by uses:
//! an old cross-signed intermediate, expired, beside the current one. Only
//! the path that was verified says when the check will start failing, so the
//! expiry comes from that path (the leaf and the intermediates webpki chained
//! to a trusted root), not from everything the server sent.

use ecs_control::domain::probe::FailureReason;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

tokio::task_local! {
    /// Where the verifier notes when the current handshake's chain first
    /// expires (Unix seconds): the handshake runs within the attempt.
    static CHAIN_EXPIRES: Arc<Mutex<Option<i64>>>;
}

/// The trusted roots and rustls's verifier over them, made on the first
/// handshake that needs them: reading the system's roots takes milliseconds
/// and a few hundred KiB, which a probe of plain-HTTP endpoints never needs.
#[derive(Debug)]
struct Roots {
    store: Arc<RootCertStore>,
    verifier: Arc<WebPkiServerVerifier>,
}

#[derive(Debug)]
struct VerifiedChainExpiry {
    provider: Arc<CryptoProvider>,
    extra_roots: Vec<CertificateDer<'static>>,
    roots: OnceLock<Result<Roots, String>>,
}

impl VerifiedChainExpiry {
    fn roots(&self) -> Result<&Roots, rustls::Error> {
        self.roots
            .get_or_init(|| {
                let mut store = RootCertStore::empty();
                // Unreadable entries of the system's store are passed over, as
                // a TLS client does; an empty store is an error.
                store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                for root in &self.extra_roots {
                    store
                        .add(root.clone())
                        .map_err(|e| format!("ca_certificate_file: {e}"))?;
                }
                if store.is_empty() {
                    return Err(
                        "no trusted roots: the system has none and no ca_certificate_file is given"
                            .into(),
                    );
                }
                let store = Arc::new(store);
                let verifier = WebPkiServerVerifier::builder_with_provider(
                    store.clone(),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
                Ok(Roots { store, verifier })
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }

    /// The path webpki verifies from `end_entity` to a trusted root, as
    /// rustls's verifier would (server authentication, no revocation lists):
    /// when it first expires, if the certificates say.
    fn verified_path_expiry(
        &self,
        store: &RootCertStore,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Option<i64>, webpki::Error> {
        let leaf = webpki::EndEntityCert::try_from(end_entity)?;
        let path = leaf.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &store.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )?;
        let used: Vec<CertificateDer<'_>> =
            path.intermediate_certificates().map(|c| c.der()).collect();
        Ok(earliest_expiry(
            std::iter::once(end_entity).chain(used.iter()),
        ))
    }
}

/// The earliest `notAfter` among `certs` (Unix seconds).
fn earliest_expiry<'a>(certs: impl Iterator<Item = &'a CertificateDer<'a>>) -> Option<i64> {
    certs
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            Some(cert.validity().not_after.timestamp())
        })
        .min()
}

impl ServerCertVerifier for VerifiedChainExpiry {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let roots = self.roots()?;
        // One path search: webpki's own, which gives the path it verified.
        // Only a refusal goes through rustls's verifier as well, which
        // searches the same way and says why as rustls errors say it.
        let (verified, expires) =
            match self.verified_path_expiry(&roots.store, end_entity, intermediates, now) {
                Ok(expires) => {
                    let leaf = ParsedCertificate::try_from(end_entity)?;
                    let named = rustls::client::verify_server_name(&leaf, server_name)
                        .map(|()| ServerCertVerified::assertion());
                    (named, expires)
                }
                // No path was verified: what was sent is all there is to say
                // how long ago a refused chain expired.
                Err(_) => (
                    roots.verifier.verify_server_cert(
                        end_entity,
                        intermediates,
                        server_name,
                        ocsp_response,
                        now,
                    ),
                    earliest_expiry(std::iter::once(end_entity).chain(intermediates)),
                ),
            };
        let _ = CHAIN_EXPIRES.try_with(|slot| {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = expires;
        });
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    // Asked for every handshake's hello, before any root is needed.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_error(detail: String) -> FailureReason {
    FailureReason::Tls { detail }
}

/// The TLS settings for checks that trust the system's roots and, if given,
/// a check's extra CA (read now, so a bad file is reported as such).
fn new_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, FailureReason> {
    let extra_roots = match extra_ca_pem {
        Some(pem) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("ca_certificate_file is not PEM: {e}")))?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = VerifiedChainExpiry {
        provider: provider.clone(),
        extra_roots,
        roots: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS settings made once (and once per distinct extra CA) and shared.
#[derive(Debug, Default)]
pub(super) struct TlsConfigs {
    system_roots: OnceLock<Arc<rustls::ClientConfig>>,
    with_extra_ca: Mutex<HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>,
}

impl TlsConfigs {
    pub(super) fn get(
        &self,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<Arc<rustls::ClientConfig>, FailureReason> {
        let Some(pem) = extra_ca_pem else {
            if let Some(config) = self.system_roots.get() {
                return Ok(config.clone());
            }
            let config = new_config(None)?;
            return Ok(self.system_roots.get_or_init(|| config).clone());
        };
        let mut configs = self
            .with_extra_ca
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Looked up by the bytes themselves: an attempt copies nothing.
        if let Some(config) = configs.get(pem) {
            return Ok(config.clone());
        }
        let config = new_config(Some(pem))?;
        configs.insert(pem.to_vec(), config.clone());
        Ok(config)
    }
}

/// Runs a handshake, noting when the chain it verified (or, when refused,
/// the chain it was sent) first expires.
pub(super) async fn handshake(
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    tcp: tokio::net::TcpStream,
    chain_expires: &mut Option<i64>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FailureReason> {
    let slot = Arc::new(Mutex::new(None));
    let connecting = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp);
    let shaken = CHAIN_EXPIRES.scope(slot.clone(), connecting).await;
    *chain_expires = *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    shaken.map_err(|e| handshake_failure(&e))
}

/// A failed handshake, said as the operator needs it: an expired chain apart.
fn handshake_failure(error: &std::io::Error) -> FailureReason {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return FailureReason::Connection {
            detail: format!("during the TLS handshake: {error}"),
        };
    };
    let detail = tls.to_string();
    match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => FailureReason::TlsExpired { detail },
        _ if detail.to_ascii_lowercase().contains("expired") => {
            FailureReason::TlsExpired { detail }
        }
        _ => FailureReason::Tls { detail },
    }
}
