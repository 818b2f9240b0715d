//! Plain types of the safeguarding domain and their validation: no gRPC, no storage.

pub mod alert;
pub mod audit;
pub mod boundaries;
pub mod disclosure;
pub mod free_text;
pub mod geography;
pub mod inspection;
pub mod learning;
pub mod lookup;
pub mod neighbours;
pub mod population;
pub mod pseudonym;
pub mod record;
pub mod release;
pub mod review;
pub mod tidy;
pub mod vocabulary;

pub use audit::{Access, Actor, Role};
pub use geography::{Agency, Alias, AliasScheme, Geography, Membership, Place, Scope, Succession};
pub use record::{
    AgencyId, Decision, FieldViolation, Invalid, LocalRef, PlaceCode, RecordKey, Revision,
    RiskRecord, SubjectKey,
};
pub use vocabulary::{
    AgencyKind, AlertKind, ClientGroup, LawfulBasis, PlaceLevel, RecordStatus, RiskCategory,
    Severity, Vocabulary,
};
