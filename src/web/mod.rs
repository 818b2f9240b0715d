//! The web front: pages for inspectors, boards, agencies and the public, drawn by the server
//! in the GOV.UK Design System's look, over the same application as gRPC. A page is allowed
//! exactly when the gRPC call it stands for is (the policy table decides both), and a page that
//! shows record-level data writes the same audit event as that call.
//!
//! It listens on its own address (`--http-listen`), not on the gRPC port: browsers speak
//! HTTP/1.1 with cookies and forms, gRPC clients HTTP/2 with bearer tokens, and operators put
//! the two behind different proxies and firewall rules.

pub mod agency;
pub mod assets;
pub mod board;
pub mod inspector;
pub mod page;
pub mod public;
pub mod reviews;
pub mod session;
pub mod sign_in;
pub mod tls;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::app::Application;
use crate::auth::{Caller, Identities, Principal};
use crate::domain::Role;
pub use page::PageError;
use session::{Session, SessionLimits, Sessions};

/// How the web front is set up.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Served over TLS: cookies are `Secure` and take the `__Host-` prefix.
    pub tls: bool,
    pub sessions: SessionLimits,
    /// Where visitors' addresses come from: the peer, or a trusted proxy's header.
    pub addresses: crate::auth::guard::ClientAddresses,
    /// The same limits as gRPC calls: pages per second per principal (the public by
    /// address), and live alert streams one principal may hold open at once.
    pub limits: crate::auth::guard::Limits,
}

/// What every page handler shares.
#[derive(Clone)]
pub struct Web(Arc<WebState>);

pub struct WebState {
    pub app: Application,
    identities: Identities,
    sessions: Sessions,
    tls: bool,
    addresses: crate::auth::guard::ClientAddresses,
    /// Sign-in attempts per address, so tokens cannot be guessed at speed.
    sign_ins: DefaultKeyedRateLimiter<IpAddr>,
    /// Pages per principal (the public: per address), as gRPC calls are limited.
    pages: DefaultKeyedRateLimiter<String>,
    /// Live alert streams each principal holds open; a stream holds its permit until it ends.
    streams: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    streams_per_principal: usize,
}

impl std::ops::Deref for Web {
    type Target = WebState;
    fn deref(&self) -> &WebState {
        &self.0
    }
}

/// Sign-in attempts an address may make per minute, after a burst.
const SIGN_INS_PER_MINUTE: u32 = 10;

impl Web {
    pub fn new(app: Application, identities: Identities, options: WebOptions) -> Self {
        let per_minute = NonZeroU32::new(SIGN_INS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(WebState {
            app,
            identities,
            sessions: Sessions::new(options.sessions),
            tls: options.tls,
            addresses: options.addresses,
            sign_ins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            pages: RateLimiter::keyed(
                Quota::per_second(options.limits.per_principal_per_second)
                    .allow_burst(options.limits.per_principal_burst),
            ),
            streams: std::sync::Mutex::default(),
            streams_per_principal: (options.limits.max_concurrent / 4).max(1),
        }))
    }

    /// The session cookie's name: under TLS the `__Host-` prefix binds it to this host and
    /// path and requires `Secure`.
    fn session_cookie(&self) -> &'static str {
        if self.tls {
            "__Host-marr-session"
        } else {
            "marr-session"
        }
    }

    /// The attributes every cookie of ours carries.
    fn cookie_attributes(&self) -> &'static str {
        if self.tls {
            "Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "Path=/; HttpOnly; SameSite=Strict"
        }
    }
}

/// Largest form a page accepts.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Every page and asset the web front serves.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(public::home))
        .route("/sign-in", get(sign_in::form).post(sign_in::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{name}", get(assets::asset))
        .route("/releases", get(public::releases))
        .route("/releases/{number}", get(public::release))
        .route("/releases/{number}/table.csv", get(public::release_csv))
        .route("/places/{code}", get(inspector::place))
        .route("/places/{code}/compare", get(inspector::compare))
        .route("/places/{code}/risks", get(inspector::risks))
        .route("/places/{code}/enquiries", get(reviews::enquiries))
        .route("/reviews", get(reviews::reviews))
        .route("/reviews/{id}", get(reviews::review))
        .route("/lessons", get(reviews::lessons))
        .route(
            "/subjects",
            get(inspector::subject_form).post(inspector::trail),
        )
        .route(
            "/snapshots",
            get(inspector::snapshots).post(inspector::create_snapshot),
        )
        .route("/snapshots/{id}", get(inspector::snapshot))
        .route("/alerts", get(board::alerts))
        .route("/alerts/live", get(board::live))
        .route("/records", get(agency::records))
        .route("/records/access", get(agency::access))
        .fallback(page::not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(protective_headers))
        .with_state(web)
}

/// Serves the web front on `listener`, over TLS when given an acceptor, until `shutdown`
/// completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    web: Web,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(web);
    match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<tls::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<tls::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
}

/// The Content Security Policy: our own styles and scripts only, no inline script or style,
/// no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Headers on every answer: the CSP, no sniffing, no referrer, no framing, and no caching of
/// pages (they may show record-level data); assets may be cached.
async fn protective_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        header::CACHE_CONTROL,
        if asset {
            "public, max-age=3600"
        } else {
            "no-store"
        },
    );
    response
}

/// Whoever asked for a page: a signed-in principal with its session, or the public.
#[derive(Clone)]
pub struct Visitor {
    pub principal: Arc<Principal>,
    pub session: Option<Session>,
    pub address: String,
    /// The client certificate presented under mutual TLS, if any.
    pub certificate: Option<Vec<u8>>,
}

impl FromRequestParts<Web> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<tls::Peer>>();
        let address = peer.map_or_else(
            || "an unknown address".into(),
            |c| web.addresses.of_peer(c.0.address.ip(), &parts.headers),
        );
        let certificate = peer.and_then(|c| c.0.certificate.clone());
        let session =
            cookie(&parts.headers, web.session_cookie()).and_then(|id| web.sessions.find(id));
        let principal = session.as_ref().map_or_else(
            || Arc::new(Principal::public(&address)),
            |s| Arc::clone(&s.principal),
        );
        Ok(Self {
            principal,
            session,
            address,
            certificate,
        })
    }
}

/// A cookie's value from the request, if sent once; a name sent twice is not trusted.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

impl Visitor {
    /// Admits the visitor to the page standing for `method`, as the policy table says, within
    /// the principal's rate of calls.
    pub async fn admit(&self, web: &Web, method: &str) -> Result<Caller, PageError> {
        let caller = web
            .app
            .admit(Arc::clone(&self.principal), method, &self.address)
            .await
            .map_err(|status| PageError::new(status, self))?;
        let key = match self.session {
            Some(_) => self.principal.name.clone(),
            None => format!("public from {}", self.address),
        };
        if web.pages.check_key(&key).is_err() {
            let over = crate::app::AppError::Exhausted(format!(
                "{} is over its rate limit; wait a moment and try again",
                self.principal.name
            ));
            let refused = web.app.conclude::<()>(&caller, Err(over)).await;
            return Err(PageError::new(
                refused
                    .err()
                    .unwrap_or_else(|| tonic::Status::resource_exhausted("over the rate limit")),
                self,
            ));
        }
        Ok(caller)
    }

    /// Concludes a page's use case as its call's would be (recorded as the policy says), and
    /// turns a refusal into its page.
    pub async fn conclude<T>(
        &self,
        web: &Web,
        caller: &Caller,
        outcome: Result<T, crate::app::AppError>,
    ) -> Result<T, PageError> {
        web.app
            .conclude(caller, outcome)
            .await
            .map_err(|status| PageError::new(status, self))
    }

    /// A place among the live streams the principal may hold open, or RESOURCE_EXHAUSTED.
    pub fn stream_permit(
        &self,
        web: &Web,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, crate::app::AppError> {
        // Principals come from the config, so this map is bounded by it.
        let pool = Arc::clone(
            web.streams
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(self.principal.name.clone())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Semaphore::new(web.streams_per_principal))
                }),
        );
        pool.try_acquire_owned().map_err(|_| {
            crate::app::AppError::Exhausted(format!(
                "{} has {} live alert streams open already; close one and try again",
                self.principal.name, web.streams_per_principal
            ))
        })
    }

    /// A posted form must carry the session's token; a form without a session is refused.
    pub fn check_form(&self, offered: &str) -> Result<(), PageError> {
        match &self.session {
            Some(session) if session::tokens_match(&session.csrf, offered) => Ok(()),
            _ => Err(PageError::new(
                tonic::Status::permission_denied(
                    "the form has expired or did not come from this service; open the page again",
                ),
                self,
            )),
        }
    }

    pub fn role(&self) -> Role {
        self.principal.role
    }
}
