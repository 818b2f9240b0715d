//! Identity, roles and scopes: who is calling, and whether they may do what they ask.
//!
//! The guard layer ([`guard`]) resolves every call to a [`Principal`] (from a bearer token or a
//! client certificate, or the public when there is neither), checks the method's rule in the
//! one declaration ([`policy::METHOD_RULES`]) and applies the limits. The application's use
//! cases check scopes (which agency, which places) with [`Caller`], and the application
//! records each call's outcome in the audit chain when it concludes it.

pub mod guard;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::config;
use crate::domain::{Access, Actor, AgencyId, PlaceCode, RecordKey, Role, Scope, SubjectKey};
use crate::store::Store;

/// A person or system the server knows, with what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// For agency principals: the agency they act for.
    pub agency: Option<AgencyId>,
    /// For inspectors and boards: the places and footprint areas in scope.
    pub places: Vec<PlaceCode>,
}

impl Principal {
    /// Whoever calls without credentials.
    pub fn public(from: &str) -> Self {
        Self {
            name: format!("public ({from})"),
            role: Role::Public,
            agency: None,
            places: Vec::new(),
        }
    }

    fn from_config(principal: &config::Principal) -> Result<Self, String> {
        Ok(Self {
            name: principal.name.clone(),
            role: principal.role,
            agency: principal
                .agency
                .as_deref()
                .map(AgencyId::parse)
                .transpose()?,
            places: principal
                .places
                .iter()
                .map(|p| PlaceCode::parse(p))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Why a caller may not do what it asked. Neither variant says whether the thing asked for
/// exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Exhausted(String),
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated(reason) => Status::unauthenticated(reason),
            Denied::PermissionDenied(reason) => Status::permission_denied(reason),
            Denied::Exhausted(reason) => Status::resource_exhausted(reason),
        }
    }
}

/// The principals of the config, found by token hash or certificate name.
#[derive(Debug, Default)]
pub struct Identities {
    tokens: Vec<([u8; 32], Arc<Principal>)>,
    certificates: HashMap<String, Arc<Principal>>,
}

impl Identities {
    /// The config's principals; the config has already been checked.
    pub fn from_config(principals: &[config::Principal]) -> Result<Self, String> {
        let mut identities = Self::default();
        for configured in principals {
            let principal = Arc::new(Principal::from_config(configured)?);
            if let Some(hash) = &configured.token_sha256 {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hash, &mut digest)
                    .map_err(|e| format!("principal {}: token_sha256: {e}", configured.name))?;
                identities.tokens.push((digest, Arc::clone(&principal)));
            }
            // Only a principal given a `cert_cn` can be reached by certificate, so a name a
            // shared CA happens to issue never lands on a token-only principal.
            if let Some(name) = &configured.cert_cn {
                identities.certificates.insert(name.clone(), principal);
            }
        }
        Ok(identities)
    }

    /// The principal holding this bearer token. Every stored hash is compared, in constant
    /// time, so the answer's timing says nothing about which hash came close.
    pub fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, principal) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(Arc::clone(principal));
            }
        }
        found
    }

    /// The principal named by a client certificate (DER): its subject's common name, or else
    /// any of its DNS or email subject alternative names.
    pub fn by_certificate(&self, der: &[u8]) -> Option<Arc<Principal>> {
        certificate_names(der)
            .iter()
            .find_map(|name| self.certificates.get(name).cloned())
    }
}

/// The names a client certificate claims: common names first, then DNS and email SANs.
fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = certificate
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(alternatives)) = certificate.subject_alternative_name() {
        for name in &alternatives.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::RFC822Name(n) => names.push(n.to_string()),
                _ => {}
            }
        }
    }
    names
}

/// What the call touched, noted by its use case and written to the audit chain when the
/// application concludes the call.
#[derive(Debug, Clone, Default)]
pub struct Touched {
    pub records: Vec<RecordKey>,
    pub subject: Option<SubjectKey>,
    pub place: Option<PlaceCode>,
    pub purpose: String,
}

/// The caller of one request, as the guard resolved it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub method: &'static str,
    /// The method's rule, which says what the audit chain keeps of the call.
    pub rule: &'static policy::MethodRule,
    /// Where the call came from, for the audit chain and the refusal limits.
    pub address: String,
    touched: Arc<Mutex<Touched>>,
    /// Set once the application has recorded the call's outcome.
    concluded: Arc<std::sync::atomic::AtomicBool>,
}

impl Caller {
    /// The guard makes one for every call it admits. Only code in this process can attach
    /// one to a request, so a client cannot bring its own.
    pub fn new(
        principal: Arc<Principal>,
        rule: &'static policy::MethodRule,
        address: &str,
    ) -> Self {
        Self {
            principal,
            method: rule.method,
            rule,
            address: address.to_string(),
            touched: Arc::default(),
            concluded: Arc::default(),
        }
    }

    /// Notes that the call's outcome has been recorded, so it is not recorded twice.
    pub(crate) fn conclude(&self) {
        self.concluded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the application has recorded the call's outcome.
    pub fn is_concluded(&self) -> bool {
        self.concluded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The caller the guard attached to a request. Without one the server was built without
    /// its guard, which must never answer a call.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::internal("the call was not authorised; refusing it"))
    }

    pub fn actor(&self) -> Actor {
        Actor::new(
            self.principal.name.clone(),
            self.principal.role,
            self.method,
        )
    }

    /// Notes what the call touched, for its audit event.
    pub fn touched(&self, note: impl FnOnce(&mut Touched)) {
        note(&mut self.touched.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The audit entry for this call with its outcome.
    pub(crate) fn access(&self, outcome: String) -> Access {
        let touched = self
            .touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Access {
            actor: self.actor(),
            records: touched.records,
            subject: touched.subject,
            place: touched.place,
            purpose: touched.purpose,
            outcome,
        }
    }

    /// The caller must act for this agency (agency principals only).
    pub fn acts_for(&self, agency: &AgencyId) -> Result<(), Denied> {
        match (&self.principal.role, &self.principal.agency) {
            (Role::Agency, Some(own)) if own == agency => Ok(()),
            _ => Err(Denied::PermissionDenied(format!(
                "{} may not act for agency {agency}",
                self.principal.name
            ))),
        }
    }

    /// The caller's agency (agency principals only).
    pub fn own_agency(&self) -> Result<&AgencyId, Denied> {
        match (&self.principal.role, &self.principal.agency) {
            (Role::Agency, Some(own)) => Ok(own),
            _ => Err(Denied::PermissionDenied(format!(
                "{} does not act for an agency",
                self.principal.name
            ))),
        }
    }

    /// Everything in `place` must lie in one of the caller's places.
    pub fn sees(&self, store: &Store, place: PlaceCode) -> Result<(), Denied> {
        if self.in_scope(store, place) {
            Ok(())
        } else {
            Err(Denied::PermissionDenied(format!(
                "{} may not see {place}: it is outside the places in scope",
                self.principal.name
            )))
        }
    }

    /// The places the caller may see: an inspector's or a board's places, nothing for anyone
    /// else. Views, trails and alerts all ask this one scope.
    pub fn scope(&self) -> Scope {
        match self.principal.role {
            Role::Inspector | Role::Board => Scope::new(self.principal.places.clone()),
            Role::Agency | Role::Admin | Role::Public => Scope::default(),
        }
    }

    /// Whether everything in `place` lies in one of the caller's places.
    pub fn in_scope(&self, store: &Store, place: PlaceCode) -> bool {
        store.covers(&self.scope(), place)
    }
}
