//! The one declaration of who may call each method and what the audit chain keeps of it.
//! The guard refuses any method missing here, and a test fails when a service in the contract
//! has a method without a rule, so a new method cannot be forgotten.

use crate::domain::Role;

use Role::{Admin, Agency, Board, Inspector, Public};

/// What the audit chain records of a call. Every refusal is recorded whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// The writer records it in the same atomic step as the write.
    Write,
    /// A read of record- or subject-level data: recorded before the answer is sent.
    Read,
    /// Aggregate or reference data: only refusals are recorded.
    Refusals,
}

/// Who may call one method. Roles admit a caller; the handler then checks the caller's scope
/// (its agency, or its places) against what the request names.
#[derive(Debug, Clone, Copy)]
pub struct MethodRule {
    /// The method's full path, `/package.Service/Method`.
    pub method: &'static str,
    /// The roles that may call it; `Public` admits everyone, with or without credentials.
    pub roles: &'static [Role],
    pub audit: Audit,
}

const fn rule(method: &'static str, roles: &'static [Role], audit: Audit) -> MethodRule {
    MethodRule {
        method,
        roles,
        audit,
    }
}

/// Every method the server answers.
pub const METHOD_RULES: &[MethodRule] = &[
    // Agencies submit and read their own records.
    rule(
        "/marr.v1.RiskRegister/SubmitRecord",
        &[Agency],
        Audit::Write,
    ),
    rule("/marr.v1.RiskRegister/PushRecords", &[Agency], Audit::Write),
    rule("/marr.v1.RiskRegister/GetRecord", &[Agency], Audit::Read),
    rule(
        "/marr.v1.RiskRegister/GetRecordHistory",
        &[Agency],
        Audit::Read,
    ),
    // Inspectors and boards read place views within their places.
    rule(
        "/marr.v1.Inspection/GetPlaceView",
        &[Inspector, Board],
        Audit::Refusals,
    ),
    rule(
        "/marr.v1.Inspection/ComparePlaces",
        &[Inspector, Board],
        Audit::Refusals,
    ),
    // Record- and subject-level reads are for inspectors, and each one is recorded.
    rule("/marr.v1.Inspection/ListRisks", &[Inspector], Audit::Read),
    rule(
        "/marr.v1.Inspection/FollowSubject",
        &[Inspector],
        Audit::Read,
    ),
    rule(
        "/marr.v1.Inspection/CreateSnapshot",
        &[Inspector],
        Audit::Write,
    ),
    rule(
        "/marr.v1.Inspection/GetSnapshot",
        &[Inspector],
        Audit::Refusals,
    ),
    // Alerts name records and subjects: boards only, and each watch or listing is recorded.
    rule("/marr.v1.Alerts/Watch", &[Board], Audit::Read),
    rule("/marr.v1.Alerts/ListAlerts", &[Board], Audit::Read),
    // The directory is reference data anyone may read; only admins change it.
    rule("/marr.v1.Directory/ImportPlaces", &[Admin], Audit::Write),
    rule("/marr.v1.Directory/GetPlace", &[Public], Audit::Refusals),
    rule(
        "/marr.v1.Directory/ListChildPlaces",
        &[Public],
        Audit::Refusals,
    ),
    rule("/marr.v1.Directory/RegisterAgency", &[Admin], Audit::Write),
    rule(
        "/marr.v1.Directory/ImportPopulation",
        &[Admin],
        Audit::Write,
    ),
    rule(
        "/marr.v1.Directory/ImportStatisticalNeighbours",
        &[Admin],
        Audit::Write,
    ),
    rule(
        "/marr.v1.Directory/ImportBoundaries",
        &[Admin],
        Audit::Write,
    ),
    rule(
        "/marr.v1.Directory/ListAgencies",
        &[Agency, Inspector, Board, Admin],
        Audit::Refusals,
    ),
    // The audit chain itself: admins read and verify it; an agency sees who read its records.
    rule("/marr.v1.Audit/ListAuditEvents", &[Admin], Audit::Read),
    rule("/marr.v1.Audit/VerifyAudit", &[Admin], Audit::Read),
    rule(
        "/marr.v1.Audit/ListAccessToMyRecords",
        &[Agency],
        Audit::Read,
    ),
    // Disclosure-controlled figures, for anyone, from releases; only admins cut one out of
    // schedule, and each cut is recorded.
    rule(
        "/marr.v1.OpenData/GetComparativeTable",
        &[Public],
        Audit::Refusals,
    ),
    rule("/marr.v1.OpenData/ListReleases", &[Public], Audit::Refusals),
    rule("/marr.v1.OpenData/CutRelease", &[Admin], Audit::Write),
    // The theme vocabulary, published reviews, action plans and lessons are open data; an
    // inspector may also read unpublished reviews in its places (checked by the use case).
    rule("/marr.v1.OpenData/ListThemes", &[Public], Audit::Refusals),
    rule("/marr.v1.OpenData/ListReviews", &[Public], Audit::Refusals),
    rule("/marr.v1.OpenData/GetReview", &[Public], Audit::Refusals),
    rule("/marr.v1.OpenData/ListActions", &[Public], Audit::Refusals),
    rule("/marr.v1.OpenData/GetLessons", &[Public], Audit::Refusals),
    // Inspectors record reviews of their places; an accountable agency, its actions. Each
    // revision is written with its audit event.
    rule("/marr.v1.Reviews/RecordReview", &[Inspector], Audit::Write),
    rule("/marr.v1.Reviews/PlanAction", &[Agency], Audit::Write),
    rule("/marr.v1.Reviews/UpdateAction", &[Agency], Audit::Write),
    // Lines of enquiry are read from published findings and the place's aggregate figures.
    rule(
        "/marr.v1.Inspection/GetLinesOfEnquiry",
        &[Inspector, Board],
        Audit::Refusals,
    ),
    // A backup holds everything: administrators only, and each one is recorded.
    rule("/marr.v1.Operations/Backup", &[Admin], Audit::Read),
    // Probes and schema discovery carry no safeguarding data.
    rule("/grpc.health.v1.Health/Check", &[Public], Audit::Refusals),
    rule("/grpc.health.v1.Health/Watch", &[Public], Audit::Refusals),
    rule(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        &[Public],
        Audit::Refusals,
    ),
    rule(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        &[Public],
        Audit::Refusals,
    ),
];

/// The rule for a method path, if one is declared.
pub fn rule_for(method: &str) -> Option<&'static MethodRule> {
    METHOD_RULES.iter().find(|rule| rule.method == method)
}

impl MethodRule {
    /// Whether a principal of this role may call the method at all.
    pub fn admits(&self, role: Role) -> bool {
        self.roles.contains(&Public) || self.roles.contains(&role)
    }

    /// The method's name after the service, for messages.
    pub fn name(&self) -> &'static str {
        self.method.rsplit('/').next().unwrap_or(self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::BTreeSet;

    /// Every method of every service the server registers, from the descriptors it serves.
    fn served_methods() -> BTreeSet<String> {
        let mut methods = BTreeSet::new();
        for set in [
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).expect("descriptor set");
            for file in set.file {
                let package = file.package().to_string();
                for service in &file.service {
                    for method in &service.method {
                        methods.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        methods
    }

    #[test]
    fn every_served_method_has_exactly_one_rule_and_every_rule_a_method() {
        let served = served_methods();
        let declared: Vec<&str> = METHOD_RULES.iter().map(|r| r.method).collect();
        let unique: BTreeSet<&str> = declared.iter().copied().collect();
        assert_eq!(unique.len(), declared.len(), "a method is declared twice");
        let missing: Vec<&String> = served
            .iter()
            .filter(|m| !unique.contains(m.as_str()))
            .collect();
        assert!(missing.is_empty(), "methods without a rule: {missing:?}");
        let stale: Vec<&&str> = unique.iter().filter(|m| !served.contains(**m)).collect();
        assert!(
            stale.is_empty(),
            "rules for methods nobody serves: {stale:?}"
        );
    }

    #[test]
    fn no_rule_admits_an_unauthenticated_caller_to_safeguarding_data() {
        for rule in METHOD_RULES {
            let reference_data = rule.method.starts_with("/grpc.")
                || rule.method == "/marr.v1.Directory/GetPlace"
                || rule.method == "/marr.v1.Directory/ListChildPlaces"
                || rule.method == "/marr.v1.OpenData/GetComparativeTable"
                || rule.method == "/marr.v1.OpenData/ListReleases"
                // Published reviews are open by default; unpublished ones stay with inspectors.
                || rule.method == "/marr.v1.OpenData/ListThemes"
                || rule.method == "/marr.v1.OpenData/ListReviews"
                || rule.method == "/marr.v1.OpenData/GetReview"
                || rule.method == "/marr.v1.OpenData/ListActions"
                || rule.method == "/marr.v1.OpenData/GetLessons";
            assert_eq!(
                rule.admits(Role::Public),
                reference_data,
                "{} is open to the public",
                rule.method
            );
        }
    }
}
