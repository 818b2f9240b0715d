//! `marr neighbours import`: sends the Department for Education's statistical neighbours
//! tables to the server and prints its report.

use super::places::read_table;
use super::{ClientError, Connection};
use crate::domain::lookup::LookupTable;
use crate::proto;

/// Rows per streamed chunk.
const CHUNK_ROWS: usize = 2000;

/// Reads statistical neighbours CSVs whole (the same CSV reading as the lookup tables).
pub fn read_tables(paths: &[std::path::PathBuf]) -> Result<Vec<LookupTable>, ClientError> {
    paths.iter().map(|path| read_table(path)).collect()
}

/// Streams tables to `ImportStatisticalNeighbours`, a chunk at a time, and returns the server's report.
pub async fn import_tables(
    connection: &Connection,
    tables: Vec<LookupTable>,
) -> Result<proto::ImportStatisticalNeighboursResponse, ClientError> {
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
            chunks.push(proto::ImportStatisticalNeighboursRequest {
                table: table.name.clone(),
                header: std::mem::take(&mut header),
                rows: chunk,
            });
            if rows.peek().is_none() {
                break;
            }
        }
    }
    let response = connection
        .directory()
        .import_statistical_neighbours(tokio_stream::iter(chunks))
        .await?;
    Ok(response.into_inner())
}

/// The import report as readable lines.
pub fn report_lines(report: &proto::ImportStatisticalNeighboursResponse) -> Vec<String> {
    let mut lines = Vec::new();
    for table in &report.tables {
        lines.push(format!(
            "table {}: read {}{}",
            table.table,
            table.recognised_columns.join(", "),
            if table.ignored_columns.is_empty() {
                String::new()
            } else {
                format!("; ignored {}", table.ignored_columns.join(", "))
            }
        ));
    }
    lines.push(format!(
        "{} rows read, neighbours stored for {} authorities, {} rows skipped",
        report.rows_read, report.authorities_stored, report.rows_skipped
    ));
    for skip in &report.skipped {
        lines.push(format!(
            "skipped {} rows: {} (for example {})",
            skip.rows,
            skip.reason,
            skip.examples.join(", ")
        ));
    }
    lines
}
