//! The guard: a tower layer in front of every service. For each call it resolves the caller,
//! checks the method's rule, applies the rate and concurrency limits and the deadline, and
//! writes the audit event (refusals always; record-level reads before the answer leaves).

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::policy::{self, Audit};
use super::{Caller, Denied, Identities, Principal};
use crate::api::error::limit_as_exhausted;
use crate::domain::{Access, Actor, Role};
use crate::store::Store;

/// The limits every call passes through.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a call may take to produce its answer (streams: their first response).
    pub deadline: Duration,
    /// Calls being worked on at once, across all callers; more are refused, not queued.
    pub max_concurrent: usize,
    /// Calls per second each principal may make, on average.
    pub per_principal_per_second: NonZeroU32,
    /// Calls a principal may make at once after a quiet spell.
    pub per_principal_burst: NonZeroU32,
}

/// An admitted caller, holding its place among the calls in progress.
type Admitted = (Arc<Principal>, tokio::sync::OwnedSemaphorePermit);
/// A refusal, and who was refused when the caller was identified.
type Refused = (Option<Arc<Principal>>, Denied);

/// What the guard needs to decide about every call.
pub struct Guard {
    identities: Identities,
    store: Store,
    deadline: Duration,
    max_concurrent: usize,
    in_flight: Arc<Semaphore>,
    rates: DefaultKeyedRateLimiter<String>,
    /// Refusals before admission, per caller address.
    refusals: DefaultKeyedRateLimiter<String>,
    /// Calls admitted so far, to forget idle callers' rate state now and then.
    calls: std::sync::atomic::AtomicU64,
}

/// Characters of an undeclared method's path kept in the audit chain.
const MAX_PATH_KEPT: usize = 200;

/// How often the rate limiter forgets callers that have been quiet long enough.
const FORGET_IDLE_EVERY: u64 = 4096;

impl Guard {
    pub fn new(identities: Identities, store: Store, limits: &Limits) -> Self {
        let quota = Quota::per_second(limits.per_principal_per_second)
            .allow_burst(limits.per_principal_burst);
        Self {
            identities,
            store,
            deadline: limits.deadline,
            max_concurrent: limits.max_concurrent,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent)),
            rates: RateLimiter::keyed(quota),
            refusals: RateLimiter::keyed(quota),
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Who is calling: the bearer token's principal, else the client certificate's, else the
    /// public. A credential that names nobody is refused rather than treated as public.
    fn identify(
        &self,
        request: &http::Request<Body>,
        peer: &str,
    ) -> Result<Arc<Principal>, Denied> {
        if let Some(header) = request.headers().get(http::header::AUTHORIZATION) {
            let token = header
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    Denied::Unauthenticated(
                        "the authorization header must be `Bearer TOKEN`".into(),
                    )
                })?;
            return self
                .identities
                .by_token(token.trim())
                .ok_or_else(|| Denied::Unauthenticated("the bearer token is not known".into()));
        }
        let certificates = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|tls| tls.peer_certs());
        if let Some(leaf) = certificates.as_ref().and_then(|chain| chain.first()) {
            return self.identities.by_certificate(leaf).ok_or_else(|| {
                Denied::Unauthenticated(
                    "the client certificate does not name a known principal".into(),
                )
            });
        }
        Ok(Arc::new(Principal::public(peer)))
    }

    /// Admits a call or says why not.
    fn admit(
        &self,
        request: &http::Request<Body>,
        rule: &policy::MethodRule,
        peer: &str,
    ) -> Result<Admitted, Refused> {
        let principal = self.identify(request, peer).map_err(|d| (None, d))?;
        let refuse = |denied: Denied| (Some(Arc::clone(&principal)), denied);
        if !rule.admits(principal.role) {
            return Err(refuse(if principal.role == Role::Public {
                Denied::Unauthenticated(format!("{} needs credentials", rule.name()))
            } else {
                Denied::PermissionDenied(format!(
                    "{} ({}) may not call {}",
                    principal.name,
                    principal.role,
                    rule.name()
                ))
            }));
        }
        let calls = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if calls % FORGET_IDLE_EVERY == FORGET_IDLE_EVERY - 1 {
            // Anonymous callers are keyed by address; without this the state would only grow.
            self.rates.retain_recent();
            self.refusals.retain_recent();
        }
        if let Err(not_until) = self.rates.check_key(&principal.name) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(refuse(Denied::Exhausted(format!(
                "{} is over its rate limit; retry in {} ms",
                principal.name,
                wait.as_millis().max(1)
            ))));
        }
        let permit = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                refuse(Denied::Exhausted(format!(
                    "the server is at its limit of {} calls in progress; retry shortly",
                    self.max_concurrent
                )))
            })?;
        Ok((principal, permit))
    }

    /// Writes a refusal made before the call was admitted to the audit chain and turns it
    /// into the answer. Such refusals are limited per address like calls are per principal:
    /// past the limit the caller is told to slow down and no event is written, so guessing
    /// tokens is slow and cannot fill the disk.
    async fn refuse(
        &self,
        peer: &str,
        actor: Actor,
        method: &str,
        status: Status,
    ) -> http::Response<Body> {
        if self.refusals.check_key(&peer.to_string()).is_err() {
            metrics::counter!(crate::telemetry::REQUESTS, "method" => method.to_string(), "code" => "ResourceExhausted")
                .increment(1);
            tracing::warn!(%peer, method, "refusals from this address are over their limit");
            return Status::resource_exhausted(
                "too many refused calls from this address; slow down",
            )
            .into_http();
        }
        metrics::counter!(
            crate::telemetry::REQUESTS,
            "method" => method.to_string(),
            "code" => format!("{:?}", status.code())
        )
        .increment(1);
        let mut access = Access::by(actor);
        access.outcome = format!("{:?}: {}", status.code(), status.message());
        if let Err(error) = self.store.audit(access).await {
            tracing::error!(%error, "cannot record a refusal in the audit chain");
        }
        status.into_http()
    }
}

/// The guard as a tower layer for `tonic::transport::Server::layer`.
#[derive(Clone)]
pub struct GuardLayer(Arc<Guard>);

impl GuardLayer {
    pub fn new(guard: Guard) -> Self {
        Self(Arc::new(guard))
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            guard: Arc::clone(&self.0),
        }
    }
}

/// A service behind the guard.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Arc<Guard>,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready serves this call; the fresh one waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(guard_call(Arc::clone(&self.guard), inner, request))
    }
}

fn peer_of(request: &http::Request<Body>) -> String {
    let address: Option<SocketAddr> = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    address.map_or_else(|| "an unknown address".into(), |a| a.ip().to_string())
}

/// The outcome an answer carries in its headers: `OK`, or the refusal's code and message.
fn outcome_of(response: &http::Response<Body>) -> String {
    match Status::from_header_map(response.headers()) {
        Some(status) if status.code() != tonic::Code::Ok => {
            format!("{:?}: {}", status.code(), status.message())
        }
        _ => "OK".into(),
    }
}

async fn guard_call<S>(
    guard: Arc<Guard>,
    mut inner: S,
    mut request: http::Request<Body>,
) -> Result<http::Response<Body>, S::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let path = request.uri().path().to_string();
    let peer = peer_of(&request);
    let Some(rule) = policy::rule_for(&path) else {
        // Fail closed: a method nobody declared a rule for answers nobody. The path is the
        // caller's to choose, so only a bounded part of it is kept.
        let path: String = path.chars().take(MAX_PATH_KEPT).collect();
        let actor = Actor::new(format!("caller from {peer}"), Role::Public, path.clone());
        let status = Status::permission_denied(format!("no access rule is declared for {path}"));
        return Ok(guard.refuse(&peer, actor, "undeclared", status).await);
    };
    let (principal, permit) = match guard.admit(&request, rule, &peer) {
        Ok(admitted) => admitted,
        Err((principal, denied)) => {
            let (name, role) = principal.map_or_else(
                || (format!("unidentified caller from {peer}"), Role::Public),
                |p| (p.name.clone(), p.role),
            );
            let actor = Actor::new(name, role, rule.method);
            return Ok(guard
                .refuse(&peer, actor, rule.name(), Status::from(denied))
                .await);
        }
    };
    let caller = Caller::new(principal, rule.method);
    request.extensions_mut().insert(caller.clone());
    let response = match tokio::time::timeout(guard.deadline, inner.call(request)).await {
        Ok(answered) => answered?,
        Err(_) => Status::deadline_exceeded(format!(
            "{} took longer than the server's deadline of {} s",
            rule.name(),
            guard.deadline.as_secs_f64()
        ))
        .into_http(),
    };
    drop(permit);
    let response = match Status::from_header_map(response.headers()) {
        Some(status) if status.code() == tonic::Code::OutOfRange => {
            limit_as_exhausted(status).into_http()
        }
        _ => response,
    };
    let code = Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code());
    metrics::counter!(
        crate::telemetry::REQUESTS,
        "method" => rule.name(),
        "code" => format!("{code:?}")
    )
    .increment(1);
    let outcome = outcome_of(&response);
    let refused = outcome != "OK";
    if (refused || rule.audit == Audit::Read)
        && let Err(error) = guard.store.audit(caller.access(outcome)).await
    {
        tracing::error!(%error, method = rule.method, "cannot write the audit event");
        if !refused {
            // An answer whose reading cannot be recorded is not sent.
            return Ok(Status::unavailable(
                "the audit chain cannot record this read; nothing was sent",
            )
            .into_http());
        }
    }
    Ok(response)
}
