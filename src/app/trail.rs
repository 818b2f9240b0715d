//! The audit trail's front door for both fronts: refusals recorded one event each, or past a
//! per-address limit tallied into aggregated events, and reads recorded before they are given.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Status;

use crate::domain::{Access, Actor, Role};
use crate::store::Store;

/// Writes what callers were refused and what they read, for the gRPC guard and the web alike.
pub struct AuditTrail {
    store: Store,
    /// Refusals recorded one event each, per caller address; past it they are tallied.
    refusals: DefaultKeyedRateLimiter<String>,
    tally: std::sync::Arc<RefusalTally>,
}

impl AuditTrail {
    /// Refusals from one address are recorded singly at up to `per_second` (after a `burst`).
    pub fn new(store: Store, per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            store,
            refusals: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            tally: std::sync::Arc::default(),
        }
    }

    /// The refusals waiting to be written as aggregated events, for the server to flush.
    pub fn tally(&self) -> std::sync::Arc<RefusalTally> {
        std::sync::Arc::clone(&self.tally)
    }

    /// Forgets addresses that have been quiet long enough.
    pub fn forget_idle(&self) {
        self.refusals.retain_recent();
    }

    /// Records a read before it is given. An answer whose reading cannot be recorded is not
    /// sent: the caller is told to come back.
    pub async fn record_read(&self, access: Access) -> Result<(), Status> {
        let access_method = access.actor.method.clone();
        self.store.audit(access).await.map(|_| ()).map_err(|error| {
            tracing::error!(%error, method = %access_method, "cannot write the audit event");
            Status::unavailable("the audit chain cannot record this read; nothing was sent")
        })
    }

    /// Records a refusal in the audit chain, whoever made it (the guard or a handler). The
    /// caller always gets the refusal's own status: the per-address limit decides only how it
    /// is recorded, one event each, or past the limit counted into an aggregated event (see
    /// [`RefusalTally`]), so a flood neither fills the chain nor goes unrecorded.
    pub async fn record_refusal(&self, peer: &str, access: Access, status: &Status) {
        if self.refusals.check_key(&peer.to_string()).is_err() {
            let key = TallyKey {
                address: peer.to_string(),
                principal: access.actor.principal,
                role: access.actor.role,
                method: access.actor.method,
                code: status.code() as i32,
            };
            self.tally.count(key, status.message(), self.store.now());
            return;
        }
        if let Err(error) = self.store.audit(access).await {
            tracing::error!(%error, "cannot record a refusal in the audit chain");
        }
    }
}

/// Distinct (address, caller, method, code) tallies kept between flushes; past it, further
/// refusals are tallied under one key per method, so a flood from many addresses is still
/// counted without growing memory.
const MAX_TALLIES: usize = 10_000;

/// One kind of refusal from one address, counted between two flushes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TallyKey {
    address: String,
    principal: String,
    role: Role,
    method: String,
    /// The refusal's gRPC code, as its number (`tonic::Code` has no order).
    code: i32,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first: time::OffsetDateTime,
    last: time::OffsetDateTime,
    reason: String,
}

/// Refusals past the per-address limit: each is counted here and written to the audit chain
/// as one aggregated event per kind (count, address, method, first and last time) when the
/// tally is flushed, so a flood is recorded in full without filling the chain.
#[derive(Debug, Default)]
pub struct RefusalTally {
    tallies: std::sync::Mutex<HashMap<TallyKey, Tally>>,
}

impl RefusalTally {
    fn count(&self, key: TallyKey, reason: &str, at: time::OffsetDateTime) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let key = if tallies.len() >= MAX_TALLIES && !tallies.contains_key(&key) {
            TallyKey {
                address: "many addresses".into(),
                principal: "callers from many addresses".into(),
                role: Role::Public,
                ..key
            }
        } else {
            key
        };
        tallies
            .entry(key)
            .and_modify(|t| {
                t.count += 1;
                t.last = at;
                reason.clone_into(&mut t.reason);
            })
            .or_insert_with(|| Tally {
                count: 1,
                first: at,
                last: at,
                reason: reason.to_string(),
            });
    }

    /// Writes every tally as one audit event and forgets it. A tally whose event cannot be
    /// written is merged back, with whatever was counted meanwhile, for the next flush.
    pub async fn flush(&self, store: &Store) -> Result<usize, crate::store::StoreError> {
        let mut tallies: Vec<(TallyKey, Tally)> = {
            let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
            tallies.drain().collect()
        };
        tallies.sort_by(|a, b| a.0.cmp(&b.0));
        let written = tallies.len();
        let mut pending = tallies.into_iter();
        while let Some((key, tally)) = pending.next() {
            let mut access = Access::by(Actor::new(
                key.principal.clone(),
                key.role,
                key.method.clone(),
            ));
            access.outcome = aggregated_outcome(&key, &tally);
            if let Err(error) = store.audit(access).await {
                let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
                for (key, unwritten) in std::iter::once((key, tally)).chain(pending) {
                    tallies
                        .entry(key)
                        .and_modify(|t| {
                            t.count += unwritten.count;
                            t.first = t.first.min(unwritten.first);
                        })
                        .or_insert(unwritten);
                }
                return Err(error);
            }
        }
        Ok(written)
    }
}

/// The outcome of an aggregated refusal event: the code first, as for single refusals.
fn aggregated_outcome(key: &TallyKey, tally: &Tally) -> String {
    let when = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| at.unix_timestamp().to_string())
    };
    format!(
        "{:?}: refused {} times from {} between {} and {} (aggregated); last reason: {}",
        tonic::Code::from_i32(key.code),
        tally.count,
        key.address,
        when(tally.first),
        when(tally.last),
        tally.reason
    )
}

/// How often tallied refusals are written to the audit chain.
pub const TALLY_FLUSH_EVERY: Duration = Duration::from_secs(5);
