//! The server: both fronts over one application, the background tasks that keep the
//! register, and an orderly stop.

use std::future::Future;

use std::sync::Arc;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use crate::config::{self, Config};
use crate::proto::alerts_server::AlertsServer;
use crate::proto::audit_server::AuditServer;
use crate::proto::directory_server::DirectoryServer;
use crate::proto::inspection_server::InspectionServer;
use crate::proto::open_data_server::OpenDataServer;
use crate::proto::operations_server::OperationsServer;
use crate::proto::reviews_server::ReviewsServer;
use crate::proto::risk_register_server::RiskRegisterServer;
use crate::store::{self, Store};

use crate::{api, app, auth, proto, telemetry};

/// Largest record message accepted; records are small, so anything larger is refused unread.
const MAX_RECORD_MESSAGE: usize = 64 * 1024;
/// Largest review message accepted: the most findings and recommendations a review may hold.
const MAX_REVIEW_MESSAGE: usize = 1024 * 1024;
/// Largest geography chunk accepted.
const MAX_DIRECTORY_MESSAGE: usize = 8 * 1024 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("TLS: cannot read {path}: {source}")]
    TlsFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The server's TLS settings from the `[tls]` table, files read.
fn server_tls(tls: &config::TlsConfig) -> Result<tonic::transport::ServerTlsConfig, ServeError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServeError::TlsFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    let mut settings = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(client_ca) = &tls.client_ca {
        settings =
            settings.client_ca_root(tonic::transport::Certificate::from_pem(read(client_ca)?));
    }
    Ok(settings)
}

/// Accepts connections from a listener that outlives any one server on it, so that health
/// can answer NOT_SERVING while the store opens and the full server take over afterwards.
struct SharedIncoming(Arc<TcpListener>);

impl tokio_stream::Stream for SharedIncoming {
    type Item = std::io::Result<tokio::net::TcpStream>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_accept(cx).map(|accepted| {
            Some(accepted.map(|(stream, _)| {
                // Small answers must not wait for Nagle's algorithm and a delayed ACK (~40 ms).
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
                stream
            }))
        })
    }
}

/// Serves the register on `listener` until `shutdown` completes, then drains open calls,
/// lets the writer finish and flush, and returns.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with_web(listener, None, store, config, shutdown).await
}

/// Serves gRPC on `listener` and, when `web` is given, the web front on it, until `shutdown`.
pub async fn serve_with_web(
    listener: TcpListener,
    web: Option<TcpListener>,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    serve_shared(
        Arc::new(listener),
        web,
        reporter,
        health_service,
        store,
        config,
        shutdown,
    )
    .await
}

/// Listens at once, answering health checks with NOT_SERVING while `open` opens and recovers
/// the store (which replays the log), then serves the register as [`serve`] does.
pub async fn serve_opening(
    listener: TcpListener,
    web: Option<TcpListener>,
    open: impl FnOnce() -> Result<Store, store::StoreError> + Send + 'static,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let listener = Arc::new(listener);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let (opened, opening) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(server_tls(tls)?)?;
    }
    let mut recovering = tokio::spawn(
        builder
            .layer(tower::layer::layer_fn(|inner| OnlyHealth { inner }))
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(SharedIncoming(Arc::clone(&listener)), async move {
                let _ = opening.await;
            }),
    );
    tracing::info!("opening the store; health answers NOT_SERVING until it is recovered");
    let opening_store = tokio::task::spawn_blocking(open);
    tokio::pin!(shutdown);
    let store = tokio::select! {
        opened = opening_store => opened
            .map_err(|e| store::StoreError::WriterFailed(e.to_string()))??,
        () = &mut shutdown => {
            tracing::info!("asked to stop while opening the store");
            recovering.abort();
            return Ok(());
        }
    };
    // Only one server may accept from the listener at a time (a listener wakes only the last
    // task that polled it), so the recovery server stops before the full one starts; a health
    // watch left open is cut after a second rather than holding up the switch.
    let _ = opened.send(());
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut recovering)
        .await
        .is_err()
    {
        recovering.abort();
        let _ = recovering.await;
    }
    serve_shared(
        listener,
        web,
        reporter,
        health_service,
        store,
        config,
        shutdown,
    )
    .await
}

/// On a register other nodes write too: health says NOT_SERVING while this node has gone
/// longer than `max_lag` without knowing it holds the register's head (it cannot reach the
/// database, or its writer is stuck), so a balancer sends callers to a node that is current.
async fn report_lag(
    store: Store,
    health: tonic_health::server::HealthReporter,
    max_lag: std::time::Duration,
) {
    let mut serving = true;
    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        every.tick().await;
        let Some(behind) = store.behind() else {
            return;
        };
        let current = behind <= max_lag;
        if current != serving {
            serving = current;
            if current {
                tracing::info!("this node holds the register's head again; serving");
                health.set_service_status("", ServingStatus::Serving).await;
            } else {
                tracing::warn!(
                    behind_seconds = behind.as_secs(),
                    "this node has fallen behind the register; health says NOT_SERVING"
                );
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            }
        }
    }
}

/// While the store opens, every call but a health check is told to come back.
#[derive(Clone)]
struct OnlyHealth<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for OnlyHealth<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            let answer = self.inner.call(request);
            return Box::pin(answer);
        }
        Box::pin(async {
            Ok(tonic::Status::unavailable(
                "the register is opening its store and replaying the log; retry shortly",
            )
            .into_http())
        })
    }
}

async fn serve_shared<H: tonic_health::pb::health_server::Health>(
    listener: Arc<TcpListener>,
    web: Option<TcpListener>,
    health: tonic_health::server::HealthReporter,
    health_service: tonic_health::pb::health_server::HealthServer<H>,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    // Reflection in both versions: grpcurl and current clients ask v1, older tools and
    // Python's reflection package v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    health
        .set_serving::<RiskRegisterServer<api::risk_register::RiskRegisterService>>()
        .await;
    health
        .set_serving::<DirectoryServer<api::directory::DirectoryService>>()
        .await;
    health
        .set_serving::<InspectionServer<api::inspection::InspectionService>>()
        .await;
    health
        .set_serving::<AlertsServer<api::alerts::AlertsService>>()
        .await;
    health
        .set_serving::<AuditServer<api::audit::AuditService>>()
        .await;
    health
        .set_serving::<OperationsServer<api::operations::OperationsService>>()
        .await;
    health
        .set_serving::<OpenDataServer<api::open_data::OpenDataService>>()
        .await;
    health
        .set_serving::<ReviewsServer<api::reviews::ReviewsService>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;
    let lag = store
        .behind()
        .map(|_| tokio::spawn(report_lag(store.clone(), health.clone(), config.max_lag())));

    let limits = config.limits()?;
    let trail = Arc::new(app::AuditTrail::new(
        store.clone(),
        limits.per_principal_per_second,
        limits.per_principal_burst,
    ));
    let application = app::Application::new(store.clone(), Arc::clone(&trail));

    let risk_register = RiskRegisterServer::new(api::risk_register::RiskRegisterService::new(
        application.clone(),
    ))
    .max_decoding_message_size(MAX_RECORD_MESSAGE);
    let directory =
        DirectoryServer::new(api::directory::DirectoryService::new(application.clone()))
            .max_decoding_message_size(MAX_DIRECTORY_MESSAGE);
    let inspection =
        InspectionServer::new(api::inspection::InspectionService::new(application.clone()))
            .max_decoding_message_size(MAX_RECORD_MESSAGE);

    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let incoming = SharedIncoming(listener);

    let alerts = AlertsServer::new(api::alerts::AlertsService::new(application.clone()))
        .max_decoding_message_size(MAX_RECORD_MESSAGE);
    let audit = AuditServer::new(api::audit::AuditService::new(application.clone()))
        .max_decoding_message_size(MAX_RECORD_MESSAGE);
    let open_data = OpenDataServer::new(api::open_data::OpenDataService::new(application.clone()))
        .max_decoding_message_size(MAX_RECORD_MESSAGE);
    // A review with its findings and recommendations is larger than a record, never more.
    let reviews = ReviewsServer::new(api::reviews::ReviewsService::new(application.clone()))
        .max_decoding_message_size(MAX_REVIEW_MESSAGE);
    let operations =
        OperationsServer::new(api::operations::OperationsService::new(application.clone()))
            .max_decoding_message_size(MAX_RECORD_MESSAGE);
    let identities = auth::Identities::from_config(&config.principals).map_err(|reason| {
        config::ConfigError::Invalid {
            key: "principal".into(),
            reason,
        }
    })?;
    let guard = auth::guard::Guard::new(
        identities,
        store.clone(),
        &limits,
        config.client_addresses()?,
        Arc::clone(&trail),
    );

    // Refusals past the per-address limit are written as aggregated events now and then, and
    // once more when the server stops (the task is asked to stop, never cut off mid-flush).
    let (stop_tallying, tallying_stopped) = tokio::sync::oneshot::channel::<()>();
    let tallying = {
        let store = store.clone();
        let refusals = trail.tally();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(app::trail::TALLY_FLUSH_EVERY);
            tokio::pin!(tallying_stopped);
            loop {
                let stopping = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = &mut tallying_stopped => true,
                };
                if let Err(error) = refusals.flush(&store).await {
                    tracing::error!(%error, "cannot record aggregated refusals; kept for later");
                }
                if stopping {
                    return;
                }
            }
        })
    };

    // The staleness and overdue-action sweep runs on a clock of its own.
    let sweeper = {
        let store = store.clone();
        let every = config.sweep_interval();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match store.sweep_stale().await {
                    Ok(0) => {}
                    Ok(raised) => tracing::info!(raised, "staleness sweep raised alerts"),
                    Err(error) => {
                        tracing::warn!(%error, "staleness sweep stopped");
                        return;
                    }
                }
            }
        })
    };

    // Releases of the public table are cut on the register's clock, at the schedule's points.
    let releaser = config.release_schedule()?.map(|schedule| {
        let store = store.clone();
        let every = config.release_check_interval();
        tokio::spawn(async move {
            if let Err(error) = store.keep_release_schedule(schedule, every).await {
                tracing::warn!(%error, "scheduled releases stopped");
            }
        })
    });

    // What the store holds, for the metrics endpoint (a no-op without one).
    let gauges = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                ticks.tick().await;
                metrics::gauge!(telemetry::LOG_HEAD).set(store.head_sequence() as f64);
                let sizing = store.clone();
                if let Ok(Ok(bytes)) =
                    tokio::task::spawn_blocking(move || sizing.size_on_disk()).await
                {
                    metrics::gauge!(telemetry::STORE_BYTES).set(bytes as f64);
                }
            }
        })
    };

    // The web front, over the same application, stops when the gRPC server starts draining.
    let (stop_web, web_stopping) = tokio::sync::watch::channel(false);
    let stop_web = Arc::new(stop_web);
    let web_front = match web {
        Some(web_listener) => {
            let front = crate::web::Web::new(
                application.clone(),
                auth::Identities::from_config(&config.principals).map_err(|reason| {
                    config::ConfigError::Invalid {
                        key: "principal".into(),
                        reason,
                    }
                })?,
                crate::web::WebOptions {
                    tls: config.tls.is_some(),
                    sessions: config.session_limits()?,
                    addresses: config.client_addresses()?,
                    limits: limits.clone(),
                },
            );
            let tls = config
                .tls
                .as_ref()
                .map(crate::web::tls::acceptor)
                .transpose()?;
            let mut stopping = web_stopping.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            Some(tokio::spawn(crate::web::serve(
                web_listener,
                tls,
                front,
                stopped,
            )))
        }
        None => None,
    };

    let draining = health.clone();
    let draining_store = store.clone();
    let web_draining = Arc::clone(&stop_web);
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
        let _ = web_draining.send(true);
        tracing::info!("shutting down: draining open calls");
        draining
            .set_service_status("", ServingStatus::NotServing)
            .await;
        // Watch streams never end by themselves: tell them to, so the drain can finish.
        draining_store.begin_draining();
    };
    tracing::info!(%address, "serving marr.v1");
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(server_tls(tls)?)?;
    }
    let serving = builder
        .layer(auth::guard::GuardLayer::new(guard))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(risk_register)
        .add_service(directory)
        .add_service(inspection)
        .add_service(alerts)
        .add_service(audit)
        .add_service(operations)
        .add_service(open_data)
        .add_service(reviews)
        .serve_with_incoming_shutdown(incoming, shutdown);
    // Streams end themselves once the drain begins (see `auth::guard`); whatever is still
    // open after the drain period is cut, so a stop always finishes in bounded time.
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served?,
        () = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(limits.drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(
                seconds = limits.drain.as_secs(),
                "calls still open after the drain period; closing them"
            );
        }
    }
    // The background tasks hold the store; they are gone, not only told to go, before it is
    // closed, so a restart can take the directory's lock at once.
    for task in [Some(sweeper), releaser, Some(gauges), lag]
        .into_iter()
        .flatten()
    {
        task.abort();
        let _ = task.await;
    }
    // Pages answer at once; live alert streams end when the store drains. What is still open
    // after the drain period is cut.
    if let Some(mut web_front) = web_front {
        let _ = stop_web.send(true);
        if tokio::time::timeout(limits.drain, &mut web_front)
            .await
            .is_err()
        {
            web_front.abort();
            let _ = web_front.await;
        }
    }
    let _ = stop_tallying.send(());
    let _ = tallying.await;
    store.close().await?;
    tracing::info!(head = store.head_sequence(), "store flushed; stopped");
    Ok(())
}
