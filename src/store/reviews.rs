//! Reviews and action plans in the store: every revision kept, written by the writer with its
//! audit event, read here. There are hundreds of reviews, not millions: listings read them all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::Engine;
use super::engine::WriteBatch;
use super::keyspace::{Actions, ActionsDue, Keyspace, Reviews};
use super::writer::Command;
use super::{Store, StoreError};
use crate::domain::review::{
    Action, ActionDraft, ActionKey, RecommendationRef, Review, ReviewDraft,
};
use crate::domain::{Actor, AgencyId};

/// A review to record: a new one, or a correction of review `id` made against `revision`.
#[derive(Debug, Clone)]
pub struct ReviewChange {
    pub draft: ReviewDraft,
    /// `(id, the revision the correction was made against)`; `None` for a new review.
    pub correcting: Option<(u64, u32)>,
}

/// A change to an action plan.
#[derive(Debug, Clone)]
pub enum ActionChange {
    /// A new action under a recommendation; the store numbers it.
    Plan {
        recommendation: RecommendationRef,
        draft: ActionDraft,
    },
    /// The next revision of an action, made against revision `expected`.
    Update {
        key: ActionKey,
        expected: u32,
        draft: ActionDraft,
    },
}

impl ActionChange {
    /// The recommendation the action answers.
    pub fn recommendation(&self) -> RecommendationRef {
        match self {
            ActionChange::Plan { recommendation, .. } => *recommendation,
            ActionChange::Update { key, .. } => key.recommendation,
        }
    }
}

/// The latest revision of every review as last read, and how many times the writer has
/// changed them since the store opened: a read is reused while no review has changed.
#[derive(Default)]
pub(super) struct ReviewCache {
    changes: AtomicU64,
    latest: Mutex<Option<(u64, Arc<Vec<Review>>)>>,
}

impl ReviewCache {
    /// The writer has made a review's new revision durable.
    pub(super) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// The latest revision of a review.
pub(super) fn latest_review(engine: &dyn Engine, id: u64) -> Result<Option<Review>, StoreError> {
    Reviews::scan(engine, &Reviews::of_review(id))
        .next_back()
        .transpose()
        .map(|entry| entry.map(|(_, review)| review))
}

/// The latest revision of an action.
pub(super) fn latest_action(
    engine: &dyn Engine,
    key: &ActionKey,
) -> Result<Option<Action>, StoreError> {
    Actions::scan(engine, &Actions::of_action(key))
        .next_back()
        .transpose()
        .map(|entry| entry.map(|(_, action)| action))
}

impl Store {
    /// Records a review or a correction, with its audit event, durably.
    pub async fn record_review(
        &self,
        change: ReviewChange,
        actor: Actor,
    ) -> Result<Review, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::RecordReview {
            change,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Plans or updates an action for `agency`, which must be the recommendation's accountable
    /// agency, with its audit event, durably.
    pub async fn change_action(
        &self,
        change: ActionChange,
        agency: AgencyId,
        actor: Actor,
    ) -> Result<Action, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::ChangeAction {
            change,
            agency,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The latest revision of a review.
    pub fn review(&self, id: u64) -> Result<Option<Review>, StoreError> {
        latest_review(&*self.shared.engine, id)
    }

    /// Every revision of a review, oldest first.
    pub fn review_history(&self, id: u64) -> Result<Vec<Review>, StoreError> {
        Reviews::scan(&*self.shared.engine, &Reviews::of_review(id))
            .map(|entry| entry.map(|(_, review)| review))
            .collect()
    }

    /// The latest revision of every review, by id. Read from the store once per change of the
    /// reviews, then shared.
    pub fn reviews(&self) -> Result<Arc<Vec<Review>>, StoreError> {
        let cache = &self.shared.reviews;
        // Counted before reading: a change made during the read makes the next call read again.
        let changes = cache.changes.load(Ordering::Acquire);
        if let Some((at, latest)) = &*cache.latest.lock().unwrap_or_else(|p| p.into_inner())
            && *at == changes
        {
            return Ok(Arc::clone(latest));
        }
        let mut latest = BTreeMap::new();
        for entry in Reviews::scan_all(&*self.shared.engine) {
            let ((id, _), review) = entry?;
            latest.insert(id, review);
        }
        let latest = Arc::new(latest.into_values().collect::<Vec<_>>());
        *cache.latest.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((changes, Arc::clone(&latest)));
        Ok(latest)
    }

    /// The latest revision of each review after `after`, by id, handed to `visit` until it
    /// answers false: a page of a listing reads only as far as it needs.
    pub fn each_review_after(
        &self,
        after: u64,
        mut visit: impl FnMut(Review) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(());
        };
        let mut pending: Option<Review> = None;
        for entry in Reviews::range(&*self.shared.engine, &(first, 0), &(u64::MAX, u32::MAX)) {
            let ((id, _), review) = entry?;
            if let Some(done) = pending.take_if(|p| p.id != id)
                && !visit(done)?
            {
                return Ok(());
            }
            pending = Some(review);
        }
        if let Some(last) = pending {
            visit(last)?;
        }
        Ok(())
    }

    /// The latest revision of every action of a review, in order.
    pub fn actions_of_review(&self, id: u64) -> Result<Vec<Action>, StoreError> {
        let mut latest = BTreeMap::new();
        for entry in Actions::scan(&*self.shared.engine, &Actions::of_review(id)) {
            let ((key, _), action) = entry?;
            latest.insert(key, action);
        }
        Ok(latest.into_values().collect())
    }

    /// Every revision of an action, oldest first.
    pub fn action_history(&self, key: &ActionKey) -> Result<Vec<Action>, StoreError> {
        Actions::scan(&*self.shared.engine, &Actions::of_action(key))
            .map(|entry| entry.map(|(_, action)| action))
            .collect()
    }
}

/// What verify finds wrong with the reviews and action plans: revisions out of sequence, an
/// action under a recommendation its review no longer holds, and the overdue watch not
/// following the actions' latest revisions. With `repair`, the watch fixes are written to it.
pub(super) fn review_faults(
    engine: &dyn Engine,
    mut repair: Option<&mut WriteBatch>,
) -> Result<Vec<String>, StoreError> {
    let mut faults = Vec::new();
    let mut latest: BTreeMap<u64, Review> = BTreeMap::new();
    for entry in Reviews::scan_all(engine) {
        let ((id, revision), review) = entry?;
        let expected = latest.get(&id).map_or(1, |r| r.revision + 1);
        if revision != expected || review.id != id || review.revision != revision {
            faults.push(format!(
                "review {id}: expected revision {expected}, found {revision}"
            ));
        }
        latest.insert(id, review);
    }
    let mut actions: BTreeMap<ActionKey, Action> = BTreeMap::new();
    for entry in Actions::scan_all(engine) {
        let ((key, revision), action) = entry?;
        let expected = actions.get(&key).map_or(1, |a| a.revision + 1);
        if revision != expected || action.key != key || action.revision != revision {
            faults.push(format!(
                "{key}: expected revision {expected}, found {revision}"
            ));
        }
        actions.insert(key, action);
    }
    for (key, action) in &actions {
        let addressed = latest
            .get(&key.recommendation.review)
            .and_then(|review| review.recommendation(key.recommendation))
            .map(|r| &r.agency);
        if addressed != Some(&action.agency) {
            faults.push(format!(
                "{key}: its review holds no {} addressed to agency {}",
                key.recommendation, action.agency
            ));
        }
    }
    let mut watched = std::collections::BTreeSet::new();
    for entry in ActionsDue::scan_all(engine) {
        let ((due, key), ()) = entry?;
        let right = actions
            .get(&key)
            .is_some_and(|a| a.awaits_overdue_check() && a.due == due);
        if !right {
            faults.push(format!(
                "overdue watch: {key} due {due} is not awaiting a check"
            ));
            if let Some(batch) = repair.as_deref_mut() {
                ActionsDue::remove(batch, &(due, key));
            }
        }
        watched.insert((due, key));
    }
    for action in actions.values() {
        if action.awaits_overdue_check() && !watched.contains(&(action.due, action.key)) {
            faults.push(format!(
                "overdue watch: {} due {} is missing",
                action.key, action.due
            ));
            if let Some(batch) = repair.as_deref_mut() {
                ActionsDue::put(batch, &(action.due, action.key), &())?;
            }
        }
    }
    Ok(faults)
}
