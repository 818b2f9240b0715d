//! `marr boundaries import`: reads GeoJSON and TopoJSON boundary files, sends their shapes to
//! the server in chunks and prints its report.

use std::path::{Path, PathBuf};

use super::{ClientError, Connection};
use crate::domain::boundaries::{BoundaryFile, Shape, read_boundaries};
use crate::proto;

/// Points per streamed chunk: at most 8 bytes each, well under the directory's 8 MiB limit.
const CHUNK_POINTS: usize = 400_000;

/// Reads one boundary file whole; a file that is not GeoJSON or TopoJSON in degrees is
/// refused, naming the file and the part that is wrong.
pub fn read_file(path: &Path) -> Result<BoundaryFile, ClientError> {
    let input = |reason: String| ClientError::Input {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| input(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    read_boundaries(&name, &text).map_err(|e| input(e.to_string()))
}

/// Reads several boundary files, each named after its file.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<BoundaryFile>, ClientError> {
    paths.iter().map(|path| read_file(path)).collect()
}

/// A shape in the contract's form: rings as packed longitude, latitude pairs.
pub fn shape_to_proto(code: &str, shape: &Shape) -> proto::BoundaryShape {
    proto::BoundaryShape {
        code: code.to_string(),
        polygons: shape
            .polygons
            .iter()
            .map(|polygon| proto::BoundaryPolygon {
                rings: polygon
                    .rings
                    .iter()
                    .map(|ring| proto::BoundaryRing {
                        coordinates: ring.points.iter().flat_map(|p| [p.lon, p.lat]).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Cuts files into the chunks an import sends: each file's skipped features go with its
/// first chunk, and a chunk holds shapes up to about [`CHUNK_POINTS`] points.
pub fn boundary_chunks(files: Vec<BoundaryFile>) -> Vec<proto::ImportBoundariesRequest> {
    let mut chunks = Vec::new();
    for file in files {
        let mut chunk = proto::ImportBoundariesRequest {
            source: file.name.clone(),
            shapes: Vec::new(),
            skipped: file
                .skipped
                .into_iter()
                .map(|(reason, skipped)| proto::SkipReason {
                    reason,
                    rows: skipped.rows,
                    examples: skipped.examples,
                })
                .collect(),
        };
        let mut points = 0;
        for (code, shape) in &file.shapes {
            if points > 0 && points + shape.point_count() > CHUNK_POINTS {
                chunks.push(std::mem::replace(
                    &mut chunk,
                    proto::ImportBoundariesRequest {
                        source: file.name.clone(),
                        ..Default::default()
                    },
                ));
                points = 0;
            }
            points += shape.point_count();
            chunk.shapes.push(shape_to_proto(code, shape));
        }
        chunks.push(chunk);
    }
    chunks
}

/// Streams the files' shapes to `ImportBoundaries` and returns the server's report.
pub async fn import_files(
    connection: &Connection,
    files: Vec<BoundaryFile>,
) -> Result<proto::ImportBoundariesResponse, ClientError> {
    let chunks = boundary_chunks(files);
    let response = connection
        .directory()
        .import_boundaries(tokio_stream::iter(chunks))
        .await?;
    Ok(response.into_inner())
}

/// What the import read and stored, in one line.
pub fn summary_line(report: &proto::ImportBoundariesResponse) -> String {
    format!(
        "{} features read, {} shapes stored, {} dissolved from districts (police force areas, community safety partnerships), {} skipped",
        report.features_read,
        report.shapes_stored,
        report.shapes_dissolved,
        report.features_skipped
    )
}

/// The import report as readable lines.
pub fn report_lines(report: &proto::ImportBoundariesResponse) -> Vec<String> {
    let mut lines = vec![summary_line(report)];
    lines.extend(report.skipped.iter().map(|skip| {
        format!(
            "skipped {}: {} (for example {})",
            skip.rows,
            skip.reason,
            skip.examples.join(", ")
        )
    }));
    lines
}
