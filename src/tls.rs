//! TLS on the remoting ports (broker and name server), after RocketMQ's
//! `TlsSystemConfig` (the keys), `TlsMode` (the server modes) and
//! `TlsHelper` (building the contexts), on rustls with the ring provider.
//!
//! Server modes (`tls.server.mode`), as in RocketMQ's `NettyRemotingServer`:
//! - `disabled` (ActorMQ's default): plaintext only; the accept path is
//!   untouched (a TLS client's hello fails as a bad frame and is closed).
//! - `permissive`: TLS and plaintext on one port. Like RocketMQ's
//!   `HandshakeHandler`, the first byte tells them apart: 0x16 (a TLS
//!   handshake record) starts a TLS session, anything else is plaintext.
//! - `enforcing`: TLS only; a connection whose first byte is not 0x16 is
//!   closed.
//!
//! `tls.server.authClient=true` (or `tls.server.need.client.auth=require`)
//! requires a client certificate that chains to `tls.server.trustCertPath`;
//! `tls.server.need.client.auth=optional` verifies one when it is offered.
//! The handshake runs off the accept task, on the session's arbiter, within
//! `tls.server.handshakeTimeoutMillis` (ActorMQ's key; 10 s like Netty's
//! `SslHandler`).
//!
//! Clients ([`ClientTls`]): the CLI's `--tls` with `--tls-ca FILE` (verify
//! the server against that CA) or `--tls-insecure` (RocketMQ's
//! `tls.test.mode.enable`: accept any server certificate, for self-signed
//! test certificates), and `--tls-cert`/`--tls-key` for `authClient`
//! servers. A broker's own client (registration with the name servers) uses
//! TLS when `tls.enable` is true, which defaults to `tls.server.mode ==
//! enforcing` as in RocketMQ's `BrokerStartup`; it trusts
//! `tls.client.trustCertPath`, or anything when `tls.test.mode.enable=true`.
//! Unlike RocketMQ, `tls.test.mode.enable` defaults to false: nothing is
//! trusted silently. Encrypted keys (`tls.server.keyPassword`,
//! `tls.client.keyPassword`) are refused: keys are unencrypted PEM (PKCS#8,
//! PKCS#1 or SEC1).

mod stream;

pub use stream::{Io, ReadHalf, Stream, WriteHalf};

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::config::ConfigError;

/// The first byte of a TLS handshake record (RocketMQ's
/// `HandshakeHandler`: `HANDSHAKE_MAGIC_CODE`).
pub const HANDSHAKE_MAGIC: u8 = 0x16;

/// `tls.server.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    Disabled,
    Permissive,
    Enforcing,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(TlsMode::Disabled),
            "permissive" => Some(TlsMode::Permissive),
            "enforcing" => Some(TlsMode::Enforcing),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Permissive => "permissive",
            TlsMode::Enforcing => "enforcing",
        }
    }
}

/// Whether the server asks for client certificates
/// (`tls.server.need.client.auth`, `tls.server.authClient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Require,
}

/// The TLS keys of a broker or name server configuration.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// `tls.server.mode`.
    pub mode: TlsMode,
    /// `tls.server.certPath`: the server's certificate chain, PEM.
    pub server_cert_path: Option<PathBuf>,
    /// `tls.server.keyPath`: its private key, PEM.
    pub server_key_path: Option<PathBuf>,
    /// `tls.server.authClient` / `tls.server.need.client.auth`.
    pub client_auth: ClientAuth,
    /// `tls.server.trustCertPath`: CAs that client certificates must chain to.
    pub server_trust_cert_path: Option<PathBuf>,
    /// `tls.server.handshakeTimeoutMillis` (ActorMQ).
    pub handshake_timeout: Duration,
    /// `tls.enable`: the process's own outgoing connections use TLS
    /// (default: `mode == enforcing`).
    pub client_enable: Option<bool>,
    /// `tls.client.certPath` / `tls.client.keyPath`: the certificate shown to
    /// `authClient` servers.
    pub client_cert_path: Option<PathBuf>,
    pub client_key_path: Option<PathBuf>,
    /// `tls.client.trustCertPath`: CAs the servers' certificates must chain to.
    pub client_trust_cert_path: Option<PathBuf>,
    /// `tls.test.mode.enable`: outgoing connections accept any certificate.
    pub test_mode: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Disabled,
            server_cert_path: None,
            server_key_path: None,
            client_auth: ClientAuth::None,
            server_trust_cert_path: None,
            handshake_timeout: Duration::from_secs(10),
            client_enable: None,
            client_cert_path: None,
            client_key_path: None,
            client_trust_cert_path: None,
            test_mode: false,
        }
    }
}

fn bad(key: &str, value: &str, why: &'static str) -> ConfigError {
    ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        why,
    }
}

fn flag(m: &BTreeMap<String, String>, key: &str) -> Result<Option<bool>, ConfigError> {
    match m.get(key).map(|v| v.trim()) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(bad(key, v, "expected true or false")),
    }
}

fn path(m: &BTreeMap<String, String>, key: &str) -> Option<PathBuf> {
    m.get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl TlsConfig {
    /// Reads the `tls.*` keys of a properties map; the others are ignored.
    pub fn from_properties(m: &BTreeMap<String, String>) -> Result<TlsConfig, ConfigError> {
        let mut c = TlsConfig::default();
        if let Some(v) = m.get("tls.server.mode") {
            c.mode = TlsMode::parse(v).ok_or_else(|| {
                bad(
                    "tls.server.mode",
                    v,
                    "expected disabled, permissive or enforcing",
                )
            })?;
        }
        c.server_cert_path = path(m, "tls.server.certPath");
        c.server_key_path = path(m, "tls.server.keyPath");
        c.server_trust_cert_path = path(m, "tls.server.trustCertPath");
        if let Some(v) = m.get("tls.server.need.client.auth") {
            c.client_auth = match v.trim().to_ascii_lowercase().as_str() {
                "none" => ClientAuth::None,
                "optional" => ClientAuth::Optional,
                "require" => ClientAuth::Require,
                _ => {
                    return Err(bad(
                        "tls.server.need.client.auth",
                        v,
                        "expected none, optional or require",
                    ))
                }
            };
        }
        if flag(m, "tls.server.authClient")? == Some(true) {
            c.client_auth = ClientAuth::Require;
        }
        if let Some(v) = m.get("tls.server.handshakeTimeoutMillis") {
            let ms: u64 = v
                .trim()
                .parse()
                .map_err(|_| bad("tls.server.handshakeTimeoutMillis", v, "expected millis"))?;
            c.handshake_timeout = Duration::from_millis(ms.max(1));
        }
        c.client_enable = flag(m, "tls.enable")?;
        c.client_cert_path = path(m, "tls.client.certPath");
        c.client_key_path = path(m, "tls.client.keyPath");
        c.client_trust_cert_path = path(m, "tls.client.trustCertPath");
        c.test_mode = flag(m, "tls.test.mode.enable")?.unwrap_or(false);
        for key in ["tls.server.keyPassword", "tls.client.keyPassword"] {
            if let Some(v) = m.get(key).filter(|v| !v.trim().is_empty()) {
                return Err(bad(key, v, "encrypted keys are not supported"));
            }
        }
        if c.mode != TlsMode::Disabled
            && (c.server_cert_path.is_none() || c.server_key_path.is_none())
        {
            return Err(bad(
                "tls.server.mode",
                c.mode.name(),
                "needs tls.server.certPath and tls.server.keyPath",
            ));
        }
        if c.client_auth != ClientAuth::None && c.server_trust_cert_path.is_none() {
            return Err(bad(
                "tls.server.authClient",
                "true",
                "needs tls.server.trustCertPath",
            ));
        }
        Ok(c)
    }

    /// `key=value` lines for `--print-config`.
    pub fn print(&self) -> String {
        let p = |o: &Option<PathBuf>| o.as_ref().map(|p| p.display().to_string());
        format!(
            "tls.server.mode={}\ntls.server.certPath={}\ntls.server.keyPath={}\ntls.server.authClient={}\ntls.server.trustCertPath={}\n",
            self.mode.name(),
            p(&self.server_cert_path).unwrap_or_default(),
            p(&self.server_key_path).unwrap_or_default(),
            self.client_auth == ClientAuth::Require,
            p(&self.server_trust_cert_path).unwrap_or_default(),
        )
    }

    /// The server side, `None` when the mode is `disabled`.
    pub fn server(&self) -> io::Result<Option<ServerTls>> {
        if self.mode == TlsMode::Disabled {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.server_cert_path, &self.server_key_path) else {
            return Err(invalid(
                "tls.server.mode needs tls.server.certPath and tls.server.keyPath".into(),
            ));
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let builder = match (self.client_auth, &self.server_trust_cert_path) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(invalid(
                    "tls.server.authClient needs tls.server.trustCertPath".into(),
                ))
            }
            (auth, Some(trust)) => {
                let v = WebPkiClientVerifier::builder_with_provider(load_roots(trust)?, provider());
                let v = if auth == ClientAuth::Optional {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(v.build().map_err(tls_err)?)
            }
        };
        let config = builder
            .with_single_cert(load_certs(cert)?, load_key(key)?)
            .map_err(tls_err)?;
        Ok(Some(ServerTls {
            mode: self.mode,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: self.handshake_timeout,
        }))
    }

    /// The process's own outgoing TLS (`tls.enable`), `None` when off.
    pub fn client(&self) -> io::Result<Option<ClientTls>> {
        if !self
            .client_enable
            .unwrap_or(self.mode == TlsMode::Enforcing)
        {
            return Ok(None);
        }
        if !self.test_mode && self.client_trust_cert_path.is_none() {
            return Err(invalid(
                "tls.enable: outgoing TLS needs tls.client.trustCertPath (or tls.test.mode.enable=true)"
                    .into(),
            ));
        }
        ClientTls::new(&ClientTlsOptions {
            ca: self.client_trust_cert_path.clone(),
            insecure: self.test_mode,
            cert: self.client_cert_path.clone(),
            key: self.client_key_path.clone(),
        })
        .map(Some)
    }
}

/// The server side of TLS on one listening port.
#[derive(Clone)]
pub struct ServerTls {
    mode: TlsMode,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
}

impl ServerTls {
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// Tells TLS from plaintext by the first byte (permissive) or insists on
    /// TLS (enforcing), and runs the handshake; all of it within the
    /// handshake timeout.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        let work = async {
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if first[0] != HANDSHAKE_MAGIC {
                return match self.mode {
                    TlsMode::Permissive | TlsMode::Disabled => Ok(Stream::Tcp(tcp)),
                    TlsMode::Enforcing => Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "plaintext connection refused (tls.server.mode=enforcing)",
                    )),
                };
            }
            let tls = self.acceptor.accept(tcp).await?;
            Ok(Stream::Tls(Box::new(tls)))
        };
        tokio::time::timeout(self.handshake_timeout, work)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// How a client sets up TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// PEM file of the CA(s) the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (RocketMQ's `tls.test.mode.enable`).
    pub insecure: bool,
    /// Client certificate chain and key, for `authClient` servers.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The client side of TLS: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    pub fn new(o: &ClientTlsOptions) -> io::Result<ClientTls> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let builder = match (&o.ca, o.insecure) {
            (_, true) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider()))),
            (Some(ca), false) => builder.with_root_certificates(load_roots(ca)?),
            (None, false) => {
                return Err(invalid(
                    "TLS needs a CA file to trust (--tls-ca) or insecure mode (--tls-insecure)"
                        .into(),
                ))
            }
        };
        let config = match (&o.cert, &o.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(load_certs(c)?, load_key(k)?)
                .map_err(tls_err)?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(invalid(
                    "a client certificate needs both cert and key".into(),
                ))
            }
        };
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the client handshake on `tcp`; `addr` (`host:port`) names the
    /// server whose certificate is checked (a DNS name or an IP address).
    pub async fn connect(&self, addr: &str, tcp: TcpStream) -> io::Result<Stream> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| invalid(format!("bad server name {host:?}: {e}")))?;
        let tls = self.connector.connect(name, tcp).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// The TLS of clients built without an explicit choice (`Routes::connect`,
/// `Producer::new`, ...): set once by the CLI's `--tls` options, like
/// RocketMQ's process-wide `tls.enable` system property.
static CLIENT_DEFAULT: OnceLock<ClientTls> = OnceLock::new();

/// Makes `tls` the process default; false if one was set already.
pub fn set_client_default(tls: ClientTls) -> bool {
    CLIENT_DEFAULT.set(tls).is_ok()
}

/// The process default client TLS, if the process set one.
pub fn client_default() -> Option<ClientTls> {
    CLIENT_DEFAULT.get().cloned()
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn tls_err(e: impl std::fmt::Display) -> io::Error {
    invalid(format!("TLS setup: {e}"))
}

fn pem_err(p: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> io::Error + '_ {
    move |e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(p: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(p)
        .map_err(pem_err(p))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(p))?;
    if certs.is_empty() {
        return Err(invalid(format!("{}: no certificate", p.display())));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(p: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(p).map_err(pem_err(p))
}

fn load_roots(p: &Path) -> io::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(p)? {
        roots.add(c).map_err(tls_err)?;
    }
    Ok(Arc::new(roots))
}

/// Accepts any server certificate but still checks the handshake
/// signatures (so the session keys belong to the certificate shown):
/// RocketMQ's test mode (`InsecureTrustManagerFactory`).
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_parse_and_validate() {
        let c = TlsConfig::from_properties(&map(&[])).unwrap();
        assert_eq!(c.mode, TlsMode::Disabled);
        assert!(c.server().unwrap().is_none());
        assert!(c.client().unwrap().is_none());

        let c = TlsConfig::from_properties(&map(&[
            ("tls.server.mode", "Enforcing"),
            ("tls.server.certPath", "/c.pem"),
            ("tls.server.keyPath", "/k.pem"),
            ("tls.server.authClient", "true"),
            ("tls.server.trustCertPath", "/ca.pem"),
            ("tls.test.mode.enable", "true"),
        ]))
        .unwrap();
        assert_eq!(c.mode, TlsMode::Enforcing);
        assert_eq!(c.client_auth, ClientAuth::Require);
        assert!(c.test_mode);

        for bad in [
            vec![("tls.server.mode", "sometimes")],
            vec![("tls.server.mode", "permissive")],
            vec![("tls.server.authClient", "true")],
            vec![("tls.server.authClient", "yes")],
            vec![("tls.server.keyPassword", "secret")],
        ] {
            assert!(TlsConfig::from_properties(&map(&bad)).is_err(), "{bad:?}");
        }
        // An enforcing server's own client needs something to trust.
        let c = TlsConfig {
            mode: TlsMode::Enforcing,
            ..TlsConfig::default()
        };
        assert!(c.client().is_err());
    }
}
