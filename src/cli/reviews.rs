//! `marr reviews`, `marr actions`, `marr lessons` and `marr enquiries`: reviews of places
//! recorded from a file, their action plans, the collective lessons of an area and the lines of
//! enquiry for a place's next review.
//!
//! A review file is TOML (or JSON, by its `.json` extension), one table with the review's
//! fields and an array of `[[findings]]`, each with its `[[findings.recommendations]]`; see
//! `examples/review.toml`. Words are the data standard's: `kind = "joint_targeted_area_inspection"`,
//! `judgement = "priority_action"`, `theme = "information_sharing"` (OpenData.ListThemes).

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::inspect::{time_of, word};
use super::{ClientError, Connection};
use crate::api::convert::timestamp;
use crate::domain::Vocabulary;
use crate::domain::review::{ActionStatus, Judgement, ReviewKind};
use crate::proto;

/// A date or time as a review file may write it: a quoted string, or a TOML date or date-time.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum When {
    Text(String),
    Toml(toml::value::Datetime),
}

impl When {
    fn text(&self) -> String {
        match self {
            When::Text(text) => text.clone(),
            When::Toml(at) => at.to_string(),
        }
    }
}

/// One recommendation as a review file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendationFile {
    text: String,
    /// The accountable agency: one of the review's agencies.
    agency: String,
}

/// One finding as a review file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingFile {
    theme: String,
    judgement: String,
    summary: String,
    #[serde(default)]
    recommendations: Vec<RecommendationFile>,
}

/// A review file. Unknown keys are refused, so nothing is sent that the file's author did not
/// mean to be a field of the review.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewFile {
    kind: String,
    title: String,
    place: String,
    agencies: Vec<String>,
    fieldwork_start: When,
    fieldwork_end: When,
    /// RFC 3339; public from then on, for good.
    published_at: When,
    #[serde(default)]
    findings: Vec<FindingFile>,
}

/// A word of the vocabulary, or a refusal naming the file and the field.
fn coded<V: Vocabulary>(path: &Path, field: &str, text: &str) -> Result<i32, ClientError> {
    V::parse_word(text)
        .map(Vocabulary::number)
        .map_err(|e| input(path, format!("{field}: {e}")))
}

fn input(path: &Path, reason: impl Into<String>) -> ClientError {
    ClientError::Input {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a review file into the review it describes (id 0: a new review).
pub fn read_review_file(path: &Path) -> Result<proto::Review, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| input(path, e.to_string()))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let file: ReviewFile = if json {
        serde_json::from_str(&text).map_err(|e| input(path, e.to_string()))?
    } else {
        // One line naming where, without the snippet of the file TOML would quote.
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            match line {
                Some(line) => input(path, format!("line {line}: {}", e.message())),
                None => input(path, e.message().to_string()),
            }
        })?
    };
    let published_text = file.published_at.text();
    let published_at = OffsetDateTime::parse(&published_text, &Rfc3339).map_err(|_| {
        input(
            path,
            "review.published_at: is not an RFC 3339 time (2026-05-01T09:00:00Z)",
        )
    })?;
    let mut findings = Vec::new();
    for (f, finding) in file.findings.iter().enumerate() {
        findings.push(proto::Finding {
            number: 0,
            theme: finding.theme.clone(),
            judgement: coded::<Judgement>(
                path,
                &format!("review.findings[{f}].judgement"),
                &finding.judgement,
            )?,
            summary: finding.summary.clone(),
            recommendations: finding
                .recommendations
                .iter()
                .map(|r| proto::Recommendation {
                    number: 0,
                    text: r.text.clone(),
                    agency_id: r.agency.clone(),
                })
                .collect(),
        });
    }
    Ok(proto::Review {
        kind: coded::<ReviewKind>(path, "review.kind", &file.kind)?,
        title: file.title,
        place_code: file.place,
        agency_ids: file.agencies,
        fieldwork_start: file.fieldwork_start.text(),
        fieldwork_end: file.fieldwork_end.text(),
        published_at: Some(timestamp(published_at)),
        findings,
        ..Default::default()
    })
}

/// Records a review, or (`correcting` = id, expected revision, note) a correction of one.
pub async fn record(
    connection: &Connection,
    mut review: proto::Review,
    correcting: Option<(u64, u32, String)>,
) -> Result<proto::Review, ClientError> {
    let mut expected_revision = 0;
    if let Some((id, revision, note)) = correcting {
        review.id = id;
        review.note = note;
        expected_revision = revision;
    }
    let answer = connection
        .reviews()
        .record_review(proto::RecordReviewRequest {
            review: Some(review),
            expected_revision,
        })
        .await?
        .into_inner();
    answer
        .review
        .ok_or_else(|| ClientError::Refused(tonic::Status::internal("the server sent no review")))
}

/// One review with its action plan.
pub async fn get(
    connection: &Connection,
    id: u64,
    revision: u32,
) -> Result<proto::GetReviewResponse, ClientError> {
    Ok(connection
        .open_data()
        .get_review(proto::GetReviewRequest {
            review_id: id,
            revision,
        })
        .await?
        .into_inner())
}

/// Publishes an unpublished review now: a correction made against `expected` that sets its
/// publication time to the present, noted "Published on request". A published review is
/// refused (by the server too): publication is for good and its time never moves.
pub async fn publish(
    connection: &Connection,
    id: u64,
    expected: u32,
) -> Result<proto::Review, ClientError> {
    let current = get(connection, id, 0).await?;
    let mut review = current.review.ok_or_else(|| {
        ClientError::Refused(tonic::Status::internal("the server sent no review"))
    })?;
    if review.published {
        return Err(ClientError::Refused(tonic::Status::failed_precondition(
            format!(
                "review {id} is already published (since {}): publication is for good, and its time cannot change",
                time_of(review.published_at.as_ref())
            ),
        )));
    }
    let now = OffsetDateTime::now_utc();
    review.published_at = Some(timestamp(now.replace_nanosecond(0).unwrap_or(now)));
    // The server numbers findings and recommendations and sets what it owns itself.
    review.place = None;
    review.recorded_by.clear();
    review.recorded_at = None;
    record(
        connection,
        review,
        Some((id, expected, "Published on request".to_string())),
    )
    .await
}

/// Which reviews `marr reviews list` wants.
#[derive(Debug, Clone, Default)]
pub struct ReviewQuery {
    pub place: Option<String>,
    pub kind: Option<ReviewKind>,
    pub theme: Option<String>,
    pub include_unpublished: bool,
}

/// Every review a listing answers, all pages.
pub async fn list(
    connection: &Connection,
    query: &ReviewQuery,
) -> Result<Vec<proto::Review>, ClientError> {
    let mut reviews = Vec::new();
    let mut after = 0;
    loop {
        let page = connection
            .open_data()
            .list_reviews(proto::ListReviewsRequest {
                place_code: query.place.clone().unwrap_or_default(),
                kind: query.kind.map_or(0, |k| k.number()),
                theme: query.theme.clone().unwrap_or_default(),
                include_unpublished: query.include_unpublished,
                after_review_id: after,
                page_size: 500,
            })
            .await?
            .into_inner();
        reviews.extend(page.reviews);
        if page.next_after_review_id == 0 || page.next_after_review_id <= after {
            return Ok(reviews);
        }
        after = page.next_after_review_id;
    }
}

fn place_of(review: &proto::Review) -> String {
    match &review.place {
        Some(place) if !place.name.is_empty() => format!("{} ({})", place.name, place.code),
        _ => review.place_code.clone(),
    }
}

fn date_part(at: Option<&prost_types::Timestamp>) -> String {
    time_of(at).chars().take(10).collect()
}

/// What `marr reviews record` and `publish` print.
pub fn recorded_line(review: &proto::Review) -> String {
    let published = if review.published {
        format!("published {}", time_of(review.published_at.as_ref()))
    } else {
        format!(
            "not published until {}",
            time_of(review.published_at.as_ref())
        )
    };
    format!(
        "review {} revision {}: {}; {} findings, {} recommendations",
        review.id,
        review.revision,
        published,
        review.findings.len(),
        review
            .findings
            .iter()
            .map(|f| f.recommendations.len())
            .sum::<usize>()
    )
}

/// One review as a line of `marr reviews list`.
pub fn review_line(review: &proto::Review) -> String {
    format!(
        "{:>4} r{:<2} {} {:<11} {:<36} {}  \"{}\"",
        review.id,
        review.revision,
        date_part(review.published_at.as_ref()),
        if review.published {
            "published"
        } else {
            "unpublished"
        },
        word::<ReviewKind>(review.kind),
        place_of(review),
        review.title
    )
}

/// A review as one JSON object.
pub fn review_json(review: &proto::Review) -> Value {
    json!({
        "id": review.id,
        "revision": review.revision,
        "kind": word::<ReviewKind>(review.kind),
        "title": review.title,
        "place_code": review.place_code,
        "place_name": review.place.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        "agency_ids": review.agency_ids,
        "fieldwork_start": review.fieldwork_start,
        "fieldwork_end": review.fieldwork_end,
        "published_at": time_of(review.published_at.as_ref()),
        "published": review.published,
        "findings": review.findings.iter().map(|f| json!({
            "number": f.number,
            "theme": f.theme,
            "judgement": word::<Judgement>(f.judgement),
            "summary": f.summary,
            "recommendations": f.recommendations.iter().map(|r| json!({
                "number": r.number, "agency_id": r.agency_id, "text": r.text,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "note": review.note,
        "recorded_by": review.recorded_by,
        "recorded_at": time_of(review.recorded_at.as_ref()),
    })
}

/// Where an action stands: `finding.recommendation.action` of its review.
fn action_ref(action: &proto::Action) -> (u64, u32, u32) {
    action
        .recommendation
        .as_ref()
        .map_or((0, 0, 0), |r| (r.review_id, r.finding, r.recommendation))
}

/// One action as a line.
pub fn action_line(action: &proto::Action) -> String {
    let (review, finding, recommendation) = action_ref(action);
    format!(
        "review {review} action {finding}.{recommendation}.{} r{}  {}  {:<11} due {}{}  owner: {}  {}{}",
        action.number,
        action.revision,
        action.agency_id,
        word::<ActionStatus>(action.status),
        action.due,
        if action.overdue { " OVERDUE" } else { "" },
        action.owner,
        action.description,
        if action.note.is_empty() {
            String::new()
        } else {
            format!("  (note: {})", action.note)
        }
    )
}

/// An action as one JSON object.
pub fn action_json(action: &proto::Action) -> Value {
    let (review, finding, recommendation) = action_ref(action);
    json!({
        "review_id": review,
        "finding": finding,
        "recommendation": recommendation,
        "number": action.number,
        "revision": action.revision,
        "agency_id": action.agency_id,
        "description": action.description,
        "owner": action.owner,
        "due": action.due,
        "status": word::<ActionStatus>(action.status),
        "overdue": action.overdue,
        "note": action.note,
        "updated_by": action.updated_by,
        "updated_at": time_of(action.updated_at.as_ref()),
    })
}

/// A review with its findings, recommendations and action plan, as readable lines.
pub fn review_table(answer: &proto::GetReviewResponse) -> String {
    let Some(review) = &answer.review else {
        return String::new();
    };
    let mut out = format!(
        "review {} revision {} of {}: {}\n\"{}\"\n",
        review.id,
        review.revision,
        answer.revisions,
        ReviewKind::from_number(review.kind).map_or("unspecified kind", |k| k.label()),
        review.title
    );
    out += &format!("place:     {}\n", place_of(review));
    out += &format!("agencies:  {}\n", review.agency_ids.join(", "));
    out += &format!(
        "fieldwork: {} to {}\n",
        review.fieldwork_start, review.fieldwork_end
    );
    out += &format!(
        "published: {}{}\n",
        time_of(review.published_at.as_ref()),
        if review.published {
            ""
        } else {
            " (not yet published)"
        }
    );
    out += &format!(
        "recorded:  {} by {}{}\n",
        time_of(review.recorded_at.as_ref()),
        review.recorded_by,
        if review.note.is_empty() {
            String::new()
        } else {
            format!(" (note: {})", review.note)
        }
    );
    for finding in &review.findings {
        out += &format!(
            "\nfinding {}  {}  {}\n  {}\n",
            finding.number,
            finding.theme,
            word::<Judgement>(finding.judgement),
            finding.summary
        );
        for recommendation in &finding.recommendations {
            out += &format!(
                "  recommendation {}.{} to {}: {}\n",
                finding.number,
                recommendation.number,
                recommendation.agency_id,
                recommendation.text
            );
            for action in answer.actions.iter().filter(|a| {
                let (_, f, r) = action_ref(a);
                f == finding.number && r == recommendation.number
            }) {
                out += &format!("    {}\n", action_line(action));
            }
        }
    }
    if answer.actions.is_empty() {
        out += "\nno actions planned yet\n";
    }
    out
}

/// The review with its action plan as one JSON object.
pub fn review_answer_json(answer: &proto::GetReviewResponse) -> Value {
    let mut object = answer.review.as_ref().map(review_json).unwrap_or_default();
    object["revisions"] = json!(answer.revisions);
    object["actions"] = Value::Array(answer.actions.iter().map(action_json).collect());
    object
}

/// What `marr actions add` sends.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub review: u64,
    pub finding: u32,
    pub recommendation: u32,
    pub description: String,
    pub owner: String,
    pub due: String,
    pub status: ActionStatus,
    pub note: String,
}

/// Plans an action as the accountable agency.
pub async fn add_action(
    connection: &Connection,
    action: NewAction,
) -> Result<proto::Action, ClientError> {
    connection
        .reviews()
        .plan_action(proto::PlanActionRequest {
            recommendation: Some(proto::RecommendationRef {
                review_id: action.review,
                finding: action.finding,
                recommendation: action.recommendation,
            }),
            description: action.description,
            owner: action.owner,
            due: action.due,
            status: action.status.number(),
            note: action.note,
        })
        .await?
        .into_inner()
        .action
        .ok_or_else(|| ClientError::Refused(tonic::Status::internal("the server sent no action")))
}

/// What `marr actions update` changes; fields left `None` keep their current value.
#[derive(Debug, Clone, Default)]
pub struct ActionChanges {
    pub status: Option<ActionStatus>,
    pub due: Option<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub note: Option<String>,
}

/// Records the next revision of an action, made against `expected`: the action is read first
/// (GetReview) so the fields not given keep their current value.
pub async fn update_action(
    connection: &Connection,
    at: (u64, u32, u32, u32),
    expected: u32,
    changes: ActionChanges,
) -> Result<proto::Action, ClientError> {
    let (review, finding, recommendation, number) = at;
    let plan = get(connection, review, 0).await?;
    let current = plan
        .actions
        .into_iter()
        .find(|a| action_ref(a) == (review, finding, recommendation) && a.number == number)
        .ok_or_else(|| {
            ClientError::Refused(tonic::Status::not_found(format!(
                "review {review} has no action {finding}.{recommendation}.{number}"
            )))
        })?;
    connection
        .reviews()
        .update_action(proto::UpdateActionRequest {
            recommendation: current.recommendation,
            number,
            expected_revision: expected,
            description: changes.description.unwrap_or(current.description),
            owner: changes.owner.unwrap_or(current.owner),
            due: changes.due.unwrap_or(current.due),
            status: changes.status.map_or(current.status, |s| s.number()),
            note: changes.note.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .action
        .ok_or_else(|| ClientError::Refused(tonic::Status::internal("the server sent no action")))
}

/// Actions of published reviews' plans.
pub async fn list_actions(
    connection: &Connection,
    mut request: proto::ListActionsRequest,
) -> Result<Vec<proto::Action>, ClientError> {
    let mut actions = Vec::new();
    loop {
        let page = connection
            .open_data()
            .list_actions(request.clone())
            .await?
            .into_inner();
        actions.extend(page.actions);
        if page.next_after_review_id == 0 {
            return Ok(actions);
        }
        request.after_review_id = page.next_after_review_id;
    }
}

/// An area's lessons over a period.
pub async fn lessons(
    connection: &Connection,
    area: &str,
    from: &str,
    until: &str,
) -> Result<proto::GetLessonsResponse, ClientError> {
    Ok(connection
        .open_data()
        .get_lessons(proto::GetLessonsRequest {
            area_code: area.to_string(),
            from: from.to_string(),
            until: until.to_string(),
        })
        .await?
        .into_inner())
}

fn change_word(change: i32) -> &'static str {
    match proto::ThemeChange::try_from(change) {
        Ok(proto::ThemeChange::New) => "new",
        Ok(proto::ThemeChange::Rising) => "rising",
        Ok(proto::ThemeChange::Falling) => "falling",
        Ok(proto::ThemeChange::Steady) => "steady",
        Ok(proto::ThemeChange::Gone) => "gone",
        Ok(proto::ThemeChange::Unspecified) | Err(_) => "",
    }
}

fn theme_word(theme: Option<&proto::Theme>) -> &str {
    theme.map_or("", |t| t.word.as_str())
}

fn area_line(place: Option<&proto::Place>) -> String {
    place.map_or(String::new(), |p| format!("{} ({})", p.name, p.code))
}

/// Lessons as a table: theme, counts by judgement, total, the previous period's and the change.
pub fn lessons_table(answer: &proto::GetLessonsResponse) -> String {
    let mut out = format!(
        "Lessons of {}: {} reviews published from {} until {} (exclusive), {} findings; \
         previous period from {} (themes {})\n",
        area_line(answer.area.as_ref()),
        answer.reviews,
        answer.from,
        answer.until,
        answer.findings,
        answer.previous_from,
        answer.themes_version
    );
    out += &format!(
        "{:<28} {:>9} {:>12} {:>9} {:>6} {:>8}  {}\n",
        "theme", "strengths", "improvement", "priority", "total", "previous", "change"
    );
    for lesson in &answer.themes {
        out += &format!(
            "{:<28} {:>9} {:>12} {:>9} {:>6} {:>8}  {}\n",
            theme_word(lesson.theme.as_ref()),
            lesson.strengths,
            lesson.areas_for_improvement,
            lesson.priority_actions,
            lesson.total,
            lesson.previous_total,
            change_word(lesson.change)
        );
    }
    if answer.themes.is_empty() {
        out += "(no findings published in the period or the one before)\n";
    }
    out
}

fn finding_ref_json(evidence: &proto::FindingRef) -> Value {
    json!({
        "review_id": evidence.review_id,
        "review_title": evidence.review_title,
        "kind": word::<ReviewKind>(evidence.kind),
        "place_code": evidence.place_code,
        "place_name": evidence.place_name,
        "finding": evidence.finding,
        "judgement": word::<Judgement>(evidence.judgement),
        "published_at": time_of(evidence.published_at.as_ref()),
    })
}

/// Lessons as one JSON object.
pub fn lessons_json(answer: &proto::GetLessonsResponse) -> Value {
    json!({
        "area_code": answer.area.as_ref().map(|p| p.code.clone()).unwrap_or_default(),
        "area_name": answer.area.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        "from": answer.from,
        "until": answer.until,
        "previous_from": answer.previous_from,
        "reviews": answer.reviews,
        "findings": answer.findings,
        "themes_version": answer.themes_version,
        "themes": answer.themes.iter().map(|lesson| json!({
            "theme": theme_word(lesson.theme.as_ref()),
            "family": lesson.theme.as_ref().map(|t| t.family.clone()).unwrap_or_default(),
            "strengths": lesson.strengths,
            "areas_for_improvement": lesson.areas_for_improvement,
            "priority_actions": lesson.priority_actions,
            "total": lesson.total,
            "previous_total": lesson.previous_total,
            "change": change_word(lesson.change),
            "evidence": lesson.evidence.iter().map(finding_ref_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Lines of enquiry for a place.
pub async fn enquiries(
    connection: &Connection,
    place: &str,
) -> Result<proto::GetLinesOfEnquiryResponse, ClientError> {
    Ok(connection
        .inspection()
        .get_lines_of_enquiry(proto::GetLinesOfEnquiryRequest {
            place_code: place.to_string(),
        })
        .await?
        .into_inner())
}

fn relation_word(relation: i32) -> &'static str {
    match proto::Relation::try_from(relation) {
        Ok(proto::Relation::Own) => "own",
        Ok(proto::Relation::Neighbour) => "neighbour",
        Ok(proto::Relation::Region) => "region",
        Ok(proto::Relation::Unspecified) | Err(_) => "",
    }
}

fn evidence_line(relation: &str, evidence: &proto::FindingRef) -> String {
    format!(
        "{relation:<9} review {} finding {} ({}), {} {}, published {}: \"{}\"",
        evidence.review_id,
        evidence.finding,
        word::<Judgement>(evidence.judgement),
        evidence.place_code,
        evidence.place_name,
        date_part(evidence.published_at.as_ref()),
        evidence.review_title
    )
}

/// Ranked lines of enquiry, each with its evidence, then the themes the place's own recent
/// reviews covered.
pub fn enquiries_table(answer: &proto::GetLinesOfEnquiryResponse) -> String {
    let mut out = format!(
        "Lines of enquiry for {}, from the published reviews of its {} statistical neighbours and its region {} (themes {})\n",
        area_line(answer.place.as_ref()),
        answer.neighbours.len(),
        area_line(answer.region.as_ref()),
        answer.themes_version
    );
    if answer.lines.is_empty() {
        out += "(no published findings of the place's neighbours or region to draw on)\n";
    }
    for line in &answer.lines {
        out += &format!(
            "\n{:>2}. {:<28} score {:.2}  {}\n",
            line.rank,
            theme_word(line.theme.as_ref()),
            line.score,
            line.reason
        );
        for evidence in &line.evidence {
            if let Some(finding) = &evidence.finding {
                out += &format!(
                    "      {}\n",
                    evidence_line(relation_word(evidence.relation), finding)
                );
            }
        }
    }
    if !answer.covered.is_empty() {
        out += "\ncovered by the place's own recent reviews:\n";
        for covered in &answer.covered {
            out += &format!("    {}\n", theme_word(covered.theme.as_ref()));
            for finding in &covered.evidence {
                out += &format!("      {}\n", evidence_line("own", finding));
            }
        }
    }
    out
}

/// Lines of enquiry as one JSON object.
pub fn enquiries_json(answer: &proto::GetLinesOfEnquiryResponse) -> Value {
    json!({
        "place_code": answer.place.as_ref().map(|p| p.code.clone()).unwrap_or_default(),
        "place_name": answer.place.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        "neighbours": answer.neighbours.iter().map(|p| p.code.clone()).collect::<Vec<_>>(),
        "region": answer.region.as_ref().map(|p| p.code.clone()).unwrap_or_default(),
        "themes_version": answer.themes_version,
        "lines": answer.lines.iter().map(|line| json!({
            "rank": line.rank,
            "theme": theme_word(line.theme.as_ref()),
            "score": line.score,
            "recurrence": line.recurrence,
            "factor": line.factor,
            "measure": line.measure.as_ref().map(|m| json!({
                "measure": m.measure, "place": m.place, "comparison": m.comparison,
            })),
            "reason": line.reason,
            "evidence": line.evidence.iter().map(|e| {
                let mut object = e.finding.as_ref().map(finding_ref_json).unwrap_or_default();
                object["relation"] = json!(relation_word(e.relation));
                object
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "covered": answer.covered.iter().map(|c| json!({
            "theme": theme_word(c.theme.as_ref()),
            "evidence": c.evidence.iter().map(finding_ref_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
