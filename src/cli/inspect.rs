//! `marr view` and `marr follow`: what an inspector reads, as a table or as JSON lines.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{ClientError, Connection};
use crate::domain::record::rfc3339;
use crate::domain::{
    AgencyKind, ClientGroup, LawfulBasis, PlaceLevel, RecordStatus, RiskCategory, Severity,
    Vocabulary,
};
use crate::proto;

/// How a client subcommand prints data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable tables.
    Table,
    /// One JSON object per line, for scripts.
    Json,
}

/// The word of a coded value sent as its proto number; `unspecified` for 0 or unknown.
pub(crate) fn word<V: Vocabulary>(number: i32) -> &'static str {
    V::from_number(number).map_or("unspecified", Vocabulary::word)
}

/// A time as RFC 3339; empty when unset.
pub(crate) fn time_of(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|t| {
        OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
        )
        .ok()
    })
    .map(rfc3339)
    .unwrap_or_default()
}

/// Fetches a place view.
pub async fn view(
    connection: &Connection,
    place: &str,
    filter: proto::ViewFilter,
    as_of: u64,
) -> Result<proto::PlaceView, ClientError> {
    let response = connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: place.to_string(),
            filter: Some(filter),
            as_of_sequence: as_of,
        })
        .await?;
    response
        .into_inner()
        .view
        .ok_or_else(|| ClientError::Refused(tonic::Status::internal("the server sent no view")))
}

/// Which active records a command counts: the `--client-group`, `--category` and
/// `--min-severity` flags that views and exports share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Count only this client group (repeatable).
    #[arg(long = "client-group")]
    pub client_groups: Vec<ClientGroup>,
    /// Count only this category (repeatable).
    #[arg(long = "category")]
    pub categories: Vec<RiskCategory>,
    /// Count only records at this severity or worse.
    #[arg(long)]
    pub min_severity: Option<Severity>,
}

impl FilterArgs {
    pub fn to_proto(&self) -> proto::ViewFilter {
        proto::ViewFilter {
            client_groups: self.client_groups.iter().map(|g| g.number()).collect(),
            categories: self.categories.iter().map(|c| c.number()).collect(),
            min_severity: self.min_severity.map_or(0, |s| s.number()),
        }
    }
}

fn place_line(place: Option<&proto::Place>) -> (String, String, &'static str) {
    place.map_or((String::new(), String::new(), "unspecified"), |p| {
        (p.code.clone(), p.name.clone(), word::<PlaceLevel>(p.level))
    })
}

/// One titled block of counts; nothing when it has no rows.
fn section(out: &mut String, title: &str, rows: Vec<(String, u64)>) {
    if rows.is_empty() {
        return;
    }
    *out += &format!("\n{title:<72} {:>8}\n", "active");
    for (label, n) in rows {
        *out += &format!("  {label:<70} {n:>8}\n");
    }
}

/// A place view as readable lines.
pub fn view_table(view: &proto::PlaceView) -> String {
    let (code, name, level) = place_line(view.place.as_ref());
    let mut out = format!(
        "{name} ({code}, {level}): {} active records, consistent at sequence {}\n",
        view.total_active, view.consistent_at_sequence
    );
    out += &format!(
        "subjects known to 2 or more agencies: {}; to 2 or more kinds of agency: {}\n",
        view.subjects_at_two_or_more_agencies, view.subjects_at_two_or_more_agency_kinds
    );
    section(
        &mut out,
        "by client group",
        view.by_client_group
            .iter()
            .map(|t| (word::<ClientGroup>(t.client_group).to_string(), t.active))
            .collect(),
    );
    // Rates only where the server knows the place's population: none for a ward or an ICB.
    let rates: Vec<String> = view
        .by_client_group
        .iter()
        .filter_map(|t| {
            let rate = t.rate.as_ref()?;
            Some(format!(
                "  {:<22} {:>10.1}   of {} {} in {}\n",
                word::<ClientGroup>(t.client_group),
                rate.per_ten_thousand,
                rate.population,
                band_label(rate.band),
                rate.year
            ))
        })
        .collect();
    if !rates.is_empty() {
        out += &format!("\n{:<22} {:>12}   population\n", "rate", "per 10,000");
        out += &rates.concat();
    }
    section(
        &mut out,
        "by category",
        view.by_category
            .iter()
            .map(|t| (word::<RiskCategory>(t.category).to_string(), t.active))
            .collect(),
    );
    section(
        &mut out,
        "by severity",
        view.by_severity
            .iter()
            .map(|t| (word::<Severity>(t.severity).to_string(), t.active))
            .collect(),
    );
    section(
        &mut out,
        "by kind of agency",
        view.by_agency_kind
            .iter()
            .map(|t| (word::<AgencyKind>(t.agency_kind).to_string(), t.active))
            .collect(),
    );
    section(
        &mut out,
        "by agency",
        view.by_agency
            .iter()
            .map(|t| {
                (
                    format!(
                        "{} {} ({})",
                        t.agency_id,
                        t.name,
                        word::<AgencyKind>(t.kind)
                    ),
                    t.active,
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "child places",
        view.children
            .iter()
            .map(|c| {
                let (code, name, level) = place_line(c.place.as_ref());
                (format!("{level:<9} {code} {name}"), c.active)
            })
            .collect(),
    );
    out
}

/// A comparison of places as readable lines: each place's active records, and for each client
/// group its count and rate per 10,000 ("-" where there is no rate: the place's population is
/// not known, or it has no records of the group).
pub fn comparison_table(comparison: &proto::ComparePlacesResponse) -> String {
    let mut groups: Vec<i32> = comparison
        .rows
        .iter()
        .flat_map(|r| r.by_client_group.iter().map(|g| g.client_group))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let mut out = format!("{:<24} {:>6}", "authority", "total");
    for group in &groups {
        let word = word::<ClientGroup>(*group);
        out += &format!(" {:>13}", &word[..word.len().min(13)]);
    }
    out += &format!(
        "
{:<31}",
        ""
    );
    for _ in &groups {
        out += &format!(" {:>5} {:>7}", "n", "/10,000");
    }
    out.push('\n');
    for row in &comparison.rows {
        let (_, name, _) = place_line(row.place.as_ref());
        let name: String = name.chars().take(24).collect();
        out += &format!("{name:<24} {:>6}", row.total_active);
        for group in &groups {
            let total = row
                .by_client_group
                .iter()
                .find(|g| g.client_group == *group);
            let active = total.map_or(0, |g| g.active);
            let rate = total
                .and_then(|g| g.rate.as_ref())
                .map_or("-".to_string(), |r| format!("{:.1}", r.per_ten_thousand));
            out += &format!(" {active:>5} {rate:>7}");
        }
        out.push('\n');
    }
    out
}

/// A population band as the rates lines name it.
fn band_label(band: i32) -> &'static str {
    match proto::PopulationBand::try_from(band) {
        Ok(proto::PopulationBand::Children) => "aged 0 to 17",
        Ok(proto::PopulationBand::Adults) => "aged 18 and over",
        Ok(proto::PopulationBand::OlderAdults) => "aged 65 and over",
        Ok(proto::PopulationBand::All) => "of all ages",
        Ok(proto::PopulationBand::Unspecified) | Err(_) => "people",
    }
}

fn totals<V: Vocabulary>(rows: impl Iterator<Item = (i32, u64)>) -> Value {
    Value::Object(
        rows.map(|(n, active)| (word::<V>(n).to_string(), json!(active)))
            .collect::<Map<_, _>>(),
    )
}

/// A place view as one JSON object; `rates_per_10000` only where the server gave rates.
pub fn view_json(view: &proto::PlaceView) -> Value {
    let (code, name, level) = place_line(view.place.as_ref());
    let rates: Map<String, Value> = view
        .by_client_group
        .iter()
        .filter_map(|t| {
            let rate = t.rate.as_ref()?;
            Some((
                word::<ClientGroup>(t.client_group).to_string(),
                json!({
                    "per_10000": rate.per_ten_thousand,
                    "band": band_label(rate.band),
                    "population": rate.population,
                    "year": rate.year,
                }),
            ))
        })
        .collect();
    let mut object = json!({
        "place_code": code,
        "place_name": name,
        "level": level,
        "consistent_at_sequence": view.consistent_at_sequence,
        "total_active": view.total_active,
        "by_client_group": totals::<ClientGroup>(view.by_client_group.iter().map(|t| (t.client_group, t.active))),
        "by_category": totals::<RiskCategory>(view.by_category.iter().map(|t| (t.category, t.active))),
        "by_severity": totals::<Severity>(view.by_severity.iter().map(|t| (t.severity, t.active))),
        "by_agency_kind": totals::<AgencyKind>(view.by_agency_kind.iter().map(|t| (t.agency_kind, t.active))),
        "by_agency": view.by_agency.iter().map(|t| json!({
            "agency_id": t.agency_id, "name": t.name, "kind": word::<AgencyKind>(t.kind), "active": t.active,
        })).collect::<Vec<_>>(),
        "children": view.children.iter().map(|c| {
            let (code, name, level) = place_line(c.place.as_ref());
            json!({"place_code": code, "place_name": name, "level": level, "active": c.active})
        }).collect::<Vec<_>>(),
        "subjects_at_two_or_more_agencies": view.subjects_at_two_or_more_agencies,
        "subjects_at_two_or_more_agency_kinds": view.subjects_at_two_or_more_agency_kinds,
    });
    if !rates.is_empty() {
        object["rates_per_10000"] = Value::Object(rates);
    }
    object
}

/// Fetches a subject's trail.
pub async fn follow(
    connection: &Connection,
    subject_key: &str,
    purpose: &str,
    as_of: u64,
) -> Result<proto::FollowSubjectResponse, ClientError> {
    Ok(connection
        .inspection()
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject_key.to_string(),
            purpose: purpose.to_string(),
            as_of_sequence: as_of,
        })
        .await?
        .into_inner())
}

/// One step of a trail as a JSON object.
pub fn trail_json(entry: &proto::TrailEntry) -> Value {
    let revision = entry.revision.clone().unwrap_or_default();
    let record = revision.record.clone().unwrap_or_default();
    json!({
        "sequence": revision.sequence,
        "revision": revision.revision,
        "agency_id": record.agency_id,
        "agency_name": entry.agency_name,
        "agency_kind": word::<AgencyKind>(entry.agency_kind),
        "local_ref": record.local_ref,
        "place_code": record.place_code,
        "place_name": entry.place_name,
        "client_group": word::<ClientGroup>(record.client_group),
        "category": word::<RiskCategory>(record.category),
        "severity": word::<Severity>(record.severity),
        "status": word::<RecordStatus>(record.status),
        "assessed_at": time_of(record.assessed_at.as_ref()),
        "source_updated_at": time_of(record.source_updated_at.as_ref()),
        "lawful_basis": word::<LawfulBasis>(record.lawful_basis),
        "note": record.note,
    })
}

/// One step of a trail as a readable line.
pub fn trail_line(entry: &proto::TrailEntry) -> String {
    let revision = entry.revision.clone().unwrap_or_default();
    let record = revision.record.clone().unwrap_or_default();
    format!(
        "{}  {} {} ({})  {} r{}  {} {}  {} {} {} {}{}",
        time_of(record.source_updated_at.as_ref()),
        record.agency_id,
        entry.agency_name,
        word::<AgencyKind>(entry.agency_kind),
        record.local_ref,
        revision.revision,
        record.place_code,
        entry.place_name,
        word::<ClientGroup>(record.client_group),
        word::<RiskCategory>(record.category),
        word::<Severity>(record.severity),
        word::<RecordStatus>(record.status),
        if record.note.is_empty() {
            String::new()
        } else {
            format!("  \"{}\"", record.note)
        },
    )
}
