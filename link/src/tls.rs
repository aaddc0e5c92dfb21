//! TLS identities: generating and loading the relay's self-signed certificate, its SHA-256
//! fingerprint, and the client verifier: it accepts exactly the pinned certificate, or on a
//! first connection (trust on first use, see [`crate::known`]) whichever the relay presents,
//! and in both cases records the fingerprint presented so the caller can say what changed.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a fingerprint did not parse.
#[derive(Debug, thiserror::Error)]
#[error("a fingerprint is 64 hex digits (SHA-256), optionally with colons or a `sha256:` prefix; got `{0}`")]
pub struct BadFingerprint(String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Accepts `ab12…`, `AB:12:…` and `sha256:ab12…`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| BadFingerprint(s.to_string()))?;
        Ok(Fingerprint(out))
    }
}

/// The ring provider every endpoint of the system uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A freshly generated self-signed certificate and its PKCS#8 key, both DER.
pub struct GeneratedIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// Generates a self-signed ECDSA P-256 certificate naming `names` (host names or addresses).
pub fn generate_self_signed(names: Vec<String>) -> Result<GeneratedIdentity, rcgen::Error> {
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok(GeneratedIdentity {
        cert_der: certified.cert.der().to_vec(),
        key_der: certified.signing_key.serialize_der(),
    })
}

/// Server-side rustls config presenting `cert_der` with `key_der` (PKCS#8), TLS 1.3 only.
pub fn server_config(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )?;
    cfg.alpn_protocols = vec![protocol::ALPN.to_vec()];
    Ok(cfg)
}

/// The relay presented another certificate than the one pinned.
#[derive(Debug, thiserror::Error)]
#[error("the relay's certificate has fingerprint {presented}, but {expected} was expected")]
pub struct FingerprintMismatch {
    pub expected: Fingerprint,
    pub presented: Fingerprint,
}

/// What the client accepts from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTrust {
    /// Exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
    /// Whichever certificate the relay presents (a first connection; the caller remembers it).
    FirstUse,
}

/// The fingerprint of the certificate a relay presented, filled in during the handshake.
#[derive(Debug, Clone, Default)]
pub struct Presented(Arc<Mutex<Option<Fingerprint>>>);

impl Presented {
    /// The fingerprint seen, once the handshake got that far.
    pub fn get(&self) -> Option<Fingerprint> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, f: Fingerprint) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
}

/// Accepts the server certificate whose SHA-256 is the pinned one (or, on first use, any), and
/// checks the handshake signature against it. Names and validity dates do not matter: the pin
/// is the identity.
#[derive(Debug)]
struct PinnedServer {
    trust: ServerTrust,
    presented: Presented,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        self.presented.set(presented);
        match self.trust {
            ServerTrust::FirstUse => Ok(ServerCertVerified::assertion()),
            ServerTrust::Pinned(pin) if pin == presented => Ok(ServerCertVerified::assertion()),
            ServerTrust::Pinned(expected) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    FingerprintMismatch {
                        expected,
                        presented,
                    },
                ))),
            )),
        }
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client-side rustls config that trusts exactly the certificate with fingerprint `pin`.
pub fn pinned_client_config(pin: Fingerprint) -> Result<rustls::ClientConfig, rustls::Error> {
    client_config(ServerTrust::Pinned(pin), Presented::default())
}

/// Client-side rustls config that trusts what `trust` says and records the fingerprint the
/// relay presents in `presented`.
pub fn client_config(
    trust: ServerTrust,
    presented: Presented,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer {
            trust,
            presented,
            provider,
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![protocol::ALPN.to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_forms_parse_alike() {
        let f = Fingerprint::of(b"cert");
        let plain = f.to_string();
        let colons: Vec<String> = f.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(plain.parse::<Fingerprint>().unwrap(), f);
        assert_eq!(colons.join(":").parse::<Fingerprint>().unwrap(), f);
        assert_eq!(format!("sha256:{plain}").parse::<Fingerprint>().unwrap(), f);
        assert!("abc".parse::<Fingerprint>().is_err());
    }
}
