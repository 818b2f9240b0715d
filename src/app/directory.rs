//! The directory: geography and partner agencies. Anyone may read places; administrators
//! import geography and population tables and register agencies, each import written by the
//! writer with its audit event.

use super::{AppError, Application};
use crate::auth::Caller;
use crate::domain::lookup::LookupTable;
use crate::domain::neighbours::NeighboursReport;
use crate::domain::population::PopulationReport;
use crate::domain::{Agency, Place};
use crate::store::{ImportOutcome, PlaceDetail};

/// An agency as registered, and whether registering it changed anything.
#[derive(Debug, Clone)]
pub struct Registration {
    pub agency: Agency,
    pub changed: bool,
}

impl Application {
    /// Imports geography lookup tables in one batch.
    pub async fn import_places(
        &self,
        caller: &Caller,
        tables: Vec<LookupTable>,
    ) -> Result<ImportOutcome, AppError> {
        Ok(self.store.import_places(tables, caller.actor()).await?)
    }

    /// Imports mid-year population tables in one batch.
    pub async fn import_population(
        &self,
        caller: &Caller,
        tables: Vec<LookupTable>,
    ) -> Result<PopulationReport, AppError> {
        Ok(self.store.import_population(tables, caller.actor()).await?)
    }

    /// These places as the directory holds them now, in order (reference data anyone may
    /// read): what pages name codes by.
    pub fn places(&self, codes: &[crate::domain::PlaceCode]) -> Vec<Option<crate::domain::Place>> {
        self.store.places(codes)
    }

    /// Imports boundaries in one batch, dissolving force areas and safety partnerships from
    /// their districts.
    pub async fn import_boundaries(
        &self,
        caller: &Caller,
        shapes: crate::domain::boundaries::BoundaryImport,
    ) -> Result<crate::domain::boundaries::BoundariesReport, AppError> {
        Ok(self.store.import_boundaries(shapes, caller.actor()).await?)
    }

    /// Imports statistical neighbours tables in one batch.
    pub async fn import_statistical_neighbours(
        &self,
        caller: &Caller,
        tables: Vec<LookupTable>,
    ) -> Result<NeighboursReport, AppError> {
        Ok(self.store.import_neighbours(tables, caller.actor()).await?)
    }

    /// A place named by its GSS or ODS code, with its ancestors, areas and aliases; for a
    /// replaced code, the place that replaced it.
    pub fn place(&self, _caller: &Caller, code: &str) -> Result<PlaceDetail, AppError> {
        let code = self.store.place_code("code", code)?;
        self.store
            .place(code)
            .ok_or_else(|| AppError::NotFound(format!("no place {code}")))
    }

    /// A place's children, or a footprint area's members.
    pub fn child_places(&self, _caller: &Caller, code: &str) -> Result<Vec<Place>, AppError> {
        let code = self.store.place_code("code", code)?;
        self.store
            .child_places(code)
            .ok_or_else(|| AppError::NotFound(format!("no place {code}")))
    }

    /// Registers an agency, or updates it.
    pub async fn register_agency(
        &self,
        caller: &Caller,
        agency: Agency,
    ) -> Result<Registration, AppError> {
        let changed = self
            .store
            .register_agency(agency.clone(), caller.actor())
            .await?;
        Ok(Registration { agency, changed })
    }

    /// Every registered agency.
    pub fn agencies(&self, _caller: &Caller) -> Vec<Agency> {
        self.store.agencies()
    }
}
