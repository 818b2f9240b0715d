//! `marr agencies register`.

use super::{ClientError, Connection};
use crate::domain::{AgencyKind, Vocabulary};
use crate::proto;

/// Registers (or updates) an agency and returns what the server holds.
pub async fn register(
    connection: &Connection,
    id: &str,
    kind: AgencyKind,
    name: &str,
    footprint: &[String],
) -> Result<proto::RegisterAgencyResponse, ClientError> {
    let request = proto::RegisterAgencyRequest {
        agency: Some(proto::Agency {
            id: id.to_string(),
            kind: kind.number(),
            name: name.to_string(),
            footprint: footprint.to_vec(),
        }),
    };
    Ok(connection
        .directory()
        .register_agency(request)
        .await?
        .into_inner())
}
