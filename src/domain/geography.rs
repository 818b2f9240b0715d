//! Places, footprint areas and the agencies that report on them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::record::{AgencyId, FieldViolation, Invalid, PlaceCode};
use super::vocabulary::{AgencyKind, PlaceLevel, Vocabulary};

/// Longest agency name, in characters.
pub const AGENCY_NAME_MAX_CHARS: usize = 120;

/// A place in the ONS tree, or a footprint area (which has members instead of a parent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub code: PlaceCode,
    pub name: String,
    pub level: PlaceLevel,
    pub parent: Option<PlaceCode>,
}

/// A footprint area containing a place (a district or an LSOA) and everything below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    pub area: PlaceCode,
    pub member: PlaceCode,
}

/// A code replaced by another: districts merged into a unitary authority (Harrogate into
/// North Yorkshire), or a place given a new code with the same boundary (Barnsley from
/// E08000016 to E08000038). Records and footprints naming the old code count under the new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Succession {
    pub predecessor: PlaceCode,
    pub successor: PlaceCode,
}

/// Who issued an alias: the NHS's Organisation Data Service (sub-ICB locations and ICBs, such
/// as `QHM`), or the Department for Education (its three-digit local authority numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AliasScheme {
    Ods,
    Dfe,
}

impl AliasScheme {
    pub fn word(self) -> &'static str {
        match self {
            Self::Ods => "ods",
            Self::Dfe => "dfe",
        }
    }

    /// Whether `alias` has the shape this scheme issues: ODS codes are 3 to 5 capitals and
    /// digits, DfE numbers three digits. Anything else is not kept.
    pub fn admits(self, alias: &str) -> bool {
        match self {
            Self::Ods => {
                (3..=5).contains(&alias.len())
                    && alias
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
            Self::Dfe => alias.len() == 3 && alias.bytes().all(|b| b.is_ascii_digit()),
        }
    }
}

/// Another organisation's code for a place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Alias {
    pub scheme: AliasScheme,
    pub alias: String,
    pub place: PlaceCode,
}

/// A partner organisation and the places it may report on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    pub id: AgencyId,
    pub kind: AgencyKind,
    pub name: String,
    /// Place or footprint codes; a record must fall within one of them.
    pub footprint: Vec<PlaceCode>,
}

impl Agency {
    /// Checks the name and that every footprint code is a known place or area.
    pub fn check(&self, geography: &Geography) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        let name_chars = self.name.chars().count();
        if self.name.trim().is_empty() || name_chars > AGENCY_NAME_MAX_CHARS {
            violations.push(FieldViolation::new(
                "name",
                format!("must be 1 to {AGENCY_NAME_MAX_CHARS} characters"),
            ));
        }
        if self.footprint.is_empty() {
            violations.push(FieldViolation::new(
                "footprint",
                "must name at least one place or footprint area",
            ));
        }
        for code in &self.footprint {
            if geography.current_place(*code).is_none() {
                violations.push(FieldViolation::new(
                    "footprint",
                    format!(
                        "{code} is not a known place or footprint area; import the geography first"
                    ),
                ));
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid(violations))
        }
    }
}

/// The whole place tree and footprint areas, held in memory for fast scope checks.
#[derive(Debug, Default, Clone)]
pub struct Geography {
    places: HashMap<PlaceCode, Place>,
    children: HashMap<PlaceCode, BTreeSet<PlaceCode>>,
    members: HashMap<PlaceCode, BTreeSet<PlaceCode>>,
    areas_of: HashMap<PlaceCode, BTreeSet<PlaceCode>>,
    /// Replaced codes and what replaced them.
    successors: HashMap<PlaceCode, PlaceCode>,
    /// The other way: the codes each code replaced.
    predecessors: HashMap<PlaceCode, BTreeSet<PlaceCode>>,
    /// Other organisations' codes for places.
    aliases: HashMap<(AliasScheme, String), PlaceCode>,
    /// Places that ended without a single successor (a county council split in two): kept
    /// for what was recorded under them, no longer listed among today's places.
    ended: BTreeSet<PlaceCode>,
}

/// Longest chain of code changes followed; a loop in bad data must not hang a lookup.
const SUCCESSION_STEPS: usize = 8;

impl Geography {
    /// Adds or replaces a place, keeping the child lists in step.
    pub fn insert_place(&mut self, place: Place) {
        if let Some(old) = self.places.get(&place.code)
            && let Some(old_parent) = old.parent
            && let Some(siblings) = self.children.get_mut(&old_parent)
        {
            siblings.remove(&place.code);
        }
        if let Some(parent) = place.parent {
            self.children.entry(parent).or_default().insert(place.code);
        }
        self.places.insert(place.code, place);
    }

    pub fn insert_membership(&mut self, membership: Membership) {
        self.members
            .entry(membership.area)
            .or_default()
            .insert(membership.member);
        self.areas_of
            .entry(membership.member)
            .or_default()
            .insert(membership.area);
    }

    /// Records that `predecessor` was replaced by `successor`.
    pub fn insert_succession(&mut self, succession: Succession) {
        if let Some(old) = self
            .successors
            .insert(succession.predecessor, succession.successor)
            && let Some(replaced) = self.predecessors.get_mut(&old)
        {
            replaced.remove(&succession.predecessor);
        }
        self.predecessors
            .entry(succession.successor)
            .or_default()
            .insert(succession.predecessor);
    }

    /// Records that a place ended without a single successor.
    pub fn insert_ended(&mut self, code: PlaceCode) {
        self.ended.insert(code);
    }

    /// Whether a place ended without a single successor.
    pub fn has_ended(&self, code: PlaceCode) -> bool {
        self.ended.contains(&code)
    }

    /// Every place that ended without a single successor, in code order.
    pub fn ended(&self) -> Vec<PlaceCode> {
        self.ended.iter().copied().collect()
    }

    /// Records another organisation's code for a place (a later one for the same alias wins).
    pub fn insert_alias(&mut self, alias: Alias) {
        self.aliases
            .insert((alias.scheme, alias.alias), alias.place);
    }

    /// The place an alias stands for, as it stands today.
    pub fn by_alias(&self, scheme: AliasScheme, alias: &str) -> Option<PlaceCode> {
        self.aliases
            .get(&(scheme, alias.to_string()))
            .map(|code| self.current(*code))
    }

    /// A place's aliases, by scheme and alias.
    pub fn aliases_of(&self, code: PlaceCode) -> Vec<(AliasScheme, String)> {
        let mut found: Vec<(AliasScheme, String)> = self
            .aliases
            .iter()
            .filter(|(_, place)| self.current(**place) == code)
            .map(|(key, _)| key.clone())
            .collect();
        found.sort();
        found
    }

    /// Every alias known, sorted.
    pub fn aliases(&self) -> Vec<Alias> {
        let mut all: Vec<Alias> = self
            .aliases
            .iter()
            .map(|((scheme, alias), place)| Alias {
                scheme: *scheme,
                alias: alias.clone(),
                place: *place,
            })
            .collect();
        all.sort();
        all
    }

    /// A place named by its GSS code or, as health systems name theirs, by its NHS ODS code.
    pub fn code_named(&self, text: &str) -> Result<PlaceCode, String> {
        PlaceCode::parse(text).or_else(|refusal| {
            self.by_alias(AliasScheme::Ods, text)
                .ok_or_else(|| format!("{refusal}, nor a known NHS ODS code"))
        })
    }

    /// Every code change known, in code order.
    pub fn successions(&self) -> Vec<Succession> {
        let mut all: Vec<Succession> = self
            .successors
            .iter()
            .map(|(predecessor, successor)| Succession {
                predecessor: *predecessor,
                successor: *successor,
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// The code that stands for `code` today: itself, or the end of its chain of successors.
    pub fn current(&self, code: PlaceCode) -> PlaceCode {
        let mut current = code;
        for _ in 0..SUCCESSION_STEPS {
            match self.successors.get(&current) {
                Some(next) => current = *next,
                None => break,
            }
        }
        current
    }

    /// The place as recorded under exactly this code, replaced or not.
    pub fn place(&self, code: PlaceCode) -> Option<&Place> {
        self.places.get(&code)
    }

    /// The place that stands for `code` today (see [`Geography::current`]).
    pub fn current_place(&self, code: PlaceCode) -> Option<&Place> {
        self.places.get(&self.current(code))
    }

    /// The chain of parents, nearest first, each as it stands today: a place whose parent
    /// was merged away hangs from the parent's successor, and a replaced code's chain starts
    /// with the place that replaced it.
    pub fn ancestors(&self, code: PlaceCode) -> Vec<&Place> {
        let mut chain: Vec<&Place> = Vec::new();
        let current = self.current(code);
        let mut next = if current != code {
            Some(current)
        } else {
            self.places.get(&code).and_then(|p| p.parent)
        };
        while let Some(parent) = next
            .map(|c| self.current(c))
            .and_then(|c| self.places.get(&c))
        {
            // A cycle cannot be imported, but never loop on a corrupt store.
            if chain.len() > 16 || chain.iter().any(|p| p.code == parent.code) {
                break;
            }
            chain.push(parent);
            next = parent.parent;
        }
        chain
    }

    /// A place's children in the tree, or a footprint area's members, sorted by code; a
    /// place that replaced others has their children too (the wards of a merged district).
    /// Places replaced or ended are left out: see [`Geography::children_holding_records`].
    pub fn children(&self, code: PlaceCode) -> Vec<&Place> {
        self.children_holding_records(code)
            .into_iter()
            .filter(|p| !self.successors.contains_key(&p.code) && !self.ended.contains(&p.code))
            .collect()
    }

    /// [`Geography::children`] with the places that were replaced or ended as well: records
    /// may still sit at them, so listings of what lies under a place walk these.
    pub fn children_holding_records(&self, code: PlaceCode) -> Vec<&Place> {
        let code = self.current(code);
        let mut codes: BTreeSet<PlaceCode> = BTreeSet::new();
        for holder in std::iter::once(code).chain(self.replaced_by(code)) {
            let listed = match self.places.get(&holder) {
                Some(p) if p.level.is_footprint() => self.members.get(&holder),
                _ => self.children.get(&holder),
            };
            codes.extend(listed.into_iter().flatten().copied());
        }
        codes
            .into_iter()
            .filter_map(|c| self.places.get(&c))
            .collect()
    }

    /// Every code `code` replaced, directly or through a chain.
    pub fn replaced_codes(&self, code: PlaceCode) -> Vec<PlaceCode> {
        self.replaced_by(code)
    }

    fn replaced_by(&self, code: PlaceCode) -> Vec<PlaceCode> {
        let mut found = Vec::new();
        let mut queue = vec![code];
        while let Some(next) = queue.pop() {
            for old in self.predecessors.get(&next).into_iter().flatten() {
                if *old != code && !found.contains(old) && found.len() < 64 {
                    found.push(*old);
                    queue.push(*old);
                }
            }
        }
        found
    }

    /// Footprint areas that directly list this place as a member.
    pub fn areas_listing(&self, code: PlaceCode) -> Vec<PlaceCode> {
        self.areas_of
            .get(&code)
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Every footprint area that contains the place: those listing it or any of its ancestors.
    pub fn areas_containing(&self, code: PlaceCode) -> BTreeSet<PlaceCode> {
        std::iter::once(code)
            .chain(self.ancestors(code).into_iter().map(|p| p.code))
            .flat_map(|c| self.areas_of.get(&c).into_iter().flatten().copied())
            .collect()
    }

    /// The code a scope or a footprint naming `code` stands for: its successor when the change
    /// only recoded it (each step the successor's one predecessor: the same boundary), else
    /// `code` itself. A district merged into a larger authority covers what was recorded under
    /// it, never the whole authority that absorbed it.
    fn scope_code(&self, code: PlaceCode) -> PlaceCode {
        let mut current = code;
        for _ in 0..SUCCESSION_STEPS {
            let Some(next) = self.successors.get(&current) else {
                break;
            };
            if self.predecessors.get(next).is_none_or(|p| p.len() != 1) {
                return code;
            }
            current = *next;
        }
        current
    }

    /// Whether `place` is `scope`, lies below it in the tree, or lies in footprint area `scope`,
    /// each read as it stands today (see [`Geography::scope_code`] for a scope naming a
    /// replaced code).
    pub fn within(&self, place: PlaceCode, scope: PlaceCode) -> bool {
        let scope = self.scope_code(scope);
        place == scope
            || self.current(place) == scope
            || self.ancestors(place).iter().any(|p| p.code == scope)
            || self.areas_containing(place).contains(&scope)
            || (self.successors.contains_key(&scope) && self.recorded_under(place, scope))
    }

    /// Whether `place` lay under `old` in the tree as it was recorded, before any change of
    /// code: the places of a district that was merged away.
    fn recorded_under(&self, place: PlaceCode, old: PlaceCode) -> bool {
        let mut next = self.places.get(&place).and_then(|p| p.parent);
        for _ in 0..16 {
            match next {
                Some(code) if code == old => return true,
                Some(code) => next = self.places.get(&code).and_then(|p| p.parent),
                None => return false,
            }
        }
        false
    }

    /// Whether everything in `place` lies inside `scope`: `place` is within it, or `place` is
    /// a footprint area whose every member is.
    pub fn covers(&self, scope: PlaceCode, place: PlaceCode) -> bool {
        if self.within(place, scope) {
            return true;
        }
        let place = self.current(place);
        match self.members.get(&place) {
            Some(members) if !members.is_empty() => {
                members.iter().all(|member| self.within(*member, scope))
            }
            _ => false,
        }
    }

    /// The places of `level` that lie wholly inside `parent`, sorted by code: for
    /// [`PlaceLevel::County`], the upper-tier authorities (shire counties, and the districts
    /// outside them: unitary authorities, metropolitan districts and London boroughs).
    pub fn places_under(&self, parent: PlaceCode, level: PlaceLevel) -> Vec<&Place> {
        self.places_of_level(level)
            .into_iter()
            .filter(|place| place.code != parent && self.covers(parent, place.code))
            .collect()
    }

    /// Every place of `level`, sorted by code, with [`PlaceLevel::County`] meaning the
    /// upper-tier authorities as in [`Geography::places_under`].
    pub fn places_of_level(&self, level: PlaceLevel) -> Vec<&Place> {
        // Metropolitan counties (E11) lost their councils in 1986: their districts are the
        // upper tier. Non-metropolitan counties (E10) are upper tier over their districts.
        let council_county = |place: &Place| {
            place.level == PlaceLevel::County && !place.code.as_str().starts_with("E11")
        };
        let upper_tier = |place: &Place| match place.level {
            PlaceLevel::County => council_county(place),
            PlaceLevel::District => place
                .parent
                .and_then(|p| self.places.get(&p))
                .is_none_or(|p| !council_county(p)),
            _ => false,
        };
        let mut found: Vec<&Place> = self
            .places
            .values()
            // A replaced or ended place is no longer one of today's.
            .filter(|place| {
                !self.successors.contains_key(&place.code) && !self.ended.contains(&place.code)
            })
            .filter(|place| {
                if level == PlaceLevel::County {
                    upper_tier(place)
                } else {
                    place.level == level
                }
            })
            .collect();
        found.sort_by_key(|place| place.code);
        found
    }

    /// Every place and footprint area, in no particular order.
    pub fn all_places(&self) -> impl Iterator<Item = &Place> {
        self.places.values()
    }

    /// How many places there are at each level.
    pub fn count_by_level(&self) -> BTreeMap<PlaceLevel, u64> {
        let mut counts = BTreeMap::new();
        for place in self.places.values() {
            *counts.entry(place.level).or_insert(0) += 1;
        }
        counts
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// A digest of the tree and the footprint memberships: counters made under one
    /// geography are recognised as not fitting another.
    pub fn fingerprint(&self) -> u64 {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        let mut codes: Vec<&PlaceCode> = self.places.keys().collect();
        codes.sort_unstable();
        for code in codes {
            let place = &self.places[code];
            hash.update(code.as_bytes());
            hash.update(
                place
                    .parent
                    .as_ref()
                    .map_or(&[0u8; 9][..], |p| p.as_bytes()),
            );
            hash.update((place.level.number() as u32).to_be_bytes());
            let mut members: Vec<&PlaceCode> =
                self.members.get(code).into_iter().flatten().collect();
            members.sort_unstable();
            for member in members {
                hash.update(member.as_bytes());
            }
        }
        for succession in self.successions() {
            hash.update(b"succession");
            hash.update(succession.predecessor.as_bytes());
            hash.update(succession.successor.as_bytes());
        }
        let digest = hash.finalize();
        u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

/// The places someone may see: an inspector's or a board's `places`. One rule decides, for
/// place views, subject trails and alerts alike, whether a place lies inside them: one of them
/// covers it ([`Geography::covers`]), so a region holds the police force areas, community
/// safety partnerships and clinical commissioning groups whose every member lies in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    places: Vec<PlaceCode>,
}

impl Scope {
    /// The scope of these places; none at all sees nothing.
    pub fn new(places: Vec<PlaceCode>) -> Self {
        Self { places }
    }

    /// Whether everything in `place` lies inside one of the scope's places.
    pub fn covers(&self, geography: &Geography, place: PlaceCode) -> bool {
        self.places
            .iter()
            .any(|scope| geography.covers(*scope, place))
    }

    /// The part of this scope inside `place`: `place` itself when the scope covers it, else
    /// nothing. A board that watches one of its places sees alerts as a board of that place.
    pub fn narrowed_to(&self, geography: &Geography, place: PlaceCode) -> Self {
        if self.covers(geography, place) {
            Self::new(vec![place])
        } else {
            Self::default()
        }
    }
}

impl Geography {
    /// Every place below `code` in the tree, or within footprint area `code`, and every code
    /// any of them (or `code`) replaced, not counting `code` itself.
    pub fn descendants(&self, code: PlaceCode) -> Vec<PlaceCode> {
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::from([code]);
        let mut queue = vec![code];
        while let Some(next) = queue.pop() {
            let children = self
                .children_holding_records(next)
                .into_iter()
                .map(|child| child.code);
            for below in self.replaced_by(next).into_iter().chain(children) {
                if seen.insert(below) {
                    found.push(below);
                    queue.push(below);
                }
            }
        }
        found
    }
}
