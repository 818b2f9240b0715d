//! `marr.v1.Reviews`: inspectors record reviews, accountable agencies their action plans. The
//! conversions between the contract's review messages and the domain live here too, for the
//! OpenData and Inspection calls that answer with them.

use tonic::{Request, Response, Status};

use super::convert::{coded_option, place_code, place_to_proto, time_from_proto, timestamp};
use crate::app::Application;
use crate::app::learning::{EnquiryAnswer, LessonsAnswer, parse_date};
use crate::app::reviews::{ActionAnswer, ReviewAnswer};
use crate::auth::Caller;
use crate::domain::learning::{Change, Evidence, Relation};
use crate::domain::record::iso_date;
use crate::domain::review::{
    ActionDraft, ActionKey, ActionStatus, Finding, Judgement, Recommendation, RecommendationRef,
    Review, ReviewDraft, ReviewKind, THEMES_VERSION, Theme,
};
use crate::domain::{AgencyId, FieldViolation, Invalid, PlaceCode, Vocabulary};
use crate::proto;
use crate::proto::reviews_server::Reviews;

pub struct ReviewsService {
    app: Application,
}

impl ReviewsService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

fn date_of(field: &str, text: &str) -> Result<time::Date, Invalid> {
    parse_date(field, text)?.ok_or_else(|| Invalid::one(field, "is required (YYYY-MM-DD)"))
}

fn required<V: Vocabulary>(field: &str, number: i32) -> Result<V, Invalid> {
    coded_option(field, number)?
        .ok_or_else(|| Invalid::one(field, format!("a {} is required", V::FIELD)))
}

/// A review as sent, read field by field; every violation is named by its path.
pub fn review_from_proto(review: &proto::Review) -> Result<ReviewDraft, Invalid> {
    let mut violations: Vec<FieldViolation> = Vec::new();
    let mut note = |result: Result<(), Invalid>| {
        if let Err(invalid) = result {
            violations.extend(invalid.0);
        }
    };
    let mut kind = None;
    note(required("review.kind", review.kind).map(|k| kind = Some(k)));
    let mut place = None;
    note(place_code("review.place_code", &review.place_code).map(|p| place = Some(p)));
    let mut agencies = Vec::new();
    for (index, id) in review.agency_ids.iter().enumerate() {
        note(
            AgencyId::parse(id)
                .map(|id| agencies.push(id))
                .map_err(|reason| Invalid::one(format!("review.agency_ids[{index}]"), reason)),
        );
    }
    let mut start = None;
    note(date_of("review.fieldwork_start", &review.fieldwork_start).map(|d| start = Some(d)));
    let mut end = None;
    note(date_of("review.fieldwork_end", &review.fieldwork_end).map(|d| end = Some(d)));
    let mut published_at = None;
    note(match &review.published_at {
        None => Err(Invalid::one("review.published_at", "is required")),
        Some(at) => time_from_proto(at)
            .map(|at| published_at = Some(at))
            .map_err(|reason| Invalid::one("review.published_at", reason)),
    });
    let mut findings = Vec::new();
    for (f, finding) in review.findings.iter().enumerate() {
        let theme = Theme::parse(&finding.theme)
            .map_err(|reason| Invalid::one(format!("review.findings[{f}].theme"), reason));
        let judgement = required::<Judgement>(
            &format!("review.findings[{f}].judgement"),
            finding.judgement,
        );
        let mut recommendations = Vec::new();
        for (r, recommendation) in finding.recommendations.iter().enumerate() {
            note(
                AgencyId::parse(&recommendation.agency_id)
                    .map(|agency| {
                        recommendations.push(Recommendation {
                            text: recommendation.text.clone(),
                            agency,
                        })
                    })
                    .map_err(|reason| {
                        Invalid::one(
                            format!("review.findings[{f}].recommendations[{r}].agency_id"),
                            reason,
                        )
                    }),
            );
        }
        match (theme, judgement) {
            (Ok(theme), Ok(judgement)) => findings.push(Finding {
                theme,
                judgement,
                summary: finding.summary.clone(),
                recommendations,
            }),
            (theme, judgement) => {
                note(theme.map(|_| ()));
                note(judgement.map(|_| ()));
            }
        }
    }
    // The review's own rules (sizes, dates, screened text) are the use case's to check.
    let draft = match (kind, place, start, end, published_at) {
        (
            Some(kind),
            Some(place),
            Some(fieldwork_start),
            Some(fieldwork_end),
            Some(published_at),
        ) if violations.is_empty() => ReviewDraft {
            kind,
            title: review.title.clone(),
            place,
            agencies,
            fieldwork_start,
            fieldwork_end,
            published_at,
            findings,
            note: review.note.clone(),
        },
        _ => return Err(Invalid(violations)),
    };
    Ok(draft)
}

/// The recommendation a request names, each part numbered from 1.
pub fn recommendation_ref(
    at: Option<&proto::RecommendationRef>,
) -> Result<RecommendationRef, Invalid> {
    let at = at.ok_or_else(|| Invalid::one("recommendation", "is required"))?;
    for (field, value) in [
        ("recommendation.review_id", at.review_id),
        ("recommendation.finding", u64::from(at.finding)),
        (
            "recommendation.recommendation",
            u64::from(at.recommendation),
        ),
    ] {
        if value == 0 {
            return Err(Invalid::one(field, "is required (numbered from 1)"));
        }
    }
    Ok(RecommendationRef {
        review: at.review_id,
        finding: at.finding,
        recommendation: at.recommendation,
    })
}

/// An action as a request sends it: its date and status read (the use case checks the rest).
pub fn action_draft(
    description: &str,
    owner: &str,
    due: &str,
    status: i32,
    note: &str,
) -> Result<ActionDraft, Invalid> {
    Ok(ActionDraft {
        description: description.to_string(),
        owner: owner.to_string(),
        due: date_of("due", due)?,
        status: coded_option("status", status)?.unwrap_or(ActionStatus::Planned),
        note: note.to_string(),
    })
}

/// A theme as the contract lists it.
pub fn theme_to_proto(theme: Theme) -> proto::Theme {
    proto::Theme {
        word: theme.word().to_string(),
        label: theme.label(),
        family: theme.family().word().to_string(),
    }
}

/// A review revision as answered.
pub fn review_to_proto(app: &Application, review: &Review, published: bool) -> proto::Review {
    proto::Review {
        id: review.id,
        revision: review.revision,
        kind: review.kind.number(),
        title: review.title.clone(),
        place_code: review.place.to_string(),
        agency_ids: review.agencies.iter().map(ToString::to_string).collect(),
        fieldwork_start: iso_date(review.fieldwork_start),
        fieldwork_end: iso_date(review.fieldwork_end),
        published_at: Some(timestamp(review.published_at)),
        findings: review
            .findings
            .iter()
            .zip(1..)
            .map(|(finding, number)| proto::Finding {
                number,
                theme: finding.theme.word().to_string(),
                judgement: finding.judgement.number(),
                summary: finding.summary.clone(),
                recommendations: finding
                    .recommendations
                    .iter()
                    .zip(1..)
                    .map(|(recommendation, number)| proto::Recommendation {
                        number,
                        text: recommendation.text.clone(),
                        agency_id: recommendation.agency.to_string(),
                    })
                    .collect(),
            })
            .collect(),
        note: review.note.clone(),
        recorded_by: review.recorded_by.clone(),
        recorded_at: Some(timestamp(review.recorded_at)),
        published,
        place: app
            .place_named(review.place)
            .map(|p| place_to_proto(&p, &[])),
    }
}

/// An action as answered.
pub fn action_to_proto(answer: &ActionAnswer) -> proto::Action {
    let action = &answer.action;
    proto::Action {
        recommendation: Some(proto::RecommendationRef {
            review_id: action.key.recommendation.review,
            finding: action.key.recommendation.finding,
            recommendation: action.key.recommendation.recommendation,
        }),
        number: action.key.number,
        revision: action.revision,
        agency_id: action.agency.to_string(),
        description: action.description.clone(),
        owner: action.owner.clone(),
        due: iso_date(action.due),
        status: action.status.number(),
        note: action.note.clone(),
        updated_by: action.updated_by.clone(),
        updated_at: Some(timestamp(action.updated_at)),
        overdue: answer.overdue,
    }
}

/// A review with its action plan, as GetReview answers.
pub fn review_answer_to_proto(
    app: &Application,
    answer: &ReviewAnswer,
) -> proto::GetReviewResponse {
    proto::GetReviewResponse {
        review: Some(review_to_proto(app, &answer.review, answer.published)),
        actions: answer.actions.iter().map(action_to_proto).collect(),
        revisions: answer.revisions,
    }
}

fn finding_ref(app: &Application, evidence: &Evidence) -> proto::FindingRef {
    proto::FindingRef {
        review_id: evidence.review,
        review_title: evidence.title.clone(),
        kind: evidence.kind.number(),
        place_code: evidence.place.to_string(),
        place_name: app
            .place_named(evidence.place)
            .map(|p| p.name)
            .unwrap_or_default(),
        finding: evidence.finding,
        judgement: evidence.judgement.number(),
        published_at: Some(timestamp(evidence.published_at)),
    }
}

fn change_to_proto(change: Change) -> proto::ThemeChange {
    match change {
        Change::New => proto::ThemeChange::New,
        Change::Rising => proto::ThemeChange::Rising,
        Change::Falling => proto::ThemeChange::Falling,
        Change::Steady => proto::ThemeChange::Steady,
        Change::Gone => proto::ThemeChange::Gone,
    }
}

fn relation_to_proto(relation: Relation) -> proto::Relation {
    match relation {
        Relation::Own => proto::Relation::Own,
        Relation::Neighbour => proto::Relation::Neighbour,
        Relation::Region => proto::Relation::Region,
    }
}

/// An area's lessons as answered.
pub fn lessons_to_proto(app: &Application, answer: &LessonsAnswer) -> proto::GetLessonsResponse {
    let lessons = &answer.lessons;
    proto::GetLessonsResponse {
        area: Some(place_to_proto(&answer.area, &[])),
        from: iso_date(lessons.period.from),
        until: iso_date(lessons.period.until),
        previous_from: iso_date(lessons.previous.from),
        reviews: lessons.reviews as u64,
        findings: lessons.findings as u64,
        themes: lessons
            .themes
            .iter()
            .map(|lesson| proto::ThemeLesson {
                theme: Some(theme_to_proto(lesson.theme)),
                strengths: u64::from(lesson.strength.count),
                areas_for_improvement: u64::from(lesson.area_for_improvement.count),
                priority_actions: u64::from(lesson.priority_action.count),
                total: u64::from(lesson.total),
                previous_total: u64::from(lesson.previous_total),
                change: change_to_proto(lesson.change) as i32,
                evidence: [
                    &lesson.strength,
                    &lesson.area_for_improvement,
                    &lesson.priority_action,
                ]
                .iter()
                .flat_map(|tally| tally.evidence.iter())
                .map(|evidence| finding_ref(app, evidence))
                .collect(),
            })
            .collect(),
        themes_version: THEMES_VERSION.to_string(),
    }
}

/// Lines of enquiry as answered.
pub fn enquiry_to_proto(
    app: &Application,
    answer: &EnquiryAnswer,
) -> proto::GetLinesOfEnquiryResponse {
    proto::GetLinesOfEnquiryResponse {
        place: Some(place_to_proto(&answer.place, &[])),
        lines: answer
            .enquiry
            .lines
            .iter()
            .map(|line| proto::LineOfEnquiry {
                rank: u32::try_from(line.rank).unwrap_or(u32::MAX),
                theme: Some(theme_to_proto(line.theme)),
                score: line.score,
                recurrence: line.recurrence,
                evidence: line
                    .evidence
                    .iter()
                    .map(|(relation, evidence)| proto::EnquiryEvidence {
                        relation: relation_to_proto(*relation) as i32,
                        finding: Some(finding_ref(app, evidence)),
                    })
                    .collect(),
                measure: line.measure.as_ref().map(|m| proto::ThemeMeasure {
                    measure: m.measure.clone(),
                    place: m.place,
                    comparison: m.comparison,
                }),
                factor: line.factor,
                reason: line.reason.clone(),
            })
            .collect(),
        covered: answer
            .enquiry
            .covered
            .iter()
            .map(|covered| proto::CoveredTheme {
                theme: Some(theme_to_proto(covered.theme)),
                evidence: covered
                    .evidence
                    .iter()
                    .map(|evidence| finding_ref(app, evidence))
                    .collect(),
            })
            .collect(),
        neighbours: answer
            .neighbours
            .iter()
            .map(|p| place_to_proto(p, &[]))
            .collect(),
        region: answer.region.as_ref().map(|p| place_to_proto(p, &[])),
        themes_version: THEMES_VERSION.to_string(),
    }
}

/// A review kind filter: unspecified means any.
pub fn kind_filter(number: i32) -> Result<Option<ReviewKind>, Invalid> {
    coded_option("kind", number)
}

/// A place filter: empty means anywhere.
pub fn area_filter(
    app: &Application,
    field: &str,
    code: &str,
) -> Result<Option<PlaceCode>, Invalid> {
    if code.is_empty() {
        Ok(None)
    } else {
        app.store().place_code(field, code).map(Some)
    }
}

#[tonic::async_trait]
impl Reviews for ReviewsService {
    async fn record_review(
        &self,
        request: Request<proto::RecordReviewRequest>,
    ) -> Result<Response<proto::RecordReviewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let answer = async {
            let review = request
                .review
                .as_ref()
                .ok_or_else(|| Invalid::one("review", "is required"))?;
            let draft = review_from_proto(review)?;
            let correcting = match (review.id, request.expected_revision) {
                (0, _) => None,
                (_, 0) => {
                    return Err(Invalid::one(
                        "expected_revision",
                        "a correction names the revision it was made against",
                    )
                    .into());
                }
                (id, revision) => Some((id, revision)),
            };
            self.app.record_review(&caller, draft, correcting).await
        };
        let answer = self.app.conclude(&caller, answer.await).await?;
        Ok(Response::new(proto::RecordReviewResponse {
            review: Some(review_to_proto(&self.app, &answer.review, answer.published)),
        }))
    }

    async fn plan_action(
        &self,
        request: Request<proto::PlanActionRequest>,
    ) -> Result<Response<proto::PlanActionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let answer = async {
            let at = recommendation_ref(request.recommendation.as_ref())?;
            let draft = action_draft(
                &request.description,
                &request.owner,
                &request.due,
                request.status,
                &request.note,
            )?;
            self.app.plan_action(&caller, at, draft).await
        };
        let answer = self.app.conclude(&caller, answer.await).await?;
        Ok(Response::new(proto::PlanActionResponse {
            action: Some(action_to_proto(&answer)),
        }))
    }

    async fn update_action(
        &self,
        request: Request<proto::UpdateActionRequest>,
    ) -> Result<Response<proto::UpdateActionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let answer = async {
            let recommendation = recommendation_ref(request.recommendation.as_ref())?;
            if request.number == 0 {
                return Err(Invalid::one("number", "is required (numbered from 1)").into());
            }
            if request.expected_revision == 0 {
                return Err(Invalid::one(
                    "expected_revision",
                    "an update names the revision it was made against",
                )
                .into());
            }
            let draft = action_draft(
                &request.description,
                &request.owner,
                &request.due,
                request.status,
                &request.note,
            )?;
            let key = ActionKey {
                recommendation,
                number: request.number,
            };
            self.app
                .update_action(&caller, key, request.expected_revision, draft)
                .await
        };
        let answer = self.app.conclude(&caller, answer.await).await?;
        Ok(Response::new(proto::UpdateActionResponse {
            action: Some(action_to_proto(&answer)),
        }))
    }
}
