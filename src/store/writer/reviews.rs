//! The writer's side of reviews and action plans: each revision is written with its audit
//! event in one atomic batch, and the overdue sweep raises each `overdue_action` alert in the
//! same batch that takes the action off the watch, so an alert is raised once, across restarts.

use time::OffsetDateTime;

use super::super::engine::WriteBatch;
use super::super::keyspace::{Actions, ActionsDue, AlertLog, Keyspace, Reviews};
use super::super::{ActionChange, ReviewChange, StoreError, latest_action, latest_review};
use super::Writer;
use crate::domain::alert::Alert;
use crate::domain::review::{
    Action, ActionKey, ActionStatus, Judgement, MAX_ACTIONS, MAX_REVIEW_ACTIONS, RecommendationRef,
    Review,
};
use crate::domain::{Access, Actor, AgencyId, AlertKind, Severity};

impl Writer {
    /// Records a review, or a correction of one as its next revision.
    pub(super) fn record_review(
        &mut self,
        change: ReviewChange,
        actor: Actor,
    ) -> Result<Review, StoreError> {
        let engine = &*self.shared.engine;
        let now = (self.shared.clock)();
        let ReviewChange { draft, correcting } = change;
        let (id, revision) = match correcting {
            None => {
                let id = match Reviews::scan_all(engine).next_back() {
                    Some(entry) => entry?.0.0 + 1,
                    None => 1,
                };
                (id, 1)
            }
            Some((id, expected)) => {
                let current = latest_review(engine, id)?
                    .ok_or_else(|| StoreError::Missing(format!("no review {id}")))?;
                if current.revision != expected {
                    return Err(StoreError::Conflict(format!(
                        "review {id} is at revision {}, not {expected}: read it again and correct that",
                        current.revision
                    )));
                }
                let planned = actions_of(engine, id)?;
                draft.check_correction(&current, now, |at| {
                    planned.iter().any(|key| key.recommendation == at)
                })?;
                (id, current.revision + 1)
            }
        };
        let review = draft.into_review(id, revision, actor.principal.clone(), now);
        let mut batch = WriteBatch::default();
        Reviews::put(&mut batch, &(id, revision), &review)?;
        let mut access = Access::by(actor);
        access.place = Some(review.place);
        access.purpose = review.note.clone();
        access.outcome = format!(
            "OK: review {id} revision {revision} recorded, published from {}",
            crate::domain::record::rfc3339(review.published_at)
        );
        self.chain(&mut batch, access, now)?;
        self.apply(batch)?;
        self.shared.reviews.changed();
        Ok(review)
    }

    /// Plans a new action under a recommendation of a published review, or revises one.
    pub(super) fn change_action(
        &mut self,
        change: ActionChange,
        agency: AgencyId,
        actor: Actor,
    ) -> Result<Action, StoreError> {
        let engine = &*self.shared.engine;
        let now = (self.shared.clock)();
        let recommendation = change.recommendation();
        // Checked again here, in order with corrections: the application checked a read that
        // a correction may have overtaken since.
        let review = latest_review(engine, recommendation.review)?
            .filter(|review| review.is_published(now))
            .ok_or_else(|| {
                StoreError::Missing(format!("no published review {}", recommendation.review))
            })?;
        let accountable = review
            .recommendation(recommendation)
            .ok_or_else(|| StoreError::Missing(format!("no {recommendation}")))?
            .agency
            .clone();
        if agency != accountable {
            return Err(StoreError::NotAccountable(format!(
                "{recommendation} is addressed to agency {accountable}: only it plans and updates its actions"
            )));
        }
        let (action, previous) = match change {
            ActionChange::Plan {
                recommendation,
                draft,
            } => {
                let number =
                    match Actions::scan(engine, &Actions::of_recommendation(recommendation))
                        .next_back()
                    {
                        Some(entry) => entry?.0.0.number + 1,
                        None => 1,
                    };
                if number > MAX_ACTIONS {
                    return Err(StoreError::Full(format!(
                        "{recommendation} already has {MAX_ACTIONS} actions"
                    )));
                }
                if actions_of(engine, recommendation.review)?.len() >= MAX_REVIEW_ACTIONS {
                    return Err(StoreError::Full(format!(
                        "review {} already has {MAX_REVIEW_ACTIONS} actions",
                        recommendation.review
                    )));
                }
                let key = ActionKey {
                    recommendation,
                    number,
                };
                let action = Action {
                    key,
                    revision: 1,
                    agency: accountable,
                    description: draft.description,
                    owner: draft.owner,
                    due: draft.due,
                    status: draft.status,
                    note: draft.note,
                    updated_by: actor.principal.clone(),
                    updated_at: now,
                    alerted_due: None,
                };
                (action, None)
            }
            ActionChange::Update {
                key,
                expected,
                draft,
            } => {
                let current = latest_action(engine, &key)?
                    .ok_or_else(|| StoreError::Missing(format!("no {key}")))?;
                if current.revision != expected {
                    return Err(StoreError::Conflict(format!(
                        "{key} is at revision {}, not {expected}: read it again and update that",
                        current.revision
                    )));
                }
                let action = Action {
                    key,
                    revision: current.revision + 1,
                    agency: accountable,
                    description: draft.description,
                    owner: draft.owner,
                    due: draft.due,
                    status: draft.status,
                    note: draft.note,
                    updated_by: actor.principal.clone(),
                    updated_at: now,
                    alerted_due: current.alerted_due,
                };
                (action, Some(current))
            }
        };
        let mut batch = WriteBatch::default();
        if let Some(previous) = &previous {
            ActionsDue::remove(&mut batch, &(previous.due, previous.key));
        }
        if action.awaits_overdue_check() {
            ActionsDue::put(&mut batch, &(action.due, action.key), &())?;
        }
        Actions::put(&mut batch, &(action.key, action.revision), &action)?;
        let mut access = Access::by(actor);
        access.place = Some(review.place);
        access.purpose = action.note.clone();
        access.outcome = format!(
            "OK: {} revision {} is {}, due {}",
            action.key, action.revision, action.status, action.due
        );
        self.chain(&mut batch, access, now)?;
        self.apply(batch)?;
        Ok(action)
    }

    /// Raises an `overdue_action` alert for every action past its due date and not done that
    /// has not had one for that date, into `batch`; answers how many it raised.
    pub(super) fn sweep_overdue(
        &mut self,
        batch: &mut WriteBatch,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let engine = &*self.shared.engine;
        let mut raised = 0;
        let start = (time::Date::MIN, first_action());
        let until = (now.date(), first_action());
        for entry in ActionsDue::range(engine, &start, &until) {
            let ((due, key), ()) = entry?;
            ActionsDue::remove(batch, &(due, key));
            let Some(mut action) = latest_action(engine, &key)? else {
                return Err(StoreError::Corrupt(format!(
                    "the due watch names missing {key}"
                )));
            };
            if !action.is_overdue(now) || action.due != due {
                continue;
            }
            let Some(review) = latest_review(engine, key.recommendation.review)? else {
                return Err(StoreError::Corrupt(format!("{key} belongs to no review")));
            };
            let priority = review
                .finding(key.recommendation.finding)
                .is_some_and(|finding| finding.judgement == Judgement::PriorityAction);
            self.alert_head += 1;
            let alert = Alert {
                sequence: self.alert_head,
                kind: AlertKind::OverdueAction,
                severity: if priority {
                    Severity::High
                } else {
                    Severity::Medium
                },
                place: review.place,
                client_group: None,
                records: Vec::new(),
                agencies: vec![action.agency.clone()],
                places: vec![review.place],
                subject: None,
                raised_by: 0,
                raised_at: now,
                detail: format!(
                    "{key} ({}), owned by {}, was due {} and is {}",
                    if priority {
                        "a priority action"
                    } else {
                        "an area for improvement"
                    },
                    action.owner,
                    action.due,
                    if action.status == ActionStatus::Overdue {
                        "overdue".to_string()
                    } else {
                        format!("still {}", action.status.label().to_lowercase())
                    }
                ),
            };
            AlertLog::put(batch, &alert.sequence, &alert)?;
            // The revision keeps which due date alerted, so an update that keeps the date
            // does not raise it again; the action's revision history is unchanged.
            action.alerted_due = Some(due);
            Actions::put(batch, &(action.key, action.revision), &action)?;
            raised += 1;
        }
        Ok(raised)
    }
}

/// Every action of a review's plan.
fn actions_of(
    engine: &dyn super::super::engine::Engine,
    review: u64,
) -> Result<std::collections::BTreeSet<ActionKey>, StoreError> {
    let mut actions = std::collections::BTreeSet::new();
    for entry in Actions::scan(engine, &Actions::of_review(review)) {
        actions.insert(entry?.0.0);
    }
    Ok(actions)
}

fn first_action() -> ActionKey {
    ActionKey {
        recommendation: RecommendationRef {
            review: 0,
            finding: 0,
            recommendation: 0,
        },
        number: 0,
    }
}
