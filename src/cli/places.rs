//! `marr places import`: sends ONS lookup tables to the server and prints its report.

use std::path::Path;

use super::{ClientError, Connection};
use crate::domain::lookup::{LookupRow, LookupTable};
use crate::domain::{PlaceLevel, Vocabulary};
use crate::proto;

/// Rows per streamed chunk.
const CHUNK_ROWS: usize = 2000;

/// Reads a lookup CSV whole; quoted names with commas are handled by the CSV reader.
pub fn read_table(path: &Path) -> Result<LookupTable, ClientError> {
    let input = |reason: String| ClientError::Input {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| input(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    read_table_from(file, name).map_err(|e| input(e.to_string()))
}

/// Reads several CSV files whole, each as a table named after its file.
pub fn read_tables(paths: &[std::path::PathBuf]) -> Result<Vec<LookupTable>, ClientError> {
    paths.iter().map(|path| read_table(path)).collect()
}

/// Reads a lookup CSV from any source, naming the table `name`.
pub fn read_table_from(input: impl std::io::Read, name: String) -> Result<LookupTable, csv::Error> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = reader.headers()?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        rows.push(LookupRow {
            line: record.position().map(|p| p.line()).unwrap_or(0),
            cells: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(LookupTable { name, header, rows })
}

/// Cuts tables into the chunks a streamed import sends, each made into its request by
/// `request(table name, header on a table's first chunk only, rows)`.
pub fn table_chunks<T>(
    tables: Vec<LookupTable>,
    request: impl Fn(String, Vec<String>, Vec<proto::LookupRow>) -> T,
) -> Vec<T> {
    let mut chunks = Vec::new();
    for table in tables {
        let mut header = table.header;
        let mut rows = table.rows.into_iter().peekable();
        // A table with a header and no rows still sends one chunk, so the server sees it.
        loop {
            let chunk: Vec<proto::LookupRow> = rows
                .by_ref()
                .take(CHUNK_ROWS)
                .map(|row| proto::LookupRow {
                    line: row.line,
                    cells: row.cells,
                })
                .collect();
            chunks.push(request(
                table.name.clone(),
                std::mem::take(&mut header),
                chunk,
            ));
            if rows.peek().is_none() {
                break;
            }
        }
    }
    chunks
}

/// Streams tables to `ImportPlaces`, a chunk at a time, and returns the server's report.
pub async fn import_tables(
    connection: &Connection,
    tables: Vec<LookupTable>,
) -> Result<proto::ImportPlacesResponse, ClientError> {
    let chunks = table_chunks(tables, |table, header, rows| proto::ImportPlacesRequest {
        table,
        header,
        rows,
    });
    let response = connection
        .directory()
        .import_places(tokio_stream::iter(chunks))
        .await?;
    Ok(response.into_inner())
}

fn level_name(level: i32) -> &'static str {
    PlaceLevel::from_number(level)
        .map(Vocabulary::word)
        .unwrap_or("unknown")
}

/// The places and footprint areas the directory holds after an import, one line per level.
pub fn level_lines(report: &proto::ImportPlacesResponse) -> Vec<String> {
    report
        .places
        .iter()
        .chain(&report.footprint_areas)
        .map(|count| format!("  {:<30} {:>7}", level_name(count.level), count.count))
        .collect()
}

/// How each table of an import was read, a line each.
pub fn table_lines(tables: &[proto::TableLayout]) -> Vec<String> {
    tables
        .iter()
        .map(|table| {
            let ignored = if table.ignored_columns.is_empty() {
                String::new()
            } else {
                format!("; ignored {}", table.ignored_columns.join(", "))
            };
            format!(
                "table {}: read {}{ignored}",
                table.table,
                table.recognised_columns.join(", ")
            )
        })
        .collect()
}

/// The rows an import skipped, a line for each reason with a few examples.
pub fn skip_lines(skipped: &[proto::SkipReason]) -> Vec<String> {
    skipped
        .iter()
        .map(|skip| {
            format!(
                "skipped {} rows: {} (for example {})",
                skip.rows,
                skip.reason,
                skip.examples.join(", ")
            )
        })
        .collect()
}

/// The import report as readable lines.
pub fn report_lines(report: &proto::ImportPlacesResponse) -> Vec<String> {
    let mut lines = table_lines(&report.tables);
    lines.push(format!(
        "{} rows read, {} places added, {} rows skipped",
        report.rows_read, report.places_added, report.rows_skipped
    ));
    if report.aliases_added > 0 {
        lines.push(format!(
            "{} aliases kept (NHS ODS codes, DfE local authority numbers)",
            report.aliases_added
        ));
    }
    if report.places_moved > 0 {
        lines.push(format!(
            "{} known places moved up to a parent they already lay in (a level the newer tables do not have)",
            report.places_moved
        ));
    }
    if report.code_changes > 0 {
        lines.push(format!(
            "{} code changes read: older codes in these tables were read as their successors",
            report.code_changes
        ));
    }
    lines.extend(level_lines(report));
    lines.extend(skip_lines(&report.skipped));
    lines
}
