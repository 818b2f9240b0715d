//! Reviews of a place's safeguarding arrangements, their findings and recommendations, and the
//! accountable agencies' action plans: the register's learning side.
//!
//! A review is recorded by an inspector, published at its publication time (which may be set
//! ahead) and never unpublished; a correction is a new revision with the history kept. Each
//! recommendation is addressed to one accountable agency, which alone plans and updates the
//! actions that answer it. Everything here is published, so every free-text field is screened
//! exactly as a record's note is: no names, no raw identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::free_text::{TextRefusal, check_characters, screen};
use super::record::{AgencyId, FieldViolation, Invalid, PlaceCode};
use super::vocabulary::{ClientGroup, RiskCategory, UnknownWord, Vocabulary, vocabulary};

/// Longest review title, in characters.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest finding summary or recommendation, in characters: a published sentence or two.
pub const FINDING_MAX_CHARS: usize = 600;
/// Longest action description, in characters.
pub const ACTION_MAX_CHARS: usize = 300;
/// Longest action owner, in characters: a post ("Director of Children's Services"), not a name.
pub const OWNER_MAX_CHARS: usize = 120;
/// Longest note on a correction or an action update, in characters.
pub const REVISION_NOTE_MAX_CHARS: usize = 200;
/// Most findings a review may hold.
pub const MAX_FINDINGS: usize = 200;
/// Most recommendations one finding may hold.
pub const MAX_RECOMMENDATIONS: usize = 20;
/// Most agencies a review may name in scope.
pub const MAX_AGENCIES: usize = 100;
/// Most actions one recommendation may hold.
pub const MAX_ACTIONS: u32 = 50;
/// Most actions one review's plan may hold, so a plan is always one answer.
pub const MAX_REVIEW_ACTIONS: usize = 500;

/// Earliest date a review's fieldwork or an action's due date may fall on.
pub const EARLIEST_DATE: Date = time::macros::date!(2000 - 01 - 01);
/// Latest date a review's fieldwork or an action's due date may fall on.
pub const LATEST_DATE: Date = time::macros::date!(2100 - 12 - 31);
/// Longest wait between the end of fieldwork and publication, in days: timing may be chosen,
/// publication may not be put off for good.
pub const MAX_DAYS_TO_PUBLICATION: i64 = 366;

/// The version of the theme vocabulary this server speaks: findings recorded under it keep
/// their themes' meaning, and a later version only adds themes.
pub const THEMES_VERSION: &str = "2026-11";

vocabulary! {
    /// What kind of review a review is.
    ReviewKind, "review kind" {
        JointTargetedAreaInspection = 1, "joint_targeted_area_inspection", "Joint targeted area inspection";
        ChildrensServicesInspection = 2, "childrens_services_inspection", "Inspection of local authority children's services";
        CorporatePeerReview = 3, "corporate_peer_review", "Corporate peer review";
        ChildrensServicesPeerReview = 4, "childrens_services_peer_review", "Children's services peer review";
        ChildSexualExploitationPeerReview = 5, "child_sexual_exploitation_peer_review", "Child sexual exploitation peer review";
        SafeguardingPracticeReview = 6, "safeguarding_practice_review", "Safeguarding practice review";
        PartnershipSelfAssessment = 7, "partnership_self_assessment", "Partnership self-assessment";
    }
}

vocabulary! {
    /// What a finding says of the arrangements.
    Judgement, "judgement" {
        Strength = 1, "strength", "Strength";
        AreaForImprovement = 2, "area_for_improvement", "Area for improvement";
        PriorityAction = 3, "priority_action", "Priority action";
    }
}

vocabulary! {
    /// Where an action stands, as its accountable agency last said.
    ActionStatus, "action status" {
        Planned = 1, "planned", "Planned";
        InProgress = 2, "in_progress", "In progress";
        Done = 3, "done", "Done";
        Overdue = 4, "overdue", "Overdue";
    }
}

vocabulary! {
    /// The practice themes of the theme vocabulary, beside the client groups and risk
    /// categories.
    PracticeTheme, "practice theme" {
        FrontDoor = 1, "front_door", "The front door (contact, referral and triage)";
        InformationSharing = 2, "information_sharing", "Information sharing between agencies";
        ManagementOversight = 3, "management_oversight", "Management oversight and supervision";
        VoiceOfTheChild = 4, "voice_of_the_child", "The voice of the child or adult";
        TransitionsToAdulthood = 5, "transitions_to_adulthood", "Transitions to adulthood";
        Thresholds = 6, "thresholds", "Thresholds and their shared understanding";
        EarlyHelp = 7, "early_help", "Early help";
        StrategyDiscussions = 8, "strategy_discussions", "Strategy discussions and section 47 enquiries";
        RiskAssessment = 9, "risk_assessment", "Multi-agency risk assessment";
        Workforce = 10, "workforce", "Workforce capacity and stability";
        PartnershipGovernance = 11, "partnership_governance", "Partnership governance and leadership";
        QualityAssurance = 12, "quality_assurance", "Quality assurance and learning";
    }
}

/// A theme of the coded vocabulary: a client group, a risk category, or a practice theme.
/// Spelled as its word; the three lists share no word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Theme {
    ClientGroup(ClientGroup),
    Category(RiskCategory),
    Practice(PracticeTheme),
}

/// Which list of the vocabulary a theme comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeFamily {
    ClientGroup,
    Category,
    Practice,
}

impl ThemeFamily {
    /// The family's word, as published with the list.
    pub fn word(self) -> &'static str {
        match self {
            ThemeFamily::ClientGroup => "client_group",
            ThemeFamily::Category => "category",
            ThemeFamily::Practice => "practice",
        }
    }
}

impl Theme {
    /// Every theme of [`THEMES_VERSION`], client groups first, then categories, then practice.
    pub fn all() -> Vec<Theme> {
        let groups = ClientGroup::ALL.iter().map(|g| Theme::ClientGroup(*g));
        let categories = RiskCategory::ALL.iter().map(|c| Theme::Category(*c));
        let practice = PracticeTheme::ALL.iter().map(|p| Theme::Practice(*p));
        groups.chain(categories).chain(practice).collect()
    }

    /// The theme's word.
    pub fn word(self) -> &'static str {
        match self {
            Theme::ClientGroup(group) => group.word(),
            Theme::Category(category) => category.word(),
            Theme::Practice(practice) => practice.word(),
        }
    }

    /// Which list it comes from.
    pub fn family(self) -> ThemeFamily {
        match self {
            Theme::ClientGroup(_) => ThemeFamily::ClientGroup,
            Theme::Category(_) => ThemeFamily::Category,
            Theme::Practice(_) => ThemeFamily::Practice,
        }
    }

    /// How the theme reads on a page.
    pub fn label(self) -> String {
        match self {
            Theme::Practice(practice) => practice.label().to_string(),
            other => {
                let word = other.word().replace('_', " ");
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => word,
                }
            }
        }
    }

    /// The theme spelled `word`, or a refusal that lists where the words are published.
    pub fn parse(word: &str) -> Result<Theme, String> {
        if let Ok(group) = ClientGroup::parse_word(word) {
            return Ok(Theme::ClientGroup(group));
        }
        if let Ok(category) = RiskCategory::parse_word(word) {
            return Ok(Theme::Category(category));
        }
        if let Ok(practice) = PracticeTheme::parse_word(word) {
            return Ok(Theme::Practice(practice));
        }
        Err(format!(
            "is not a theme of the vocabulary (version {THEMES_VERSION}): a client group, a risk category, or one of {}",
            PracticeTheme::ALL
                .iter()
                .map(|p| p.word())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One recommendation of a finding, addressed to the agency that must act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub text: String,
    pub agency: AgencyId,
}

/// One finding of a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub theme: Theme,
    pub judgement: Judgement,
    pub summary: String,
    pub recommendations: Vec<Recommendation>,
}

/// A review as its recorder sends it, before the server numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDraft {
    pub kind: ReviewKind,
    pub title: String,
    /// The place or footprint area reviewed.
    pub place: PlaceCode,
    /// The agencies in scope of the review.
    pub agencies: Vec<AgencyId>,
    pub fieldwork_start: Date,
    pub fieldwork_end: Date,
    /// When it is published: at once, or later for the sensitivity of timing.
    pub published_at: OffsetDateTime,
    pub findings: Vec<Finding>,
    /// What a correction changes, and why (required for a correction, empty for the first).
    pub note: String,
}

/// One revision of a review as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// 1, 2, 3… in the order reviews were recorded.
    pub id: u64,
    /// 1 for the review as first recorded, then one more for each correction.
    pub revision: u32,
    pub kind: ReviewKind,
    pub title: String,
    pub place: PlaceCode,
    pub agencies: Vec<AgencyId>,
    pub fieldwork_start: Date,
    pub fieldwork_end: Date,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub published_at: OffsetDateTime,
    pub findings: Vec<Finding>,
    pub note: String,
    /// Who recorded this revision (a principal's name).
    pub recorded_by: String,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub recorded_at: OffsetDateTime,
}

impl Review {
    /// Whether the public may see it at `now`: from its publication time on, for good.
    pub fn is_published(&self, now: OffsetDateTime) -> bool {
        self.published_at <= now
    }

    /// The recommendation a reference names, if this revision holds it.
    pub fn recommendation(&self, at: RecommendationRef) -> Option<&Recommendation> {
        let finding = self
            .findings
            .get(usize::try_from(at.finding).ok()?.checked_sub(1)?)?;
        finding
            .recommendations
            .get(usize::try_from(at.recommendation).ok()?.checked_sub(1)?)
    }

    /// The finding a reference names, if this revision holds it.
    pub fn finding(&self, number: u32) -> Option<&Finding> {
        self.findings
            .get(usize::try_from(number).ok()?.checked_sub(1)?)
    }

    /// Every recommendation, with its reference.
    pub fn recommendations(&self) -> impl Iterator<Item = (RecommendationRef, &Recommendation)> {
        self.findings
            .iter()
            .enumerate()
            .flat_map(move |(f, finding)| {
                finding
                    .recommendations
                    .iter()
                    .enumerate()
                    .map(move |(r, recommendation)| {
                        (
                            RecommendationRef {
                                review: self.id,
                                finding: index_number(f),
                                recommendation: index_number(r),
                            },
                            recommendation,
                        )
                    })
            })
    }
}

fn index_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Where a recommendation stands: review, finding and recommendation, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecommendationRef {
    pub review: u64,
    pub finding: u32,
    pub recommendation: u32,
}

impl fmt::Display for RecommendationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "review {} recommendation {}.{}",
            self.review, self.finding, self.recommendation
        )
    }
}

/// One action of an action plan: a recommendation and the action's number under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActionKey {
    pub recommendation: RecommendationRef,
    pub number: u32,
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "action {}.{}.{} of review {}",
            self.recommendation.finding,
            self.recommendation.recommendation,
            self.number,
            self.recommendation.review
        )
    }
}

/// An action as its agency sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDraft {
    pub description: String,
    /// The post accountable for it, not a person's name.
    pub owner: String,
    pub due: Date,
    pub status: ActionStatus,
    /// What changed, for an update (may be empty).
    pub note: String,
}

/// One revision of an action as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub key: ActionKey,
    /// 1 when planned, then one more for each update.
    pub revision: u32,
    /// The accountable agency: the only one that may change it.
    pub agency: AgencyId,
    pub description: String,
    pub owner: String,
    pub due: Date,
    pub status: ActionStatus,
    pub note: String,
    pub updated_by: String,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub updated_at: OffsetDateTime,
    /// The due date an `overdue_action` alert was last raised for, so one is raised once per
    /// due date, across restarts and revisions.
    pub alerted_due: Option<Date>,
}

impl Action {
    /// Whether it is past its due date and not done, at `now` (dates in UTC).
    pub fn is_overdue(&self, now: OffsetDateTime) -> bool {
        self.status != ActionStatus::Done && now.date() > self.due
    }

    /// Whether the overdue sweep still has to look at it: not done, and no alert yet for its
    /// due date.
    pub fn awaits_overdue_check(&self) -> bool {
        self.status != ActionStatus::Done && self.alerted_due != Some(self.due)
    }
}

fn text(
    violations: &mut Vec<FieldViolation>,
    field: String,
    value: &str,
    max: usize,
    required: bool,
) {
    let refusal = if value.trim() != value {
        Some(TextRefusal::Untrimmed)
    } else if required && value.is_empty() {
        Some(TextRefusal::Empty)
    } else if value.chars().count() > max {
        Some(TextRefusal::TooLong {
            max,
            chars: value.chars().count(),
        })
    } else {
        check_characters(value).and_then(|()| screen(value)).err()
    };
    if let Some(refusal) = refusal {
        violations.push(FieldViolation::new(field, refusal));
    }
}

impl ReviewDraft {
    /// Checks everything that can be checked without the directory: sizes, dates, and every
    /// free-text field screened. Violations name the field (`findings[2].recommendations[0].text`).
    pub fn check(&self) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        text(
            &mut violations,
            "title".into(),
            &self.title,
            TITLE_MAX_CHARS,
            true,
        );
        text(
            &mut violations,
            "note".into(),
            &self.note,
            REVISION_NOTE_MAX_CHARS,
            false,
        );
        for (field, date) in [
            ("fieldwork_start", self.fieldwork_start),
            ("fieldwork_end", self.fieldwork_end),
        ] {
            if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
                violations.push(FieldViolation::new(
                    field,
                    format!("must fall between {EARLIEST_DATE} and {LATEST_DATE}"),
                ));
            }
        }
        if (self.published_at.date() - self.fieldwork_end).whole_days() > MAX_DAYS_TO_PUBLICATION {
            violations.push(FieldViolation::new(
                "published_at",
                format!(
                    "is more than {MAX_DAYS_TO_PUBLICATION} days after fieldwork ends: publication may be timed, not put off"
                ),
            ));
        }
        if self.fieldwork_end < self.fieldwork_start {
            violations.push(FieldViolation::new(
                "fieldwork_end",
                "is before fieldwork_start",
            ));
        }
        if self.published_at.date() < self.fieldwork_end {
            violations.push(FieldViolation::new(
                "published_at",
                "is before the end of fieldwork",
            ));
        }
        if self.agencies.is_empty() {
            violations.push(FieldViolation::new(
                "agency_ids",
                "must name at least one agency in scope",
            ));
        }
        if self.agencies.len() > MAX_AGENCIES {
            violations.push(FieldViolation::new(
                "agency_ids",
                format!("may name at most {MAX_AGENCIES} agencies"),
            ));
        }
        if self.findings.is_empty() {
            violations.push(FieldViolation::new(
                "findings",
                "a review must hold at least one finding",
            ));
        }
        if self.findings.len() > MAX_FINDINGS {
            violations.push(FieldViolation::new(
                "findings",
                format!("may hold at most {MAX_FINDINGS} findings"),
            ));
        }
        for (f, finding) in self.findings.iter().enumerate() {
            text(
                &mut violations,
                format!("findings[{f}].summary"),
                &finding.summary,
                FINDING_MAX_CHARS,
                true,
            );
            if finding.recommendations.len() > MAX_RECOMMENDATIONS {
                violations.push(FieldViolation::new(
                    format!("findings[{f}].recommendations"),
                    format!("may hold at most {MAX_RECOMMENDATIONS} recommendations"),
                ));
            }
            if finding.judgement == Judgement::PriorityAction && finding.recommendations.is_empty()
            {
                violations.push(FieldViolation::new(
                    format!("findings[{f}].recommendations"),
                    "a priority action needs at least one recommendation",
                ));
            }
            for (r, recommendation) in finding.recommendations.iter().enumerate() {
                text(
                    &mut violations,
                    format!("findings[{f}].recommendations[{r}].text"),
                    &recommendation.text,
                    FINDING_MAX_CHARS,
                    true,
                );
                if !self.agencies.contains(&recommendation.agency) {
                    violations.push(FieldViolation::new(
                        format!("findings[{f}].recommendations[{r}].agency_id"),
                        "is not one of the review's agencies in scope",
                    ));
                }
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid(violations))
        }
    }

    /// Checks a correction against the revision it replaces, at `now`: a published review
    /// stays published (its publication time cannot move), and a recommendation that has
    /// actions keeps its place and its accountable agency. `has_actions` says whether one does.
    pub fn check_correction(
        &self,
        current: &Review,
        now: OffsetDateTime,
        has_actions: impl Fn(RecommendationRef) -> bool,
    ) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        if self.note.is_empty() {
            violations.push(FieldViolation::new(
                "note",
                "a correction must say what it changes",
            ));
        }
        if current.is_published(now) && self.published_at != current.published_at {
            violations.push(FieldViolation::new(
                "published_at",
                "the review is published: its publication time cannot change",
            ));
        }
        if self.place != current.place {
            violations.push(FieldViolation::new(
                "place_code",
                "a correction cannot move a review to another place; record a new review",
            ));
        }
        for (at, recommendation) in current.recommendations() {
            if !has_actions(at) {
                continue;
            }
            let f = at.finding - 1;
            let r = at.recommendation - 1;
            let kept = self
                .findings
                .get(f as usize)
                .and_then(|finding| finding.recommendations.get(r as usize));
            match kept {
                None => violations.push(FieldViolation::new(
                    format!("findings[{f}].recommendations[{r}]"),
                    "has actions and cannot be removed",
                )),
                Some(kept) if kept.agency != recommendation.agency => {
                    violations.push(FieldViolation::new(
                        format!("findings[{f}].recommendations[{r}].agency_id"),
                        "has actions: its accountable agency cannot change",
                    ))
                }
                Some(_) => {}
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid(violations))
        }
    }

    /// The revision this draft becomes.
    pub fn into_review(
        self,
        id: u64,
        revision: u32,
        recorded_by: String,
        recorded_at: OffsetDateTime,
    ) -> Review {
        Review {
            id,
            revision,
            kind: self.kind,
            title: self.title,
            place: self.place,
            agencies: self.agencies,
            fieldwork_start: self.fieldwork_start,
            fieldwork_end: self.fieldwork_end,
            published_at: self.published_at,
            findings: self.findings,
            note: self.note,
            recorded_by,
            recorded_at,
        }
    }
}

impl ActionDraft {
    /// Checks the free text of an action: description and owner required and screened, the
    /// note optional and screened.
    pub fn check(&self) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        text(
            &mut violations,
            "description".into(),
            &self.description,
            ACTION_MAX_CHARS,
            true,
        );
        text(
            &mut violations,
            "owner".into(),
            &self.owner,
            OWNER_MAX_CHARS,
            true,
        );
        text(
            &mut violations,
            "note".into(),
            &self.note,
            REVISION_NOTE_MAX_CHARS,
            false,
        );
        if !(EARLIEST_DATE..=LATEST_DATE).contains(&self.due) {
            violations.push(FieldViolation::new(
                "due",
                format!("must fall between {EARLIEST_DATE} and {LATEST_DATE}"),
            ));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid(violations))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn draft() -> ReviewDraft {
        let agency = AgencyId::parse("E08000021").expect("agency");
        ReviewDraft {
            kind: ReviewKind::JointTargetedAreaInspection,
            title: "Joint inspection of the response to child exploitation".into(),
            place: PlaceCode::parse("E08000021").expect("place"),
            agencies: vec![agency.clone()],
            fieldwork_start: date!(2026 - 03 - 02),
            fieldwork_end: date!(2026 - 03 - 13),
            published_at: datetime!(2026-05-01 9:00 UTC),
            findings: vec![Finding {
                theme: Theme::Practice(PracticeTheme::InformationSharing),
                judgement: Judgement::PriorityAction,
                summary: "Police and health do not share missing episodes in time.".into(),
                recommendations: vec![Recommendation {
                    text: "Share every missing episode within one working day.".into(),
                    agency,
                }],
            }],
            note: String::new(),
        }
    }

    #[test]
    fn every_theme_word_reads_back_as_itself_and_no_word_is_shared() {
        let all = Theme::all();
        let mut words: Vec<&str> = all.iter().map(|t| t.word()).collect();
        for theme in &all {
            assert_eq!(Theme::parse(theme.word()), Ok(*theme));
        }
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), all.len(), "a word names two themes");
        assert!(Theme::parse("front door").is_err());
    }

    #[test]
    fn free_text_in_a_review_is_screened_and_named_by_its_field() {
        let mut review = draft();
        review.findings[0].recommendations[0].text =
            "Ring the duty team on 0191 277 2000 at once".into();
        review.findings[0].summary = "A child born 3 March 2019 was missed".into();
        let invalid = review.check().expect_err("identifiers refused");
        let fields: Vec<&str> = invalid.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["findings[0].summary", "findings[0].recommendations[0].text"]
        );
        assert!(
            !invalid.0[0].reason.contains("2019"),
            "the text is not repeated"
        );
    }

    #[test]
    fn publication_may_be_timed_but_not_put_off_for_good() {
        let mut review = draft();
        review.published_at = datetime!(2027-03-14 9:00 UTC);
        assert!(review.check().is_ok(), "a year after fieldwork ends");
        review.published_at = datetime!(2027-03-15 9:00 UTC);
        assert_eq!(
            review.check().expect_err("too late").first_field(),
            "published_at"
        );
        let mut review = draft();
        review.fieldwork_start = date!(1999 - 12 - 31);
        assert_eq!(
            review.check().expect_err("too early").first_field(),
            "fieldwork_start"
        );
    }

    #[test]
    fn a_recommendation_goes_to_an_agency_in_scope() {
        let mut review = draft();
        review.findings[0].recommendations[0].agency = AgencyId::parse("E23000007").expect("id");
        let invalid = review.check().expect_err("out of scope");
        assert_eq!(
            invalid.first_field(),
            "findings[0].recommendations[0].agency_id"
        );
    }

    #[test]
    fn a_published_review_stays_published_and_acted_on_recommendations_stay() {
        let current = draft().into_review(1, 1, "inspector".into(), datetime!(2026-04-01 0:00 UTC));
        let mut correction = draft();
        correction.note = "Corrects the date of publication".into();
        correction.published_at = datetime!(2026-06-01 9:00 UTC);
        let before = datetime!(2026-04-20 0:00 UTC);
        let after = datetime!(2026-05-02 0:00 UTC);
        assert!(
            correction
                .check_correction(&current, before, |_| false)
                .is_ok()
        );
        let refused = correction
            .check_correction(&current, after, |_| false)
            .expect_err("cannot unpublish");
        assert_eq!(refused.first_field(), "published_at");

        let mut removal = draft();
        removal.note = "Drops a recommendation".into();
        removal.findings[0].recommendations.clear();
        removal.findings[0].judgement = Judgement::AreaForImprovement;
        assert!(removal.check_correction(&current, after, |_| false).is_ok());
        let refused = removal
            .check_correction(&current, after, |_| true)
            .expect_err("has actions");
        assert_eq!(refused.first_field(), "findings[0].recommendations[0]");
    }

    #[test]
    fn an_action_is_overdue_the_day_after_it_is_due_unless_done() {
        let mut action = Action {
            key: ActionKey {
                recommendation: RecommendationRef {
                    review: 1,
                    finding: 1,
                    recommendation: 1,
                },
                number: 1,
            },
            revision: 1,
            agency: AgencyId::parse("E08000021").expect("id"),
            description: "Daily missing-episode meeting".into(),
            owner: "Head of Safeguarding".into(),
            due: date!(2026 - 06 - 30),
            status: ActionStatus::InProgress,
            note: String::new(),
            updated_by: "agency".into(),
            updated_at: datetime!(2026-05-02 0:00 UTC),
            alerted_due: None,
        };
        assert!(!action.is_overdue(datetime!(2026-06-30 23:59 UTC)));
        assert!(action.is_overdue(datetime!(2026-07-01 0:00 UTC)));
        assert!(action.awaits_overdue_check());
        action.alerted_due = Some(action.due);
        assert!(!action.awaits_overdue_check());
        action.status = ActionStatus::Done;
        assert!(!action.is_overdue(datetime!(2026-07-01 0:00 UTC)));
    }

    #[test]
    fn a_stored_review_reads_back_as_it_was_written() {
        let review = draft().into_review(7, 2, "inspector".into(), datetime!(2026-04-01 0:00 UTC));
        let bytes = postcard::to_stdvec(&review).expect("encodes");
        let back: Review = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, review);
    }
}
