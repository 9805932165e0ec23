//! Client-side CLI commands: `actormq produce`, `actormq consume` and
//! `actormq admin` (an `mqadmin` subset). Each
//! submodule exposes a clap `Args` struct and an async `run`; the binary's
//! `main` parses the command line and awaits `run` on a tokio runtime.

pub mod acl_admin;
pub mod admin;
pub mod consume;
pub mod controller_admin;
pub mod produce;
pub mod query;

pub use consume::ConsumeArgs;
pub use produce::ProduceArgs;

/// What the commands return: errors are printed by `main`.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Messages per second, guarding against a zero duration.
pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Whether stdout is an interactive terminal (progress bars only then).
pub(crate) fn stdout_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

/// The client TLS options every tool takes (`--tls`, `--tls-ca FILE`,
/// `--tls-insecure`, `--tls-cert`/`--tls-key`): RocketMQ's `tls.enable`,
/// `tls.client.trustCertPath`, `tls.test.mode.enable`,
/// `tls.client.certPath`/`tls.client.keyPath`. Global on the command line,
/// so they may follow any tool's subcommand.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Connect over TLS (to name servers and brokers alike).
    #[arg(long, global = true)]
    pub tls: bool,
    /// PEM file of the CA that signed the servers' certificates (implies --tls).
    #[arg(long = "tls-ca", value_name = "FILE", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Accept any server certificate, e.g. a self-signed test certificate
    /// (RocketMQ's `tls.test.mode.enable`; implies --tls).
    #[arg(long = "tls-insecure", global = true)]
    pub tls_insecure: bool,
    /// Client certificate chain, PEM, for servers with `tls.server.authClient`.
    #[arg(
        long = "tls-cert",
        value_name = "FILE",
        global = true,
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(
        long = "tls-key",
        value_name = "FILE",
        global = true,
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// Whether any TLS option was given.
    pub fn enabled(&self) -> bool {
        self.tls || self.tls_ca.is_some() || self.tls_insecure || self.tls_cert.is_some()
    }

    /// The client TLS these options ask for (`None` without any).
    pub fn client_tls(&self) -> std::io::Result<Option<crate::tls::ClientTls>> {
        if !self.enabled() {
            return Ok(None);
        }
        crate::tls::ClientTls::new(&crate::tls::ClientTlsOptions {
            ca: self.tls_ca.clone(),
            insecure: self.tls_insecure,
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        })
        .map(Some)
    }

    /// Makes these options the default of every client the process builds.
    pub fn install(&self) -> std::io::Result<()> {
        if let Some(t) = self.client_tls()? {
            crate::tls::set_client_default(t);
        }
        Ok(())
    }
}

/// The ACL credentials every tool takes (`--access-key AK --secret-key SK
/// [--security-token T]`): RocketMQ's `accessKey` / `secretKey` /
/// `securityToken` of `SessionCredentials`, which `mqadmin` reads from
/// `conf/tools.yml`. Global, so they may follow any tool's subcommand; with
/// them every request the tool sends is signed (`AclClientRPCHook`).
#[derive(clap::Args, Clone, Default)]
pub struct CredentialArgs {
    /// ACL 2.0 user name (RocketMQ's accessKey) to sign requests with.
    #[arg(
        long = "access-key",
        value_name = "AK",
        global = true,
        requires = "secret_key"
    )]
    pub access_key: Option<String>,
    /// The user's password (RocketMQ's secretKey).
    #[arg(
        long = "secret-key",
        value_name = "SK",
        global = true,
        requires = "access_key"
    )]
    pub secret_key: Option<String>,
    /// Optional security token, signed along with the request.
    #[arg(
        long = "security-token",
        value_name = "TOKEN",
        global = true,
        requires = "access_key"
    )]
    pub security_token: Option<String>,
}

impl CredentialArgs {
    /// Whether any credential option was given.
    pub fn enabled(&self) -> bool {
        self.access_key.is_some() || self.secret_key.is_some() || self.security_token.is_some()
    }

    /// The credentials these options give (`None` without them).
    pub fn credentials(&self) -> Option<crate::client::Credentials> {
        let (ak, sk) = (self.access_key.as_ref()?, self.secret_key.as_ref()?);
        let mut c = crate::client::Credentials::new(ak.clone(), sk.clone());
        c.security_token = self.security_token.clone();
        Some(c)
    }

    /// Makes these credentials the default of every client the process builds.
    pub fn install(&self) {
        if let Some(c) = self.credentials() {
            crate::client::remoting::set_default_credentials(c);
        }
    }
}
