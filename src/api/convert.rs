//! Conversions between the `marr.v1` messages and the domain types. Every incoming field is
//! checked here or in the parser of its domain type, and every violation is collected so one
//! answer names them all.

use prost_types::Timestamp;
use time::OffsetDateTime;

use super::error::ApiError;
use crate::domain::free_text::{check_agency_name, check_note};
use crate::domain::lookup::{LookupRow, LookupTable};
use crate::domain::record::check_times;
use crate::domain::{
    Agency, AgencyId, FieldViolation, Invalid, Place, PlaceCode, RecordKey, Revision, RiskRecord,
    SubjectKey, Vocabulary,
};
use crate::proto;

/// Collects violations while a message is read field by field.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|reason| self.0.push(FieldViolation::new(field, reason)))
            .ok()
    }

    fn coded<V: Vocabulary>(&mut self, field: &str, number: i32) -> Option<V> {
        let parsed = V::from_number(number).ok_or_else(|| {
            if number == 0 {
                format!("is required (a {})", V::FIELD)
            } else {
                format!("{number} is not a known {}", V::FIELD)
            }
        });
        self.check(field, parsed)
    }

    fn time(&mut self, field: &str, at: Option<Timestamp>) -> Option<OffsetDateTime> {
        let parsed = at
            .ok_or_else(|| "is required (an RFC 3339 time)".to_string())
            .and_then(|t| time_from_proto(&t));
        self.check(field, parsed)
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Invalid> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(Invalid::one("", "request is incomplete")),
            _ => Err(Invalid(self.0)),
        }
    }
}

/// Page size when a listing asks for none.
const DEFAULT_PAGE: usize = 100;
/// Largest page a listing may ask for.
const MAX_PAGE: usize = 1000;

/// Reads a requested page size: 0 means the default, more than the maximum is refused.
pub fn page_size(requested: u32) -> Result<usize, Invalid> {
    match requested as usize {
        0 => Ok(DEFAULT_PAGE),
        n if n > MAX_PAGE => Err(Invalid::one(
            "page_size",
            format!("must be at most {MAX_PAGE}"),
        )),
        n => Ok(n),
    }
}

/// Reads a list of proto enum numbers, naming the field of the first unknown one.
pub fn coded_list<V: Vocabulary>(field: &str, numbers: &[i32]) -> Result<Vec<V>, Invalid> {
    numbers
        .iter()
        .map(|n| {
            V::from_number(*n)
                .ok_or_else(|| Invalid::one(field, format!("{n} is not a known {}", V::FIELD)))
        })
        .collect()
}

/// Reads an optional proto enum number, where 0 (unspecified) means none.
pub fn coded_option<V: Vocabulary>(field: &str, number: i32) -> Result<Option<V>, Invalid> {
    match number {
        0 => Ok(None),
        n => coded_list(field, &[n]).map(|v| v.first().copied()),
    }
}

/// Reads and checks an incoming record, naming every bad field.
pub fn record_from_proto(
    record: Option<proto::RiskRecord>,
    now: OffsetDateTime,
) -> Result<RiskRecord, Invalid> {
    record_from_proto_or_known(record, now, &|_| false)
}

/// [`record_from_proto`], except that a local reference refused by today's rules is taken
/// when `known` says it names a record the caller's agency stored under older rules: such a
/// record stays readable, correctable and closable. `known` must check the caller's agency
/// before the store, so the answer says nothing of other agencies' records.
pub fn record_from_proto_or_known(
    record: Option<proto::RiskRecord>,
    now: OffsetDateTime,
    known: &dyn Fn(&RecordKey) -> bool,
) -> Result<RiskRecord, Invalid> {
    let Some(r) = record else {
        return Err(Invalid::one("record", "is required"));
    };
    let mut v = Violations::default();
    let agency = v.check("agency_id", AgencyId::parse(&r.agency_id));
    let local_ref = v.check(
        "local_ref",
        local_ref_or_known(agency.as_ref(), &r.local_ref, known),
    );
    let subject = if r.subject_key.is_empty() {
        Some(None)
    } else {
        v.check("subject_key", SubjectKey::parse(&r.subject_key))
            .map(Some)
    };
    let place = v.check("place_code", PlaceCode::parse(&r.place_code));
    let client_group = v.coded("client_group", r.client_group);
    let category = v.coded("category", r.category);
    let severity = v.coded("severity", r.severity);
    let status = v.coded("status", r.status);
    let assessed_at = v.time("assessed_at", r.assessed_at);
    let source_updated_at = v.time("source_updated_at", r.source_updated_at);
    let lawful_basis = v.coded("lawful_basis", r.lawful_basis);
    v.check("note", check_note(&r.note).map_err(String::from));
    if let (Some(assessed), Some(updated)) = (assessed_at, source_updated_at) {
        v.0.extend(check_times(assessed, updated, now));
    }
    let record = (|| {
        Some(RiskRecord {
            key: RecordKey {
                agency: agency?,
                local_ref: local_ref?,
            },
            subject: subject?,
            place: place?,
            client_group: client_group?,
            category: category?,
            severity: severity?,
            status: status?,
            assessed_at: assessed_at?,
            source_updated_at: source_updated_at?,
            lawful_basis: lawful_basis?,
            note: r.note,
        })
    })();
    v.finish(record)
}

/// Earliest second a protobuf `Timestamp` may hold: 0001-01-01T00:00:00Z.
const TIMESTAMP_MIN_SECONDS: i64 = -62_135_596_800;
/// Latest second a protobuf `Timestamp` may hold: 9999-12-31T23:59:59Z.
const TIMESTAMP_MAX_SECONDS: i64 = 253_402_300_799;

/// A protobuf timestamp as a time. Out-of-range parts are refused, not normalised: `nanos`
/// must be 0 to 999,999,999 and `seconds` within the years 1 to 9999, as the well-known type
/// requires, so one instant has one spelling.
pub fn time_from_proto(at: &Timestamp) -> Result<OffsetDateTime, String> {
    if !(0..=999_999_999).contains(&at.nanos) {
        return Err("has nanos outside 0 to 999999999".to_string());
    }
    if !(TIMESTAMP_MIN_SECONDS..=TIMESTAMP_MAX_SECONDS).contains(&at.seconds) {
        return Err("has seconds outside the years 1 to 9999".to_string());
    }
    let nanos = i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| "is out of range".to_string())
}

/// A record's key as the contract names it.
pub fn record_ref(key: &RecordKey) -> proto::RecordRef {
    proto::RecordRef {
        agency_id: key.agency.to_string(),
        local_ref: key.local_ref.to_string(),
    }
}

pub fn timestamp(at: OffsetDateTime) -> Timestamp {
    let nanos = at.unix_timestamp_nanos();
    Timestamp {
        seconds: nanos.div_euclid(1_000_000_000) as i64,
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn record_to_proto(record: &RiskRecord) -> proto::RiskRecord {
    proto::RiskRecord {
        agency_id: record.key.agency.to_string(),
        local_ref: record.key.local_ref.to_string(),
        subject_key: record.subject.map(|s| s.to_string()).unwrap_or_default(),
        place_code: record.place.to_string(),
        client_group: record.client_group.number(),
        category: record.category.number(),
        severity: record.severity.number(),
        status: record.status.number(),
        assessed_at: Some(timestamp(record.assessed_at)),
        source_updated_at: Some(timestamp(record.source_updated_at)),
        lawful_basis: record.lawful_basis.number(),
        note: record.note.clone(),
    }
}

pub fn revision_to_proto(revision: &Revision) -> proto::RecordRevision {
    proto::RecordRevision {
        record: Some(record_to_proto(&revision.record)),
        revision: revision.revision,
        sequence: revision.sequence,
        received_at: Some(timestamp(revision.received_at)),
    }
}

/// A record's key from a request; see [`record_from_proto_or_known`] for `known`.
pub fn record_key(
    agency_id: &str,
    local_ref: &str,
    known: &dyn Fn(&RecordKey) -> bool,
) -> Result<RecordKey, Invalid> {
    let mut v = Violations::default();
    let agency = v.check("agency_id", AgencyId::parse(agency_id));
    let local_ref = v.check(
        "local_ref",
        local_ref_or_known(agency.as_ref(), local_ref, known),
    );
    match (agency, local_ref) {
        (Some(agency), Some(local_ref)) if v.0.is_empty() => Ok(RecordKey { agency, local_ref }),
        _ => Err(Invalid(v.0)),
    }
}

/// A local reference under today's rules, or one stored under older rules that `known`
/// recognises for this agency.
fn local_ref_or_known(
    agency: Option<&AgencyId>,
    local_ref: &str,
    known: &dyn Fn(&RecordKey) -> bool,
) -> Result<crate::domain::LocalRef, String> {
    crate::domain::LocalRef::parse(local_ref).or_else(|refused| {
        let stored = agency.and_then(|agency| {
            let key = RecordKey {
                agency: agency.clone(),
                local_ref: crate::domain::LocalRef::from_stored(local_ref).ok()?,
            };
            known(&key).then_some(key.local_ref)
        });
        stored.ok_or(refused)
    })
}

pub fn place_code(field: &str, code: &str) -> Result<PlaceCode, Invalid> {
    PlaceCode::parse(code).map_err(|reason| Invalid::one(field, reason))
}

pub fn place_to_proto(place: &Place, footprint_codes: &[PlaceCode]) -> proto::Place {
    proto::Place {
        code: place.code.to_string(),
        name: place.name.clone(),
        level: place.level.number(),
        parent_code: place.parent.map(|p| p.to_string()).unwrap_or_default(),
        footprint_codes: footprint_codes.iter().map(ToString::to_string).collect(),
    }
}

/// An agency as sent, its footprint named by GSS codes or whatever `named` also accepts.
pub fn agency_from_proto(
    agency: Option<proto::Agency>,
    named: impl Fn(&str) -> Result<PlaceCode, String>,
) -> Result<Agency, Invalid> {
    let Some(a) = agency else {
        return Err(Invalid::one("agency", "is required"));
    };
    let mut v = Violations::default();
    let id = v.check("id", AgencyId::parse(&a.id));
    let kind = v.coded("kind", a.kind);
    let name = a.name.trim().to_string();
    v.check("name", check_agency_name(&name).map_err(String::from));
    let footprint: Vec<PlaceCode> = a
        .footprint
        .iter()
        .filter_map(|code| v.check("footprint", named(code)))
        .collect();
    let agency = (|| {
        Some(Agency {
            id: id?,
            kind: kind?,
            name,
            footprint,
        })
    })();
    v.finish(agency)
}

pub fn agency_to_proto(agency: &Agency) -> proto::Agency {
    proto::Agency {
        id: agency.id.to_string(),
        kind: agency.kind.number(),
        name: agency.name.clone(),
        footprint: agency.footprint.iter().map(ToString::to_string).collect(),
    }
}

/// Gathers streamed chunks into whole tables, keeping the order tables first appeared in.
#[derive(Default)]
pub struct TableAssembler {
    tables: Vec<LookupTable>,
    rows: usize,
}

/// Most rows one import may stream: the national output-area lookup is about 190,000, so this
/// leaves ample room while bounding what a client can make the server hold.
pub const MAX_IMPORT_ROWS: usize = 2_000_000;

impl TableAssembler {
    pub fn add(&mut self, chunk: proto::ImportPlacesRequest) -> Result<(), ApiError> {
        self.add_chunk(chunk.table, chunk.header, chunk.rows)
    }

    /// Adds a chunk of a population table: the same shape as a lookup table's.
    pub fn add_population(
        &mut self,
        chunk: proto::ImportPopulationRequest,
    ) -> Result<(), ApiError> {
        self.add_chunk(chunk.table, chunk.header, chunk.rows)
    }

    /// Adds a chunk of a statistical neighbours table: the same shape as a lookup table's.
    pub fn add_neighbours(
        &mut self,
        chunk: proto::ImportStatisticalNeighboursRequest,
    ) -> Result<(), ApiError> {
        self.add_chunk(chunk.table, chunk.header, chunk.rows)
    }

    fn add_chunk(
        &mut self,
        table: String,
        header: Vec<String>,
        rows: Vec<proto::LookupRow>,
    ) -> Result<(), ApiError> {
        self.rows += rows.len();
        if self.rows > MAX_IMPORT_ROWS {
            return Err(ApiError::Exhausted(format!(
                "an import may hold at most {MAX_IMPORT_ROWS} rows; split the files over several imports"
            )));
        }
        if table.is_empty() {
            return Err(
                Invalid::one("table", "is required: name the table each chunk belongs to").into(),
            );
        }
        let index = match self.tables.iter().position(|t| t.name == table) {
            Some(index) => index,
            None => {
                if header.is_empty() {
                    return Err(Invalid::one(
                        "header",
                        format!("the first chunk of table `{table}` must carry its header"),
                    )
                    .into());
                }
                self.tables.push(LookupTable {
                    name: table,
                    header,
                    rows: Vec::new(),
                });
                self.tables.len() - 1
            }
        };
        let table = &mut self.tables[index];
        table.rows.extend(rows.into_iter().map(|row| LookupRow {
            line: row.line,
            cells: row.cells,
        }));
        Ok(())
    }

    pub fn finish(self) -> Vec<LookupTable> {
        self.tables
    }
}

/// Gathers streamed boundary chunks into one import, checking every shape as it arrives.
#[derive(Default)]
pub struct BoundaryAssembler {
    import: crate::domain::boundaries::BoundaryImport,
    points: usize,
}

/// Most points one boundary import may stream: England's generalised districts, counties,
/// regions and health areas together are a few hundred thousand.
pub const MAX_IMPORT_POINTS: usize = 10_000_000;

impl BoundaryAssembler {
    /// Adds a chunk: every shape must be polygons of closed rings of longitude and latitude,
    /// or the whole import is refused.
    pub fn add(&mut self, chunk: proto::ImportBoundariesRequest) -> Result<(), ApiError> {
        use crate::domain::boundaries::{Point, Polygon, Ring, Shape};
        let source = if chunk.source.is_empty() {
            "the import".to_string()
        } else {
            chunk.source
        };
        for skip in chunk.skipped {
            let entry = self.import.skipped.entry(skip.reason).or_default();
            entry.rows += skip.rows;
            entry.examples.extend(skip.examples);
            entry.examples.truncate(5);
        }
        for (i, sent) in chunk.shapes.into_iter().enumerate() {
            let refuse = |reason: String| {
                let code = if sent.code.is_empty() {
                    format!("shape {}", i + 1)
                } else {
                    sent.code.clone()
                };
                ApiError::from(Invalid::one(
                    "shapes",
                    format!("{source}, {code}: {reason}"),
                ))
            };
            if sent.code.trim().is_empty() {
                return Err(refuse("the place code is required".into()));
            }
            let mut polygons = Vec::with_capacity(sent.polygons.len());
            for polygon in &sent.polygons {
                let mut rings = Vec::with_capacity(polygon.rings.len());
                for ring in &polygon.rings {
                    let coordinates = &ring.coordinates;
                    if coordinates.len() % 2 != 0 {
                        return Err(refuse(
                            "a ring has an odd number of coordinates (longitude, latitude pairs)"
                                .into(),
                        ));
                    }
                    self.points += coordinates.len() / 2;
                    if self.points > MAX_IMPORT_POINTS {
                        return Err(ApiError::Exhausted(format!(
                            "an import may hold at most {MAX_IMPORT_POINTS} points; split the files over several imports"
                        )));
                    }
                    rings.push(Ring {
                        points: coordinates
                            .chunks_exact(2)
                            .map(|pair| Point {
                                lon: pair[0],
                                lat: pair[1],
                            })
                            .collect(),
                    });
                }
                polygons.push(Polygon { rings });
            }
            let shape = Shape { polygons };
            shape.check().map_err(refuse)?;
            self.import
                .shapes
                .push((sent.code.trim().to_string(), shape));
        }
        Ok(())
    }

    /// The import, unless nothing at all was sent.
    pub fn finish(self) -> Result<crate::domain::boundaries::BoundaryImport, ApiError> {
        if self.import.shapes.is_empty() && self.import.skipped.is_empty() {
            return Err(Invalid::one("shapes", "the import holds no shapes").into());
        }
        Ok(self.import)
    }
}

/// A rate per 10,000 in the contract's form.
pub fn rate_to_proto(rate: &crate::domain::population::Rate) -> proto::PopulationRate {
    let band = match rate.band {
        crate::domain::population::PopulationBand::Children => proto::PopulationBand::Children,
        crate::domain::population::PopulationBand::Adults => proto::PopulationBand::Adults,
        crate::domain::population::PopulationBand::OlderAdults => {
            proto::PopulationBand::OlderAdults
        }
        crate::domain::population::PopulationBand::All => proto::PopulationBand::All,
    };
    proto::PopulationRate {
        per_ten_thousand: rate.per_10000,
        band: band as i32,
        population: rate.population,
        year: u32::from(rate.year),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgencyKind, ClientGroup, LawfulBasis, PlaceLevel, RecordStatus, RiskCategory, Severity,
    };

    /// Each word of the data standard is the proto enum name, lower-cased, less its prefix.
    fn agrees<V: Vocabulary>(prefix: &str, proto_name: fn(i32) -> Option<&'static str>) {
        for value in V::ALL {
            let expected = format!("{prefix}_{}", value.word().to_uppercase());
            assert_eq!(
                proto_name(value.number()),
                Some(expected.as_str()),
                "{}",
                value.word()
            );
        }
        assert_eq!(
            proto_name(V::ALL.len() as i32 + 1),
            None,
            "proto has values the domain lacks"
        );
    }

    #[test]
    fn the_vocabulary_matches_the_proto_enums() {
        agrees::<AgencyKind>("AGENCY_KIND", |n| {
            proto::AgencyKind::try_from(n).ok().map(|v| v.as_str_name())
        });
        agrees::<ClientGroup>("CLIENT_GROUP", |n| {
            proto::ClientGroup::try_from(n)
                .ok()
                .map(|v| v.as_str_name())
        });
        agrees::<RiskCategory>("RISK_CATEGORY", |n| {
            proto::RiskCategory::try_from(n)
                .ok()
                .map(|v| v.as_str_name())
        });
        agrees::<Severity>("SEVERITY", |n| {
            proto::Severity::try_from(n).ok().map(|v| v.as_str_name())
        });
        agrees::<RecordStatus>("RECORD_STATUS", |n| {
            proto::RecordStatus::try_from(n)
                .ok()
                .map(|v| v.as_str_name())
        });
        agrees::<LawfulBasis>("LAWFUL_BASIS", |n| {
            proto::LawfulBasis::try_from(n)
                .ok()
                .map(|v| v.as_str_name())
        });
        agrees::<PlaceLevel>("PLACE_LEVEL", |n| {
            proto::PlaceLevel::try_from(n).ok().map(|v| v.as_str_name())
        });
    }

    #[test]
    fn timestamps_round_trip_including_before_1970() {
        for nanos in [0i128, 1, -1, 1_767_225_600_123_456_789, -86_400_000_000_001] {
            let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("in range");
            let mut v = Violations::default();
            assert_eq!(v.time("t", Some(timestamp(at))), Some(at));
        }
    }

    #[test]
    fn out_of_range_timestamp_parts_are_refused_not_normalised() {
        let at = |seconds, nanos| time_from_proto(&Timestamp { seconds, nanos });
        assert!(at(0, 999_999_999).is_ok());
        assert!(at(TIMESTAMP_MIN_SECONDS, 0).is_ok());
        assert!(at(TIMESTAMP_MAX_SECONDS, 999_999_999).is_ok());
        // 1 s and 1e9 ns is the same instant as 2 s: it must be spelled as 2 s.
        assert!(at(1, 1_000_000_000).unwrap_err().contains("nanos"));
        assert!(at(2, -1).unwrap_err().contains("nanos"));
        assert!(at(i64::MIN, 0).unwrap_err().contains("seconds"));
        assert!(
            at(TIMESTAMP_MAX_SECONDS + 1, 0)
                .unwrap_err()
                .contains("seconds")
        );
    }
}
