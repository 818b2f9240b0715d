//! The data standard's coded values, spelled exactly as in extracts and on the command line.
//!
//! Each enum's discriminants equal the numbers of the same enum in `proto/marr/v1/types.proto`,
//! so the gRPC layer converts by number; a unit test checks the spellings agree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word of the vocabulary that is not a value of the field it was given for. The message
/// does not repeat the word: a shifted column can put anything there, identifiers included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a {field}; expected one of: {expected}")]
pub struct UnknownWord {
    pub field: &'static str,
    pub word: String,
    pub expected: String,
}

/// A coded field of the data standard.
pub trait Vocabulary: Copy + Sized + 'static {
    /// What the field is called in messages ("severity", "client group").
    const FIELD: &'static str;
    /// Every value, in proto number order.
    const ALL: &'static [Self];
    /// The word of the data standard.
    fn word(self) -> &'static str;
    /// The proto enum number.
    fn number(self) -> i32;

    /// The value with this proto number, `None` for zero (unspecified) or unknown numbers.
    fn from_number(number: i32) -> Option<Self> {
        // Numbers run 1, 2, 3… in `ALL` order, so the number is (one more than) the index.
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        Self::ALL
            .get(index)
            .copied()
            .filter(|v| v.number() == number)
    }

    /// The value spelled `word`, or an error listing the words that are allowed.
    fn parse_word(word: &str) -> Result<Self, UnknownWord> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.word() == word)
            .ok_or_else(|| UnknownWord {
                field: Self::FIELD,
                word: word.to_string(),
                expected: Self::ALL
                    .iter()
                    .map(|v| v.word())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

macro_rules! vocabulary {
    // With a label for each value, as a page shows it.
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident = $number:literal, $word:literal, $label:literal;)+ }) => {
        $crate::domain::vocabulary::vocabulary! {
            $(#[$meta])* $name, $field { $($variant = $number, $word;)+ }
        }

        impl $name {
            /// How the value reads on a page.
            pub fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident = $number:literal, $word:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($variant = $number,)+
        }

        impl Vocabulary for $name {
            const FIELD: &'static str = $field;
            const ALL: &'static [Self] = &[$(Self::$variant,)+];
            fn word(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
            fn number(self) -> i32 {
                self as i32
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.word())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_word(s)
            }
        }
    };
}

/// The macro, for the other coded fields of the domain (reviews).
pub(crate) use vocabulary;

vocabulary! {
    /// The kind of partner organisation an agency is.
    AgencyKind, "agency kind" {
        ChildrenSocialCare = 1, "children_social_care";
        AdultSocialCare = 2, "adult_social_care";
        Police = 3, "police";
        Health = 4, "health";
        Education = 5, "education";
        Housing = 6, "housing";
        Probation = 7, "probation";
        YouthJustice = 8, "youth_justice";
        Other = 9, "other";
    }
}

vocabulary! {
    /// The group of people a risk record is about.
    ClientGroup, "client group" {
        ChildrenInNeed = 1, "children_in_need";
        ChildProtectionPlan = 2, "child_protection_plan";
        LookedAfterChild = 3, "looked_after_child";
        CareLeaver = 4, "care_leaver";
        YouthJustice = 5, "youth_justice";
        AdultAtRisk = 6, "adult_at_risk";
        OlderAdult = 7, "older_adult";
    }
}

vocabulary! {
    /// The category of risk.
    RiskCategory, "category" {
        Neglect = 1, "neglect";
        PhysicalAbuse = 2, "physical_abuse";
        EmotionalAbuse = 3, "emotional_abuse";
        SexualAbuse = 4, "sexual_abuse";
        ChildSexualExploitation = 5, "child_sexual_exploitation";
        ChildCriminalExploitation = 6, "child_criminal_exploitation";
        Missing = 7, "missing";
        DomesticAbuse = 8, "domestic_abuse";
        FinancialAbuse = 9, "financial_abuse";
        DiscriminatoryAbuse = 10, "discriminatory_abuse";
        OrganisationalAbuse = 11, "organisational_abuse";
        SelfNeglect = 12, "self_neglect";
        ModernSlavery = 13, "modern_slavery";
        Radicalisation = 14, "radicalisation";
        SelfHarm = 15, "self_harm";
        SubstanceMisuse = 16, "substance_misuse";
    }
}

vocabulary! {
    /// How serious a risk is; the order is low < medium < high < critical.
    Severity, "severity" {
        Low = 1, "low";
        Medium = 2, "medium";
        High = 3, "high";
        Critical = 4, "critical";
    }
}

vocabulary! {
    /// Where a risk record stands.
    RecordStatus, "status" {
        Active = 1, "active";
        Closed = 2, "closed";
        EnteredInError = 3, "entered_in_error";
    }
}

vocabulary! {
    /// The statutory gateway under which a record is shared.
    LawfulBasis, "lawful basis" {
        ChildrenAct1989S17 = 1, "children_act_1989_s17";
        ChildrenAct1989S47 = 2, "children_act_1989_s47";
        CareAct2014S42 = 3, "care_act_2014_s42";
        CrimeAndDisorderAct1998S115 = 4, "crime_and_disorder_act_1998_s115";
        Dpa2018Sch1Para18 = 5, "dpa_2018_sch1_para18";
        Consent = 6, "consent";
    }
}

vocabulary! {
    /// The rule that raised an alert.
    AlertKind, "alert kind" {
        CriticalRisk = 1, "critical_risk";
        Escalation = 2, "escalation";
        MultiAgency = 3, "multi_agency";
        PlaceThreshold = 4, "place_threshold";
        StaleHighRisk = 5, "stale_high_risk";
        OverdueAction = 6, "overdue_action";
    }
}

vocabulary! {
    /// The level of a place in the ONS tree, or the kind of a footprint area.
    PlaceLevel, "place level" {
        Country = 1, "country";
        Region = 2, "region";
        County = 3, "county";
        District = 4, "district";
        Ward = 5, "ward";
        Lsoa = 6, "lsoa";
        PoliceForceArea = 7, "police_force_area";
        CommunitySafetyPartnership = 8, "community_safety_partnership";
        ClinicalCommissioningGroup = 9, "clinical_commissioning_group";
        SubIcbLocation = 10, "sub_icb_location";
        IntegratedCareBoard = 11, "integrated_care_board";
    }
}

impl PlaceLevel {
    /// Footprint areas cut across the tree: they have members, not a parent.
    pub fn is_footprint(self) -> bool {
        matches!(
            self,
            Self::PoliceForceArea
                | Self::CommunitySafetyPartnership
                | Self::ClinicalCommissioningGroup
                | Self::SubIcbLocation
                | Self::IntegratedCareBoard
        )
    }

    /// Height in the tree: countries are highest; wards and LSOAs are both leaves.
    pub fn rank(self) -> u8 {
        match self {
            Self::Country => 5,
            Self::Region => 4,
            Self::County => 3,
            Self::District => 2,
            Self::Ward | Self::Lsoa => 1,
            Self::PoliceForceArea
            | Self::CommunitySafetyPartnership
            | Self::ClinicalCommissioningGroup
            | Self::SubIcbLocation
            | Self::IntegratedCareBoard => 0,
        }
    }
}
