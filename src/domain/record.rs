//! Risk records, their keys and the validation every field goes through.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::free_text;
use super::vocabulary::{ClientGroup, LawfulBasis, RecordStatus, RiskCategory, Severity};

/// How far ahead of the server's clock a timestamp may be before it is refused.
pub const CLOCK_SKEW_ALLOWANCE: time::Duration = time::Duration::minutes(5);
/// Longest agency id, in characters.
pub const AGENCY_ID_MAX_CHARS: usize = 16;

/// One field that failed validation, named as in the data standard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub reason: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every field violation found in one request; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<FieldViolation>);

impl Invalid {
    pub fn one(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![FieldViolation::new(field, reason)])
    }

    /// The first violation's field, for answers that name one field.
    pub fn first_field(&self) -> &str {
        self.0.first().map(|v| v.field.as_str()).unwrap_or("")
    }
}

/// An ONS GSS code: one letter and eight digits, such as `E06000047`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlaceCode([u8; 9]);

impl PlaceCode {
    /// Parses a GSS code; lower-case letters are not accepted, as ONS never issues them.
    pub fn parse(code: &str) -> Result<Self, String> {
        let bytes = code.as_bytes();
        let shaped = bytes.len() == 9
            && bytes[0].is_ascii_uppercase()
            && bytes[1..].iter().all(u8::is_ascii_digit);
        if !shaped {
            // The value is not repeated: refusals are kept in the audit chain, and what was sent
            // in the wrong field may be anything.
            return Err(
                "is not a GSS code (one capital letter and eight digits, such as E06000047)"
                    .to_string(),
            );
        }
        let mut out = [0u8; 9];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// The code from its 9 stored bytes.
    pub fn from_bytes(bytes: [u8; 9]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 9] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits ever get in (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or("?????????")
    }
}

impl fmt::Display for PlaceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agency's own code: capital letters and digits, at most 16 characters, and nothing that
/// reads as a telephone or NHS number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgencyId(String);

impl AgencyId {
    pub fn parse(id: &str) -> Result<Self, String> {
        let shaped = !id.is_empty()
            && id.len() <= AGENCY_ID_MAX_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !shaped {
            // Not repeated, as for place codes.
            return Err(format!(
                "is not an agency id (1 to {AGENCY_ID_MAX_CHARS} capital letters and digits)"
            ));
        }
        free_text::screen(id)?;
        Ok(Self(id.to_string()))
    }

    /// An id read back from the store, checked for shape only (see [`LocalRef::from_stored`]).
    pub fn from_stored(id: &str) -> Result<Self, String> {
        let shaped = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if shaped {
            Ok(Self(id.to_string()))
        } else {
            Err("a stored agency id is not capital letters and digits".to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The agency's own reference for a record: 1 to 64 ASCII letters, digits and `- / _ .`,
/// holding nothing that reads as a raw identifier (see [`free_text::check_local_ref`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalRef(String);

impl LocalRef {
    /// Reads a reference as it enters the register.
    pub fn parse(reference: &str) -> Result<Self, String> {
        free_text::check_local_ref(reference)?;
        Ok(Self(reference.to_string()))
    }

    /// A reference read back from the store. It was checked when it entered, under the rules
    /// of its day; tightening those rules must not make stored records unreadable.
    pub fn from_stored(reference: &str) -> Result<Self, String> {
        if reference.is_empty() {
            return Err("an empty local reference is stored".to_string());
        }
        Ok(Self(reference.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subject's pseudonym: HMAC-SHA256 of the normalised NHS number under the linkage key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubjectKey([u8; 32]);

impl SubjectKey {
    /// Parses exactly 64 lower-case hex characters.
    pub fn parse(key: &str) -> Result<Self, String> {
        let shaped = key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !shaped {
            return Err(
                "must be exactly 64 lower-case hex characters (an HMAC-SHA256 pseudonym)"
                    .to_string(),
            );
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(key, &mut out).map_err(|e| e.to_string())?;
        Ok(Self(out))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A record's identity: the agency and its own reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    pub agency: AgencyId,
    pub local_ref: LocalRef,
}

impl RecordKey {
    pub fn parse(agency_id: &str, local_ref: &str) -> Result<Self, Invalid> {
        let mut violations = Vec::new();
        let agency = AgencyId::parse(agency_id)
            .map_err(|r| violations.push(FieldViolation::new("agency_id", r)));
        let local_ref = LocalRef::parse(local_ref)
            .map_err(|r| violations.push(FieldViolation::new("local_ref", r)));
        match (agency, local_ref) {
            (Ok(agency), Ok(local_ref)) => Ok(Self { agency, local_ref }),
            _ => Err(Invalid(violations)),
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.agency, self.local_ref)
    }
}

/// A safeguarding risk record as an agency shares it, already checked field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRecord {
    pub key: RecordKey,
    pub subject: Option<SubjectKey>,
    pub place: PlaceCode,
    pub client_group: ClientGroup,
    pub category: RiskCategory,
    pub severity: Severity,
    pub status: RecordStatus,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub assessed_at: OffsetDateTime,
    /// The agency's own version of the record: its last-updated time.
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub source_updated_at: OffsetDateTime,
    pub lawful_basis: LawfulBasis,
    pub note: String,
}

impl RiskRecord {
    /// Whether the record counts in active totals.
    pub fn is_active(&self) -> bool {
        self.status == RecordStatus::Active
    }
}

/// Checks the rules that need the clock and more than one field; shape rules live in the
/// parsers of each field's type.
pub fn check_times(
    assessed_at: OffsetDateTime,
    source_updated_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let latest = now + CLOCK_SKEW_ALLOWANCE;
    let earliest = time::macros::datetime!(1900-01-01 0:00 UTC);
    for (field, at) in [
        ("assessed_at", assessed_at),
        ("source_updated_at", source_updated_at),
    ] {
        if at > latest {
            violations.push(FieldViolation::new(
                field,
                format!("{} is in the future", rfc3339(at)),
            ));
        } else if at < earliest {
            violations.push(FieldViolation::new(
                field,
                format!("{} is before 1900", rfc3339(at)),
            ));
        }
    }
    if violations.is_empty() && assessed_at > source_updated_at {
        violations.push(FieldViolation::new(
            "assessed_at",
            "is later than source_updated_at: a record cannot be assessed after its last update",
        ));
    }
    violations
}

/// Formats a time as RFC 3339, the data standard's spelling.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Formats a date as the data standard writes one: `2026-05-01`.
pub fn iso_date(date: time::Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_else(|_| date.to_string())
}

/// A date written `YYYY-MM-DD`, or `None`.
pub fn parse_iso_date(text: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).ok()
}

/// One accepted revision of a record, as the revision log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub record: RiskRecord,
    /// 1, 2, 3… per record.
    pub revision: u32,
    /// Position in the gap-free revision log.
    pub sequence: u64,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub received_at: OffsetDateTime,
    /// Sequence of the record's previous revision, so history is a walk back through the log.
    pub previous: Option<u64>,
}

/// What the register does with an incoming record, given the stored latest revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it as this revision number.
    Accept { revision: u32 },
    /// Identical to the stored latest revision.
    Unchanged,
    /// Older than, or conflicting with, the stored version; nothing changes.
    Stale { reason: String },
}

/// Decides by the agency's own version, so resends and out-of-order delivery are harmless.
pub fn decide(stored: Option<&Revision>, incoming: &RiskRecord) -> Decision {
    let Some(stored) = stored else {
        return Decision::Accept { revision: 1 };
    };
    let held = stored.record.source_updated_at;
    let offered = incoming.source_updated_at;
    if offered < held {
        Decision::Stale {
            reason: format!(
                "source_updated_at {} is older than the stored version {} (revision {})",
                rfc3339(offered),
                rfc3339(held),
                stored.revision
            ),
        }
    } else if offered == held && stored.record == *incoming {
        Decision::Unchanged
    } else if offered == held {
        Decision::Stale {
            reason: format!(
                "source_updated_at {} equals the stored version (revision {}) but the content differs; send a newer version",
                rfc3339(offered),
                stored.revision
            ),
        }
    } else {
        Decision::Accept {
            revision: stored.revision + 1,
        }
    }
}
