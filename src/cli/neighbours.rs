//! `marr neighbours import`: sends the Department for Education's statistical neighbours
//! tables to the server and prints its report.

use super::places::table_chunks;
use super::{ClientError, Connection};
use crate::domain::lookup::LookupTable;
use crate::proto;

/// The CSV files of an import are read like the lookup tables.
pub use super::places::read_tables;

/// Streams tables to `ImportStatisticalNeighbours`, a chunk at a time, and returns the server's report.
pub async fn import_tables(
    connection: &Connection,
    tables: Vec<LookupTable>,
) -> Result<proto::ImportStatisticalNeighboursResponse, ClientError> {
    let chunks = table_chunks(tables, |table, header, rows| {
        proto::ImportStatisticalNeighboursRequest {
            table,
            header,
            rows,
        }
    });
    let response = connection
        .directory()
        .import_statistical_neighbours(tokio_stream::iter(chunks))
        .await?;
    Ok(response.into_inner())
}

/// The import report as readable lines.
pub fn report_lines(report: &proto::ImportStatisticalNeighboursResponse) -> Vec<String> {
    let mut lines = super::places::table_lines(&report.tables);
    lines.push(format!(
        "{} rows read, neighbours stored for {} authorities, {} rows skipped",
        report.rows_read, report.authorities_stored, report.rows_skipped
    ));
    lines.extend(super::places::skip_lines(&report.skipped));
    lines
}
