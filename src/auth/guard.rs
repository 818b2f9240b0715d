//! The guard: a tower layer in front of every service. For each call it resolves the caller,
//! checks the method's rule, applies the rate and concurrency limits and the deadline, and
//! records its own refusals. A handler's outcome is recorded by the application when the
//! handler concludes its use case; the guard records only what none concluded (tonic's own
//! refusals, such as bytes that do not decode), and any record-level read no use case
//! concluded, before it leaves, so a forgotten conclusion fails closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::policy;
use super::{Caller, Denied, Identities, Principal};
use crate::api::error::in_contract_terms;
use crate::app::AuditTrail;
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
    /// How long a stopping server waits for open calls before it ends them.
    pub drain: Duration,
}

/// Where a caller's address comes from: the TCP peer, unless the peer is a trusted proxy that
/// names the client in its header.
#[derive(Debug, Clone, Default)]
pub struct ClientAddresses {
    pub trusted_proxies: Vec<IpAddr>,
    pub header: Option<http::HeaderName>,
}

impl ClientAddresses {
    /// The caller's address, as text for the audit chain and the limits.
    fn of(&self, request: &http::Request<Body>) -> String {
        let peer: Option<IpAddr> = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| {
                request
                    .extensions()
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|tls| tls.get_ref().remote_addr())
            })
            .map(|a| a.ip());
        match peer {
            Some(peer) => self.of_peer(peer, request.headers()),
            None => "an unknown address".into(),
        }
    }

    /// The address of a caller connected from `peer`: the peer itself, unless it is a trusted
    /// proxy that names the client in its header. The web front asks this too.
    pub fn of_peer(&self, peer: IpAddr, headers: &http::HeaderMap) -> String {
        let forwarded = self
            .header
            .as_ref()
            .filter(|_| self.trusted_proxies.contains(&peer))
            .and_then(|header| headers.get_all(header).iter().next_back())
            .and_then(|value| value.to_str().ok())
            // The proxy appends the address it saw; earlier entries are the client's to forge.
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        forwarded.unwrap_or(peer).to_string()
    }
}

/// An admitted caller, holding its place among the calls in progress.
type Admitted = (Arc<Principal>, Places);

/// A call's places among those in progress: one of all calls, and for a caller without
/// credentials one of the share kept for such callers. Held until the answer has gone out.
struct Places {
    _call: OwnedSemaphorePermit,
    /// Without credentials: one of the public's share; with them: one of the principal's.
    _share: OwnedSemaphorePermit,
}
/// A refusal, and who was refused when the caller was identified.
type Refused = (Option<Arc<Principal>>, Denied);

/// What the guard needs to decide about every call.
pub struct Guard {
    identities: Identities,
    store: Store,
    addresses: ClientAddresses,
    /// Where refusals and reads are recorded, shared with the web front.
    trail: Arc<AuditTrail>,
    deadline: Duration,
    max_concurrent: usize,
    in_flight: Arc<Semaphore>,
    /// Calls without credentials may hold at most this share of the places, so idle public
    /// streams (health watches, reflection) can never crowd out the partners.
    anonymous_in_flight: Arc<Semaphore>,
    /// Each identified principal may likewise hold at most this share, so one partner's idle
    /// streams never crowd out the others.
    principal_in_flight: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    share_max: usize,
    rates: DefaultKeyedRateLimiter<String>,
    /// Calls admitted so far, to forget idle callers' rate state now and then.
    calls: std::sync::atomic::AtomicU64,
}

/// Characters of an unknown method's path repeated in the answer.
const MAX_PATH_KEPT: usize = 200;

/// The places one principal, or the callers without credentials together, may hold: a
/// quarter of all, at least one.
fn share(max_concurrent: usize) -> usize {
    (max_concurrent / 4).max(1)
}

/// How often the rate limiter forgets callers that have been quiet long enough.
const FORGET_IDLE_EVERY: u64 = 4096;

impl Guard {
    pub fn new(
        identities: Identities,
        store: Store,
        limits: &Limits,
        addresses: ClientAddresses,
        trail: Arc<AuditTrail>,
    ) -> Self {
        let quota = Quota::per_second(limits.per_principal_per_second)
            .allow_burst(limits.per_principal_burst);
        Self {
            identities,
            store,
            addresses,
            trail,
            deadline: limits.deadline,
            max_concurrent: limits.max_concurrent,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent)),
            anonymous_in_flight: Arc::new(Semaphore::new(share(limits.max_concurrent))),
            principal_in_flight: std::sync::Mutex::new(HashMap::new()),
            share_max: share(limits.max_concurrent),
            rates: RateLimiter::keyed(quota),
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Who is calling: the bearer token's principal, else the client certificate's, else the
    /// public. A credential that names nobody is refused rather than treated as public.
    fn identify(
        &self,
        request: &http::Request<Body>,
        peer: &str,
    ) -> Result<(Arc<Principal>, bool), Denied> {
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
                .map(|principal| (principal, false))
                .ok_or_else(|| Denied::Unauthenticated("the bearer token is not known".into()));
        }
        let certificates = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|tls| tls.peer_certs());
        if let Some(leaf) = certificates.as_ref().and_then(|chain| chain.first()) {
            return self
                .identities
                .by_certificate(leaf)
                .map(|principal| (principal, false))
                .ok_or_else(|| {
                    Denied::Unauthenticated(
                        "the client certificate does not name a known principal".into(),
                    )
                });
        }
        Ok((Arc::new(Principal::public(peer)), true))
    }

    /// Admits a call or says why not.
    fn admit(
        &self,
        request: &http::Request<Body>,
        rule: &policy::MethodRule,
        peer: &str,
    ) -> Result<Admitted, Refused> {
        let (principal, anonymous) = self.identify(request, peer).map_err(|d| (None, d))?;
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
            self.trail.forget_idle();
        }
        if let Err(not_until) = self.rates.check_key(&principal.name) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(refuse(Denied::Exhausted(format!(
                "{} is over its rate limit; retry in {} ms",
                principal.name,
                wait.as_millis().max(1)
            ))));
        }
        let (pool, who) = if anonymous {
            (
                Arc::clone(&self.anonymous_in_flight),
                "callers without credentials are".to_string(),
            )
        } else {
            // Principals come from the config, so this map is bounded by it.
            let mut pools = self
                .principal_in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let pool = pools
                .entry(principal.name.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.share_max)));
            (Arc::clone(pool), format!("{} is", principal.name))
        };
        let share = pool.try_acquire_owned().map_err(|_| {
            refuse(Denied::Exhausted(format!(
                "{who} at the limit of {} calls in progress; retry shortly",
                self.share_max
            )))
        })?;
        let call = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                refuse(Denied::Exhausted(format!(
                    "the server is at its limit of {} calls in progress; retry shortly",
                    self.max_concurrent
                )))
            })?;
        Ok((
            principal,
            Places {
                _call: call,
                _share: share,
            },
        ))
    }

    /// Records a refusal made before the call was admitted and turns it into the answer.
    async fn refuse(
        &self,
        peer: &str,
        actor: Actor,
        metric: &str,
        status: Status,
    ) -> http::Response<Body> {
        metrics::counter!(
            crate::telemetry::REQUESTS,
            "method" => metric.to_string(),
            "code" => format!("{:?}", status.code())
        )
        .increment(1);
        let mut access = Access::by(actor);
        access.outcome = format!("{:?}: {}", status.code(), status.message());
        self.trail.record_refusal(peer, access, &status).await;
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

async fn guard_call<S>(
    guard: Arc<Guard>,
    mut inner: S,
    mut request: http::Request<Body>,
) -> Result<http::Response<Body>, S::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let path = request.uri().path().to_string();
    let peer = guard.addresses.of(&request);
    let Some(rule) = policy::rule_for(&path) else {
        // Fail closed: every method the server has is declared (a unit test holds that), so a
        // path without a rule names no method; it reaches no service and touches no data. The
        // path is the caller's to choose, so only a bounded part of it is repeated.
        let path: String = path.chars().take(MAX_PATH_KEPT).collect();
        metrics::counter!(crate::telemetry::REQUESTS, "method" => "unknown", "code" => "Unimplemented")
            .increment(1);
        return Ok(Status::unimplemented(format!("the server has no method {path}")).into_http());
    };
    let (principal, places) = match guard.admit(&request, rule, &peer) {
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
    let caller = Caller::new(principal, rule, &peer);
    request.extensions_mut().insert(caller.clone());
    let mut draining = guard.store.draining();
    let answering = tokio::time::timeout(guard.deadline, inner.call(request));
    let response = tokio::select! {
        answered = answering => match answered {
            Ok(answered) => answered?,
            Err(_) => Status::deadline_exceeded(format!(
                "{} took longer than the server's deadline of {} s",
                rule.name(),
                guard.deadline.as_secs_f64()
            ))
            .into_http(),
        },
        // A call still waiting for its client (an idle upload) when the server stops is told
        // to come back, after a grace for calls that are about to answer.
        () = async {
            let _ = draining.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(DRAIN_GRACE).await;
        } => shutting_down().into_http(),
    };
    // The answer's status, read once: a refusal rides in the headers of a trailers-only answer.
    let mut refusal =
        Status::from_header_map(response.headers()).filter(|s| s.code() != tonic::Code::Ok);
    let response = match refusal.as_ref().and_then(in_contract_terms) {
        Some(restated) => {
            let answer = restated.clone().into_http();
            refusal = Some(restated);
            answer
        }
        None => response,
    };
    metrics::counter!(
        crate::telemetry::REQUESTS,
        "method" => rule.name(),
        "code" => format!("{:?}", refusal.as_ref().map_or(tonic::Code::Ok, Status::code))
    )
    .increment(1);
    // A handler concludes its call through the application, which records its outcome as a
    // typed value. A call tonic itself refused (a message too large, bytes that do not decode)
    // never reached one, and only its status says why: that is recorded here.
    if !caller.is_concluded() {
        match refusal {
            Some(refusal) => {
                let outcome = format!("{:?}: {}", refusal.code(), refusal.message());
                guard
                    .trail
                    .record_refusal(&peer, caller.access(outcome), &refusal)
                    .await;
            }
            // Fail closed: a record-level read that no use case concluded is still recorded
            // before it leaves.
            None if rule.audit == policy::Audit::Read => {
                if let Err(refusal) = guard.trail.record_read(caller.access("OK".into())).await {
                    return Ok(refusal.into_http());
                }
            }
            None => {}
        }
    }
    // The call holds its place among those in progress until its answer is over, so that
    // open streams count against the limit like unary calls do.
    Ok(response.map(|body| Body::new(Answering::new(body, places, draining))))
}

/// How long a call that is about to answer is given once the server starts stopping.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; reconnect and resume")
}

/// An answer on its way out: holds the call's concurrency permit until it ends, and ends a
/// stream that is waiting for more (a watch, an idle push) with UNAVAILABLE once the server
/// starts stopping, so the drain never waits on a client.
struct Answering {
    inner: Body,
    _places: Places,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl Answering {
    fn new(inner: Body, places: Places, mut draining: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            inner,
            _places: places,
            stopping: Box::pin(async move {
                let _ = draining.wait_for(|stopping| *stopping).await;
            }),
            ended: false,
        }
    }
}

impl http_body::Body for Answering {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // What is ready goes out first, so an answer already made is never cut short.
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                if frame.as_ref().is_ok_and(http_body::Frame::is_trailers) {
                    self.ended = true;
                }
                Poll::Ready(Some(frame))
            }
            Poll::Pending => match self.stopping.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.ended = true;
                    let mut trailers = http::HeaderMap::new();
                    // Only a status with an unencodable message fails; this one is fixed text.
                    let _ = shutting_down().add_header(&mut trailers);
                    Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
