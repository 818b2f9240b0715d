//! Reviews and action plans: inspectors record reviews of places in their places, accountable
//! agencies plan and update the actions that answer their recommendations, and everyone reads
//! what is published. A review is public from its publication time on, decided at each read
//! against the clock, so it appears without a restart; before then it is answered as if it did
//! not exist to everyone but the inspectors whose places cover it.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AppError, Application};
use crate::auth::Caller;
use crate::domain::review::{
    Action, ActionDraft, ActionKey, RecommendationRef, Review, ReviewDraft, ReviewKind, Theme,
};
use crate::domain::{AgencyId, FieldViolation, Invalid, Place, PlaceCode, Role, Scope};
use crate::store::{ActionChange, ReviewChange, StoreError};

/// Most reviews one listing page holds.
pub const MAX_REVIEWS_PAGE: usize = 500;
/// Reviews in a listing page when none is asked for.
pub const DEFAULT_REVIEWS_PAGE: usize = 100;
/// Text a listing page of reviews may hold before it ends early: well under the 4 MiB most
/// gRPC clients accept by default, whatever the reviews hold.
pub const MAX_PAGE_TEXT_BYTES: usize = 2 * 1024 * 1024;
/// Most actions one listing page holds (it ends at a review's last action).
pub const MAX_ACTIONS_PAGE: usize = 1000;
/// Actions in a listing page when none is asked for.
pub const DEFAULT_ACTIONS_PAGE: usize = 500;

/// A review as answered: the revision asked for, its place, whether it is published now, its
/// action plan and how many revisions it has.
#[derive(Debug, Clone)]
pub struct ReviewAnswer {
    pub review: Review,
    pub place: Option<Place>,
    pub published: bool,
    pub actions: Vec<ActionAnswer>,
    pub revisions: u32,
}

/// An action as answered, with whether it is overdue now.
#[derive(Debug, Clone)]
pub struct ActionAnswer {
    pub action: Action,
    pub overdue: bool,
}

/// Which reviews a listing wants.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    /// Reviews of places within this place or footprint area.
    pub area: Option<PlaceCode>,
    pub kind: Option<ReviewKind>,
    pub theme: Option<Theme>,
    /// Inspectors only: unpublished reviews in their places too.
    pub include_unpublished: bool,
    pub after: u64,
    pub page_size: usize,
}

/// A page of reviews.
#[derive(Debug, Clone)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewAnswer>,
    /// The id to list after for the next page, if there is one.
    pub next_after: Option<u64>,
}

/// Which actions a listing wants.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub review: Option<u64>,
    pub agency: Option<AgencyId>,
    pub area: Option<PlaceCode>,
    pub overdue_only: bool,
    /// Actions of reviews after this id.
    pub after: u64,
    pub page_size: usize,
}

/// A page of actions.
#[derive(Debug, Clone)]
pub struct ActionPage {
    pub actions: Vec<ActionAnswer>,
    /// The review id to list after for the next page, if there is one.
    pub next_after: Option<u64>,
}

/// About how many bytes a review's text takes in an answer.
fn text_bytes(review: &Review) -> usize {
    let findings: usize = review
        .findings
        .iter()
        .map(|f| {
            f.summary.len()
                + 64
                + f.recommendations
                    .iter()
                    .map(|r| r.text.len() + 32)
                    .sum::<usize>()
        })
        .sum();
    review.title.len() + review.note.len() + 256 + findings
}

impl Application {
    /// The time reviews are published against: the store's clock.
    fn now(&self) -> OffsetDateTime {
        self.store.now()
    }

    /// Whether the caller may read `review` now: anyone once it is published; before, only
    /// inspectors whose places cover it.
    fn may_read(&self, caller: &Caller, review: &Review, now: OffsetDateTime) -> bool {
        review.is_published(now)
            || (caller.principal.role == Role::Inspector
                && caller.in_scope(&self.store, review.place))
    }

    /// Principals' names are configuration, and may be people's names: only inspectors and
    /// administrators see who recorded a review or updated an action; open data says neither.
    fn redact_review(caller: &Caller, review: &mut Review) {
        if !names_principals(caller) {
            review.recorded_by.clear();
        }
    }

    fn redact(caller: &Caller, answer: &mut ReviewAnswer) {
        Self::redact_review(caller, &mut answer.review);
        Self::redact_actions(caller, &mut answer.actions);
    }

    fn redact_actions(caller: &Caller, actions: &mut [ActionAnswer]) {
        if !names_principals(caller) {
            for action in actions {
                action.action.updated_by.clear();
            }
        }
    }

    /// A place by code for an answer, if the directory knows it.
    pub fn place_named(&self, code: PlaceCode) -> Option<Place> {
        self.store.place(code).map(|detail| detail.place)
    }

    /// Records a new review of a place in the inspector's places, or a correction of one made
    /// against revision `expected`.
    pub async fn record_review(
        &self,
        caller: &Caller,
        draft: ReviewDraft,
        correcting: Option<(u64, u32)>,
    ) -> Result<ReviewAnswer, AppError> {
        draft.check().map_err(in_review)?;
        let place = self.place_in_scope(caller, "review.place_code", draft.place.as_str())?;
        if place != draft.place {
            return Err(Invalid::one(
                "review.place_code",
                format!(
                    "{} was replaced by {place}: record the review under {place}",
                    draft.place
                ),
            )
            .into());
        }
        for (index, agency) in draft.agencies.iter().enumerate() {
            if self.store.agency(agency).is_none() {
                return Err(Invalid::one(
                    format!("review.agency_ids[{index}]"),
                    "is not a registered agency",
                )
                .into());
            }
        }
        if let Some((id, _)) = correcting {
            // A correction is made by an inspector who may see the review as it stands.
            let current = self
                .store
                .review(id)?
                .filter(|review| caller.in_scope(&self.store, review.place))
                .ok_or_else(|| AppError::NotFound(format!("no review {id} in your places")))?;
            caller.touched(|t| t.place = Some(current.place));
        }
        let review = self
            .store
            .record_review(ReviewChange { draft, correcting }, caller.actor())
            .await
            .map_err(|error| match error {
                StoreError::Invalid(invalid) => AppError::Invalid(in_review(invalid)),
                other => other.into(),
            })?;
        Ok(self.answer(review)?)
    }

    fn answer(&self, review: Review) -> Result<ReviewAnswer, StoreError> {
        let now = self.now();
        let actions = self.actions_answered(review.id, now)?;
        let revisions = self.store.review_history(review.id)?.len() as u32;
        Ok(ReviewAnswer {
            place: self.place_named(review.place),
            published: review.is_published(now),
            review,
            actions,
            revisions,
        })
    }

    fn actions_answered(
        &self,
        review: u64,
        now: OffsetDateTime,
    ) -> Result<Vec<ActionAnswer>, StoreError> {
        Ok(self
            .store
            .actions_of_review(review)?
            .into_iter()
            .map(|action| ActionAnswer {
                overdue: action.is_overdue(now),
                action,
            })
            .collect())
    }

    /// One review (a revision of it, or the latest), if the caller may read it now.
    pub fn review(
        &self,
        caller: &Caller,
        id: u64,
        revision: Option<u32>,
    ) -> Result<ReviewAnswer, AppError> {
        let now = self.now();
        let hidden = || AppError::NotFound(format!("no published review {id}"));
        let latest = self.store.review(id)?.ok_or_else(hidden)?;
        if !self.may_read(caller, &latest, now) {
            return Err(hidden());
        }
        let mut answer = self.answer(latest)?;
        if let Some(revision) = revision {
            answer.review = self
                .store
                .review_history(id)?
                .into_iter()
                .find(|r| r.revision == revision)
                .ok_or_else(|| {
                    AppError::NotFound(format!("review {id} has no revision {revision}"))
                })?;
        }
        Self::redact(caller, &mut answer);
        Ok(answer)
    }

    /// Every revision of a review the caller may read, oldest first.
    pub fn review_history(&self, caller: &Caller, id: u64) -> Result<Vec<Review>, AppError> {
        self.review(caller, id, None)?;
        let mut history = self.store.review_history(id)?;
        for review in &mut history {
            Self::redact_review(caller, review);
        }
        Ok(history)
    }

    /// Reviews the caller may read, by id, a page at a time.
    pub fn reviews(&self, caller: &Caller, filter: &ReviewFilter) -> Result<ReviewPage, AppError> {
        if filter.include_unpublished && caller.principal.role != Role::Inspector {
            return Err(crate::auth::Denied::PermissionDenied(
                "only inspectors may list unpublished reviews".into(),
            )
            .into());
        }
        let now = self.now();
        let page_size = match filter.page_size {
            0 => DEFAULT_REVIEWS_PAGE,
            n => n.min(MAX_REVIEWS_PAGE),
        };
        let area = filter.area.map(|code| Scope::new(vec![code]));
        let mut reviews = Vec::new();
        let mut next_after = None;
        let mut text = 0;
        self.store.each_review_after(filter.after, |review| {
            let visible = if filter.include_unpublished {
                self.may_read(caller, &review, now)
            } else {
                review.is_published(now)
            };
            let wanted = visible
                && area
                    .as_ref()
                    .is_none_or(|area| self.store.covers(area, review.place))
                && filter.kind.is_none_or(|kind| review.kind == kind)
                && filter
                    .theme
                    .is_none_or(|theme| review.findings.iter().any(|f| f.theme == theme));
            if !wanted {
                return Ok(true);
            }
            let bytes = text_bytes(&review);
            if reviews.len() == page_size
                || (!reviews.is_empty() && text + bytes > MAX_PAGE_TEXT_BYTES)
            {
                next_after = reviews.last().map(|r: &ReviewAnswer| r.review.id);
                return Ok(false);
            }
            text += bytes;
            let mut answer = self.answer(review)?;
            Self::redact(caller, &mut answer);
            reviews.push(answer);
            Ok(true)
        })?;
        Ok(ReviewPage {
            reviews,
            next_after,
        })
    }

    /// Actions of published reviews' action plans, as they stand now, a page of whole
    /// reviews' plans at a time.
    pub fn actions(&self, caller: &Caller, filter: &ActionFilter) -> Result<ActionPage, AppError> {
        let now = self.now();
        let page_size = match filter.page_size {
            0 => DEFAULT_ACTIONS_PAGE,
            n => n.min(MAX_ACTIONS_PAGE),
        };
        let area = filter.area.map(|code| Scope::new(vec![code]));
        let reviews: Arc<Vec<Review>> = match filter.review {
            Some(id) => Arc::new(self.store.review(id)?.into_iter().collect()),
            None => self.store.reviews()?,
        };
        let mut actions = Vec::new();
        let mut next_after = None;
        let mut last = None;
        for review in reviews.iter() {
            if review.id <= filter.after
                || !review.is_published(now)
                || !area
                    .as_ref()
                    .is_none_or(|area| self.store.covers(area, review.place))
            {
                continue;
            }
            let plan: Vec<ActionAnswer> = self
                .actions_answered(review.id, now)?
                .into_iter()
                .filter(|a| {
                    filter
                        .agency
                        .as_ref()
                        .is_none_or(|agency| &a.action.agency == agency)
                })
                .filter(|a| !filter.overdue_only || a.overdue)
                .collect();
            if plan.is_empty() {
                continue;
            }
            if !actions.is_empty() && actions.len() + plan.len() > page_size {
                next_after = last;
                break;
            }
            actions.extend(plan);
            last = Some(review.id);
        }
        Self::redact_actions(caller, &mut actions);
        Ok(ActionPage {
            actions,
            next_after,
        })
    }

    /// The published recommendation an action answers, checked to be addressed to the
    /// caller's agency.
    fn own_recommendation(
        &self,
        caller: &Caller,
        at: RecommendationRef,
    ) -> Result<AgencyId, AppError> {
        let own = caller.own_agency()?.clone();
        let review = self
            .store
            .review(at.review)?
            .filter(|review| review.is_published(self.now()))
            .ok_or_else(|| AppError::NotFound(format!("no published review {}", at.review)))?;
        caller.touched(|t| t.place = Some(review.place));
        let recommendation = review
            .recommendation(at)
            .ok_or_else(|| AppError::NotFound(format!("no {at}")))?;
        if recommendation.agency != own {
            return Err(crate::auth::Denied::PermissionDenied(format!(
                "{at} is addressed to agency {}: only it plans and updates its actions",
                recommendation.agency
            ))
            .into());
        }
        Ok(own)
    }

    /// Plans a new action under a recommendation addressed to the caller's agency.
    pub async fn plan_action(
        &self,
        caller: &Caller,
        recommendation: RecommendationRef,
        draft: ActionDraft,
    ) -> Result<ActionAnswer, AppError> {
        draft.check()?;
        let agency = self.own_recommendation(caller, recommendation)?;
        let action = self
            .store
            .change_action(
                ActionChange::Plan {
                    recommendation,
                    draft,
                },
                agency,
                caller.actor(),
            )
            .await?;
        Ok(ActionAnswer {
            overdue: action.is_overdue(self.now()),
            action,
        })
    }

    /// Records the next revision of one of the caller's agency's actions.
    pub async fn update_action(
        &self,
        caller: &Caller,
        key: ActionKey,
        expected: u32,
        draft: ActionDraft,
    ) -> Result<ActionAnswer, AppError> {
        draft.check()?;
        let agency = self.own_recommendation(caller, key.recommendation)?;
        let action = self
            .store
            .change_action(
                ActionChange::Update {
                    key,
                    expected,
                    draft,
                },
                agency,
                caller.actor(),
            )
            .await?;
        Ok(ActionAnswer {
            overdue: action.is_overdue(self.now()),
            action,
        })
    }
}

/// Whether the caller sees principals' names on reviews and actions.
fn names_principals(caller: &Caller) -> bool {
    matches!(caller.principal.role, Role::Inspector | Role::Admin)
}

/// A review's violations as a request names them: the domain names fields from the review
/// down, and requests nest them under `review`.
fn in_review(invalid: Invalid) -> Invalid {
    Invalid(
        invalid
            .0
            .into_iter()
            .map(|v| FieldViolation::new(format!("review.{}", v.field), v.reason))
            .collect(),
    )
}
