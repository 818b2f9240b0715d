//! `marr population import`: sends ONS mid-year population tables to the server and prints
//! its report.

use super::places::table_chunks;
use super::{ClientError, Connection};
use crate::domain::lookup::LookupTable;
use crate::proto;

/// The CSV files of an import are read like the lookup tables.
pub use super::places::read_tables;

/// Streams tables to `ImportPopulation`, a chunk at a time, and returns the server's report.
pub async fn import_tables(
    connection: &Connection,
    tables: Vec<LookupTable>,
) -> Result<proto::ImportPopulationResponse, ClientError> {
    let chunks = table_chunks(tables, |table, header, rows| {
        proto::ImportPopulationRequest {
            table,
            header,
            rows,
        }
    });
    let response = connection
        .directory()
        .import_population(tokio_stream::iter(chunks))
        .await?;
    Ok(response.into_inner())
}

/// What the import read and stored, in one line.
pub fn summary_line(report: &proto::ImportPopulationResponse) -> String {
    let years: Vec<String> = report.years.iter().map(u32::to_string).collect();
    format!(
        "{} rows read, {} figures stored for {} places (years {}), {} rows skipped",
        report.rows_read,
        report.figures_stored,
        report.places,
        if years.is_empty() {
            "none".to_string()
        } else {
            years.join(", ")
        },
        report.rows_skipped
    )
}

/// The import report as readable lines.
pub fn report_lines(report: &proto::ImportPopulationResponse) -> Vec<String> {
    let mut lines = super::places::table_lines(&report.tables);
    lines.push(summary_line(report));
    lines.extend(super::places::skip_lines(&report.skipped));
    lines
}
