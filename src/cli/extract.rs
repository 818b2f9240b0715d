//! The extract format: CSV or JSON Lines with the data standard's column names and words.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::convert::timestamp;
use crate::domain::free_text::{check_local_ref, check_note};
use crate::domain::{
    ClientGroup, FieldViolation, LawfulBasis, RecordStatus, RiskCategory, Severity, Vocabulary,
};
use crate::proto;

/// The extract's columns, in their standard order.
pub const COLUMNS: [&str; 12] = [
    "agency_id",
    "local_ref",
    "subject_key",
    "place_code",
    "client_group",
    "category",
    "severity",
    "status",
    "assessed_at",
    "source_updated_at",
    "lawful_basis",
    "note",
];

/// Columns that may be left empty.
const OPTIONAL: [&str; 2] = ["subject_key", "note"];

/// One row of an extract, read or refused.
pub struct ExtractRow {
    /// 1-based line in the file.
    pub line: u64,
    pub agency_id: String,
    pub local_ref: String,
    pub record: Result<proto::RiskRecord, FieldViolation>,
}

fn word<V: Vocabulary>(column: &str, value: &str) -> Result<i32, FieldViolation> {
    V::parse_word(value)
        .map(Vocabulary::number)
        .map_err(|e| FieldViolation::new(column, e.to_string()))
}

fn time(column: &str, value: &str) -> Result<prost_types::Timestamp, FieldViolation> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(timestamp)
        // The value is not repeated: a shifted column can put anything here.
        .map_err(|e| FieldViolation::new(column, format!("is not an RFC 3339 time: {e}")))
}

/// Reads one row given as (column, value) pairs; unknown and missing columns are refused.
pub fn record_from_fields(
    fields: &HashMap<String, String>,
) -> Result<proto::RiskRecord, FieldViolation> {
    if let Some(unknown) = fields.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
        return Err(FieldViolation::new(
            unknown.clone(),
            format!(
                "unknown column; the extract's columns are {}",
                COLUMNS.join(", ")
            ),
        ));
    }
    let get = |column: &str| -> Result<&str, FieldViolation> {
        match fields.get(column).map(|v| v.trim()) {
            Some(value) if !value.is_empty() || OPTIONAL.contains(&column) => Ok(value),
            Some(_) => Err(FieldViolation::new(column, "is empty")),
            None if OPTIONAL.contains(&column) => Ok(""),
            None => Err(FieldViolation::new(column, "column is missing")),
        }
    };
    // Free text is screened here as the register screens it, so a row holding an identifier
    // is refused on the agency's own machine and never sent.
    let local_ref = get("local_ref")?;
    check_local_ref(local_ref).map_err(|refusal| FieldViolation::new("local_ref", refusal))?;
    // Notes keep their inner spacing; only the edges are trimmed.
    let note = fields
        .get("note")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    check_note(&note).map_err(|refusal| FieldViolation::new("note", refusal))?;
    Ok(proto::RiskRecord {
        agency_id: get("agency_id")?.to_string(),
        local_ref: local_ref.to_string(),
        subject_key: get("subject_key")?.to_string(),
        place_code: get("place_code")?.to_string(),
        client_group: word::<ClientGroup>("client_group", get("client_group")?)?,
        category: word::<RiskCategory>("category", get("category")?)?,
        severity: word::<Severity>("severity", get("severity")?)?,
        status: word::<RecordStatus>("status", get("status")?)?,
        assessed_at: Some(time("assessed_at", get("assessed_at")?)?),
        source_updated_at: Some(time("source_updated_at", get("source_updated_at")?)?),
        lawful_basis: word::<LawfulBasis>("lawful_basis", get("lawful_basis")?)?,
        note,
    })
}

fn row(line: u64, fields: HashMap<String, String>) -> ExtractRow {
    ExtractRow {
        line,
        agency_id: fields.get("agency_id").cloned().unwrap_or_default(),
        local_ref: fields.get("local_ref").cloned().unwrap_or_default(),
        record: record_from_fields(&fields),
    }
}

/// Whether a file holds JSON Lines rather than CSV, by its name.
pub fn is_json_lines(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jsonl" | "ndjson")
    )
}

/// Reads an extract lazily, row by row. An unreadable file or a broken CSV header is an error;
/// a bad row is an `ExtractRow` carrying its violation.
pub fn read(path: &Path) -> Result<Box<dyn Iterator<Item = ExtractRow> + Send>, std::io::Error> {
    let file = std::fs::File::open(path)?;
    read_from(file, is_json_lines(path))
}

/// Reads an extract from any source: JSON Lines when `json_lines`, else CSV.
pub fn read_from(
    input: impl std::io::Read + Send + 'static,
    json_lines: bool,
) -> Result<Box<dyn Iterator<Item = ExtractRow> + Send>, std::io::Error> {
    if json_lines {
        let lines = std::io::BufReader::new(input).lines();
        Ok(Box::new(lines.enumerate().filter_map(|(i, line)| {
            let line_no = i as u64 + 1;
            let text = match line {
                Ok(text) => text,
                Err(e) => {
                    return Some(refused(line_no, FieldViolation::new("line", e.to_string())));
                }
            };
            if text.trim().is_empty() {
                return None;
            }
            Some(json_row(line_no, &text))
        })))
    } else {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(std::io::Error::other)?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        Ok(Box::new(reader.into_records().map(
            move |record| match record {
                Ok(record) => {
                    let line = record.position().map(|p| p.line()).unwrap_or(0);
                    if record.len() != header.len() {
                        return refused(
                            line,
                            FieldViolation::new(
                                "row",
                                format!(
                                    "has {} fields, the header has {}",
                                    record.len(),
                                    header.len()
                                ),
                            ),
                        );
                    }
                    let fields = header
                        .iter()
                        .cloned()
                        .zip(record.iter().map(str::to_string))
                        .collect();
                    row(line, fields)
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    refused(line, FieldViolation::new("row", e.to_string()))
                }
            },
        )))
    }
}

fn refused(line: u64, violation: FieldViolation) -> ExtractRow {
    ExtractRow {
        line,
        agency_id: String::new(),
        local_ref: String::new(),
        record: Err(violation),
    }
}

fn json_row(line: u64, text: &str) -> ExtractRow {
    let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
        Ok(object) => object,
        Err(e) => {
            return refused(
                line,
                FieldViolation::new("line", format!("not a JSON object: {e}")),
            );
        }
    };
    let mut fields = HashMap::new();
    for (key, value) in object {
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => {
                return refused(
                    line,
                    FieldViolation::new(
                        key,
                        format!(
                            "must be a string, got {}",
                            match other {
                                serde_json::Value::Bool(_) => "true or false",
                                serde_json::Value::Number(_) => "a number",
                                serde_json::Value::Array(_) => "a list",
                                _ => "an object",
                            }
                        ),
                    ),
                );
            }
        };
        fields.insert(key, value);
    }
    row(line, fields)
}
