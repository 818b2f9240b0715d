//! The client subcommands: they talk to a running server over gRPC like any partner system.

pub mod agencies;
pub mod backup;
pub mod boundaries;
pub mod demo;
pub mod dev_certs;
pub mod export;
pub mod extract;
pub mod inspect;
pub mod neighbours;
pub mod places;
pub mod population;
pub mod pseudonymise;
pub mod push;
pub mod reviews;
pub mod verify;
pub mod watch;

use std::path::PathBuf;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto::alerts_client::AlertsClient;
use crate::proto::audit_client::AuditClient;
use crate::proto::directory_client::DirectoryClient;
use crate::proto::inspection_client::InspectionClient;
use crate::proto::open_data_client::OpenDataClient;
use crate::proto::operations_client::OperationsClient;
use crate::proto::reviews_client::ReviewsClient;
use crate::proto::risk_register_client::RiskRegisterClient;

/// Where a client subcommand finds the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = "MARR_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Bearer token sent as `authorization: Bearer TOKEN`.
    #[arg(long, env = "MARR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (turns TLS on).
    #[arg(long, env = "MARR_CA")]
    pub ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for mutual TLS.
    #[arg(long, env = "MARR_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM file of this client's private key, for mutual TLS.
    #[arg(long, env = "MARR_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for a server that is still opening its store (health NOT_SERVING)
    /// before giving up; 0 does not wait.
    #[arg(long, env = "MARR_WAIT", default_value_t = 30, value_name = "SECONDS")]
    pub wait: u64,
}

impl ServerArgs {
    /// Plain connection settings for a server URL, as tests and the demo use.
    pub fn plain(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            token: None,
            ca: None,
            cert: None,
            key: None,
            wait: 0,
        }
    }

    fn tls(&self) -> Result<Option<ClientTlsConfig>, ClientError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| ClientError::Input {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        if self.ca.is_none() && self.cert.is_none() && !self.server.starts_with("https:") {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }
}

/// Why a client subcommand could not do its work; each prints as one line that starts with
/// the gRPC code name, so scripts can tell a refusal from an outage.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("UNAVAILABLE: cannot reach the server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Refused(#[from] tonic::Status),
    #[error("INVALID_ARGUMENT: {path}: {reason}")]
    Input { path: String, reason: String },
    #[error("INVALID_ARGUMENT: the token is not usable as a header value")]
    BadToken,
}

/// A status code as the gRPC specification spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A connection to the server with the caller's credentials.
#[derive(Clone)]
pub struct Connection {
    channel: Channel,
    bearer: Bearer,
}

pub type Authenticated = InterceptedService<Channel, Bearer>;

impl Connection {
    /// Connects once; an unreachable server is an error here, not on the first call.
    pub async fn open(args: &ServerArgs) -> Result<Self, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            server: args.server.clone(),
            reason,
        };
        let endpoint =
            Endpoint::from_shared(args.server.clone()).map_err(|e| unreachable(e.to_string()))?;
        let endpoint = match args.tls()? {
            Some(tls) => endpoint
                .tls_config(tls)
                .map_err(|e| unreachable(error_chain(&e)))?,
            None => endpoint,
        };
        let channel = endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let bearer = args.token.as_deref().map(bearer).transpose()?;
        let connection = Self {
            channel,
            bearer: Bearer(bearer),
        };
        connection
            .until_serving(std::time::Duration::from_secs(args.wait))
            .await?;
        Ok(connection)
    }

    /// Waits while the server says it is still opening its store (health NOT_SERVING, or
    /// UNAVAILABLE while it switches over), for at most `patience`. Any other answer, a
    /// refusal of the caller included, is left for the real call to report.
    async fn until_serving(&self, patience: std::time::Duration) -> Result<(), ClientError> {
        use tonic_health::pb::health_check_response::ServingStatus;
        if patience.is_zero() {
            return Ok(());
        }
        let give_up = tokio::time::Instant::now() + patience;
        let mut health = self.client(tonic_health::pb::health_client::HealthClient::new);
        loop {
            let opening = match health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
            {
                Ok(answer) => answer.into_inner().status() == ServingStatus::NotServing,
                Err(status) => status.code() == tonic::Code::Unavailable,
            };
            if !opening {
                return Ok(());
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(ClientError::Refused(tonic::Status::unavailable(format!(
                    "the server is still opening its store after {} s (--wait)",
                    patience.as_secs()
                ))));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The same connection carrying another principal's bearer token.
    pub fn with_token(&self, token: &str) -> Result<Self, ClientError> {
        Ok(Self {
            channel: self.channel.clone(),
            bearer: Bearer(Some(bearer(token)?)),
        })
    }

    /// Any generated client (health, reflection) over this connection and its credentials.
    pub fn client<C>(&self, make: impl FnOnce(Authenticated) -> C) -> C {
        make(InterceptedService::new(
            self.channel.clone(),
            self.bearer.clone(),
        ))
    }

    pub fn open_data(&self) -> OpenDataClient<Authenticated> {
        OpenDataClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn operations(&self) -> OperationsClient<Authenticated> {
        OperationsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(4 * 1024 * 1024)
    }

    pub fn audit(&self) -> AuditClient<Authenticated> {
        AuditClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn risk_register(&self) -> RiskRegisterClient<Authenticated> {
        RiskRegisterClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn directory(&self) -> DirectoryClient<Authenticated> {
        DirectoryClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn alerts(&self) -> AlertsClient<Authenticated> {
        AlertsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn inspection(&self) -> InspectionClient<Authenticated> {
        InspectionClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn reviews(&self) -> ReviewsClient<Authenticated> {
        ReviewsClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, ClientError> {
    format!("Bearer {token}")
        .parse::<MetadataValue<Ascii>>()
        .map_err(|_| ClientError::BadToken)
}

/// An error and its causes on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !line.contains(&cause_text) {
            line.push_str(": ");
            line.push_str(&cause_text);
        }
        source = cause.source();
    }
    line
}
