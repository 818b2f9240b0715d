//! Server-side sessions: a principal signs in once with its token and gets a random session
//! id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`, under the `__Host-` prefix, when
//! the web is served over TLS). Sessions end after an idle spell, at an absolute limit, or at
//! sign-out; each holds the token that every form it posts must carry (CSRF).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::auth::Principal;

/// A signed-in principal's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub principal: Arc<Principal>,
    /// Every form posted in this session carries this token.
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused this long has ended.
    pub idle: Duration,
    /// No session lasts longer than this, however busy.
    pub absolute: Duration,
    /// Sessions held at once; past it the stalest is ended to make room.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
            max_sessions: 10_000,
        }
    }
}

/// The sessions in progress, in memory: a restart signs everyone out, which is the safe
/// failure for a register of this kind.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    open: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: a session id or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether a posted token is the expected one, in constant time.
pub fn tokens_match(expected: &str, offered: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(offered.as_bytes()))
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ended(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) > self.limits.idle
            || now.duration_since(session.started) > self.limits.absolute
    }

    /// Starts a session for `principal` under a fresh id, so an id planted before sign-in is
    /// never the one signed in.
    pub fn start(&self, principal: Arc<Principal>) -> Session {
        let now = Instant::now();
        let session = Session {
            id: random_token(),
            principal,
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        let mut open = self.open();
        if open.len() >= self.limits.max_sessions {
            open.retain(|_, s| !self.ended(s, now));
        }
        if open.len() >= self.limits.max_sessions {
            let stalest = open
                .values()
                .min_by_key(|s| s.last_seen)
                .map(|s| s.id.clone());
            if let Some(stalest) = stalest {
                open.remove(&stalest);
            }
        }
        open.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session under `id`, seen now; an ended one is forgotten.
    pub fn find(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut open = self.open();
        let session = open.get_mut(id)?;
        if self.ended(session, now) {
            open.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session under `id`.
    pub fn end(&self, id: &str) -> Option<Session> {
        self.open().remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            name: "inspector".into(),
            role: Role::Inspector,
            agency: None,
            places: Vec::new(),
        })
    }

    #[test]
    fn a_session_idle_past_its_limit_has_ended_and_a_used_one_has_not() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_millis(50),
            ..SessionLimits::default()
        });
        let busy = sessions.start(principal());
        let idle = sessions.start(principal());
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(20));
            assert!(sessions.find(&busy.id).is_some());
        }
        assert!(sessions.find(&idle.id).is_none());
    }

    #[test]
    fn every_session_has_its_own_id_and_token_and_sign_out_ends_it() {
        let sessions = Sessions::new(SessionLimits::default());
        let one = sessions.start(principal());
        let two = sessions.start(principal());
        assert_ne!(one.id, two.id);
        assert_ne!(one.csrf, two.csrf);
        assert_eq!(one.id.len(), 64);
        assert!(sessions.end(&one.id).is_some());
        assert!(sessions.find(&one.id).is_none());
        assert!(sessions.find(&two.id).is_some());
    }

    #[test]
    fn past_the_limit_the_stalest_session_makes_room() {
        let sessions = Sessions::new(SessionLimits {
            max_sessions: 2,
            ..SessionLimits::default()
        });
        let first = sessions.start(principal());
        std::thread::sleep(Duration::from_millis(5));
        let second = sessions.start(principal());
        std::thread::sleep(Duration::from_millis(5));
        let third = sessions.start(principal());
        assert!(sessions.find(&first.id).is_none());
        assert!(sessions.find(&second.id).is_some());
        assert!(sessions.find(&third.id).is_some());
    }

    #[test]
    fn a_csrf_token_matches_only_itself_and_never_when_empty() {
        let token = random_token();
        assert!(tokens_match(&token, &token));
        assert!(!tokens_match(&token, &random_token()));
        assert!(!tokens_match("", ""));
    }
}
