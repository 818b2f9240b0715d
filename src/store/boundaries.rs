//! Boundaries for drawing maps: imported through the writer, read straight from the engine.

use tokio::sync::oneshot;

use super::keyspace::{Boundaries, Keyspace};
use super::writer::Command;
use super::{Store, StoreError};
use crate::domain::boundaries::{BoundariesReport, BoundaryImport, Shape};
use crate::domain::{Actor, PlaceCode};

impl Store {
    /// Imports boundaries (each shape already checked with [`Shape::check`]): codes the
    /// register does not know are skipped, and every police force area and community safety
    /// partnership without a shape of its own gets the outline of its districts. Stored with
    /// the audit event in one batch; a code imported again has its shape replaced.
    pub async fn import_boundaries(
        &self,
        import: BoundaryImport,
        actor: Actor,
    ) -> Result<BoundariesReport, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ImportBoundaries {
            import,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A place's shape: its own, dissolved from its districts (a police force area or a
    /// community safety partnership), or for a replaced code the shape of the place that
    /// replaced it. `None` when no boundary is held.
    pub fn shape(&self, code: PlaceCode) -> Result<Option<Shape>, StoreError> {
        let engine = &*self.shared.engine;
        if let Some(boundary) = Boundaries::get(engine, &code)? {
            return Ok(Some(boundary.shape));
        }
        let current = self.shared.read_directory().geography.current(code);
        if current == code {
            return Ok(None);
        }
        Ok(Boundaries::get(engine, &current)?.map(|boundary| boundary.shape))
    }

    /// The shapes of several places (a place's children for a map), in the order asked.
    pub fn shapes(&self, codes: &[PlaceCode]) -> Result<Vec<Option<Shape>>, StoreError> {
        codes.iter().map(|code| self.shape(*code)).collect()
    }

    /// How many places have a boundary.
    pub fn boundaries_held(&self) -> Result<usize, StoreError> {
        let engine = &*self.shared.engine;
        engine
            .scan_prefix(&[Boundaries::PREFIX])
            .try_fold(0, |count, entry| entry.map(|_| count + 1))
    }
}
