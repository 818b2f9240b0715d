//! Typed keyspaces: every kind of entry lives in one sled engine under its own prefix byte, so a
//! record's log entry and all its projections go into one atomic batch. Each keyspace owns its
//! key encoding (big-endian numbers, length-prefixed strings) and its value codec (postcard).

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::engine::{Engine, WriteBatch};
use super::{Snapshot, SnapshotWithoutNames};
use crate::domain::alert::Alert;
use crate::domain::audit::{AuditEvent, link_hash};
use crate::domain::boundaries::Boundary;
use crate::domain::inspection::{CheckpointHeader, PlaceCheckpoint};
use crate::domain::neighbours::Neighbour;
use crate::domain::population::PopulationCounts;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::review::{Action, ActionKey, RecommendationRef, Review};
use crate::domain::{
    Agency, AgencyId, AliasScheme, LocalRef, Membership, Place, PlaceCode, PlaceLevel, RecordKey,
    Revision, SubjectKey, Vocabulary,
};

/// One kind of entry in the register's engine.
pub(crate) trait Keyspace {
    /// First byte of every key in this keyspace.
    const PREFIX: u8;
    type Key;
    type Value: Serialize + DeserializeOwned;

    /// Appends the key's bytes (without the prefix).
    fn encode_key(key: &Self::Key, out: &mut Vec<u8>);
    /// Reads a key back from its bytes (without the prefix).
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError>;

    fn key(key: &Self::Key) -> Vec<u8> {
        let mut out = vec![Self::PREFIX];
        Self::encode_key(key, &mut out);
        out
    }

    /// Reads a stored value back (postcard, unless a keyspace knows older layouts).
    fn decode_value(bytes: &[u8]) -> Result<Self::Value, StoreError> {
        decode_value(bytes)
    }

    fn get(engine: &dyn Engine, key: &Self::Key) -> Result<Option<Self::Value>, StoreError> {
        engine
            .get(&Self::key(key))?
            .map(|bytes| Self::decode_value(&bytes))
            .transpose()
    }

    fn put(batch: &mut WriteBatch, key: &Self::Key, value: &Self::Value) -> Result<(), StoreError> {
        batch.insert(Self::key(key), postcard::to_stdvec(value)?);
        Ok(())
    }

    fn remove(batch: &mut WriteBatch, key: &Self::Key) {
        batch.remove(Self::key(key));
    }

    /// Every entry whose key starts with `prefix` (already encoded, without the keyspace byte).
    fn scan(
        engine: &dyn Engine,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Self::Key, Self::Value), StoreError>> {
        let mut full = vec![Self::PREFIX];
        full.extend_from_slice(prefix);
        engine.scan_prefix(&full).map(|entry| {
            let (key, value) = entry?;
            Ok((Self::decode_key(&key[1..])?, Self::decode_value(&value)?))
        })
    }

    /// Entries from `from` up to, not including, `until`.
    fn range(
        engine: &dyn Engine,
        from: &Self::Key,
        until: &Self::Key,
    ) -> impl DoubleEndedIterator<Item = Result<(Self::Key, Self::Value), StoreError>> {
        engine
            .range(&Self::key(from), &Self::key(until))
            .map(|entry| {
                let (key, value) = entry?;
                Ok((Self::decode_key(&key[1..])?, Self::decode_value(&value)?))
            })
    }

    fn scan_all(
        engine: &dyn Engine,
    ) -> impl DoubleEndedIterator<Item = Result<(Self::Key, Self::Value), StoreError>> {
        Self::scan(engine, &[])
    }

    /// The entries of every range (`from` up to, not including, `until`), range by range,
    /// read at once (see [`Engine::ranges`]).
    fn ranges(
        engine: &dyn Engine,
        bounds: &[(Self::Key, Self::Key)],
    ) -> Result<Vec<Decoded<Self>>, StoreError>
    where
        Self: Sized,
    {
        let bounds: Vec<_> = bounds
            .iter()
            .map(|(from, until)| (Self::key(from), Self::key(until)))
            .collect();
        engine
            .ranges(&bounds)?
            .into_iter()
            .map(|(key, value)| Ok((Self::decode_key(&key[1..])?, Self::decode_value(&value)?)))
            .collect()
    }
}

/// One entry of a keyspace, read back.
pub(crate) type Decoded<K> = (<K as Keyspace>::Key, <K as Keyspace>::Value);

fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(postcard::from_bytes(bytes)?)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed {what} key"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], StoreError> {
    if bytes.len() < n {
        return Err(corrupt(what));
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn encode_record_key(key: &RecordKey, out: &mut Vec<u8>) {
    // Agency ids are at most 16 bytes; local references at most 64 characters (256 bytes).
    let agency = key.agency.as_str().as_bytes();
    let local_ref = key.local_ref.as_str().as_bytes();
    out.push(agency.len() as u8);
    out.extend_from_slice(agency);
    out.extend_from_slice(&(local_ref.len() as u16).to_be_bytes());
    out.extend_from_slice(local_ref);
}

fn decode_record_key(mut bytes: &[u8]) -> Result<RecordKey, StoreError> {
    let what = "record";
    let agency_len = take(&mut bytes, 1, what)?[0] as usize;
    let agency =
        std::str::from_utf8(take(&mut bytes, agency_len, what)?).map_err(|_| corrupt(what))?;
    let ref_len = u16::from_be_bytes(
        take(&mut bytes, 2, what)?
            .try_into()
            .map_err(|_| corrupt(what))?,
    ) as usize;
    let local_ref =
        std::str::from_utf8(take(&mut bytes, ref_len, what)?).map_err(|_| corrupt(what))?;
    Ok(RecordKey {
        agency: AgencyId::from_stored(agency).map_err(StoreError::Corrupt)?,
        local_ref: LocalRef::from_stored(local_ref).map_err(StoreError::Corrupt)?,
    })
}

/// Sequences are big-endian, so sled's byte order is sequence order.
fn encode_sequence(sequence: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&sequence.to_be_bytes());
}

fn decode_sequence(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(
        bytes.try_into().map_err(|_| corrupt(what))?,
    ))
}

fn decode_place_code(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
    let code: [u8; 9] = bytes.try_into().map_err(|_| corrupt("place"))?;
    Ok(PlaceCode::from_bytes(code))
}

/// The revision log, the register's truth: sequence → revision.
pub(crate) struct Log;
impl Keyspace for Log {
    const PREFIX: u8 = b'L';
    type Key = u64;
    type Value = Revision;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "log")
    }
}

impl Log {
    /// Log entries with a sequence below `before` (all of them when `None`), newest first,
    /// read lazily.
    pub(crate) fn newest_before(
        engine: &dyn Engine,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<(u64, Revision), StoreError>> + '_ {
        let end = Self::key(&before.unwrap_or(u64::MAX));
        engine.range(&Self::key(&0), &end).rev().map(|entry| {
            let (key, value) = entry?;
            Ok((Self::decode_key(&key[1..])?, Self::decode_value(&value)?))
        })
    }

    /// The latest revision of a record, through the `Latest` pointer.
    pub(crate) fn latest(
        engine: &dyn Engine,
        key: &RecordKey,
    ) -> Result<Option<Revision>, StoreError> {
        let Some(sequence) = Latest::get(engine, key)? else {
            return Ok(None);
        };
        let revision = Self::get(engine, &sequence)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "latest revision of {key} points at missing log entry {sequence}"
            ))
        })?;
        Ok(Some(revision))
    }

    /// The latest revision of each of these records that has one, read in two queries
    /// (pointers, then revisions) where [`Log::latest`] costs two a record.
    pub(crate) fn latest_of<'a>(
        engine: &dyn Engine,
        keys: impl Iterator<Item = &'a RecordKey>,
    ) -> Result<HashMap<RecordKey, Revision>, StoreError> {
        let pointers: Vec<(Vec<u8>, Vec<u8>)> = keys
            .map(|key| {
                let from = Latest::key(key);
                let mut until = from.clone();
                until.push(0);
                (from, until)
            })
            .collect();
        let mut sequences: Vec<(u64, u64)> = Vec::with_capacity(pointers.len());
        let mut wanted: HashMap<u64, RecordKey> = HashMap::new();
        for (key, value) in engine.ranges(&pointers)? {
            let record = Latest::decode_key(&key[1..])?;
            let sequence = Latest::decode_value(&value)?;
            sequences.push((sequence, sequence + 1));
            wanted.insert(sequence, record);
        }
        sequences.sort_unstable();
        sequences.dedup();
        let mut latest = HashMap::with_capacity(wanted.len());
        for (sequence, revision) in Self::ranges(engine, &sequences)? {
            if let Some(record) = wanted.remove(&sequence) {
                latest.insert(record, revision);
            }
        }
        if let Some((sequence, record)) = wanted.into_iter().next() {
            return Err(StoreError::Corrupt(format!(
                "latest revision of {record} points at missing log entry {sequence}"
            )));
        }
        Ok(latest)
    }
}

/// Projection: where in the log the latest revision of each record is. A pointer rather than a
/// copy, because sled rewrites a whole leaf on every insert and small values keep leaves small.
pub(crate) struct Latest;
impl Keyspace for Latest {
    const PREFIX: u8 = b'R';
    type Key = RecordKey;
    type Value = u64;
    fn encode_key(key: &RecordKey, out: &mut Vec<u8>) {
        encode_record_key(key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<RecordKey, StoreError> {
        decode_record_key(bytes)
    }
}

impl Latest {
    /// One agency's records in the order of their keys, after `after` if given (a page's
    /// last), read from one range: a page costs what it lists, however far in.
    pub(crate) fn of_agency<'a>(
        engine: &'a dyn Engine,
        agency: &AgencyId,
        after: Option<&RecordKey>,
    ) -> impl Iterator<Item = Result<(RecordKey, u64), StoreError>> + 'a {
        let mut prefix = vec![Self::PREFIX];
        let agency = agency.as_str().as_bytes();
        prefix.push(agency.len() as u8);
        prefix.extend_from_slice(agency);
        let from = match after {
            // Just past the last key listed: no key lies between it and this.
            Some(after) => {
                let mut from = Self::key(after);
                from.push(0);
                from
            }
            None => prefix.clone(),
        };
        // A local reference's length is at most 256, so no key of the agency reaches this.
        let mut until = prefix;
        until.extend_from_slice(&[0xff, 0xff]);
        engine.range(&from, &until).map(|entry| {
            let (key, value) = entry?;
            Ok((Self::decode_key(&key[1..])?, Self::decode_value(&value)?))
        })
    }
}

/// Projection: where each record's latest revision sits, by place and recency: (place,
/// sequence of the latest revision) → nothing, the log entry at that sequence says the rest.
/// A place's entries are in change order, so its newest records are one reverse range read,
/// and a revision is its record's latest exactly when its entry exists.
pub(crate) struct ByPlace;
impl Keyspace for ByPlace {
    const PREFIX: u8 = b'Q';
    type Key = (PlaceCode, u64);
    type Value = ();
    fn encode_key((place, sequence): &Self::Key, out: &mut Vec<u8>) {
        out.extend_from_slice(place.as_bytes());
        encode_sequence(*sequence, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let (place, sequence) = bytes
            .split_at_checked(9)
            .ok_or_else(|| corrupt("place index"))?;
        Ok((
            decode_place_code(place)?,
            decode_sequence(sequence, "place index")?,
        ))
    }
}

impl ByPlace {
    /// A place's entries with a sequence below `before` (all of them when `None`), newest
    /// first, read lazily.
    pub(crate) fn newest_at(
        engine: &dyn Engine,
        place: PlaceCode,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
        // Sequences never reach u64::MAX, so it serves as "no bound".
        let start = Self::key(&(place, 0));
        let end = Self::key(&(place, before.unwrap_or(u64::MAX)));
        engine.range(&start, &end).rev().map(|entry| {
            let (key, _) = entry?;
            Ok(Self::decode_key(&key[1..])?.1)
        })
    }
}

/// The place index of layout 1: (place, record key) → nothing, in key order. Only read to
/// remove it when a store of that layout is opened (see `layout`).
pub(crate) struct PlaceByKey;
impl Keyspace for PlaceByKey {
    const PREFIX: u8 = b'P';
    type Key = (PlaceCode, RecordKey);
    type Value = ();
    fn encode_key((place, record): &Self::Key, out: &mut Vec<u8>) {
        out.extend_from_slice(place.as_bytes());
        encode_record_key(record, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let (place, record) = bytes
            .split_at_checked(9)
            .ok_or_else(|| corrupt("old place index"))?;
        Ok((decode_place_code(place)?, decode_record_key(record)?))
    }
}

/// A subject journal entry: a revision that names a subject, or that stopped naming it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SubjectEntry {
    pub record: RecordKey,
    pub place: PlaceCode,
    pub active: bool,
    /// False for the entry closing a record's presence under a subject it no longer names.
    pub named: bool,
}

/// Projection: the subject journal, (subject, sequence) → entry. Every revision naming a
/// subject is filed under it, so a subject's records at any point of the log are one prefix
/// scan away, and nothing about subjects needs to be kept in memory.
pub(crate) struct SubjectJournal;
impl Keyspace for SubjectJournal {
    const PREFIX: u8 = b'B';
    type Key = (SubjectKey, u64);
    type Value = SubjectEntry;
    fn encode_key((subject, sequence): &Self::Key, out: &mut Vec<u8>) {
        out.extend_from_slice(subject.as_bytes());
        encode_sequence(*sequence, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "subject journal";
        let (subject, sequence) = bytes.split_at_checked(32).ok_or_else(|| corrupt(what))?;
        let subject: [u8; 32] = subject.try_into().map_err(|_| corrupt(what))?;
        Ok((
            SubjectKey::from_bytes(subject),
            decode_sequence(sequence, what)?,
        ))
    }
}

/// The subject index of the first layout: (subject, record) → (). Read only to remove it.
pub(crate) struct LegacyBySubject;
impl LegacyBySubject {
    pub(crate) const PREFIX: u8 = b'S';
}

/// Projection: revisions the staleness sweep watches (active, high or worse, still their
/// record's latest, not yet reported stale), by (received at, sequence), so the sweep reads
/// only those past the limit.
pub(crate) struct StaleWatch;
impl Keyspace for StaleWatch {
    const PREFIX: u8 = b'D';
    type Key = (time::OffsetDateTime, u64);
    type Value = ();
    fn encode_key((at, sequence): &Self::Key, out: &mut Vec<u8>) {
        // Nanoseconds with the sign bit flipped sort in time order, before 1970 included.
        let nanos = i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        out.extend_from_slice(&((nanos as u64) ^ (1 << 63)).to_be_bytes());
        encode_sequence(*sequence, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "stale watch";
        let (at, sequence) = bytes.split_at_checked(8).ok_or_else(|| corrupt(what))?;
        let nanos = (decode_sequence(at, what)? ^ (1 << 63)) as i64;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|_| corrupt(what))?;
        Ok((at, decode_sequence(sequence, what)?))
    }
}

/// The inspection counters as they stood at a log sequence: sequence → what the checkpoint
/// holds besides the places ([`CheckpointPlaces`]). Start-up loads the last and replays only
/// the log after it; an `as_of` view starts from the nearest earlier one.
pub(crate) struct Checkpoints;
impl Keyspace for Checkpoints {
    const PREFIX: u8 = b'K';
    type Key = u64;
    type Value = CheckpointHeader;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "checkpoint")
    }
}

/// Each place's counters at a checkpoint: (sequence, place) → counters, so a view of one
/// place as of an earlier sequence reads that place and its children, not every place.
pub(crate) struct CheckpointPlaces;
impl Keyspace for CheckpointPlaces {
    const PREFIX: u8 = b'C';
    type Key = (u64, PlaceCode);
    type Value = PlaceCheckpoint;
    fn encode_key((sequence, place): &Self::Key, out: &mut Vec<u8>) {
        encode_sequence(*sequence, out);
        out.extend_from_slice(place.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "checkpoint place";
        let (sequence, place) = bytes.split_at_checked(8).ok_or_else(|| corrupt(what))?;
        Ok((decode_sequence(sequence, what)?, decode_place_code(place)?))
    }
}

/// Directory: places and footprint areas.
pub(crate) struct Places;
impl Keyspace for Places {
    const PREFIX: u8 = b'G';
    type Key = PlaceCode;
    type Value = Place;
    fn encode_key(key: &PlaceCode, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
        decode_place_code(bytes)
    }
}

/// Directory: code changes, a replaced code to the code that replaced it.
pub(crate) struct Successions;
impl Keyspace for Successions {
    const PREFIX: u8 = b'E';
    type Key = PlaceCode;
    type Value = PlaceCode;
    fn encode_key(key: &PlaceCode, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
        decode_place_code(bytes)
    }
}

/// Directory: places that ended without a single successor.
pub(crate) struct Ended;
impl Keyspace for Ended {
    const PREFIX: u8 = b'Z';
    type Key = PlaceCode;
    type Value = ();
    fn encode_key(key: &PlaceCode, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
        decode_place_code(bytes)
    }
}

/// Directory: other organisations' codes for places, (scheme, alias) to the place.
pub(crate) struct Aliases;
impl Keyspace for Aliases {
    const PREFIX: u8 = b'I';
    type Key = (AliasScheme, String);
    type Value = PlaceCode;
    fn encode_key((scheme, alias): &Self::Key, out: &mut Vec<u8>) {
        out.push(match scheme {
            AliasScheme::Ods => b'o',
            AliasScheme::Dfe => b'd',
        });
        out.extend_from_slice(alias.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let (scheme, alias) = bytes.split_first().ok_or_else(|| corrupt("alias"))?;
        let scheme = match scheme {
            b'o' => AliasScheme::Ods,
            b'd' => AliasScheme::Dfe,
            _ => return Err(corrupt("alias")),
        };
        let alias = std::str::from_utf8(alias).map_err(|_| corrupt("alias"))?;
        Ok((scheme, alias.to_string()))
    }
}

/// Directory: footprint area membership, area then member.
pub(crate) struct Memberships;
impl Keyspace for Memberships {
    const PREFIX: u8 = b'M';
    type Key = Membership;
    type Value = ();
    fn encode_key(key: &Membership, out: &mut Vec<u8>) {
        out.extend_from_slice(key.area.as_bytes());
        out.extend_from_slice(key.member.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Membership, StoreError> {
        let (area, member) = bytes
            .split_at_checked(9)
            .ok_or_else(|| corrupt("membership"))?;
        Ok(Membership {
            area: decode_place_code(area)?,
            member: decode_place_code(member)?,
        })
    }
}

/// Directory: population denominators, (place, mid-year) → counts by band. A place's years
/// are in order, so its latest is the last of its prefix.
pub(crate) struct Populations;
impl Keyspace for Populations {
    const PREFIX: u8 = b'F';
    type Key = (PlaceCode, u16);
    type Value = PopulationCounts;
    fn encode_key((place, year): &Self::Key, out: &mut Vec<u8>) {
        out.extend_from_slice(place.as_bytes());
        out.extend_from_slice(&year.to_be_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "population";
        let (place, year) = bytes.split_at_checked(9).ok_or_else(|| corrupt(what))?;
        let year: [u8; 2] = year.try_into().map_err(|_| corrupt(what))?;
        Ok((decode_place_code(place)?, u16::from_be_bytes(year)))
    }
}

/// Directory: DfE statistical neighbours, upper-tier authority → its ten neighbours in the
/// DfE's order with their bands. Importing again replaces an authority's whole set.
pub(crate) struct Neighbours;
impl Keyspace for Neighbours {
    const PREFIX: u8 = b'X';
    type Key = PlaceCode;
    type Value = Vec<Neighbour>;
    fn encode_key(place: &PlaceCode, out: &mut Vec<u8>) {
        out.extend_from_slice(place.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
        decode_place_code(bytes)
    }
}

/// Directory: each place's boundary for drawing maps, place → shape (imported, or dissolved
/// from a footprint area's districts). Kept out of the in-memory directory: maps read a few
/// places at a time.
pub(crate) struct Boundaries;
impl Keyspace for Boundaries {
    const PREFIX: u8 = b'b';
    type Key = PlaceCode;
    type Value = Boundary;
    fn encode_key(place: &PlaceCode, out: &mut Vec<u8>) {
        out.extend_from_slice(place.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<PlaceCode, StoreError> {
        decode_place_code(bytes)
    }
}

/// Directory: registered agencies.
pub(crate) struct Agencies;
impl Keyspace for Agencies {
    const PREFIX: u8 = b'A';
    type Key = AgencyId;
    type Value = Agency;
    fn encode_key(key: &AgencyId, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_str().as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<AgencyId, StoreError> {
        let id = std::str::from_utf8(bytes).map_err(|_| corrupt("agency"))?;
        AgencyId::from_stored(id).map_err(StoreError::Corrupt)
    }
}

/// Frozen place views for inspection reports: id → snapshot.
pub(crate) struct Snapshots;
impl Keyspace for Snapshots {
    const PREFIX: u8 = b'V';
    type Key = u64;
    type Value = Snapshot;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "snapshot")
    }
    /// Snapshots frozen before their names were kept with them still read.
    fn decode_value(bytes: &[u8]) -> Result<Snapshot, StoreError> {
        decode_value::<Snapshot>(bytes)
            .or_else(|_| decode_value::<SnapshotWithoutNames>(bytes).map(Snapshot::from))
    }
}

/// Reviews, every revision kept: (review id, revision) → review. A review's revisions share
/// the prefix of its id, so its latest is the last of one short range.
pub(crate) struct Reviews;
impl Keyspace for Reviews {
    const PREFIX: u8 = b'r';
    type Key = (u64, u32);
    type Value = Review;
    fn encode_key((id, revision): &Self::Key, out: &mut Vec<u8>) {
        encode_sequence(*id, out);
        out.extend_from_slice(&revision.to_be_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "review";
        let (id, revision) = bytes.split_at_checked(8).ok_or_else(|| corrupt(what))?;
        let revision: [u8; 4] = revision.try_into().map_err(|_| corrupt(what))?;
        Ok((decode_sequence(id, what)?, u32::from_be_bytes(revision)))
    }
}

impl Reviews {
    /// The prefix of one review's revisions.
    pub(crate) fn of_review(id: u64) -> Vec<u8> {
        id.to_be_bytes().to_vec()
    }
}

fn encode_action_key(key: &ActionKey, out: &mut Vec<u8>) {
    encode_sequence(key.recommendation.review, out);
    out.extend_from_slice(&key.recommendation.finding.to_be_bytes());
    out.extend_from_slice(&key.recommendation.recommendation.to_be_bytes());
    out.extend_from_slice(&key.number.to_be_bytes());
}

fn decode_action_key(bytes: &[u8]) -> Result<ActionKey, StoreError> {
    let what = "action";
    let (review, rest) = bytes.split_at_checked(8).ok_or_else(|| corrupt(what))?;
    let number = |part: &[u8]| -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(
            part.try_into().map_err(|_| corrupt(what))?,
        ))
    };
    if rest.len() != 12 {
        return Err(corrupt(what));
    }
    Ok(ActionKey {
        recommendation: RecommendationRef {
            review: decode_sequence(review, what)?,
            finding: number(&rest[0..4])?,
            recommendation: number(&rest[4..8])?,
        },
        number: number(&rest[8..12])?,
    })
}

/// Bytes of an encoded [`ActionKey`]: the review's id, then the finding, recommendation and
/// action numbers.
const ACTION_KEY_BYTES: usize = 8 + 4 + 4 + 4;

/// Action plans, every revision kept: (action, revision) → action. A review's actions share
/// the prefix of its id, and one action's revisions the prefix of its key.
pub(crate) struct Actions;
impl Keyspace for Actions {
    const PREFIX: u8 = b'a';
    type Key = (ActionKey, u32);
    type Value = Action;
    fn encode_key((key, revision): &Self::Key, out: &mut Vec<u8>) {
        encode_action_key(key, out);
        out.extend_from_slice(&revision.to_be_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "action";
        let (key, revision) = bytes
            .split_at_checked(ACTION_KEY_BYTES)
            .ok_or_else(|| corrupt(what))?;
        let revision: [u8; 4] = revision.try_into().map_err(|_| corrupt(what))?;
        Ok((decode_action_key(key)?, u32::from_be_bytes(revision)))
    }
}

impl Actions {
    /// The prefix of one action's revisions.
    pub(crate) fn of_action(key: &ActionKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(ACTION_KEY_BYTES);
        encode_action_key(key, &mut out);
        out
    }

    /// The prefix of every action under one recommendation.
    pub(crate) fn of_recommendation(at: RecommendationRef) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        encode_sequence(at.review, &mut out);
        out.extend_from_slice(&at.finding.to_be_bytes());
        out.extend_from_slice(&at.recommendation.to_be_bytes());
        out
    }

    /// The prefix of every action of one review.
    pub(crate) fn of_review(id: u64) -> Vec<u8> {
        id.to_be_bytes().to_vec()
    }
}

/// Actions the overdue sweep has still to look at, by due date: (due, action) → (). An entry
/// is removed in the same batch as the alert it raises, so each due date alerts once.
pub(crate) struct ActionsDue;
const SIGN_BIT: u32 = 1 << 31;
impl Keyspace for ActionsDue {
    const PREFIX: u8 = b'd';
    type Key = (time::Date, ActionKey);
    type Value = ();
    fn encode_key((due, key): &Self::Key, out: &mut Vec<u8>) {
        // The sign bit flipped, so big-endian byte order is date order for every date.
        out.extend_from_slice(&(due.to_julian_day().cast_unsigned() ^ SIGN_BIT).to_be_bytes());
        encode_action_key(key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "action due";
        let (day, key) = bytes.split_at_checked(4).ok_or_else(|| corrupt(what))?;
        let day = (u32::from_be_bytes(day.try_into().map_err(|_| corrupt(what))?) ^ SIGN_BIT)
            .cast_signed();
        let due = time::Date::from_julian_day(day).map_err(|_| corrupt(what))?;
        Ok((due, decode_action_key(key)?))
    }
}

/// Releases of the public table as listed: release number → release.
pub(crate) struct Releases;
impl Keyspace for Releases {
    const PREFIX: u8 = b'O';
    type Key = u64;
    type Value = Release;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "release")
    }
}

/// The frozen tables of each release: (release number, parent, level) → table. A release's
/// tables share the prefix of its number, so one range holds them all.
pub(crate) struct ReleaseTables;
impl Keyspace for ReleaseTables {
    const PREFIX: u8 = b'T';
    type Key = (u64, PlaceCode, PlaceLevel);
    type Value = ReleasedTable;
    fn encode_key((release, parent, level): &Self::Key, out: &mut Vec<u8>) {
        encode_sequence(*release, out);
        out.extend_from_slice(parent.as_bytes());
        out.push(level.number() as u8);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "release table";
        let mut bytes = bytes;
        let release = decode_sequence(take(&mut bytes, 8, what)?, what)?;
        let parent = decode_place_code(take(&mut bytes, 9, what)?)?;
        let level = PlaceLevel::from_number(i32::from(take(&mut bytes, 1, what)?[0]))
            .ok_or_else(|| corrupt(what))?;
        if !bytes.is_empty() {
            return Err(corrupt(what));
        }
        Ok((release, parent, level))
    }
}

impl ReleaseTables {
    /// Every table of one release.
    pub(crate) fn of_release(
        engine: &dyn Engine,
        release: u64,
    ) -> impl DoubleEndedIterator<Item = Result<(<Self as Keyspace>::Key, ReleasedTable), StoreError>>
    {
        let mut prefix = vec![Self::PREFIX];
        encode_sequence(release, &mut prefix);
        engine.scan_prefix(&prefix).map(|entry| {
            let (key, value) = entry?;
            Ok((Self::decode_key(&key[1..])?, decode_value(&value)?))
        })
    }
}

/// The alert log: alert sequence → alert, gap-free, written with the change that raised it.
pub(crate) struct AlertLog;
impl Keyspace for AlertLog {
    const PREFIX: u8 = b'N';
    type Key = u64;
    type Value = Alert;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "alert")
    }
}

/// The audit chain: audit sequence → event, each carrying the hash of the one before. Events
/// are stored as the exact bytes that were hashed.
pub(crate) struct AuditLog;
impl Keyspace for AuditLog {
    const PREFIX: u8 = b'U';
    type Key = u64;
    type Value = AuditEvent;
    fn encode_key(key: &u64, out: &mut Vec<u8>) {
        encode_sequence(*key, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, StoreError> {
        decode_sequence(bytes, "audit")
    }
}

impl AuditLog {
    /// Adds an event and returns the hash of its stored bytes, which the next event carries.
    pub(crate) fn append(
        batch: &mut WriteBatch,
        event: &AuditEvent,
    ) -> Result<[u8; 32], StoreError> {
        let bytes = postcard::to_stdvec(event)?;
        let hash = link_hash(&bytes);
        batch.insert(Self::key(&event.sequence), bytes);
        Ok(hash)
    }

    /// Every stored event's sequence and bytes, in order, for checking the chain.
    pub(crate) fn scan_stored(
        engine: &dyn Engine,
    ) -> impl DoubleEndedIterator<Item = Result<(u64, Vec<u8>), StoreError>> {
        engine.scan_prefix(&[Self::PREFIX]).map(|entry| {
            let (key, value) = entry?;
            Ok((Self::decode_key(&key[1..])?, value.to_vec()))
        })
    }
}

/// Audit index: (principal, audit sequence) → nothing, so one principal's events are a range
/// read rather than a scan of the chain. Written with each event.
pub(crate) struct AuditByPrincipal;
impl Keyspace for AuditByPrincipal {
    const PREFIX: u8 = b'H';
    type Key = (String, u64);
    type Value = ();
    fn encode_key((principal, sequence): &Self::Key, out: &mut Vec<u8>) {
        encode_principal(principal, out);
        encode_sequence(*sequence, out);
    }
    fn decode_key(mut bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "audit principal index";
        let length = u16::from_be_bytes(
            take(&mut bytes, 2, what)?
                .try_into()
                .map_err(|_| corrupt(what))?,
        ) as usize;
        let principal = std::str::from_utf8(take(&mut bytes, length, what)?)
            .map_err(|_| corrupt(what))?
            .to_string();
        Ok((principal, decode_sequence(bytes, what)?))
    }
}

/// Principal names are length-prefixed, so one name's entries never run into a longer one's.
fn encode_principal(principal: &str, out: &mut Vec<u8>) {
    // Names come from the config; one longer than a u16 is cut rather than mis-encoded.
    let bytes = &principal.as_bytes()[..principal.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Audit index: (agency of a record the event touched, audit sequence) → nothing, one entry
/// per agency an event touched, so "who touched this agency's records" is a range read.
pub(crate) struct AuditByAgency;
impl Keyspace for AuditByAgency {
    const PREFIX: u8 = b'J';
    type Key = (AgencyId, u64);
    type Value = ();
    fn encode_key((agency, sequence): &Self::Key, out: &mut Vec<u8>) {
        encode_agency(agency, out);
        encode_sequence(*sequence, out);
    }
    fn decode_key(mut bytes: &[u8]) -> Result<Self::Key, StoreError> {
        let what = "audit agency index";
        let length = take(&mut bytes, 1, what)?[0] as usize;
        let agency =
            std::str::from_utf8(take(&mut bytes, length, what)?).map_err(|_| corrupt(what))?;
        Ok((
            AgencyId::from_stored(agency).map_err(StoreError::Corrupt)?,
            decode_sequence(bytes, what)?,
        ))
    }
}

fn encode_agency(agency: &AgencyId, out: &mut Vec<u8>) {
    // Agency ids are at most 16 bytes.
    let bytes = agency.as_str().as_bytes();
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// The entries both audit indexes hold for one event.
pub(crate) fn audit_index_entries(event: &AuditEvent) -> (Vec<u8>, Vec<Vec<u8>>) {
    let principal = AuditByPrincipal::key(&(event.principal.clone(), event.sequence));
    let mut agencies: Vec<&AgencyId> = event.records.iter().map(|r| &r.agency).collect();
    agencies.sort();
    agencies.dedup();
    let agencies = agencies
        .into_iter()
        .map(|agency| AuditByAgency::key(&(agency.clone(), event.sequence)))
        .collect();
    (principal, agencies)
}

/// Adds an event's entries in both audit indexes to `batch`.
pub(crate) fn index_audit_event(batch: &mut WriteBatch, event: &AuditEvent) {
    let (principal, agencies) = audit_index_entries(event);
    batch.insert(principal, Vec::new());
    for key in agencies {
        batch.insert(key, Vec::new());
    }
}

/// Sequences of the events an audit index lists under one principal or agency, after
/// `after`, oldest first, read lazily.
pub(crate) fn audit_index_after<'a>(
    engine: &'a dyn Engine,
    prefix: u8,
    owner: &[u8],
    after: u64,
) -> impl Iterator<Item = Result<u64, StoreError>> + use<'a> {
    let mut start = vec![prefix];
    start.extend_from_slice(owner);
    let owner_len = start.len();
    let mut end = start.clone();
    encode_sequence(after.saturating_add(1), &mut start);
    encode_sequence(u64::MAX, &mut end);
    engine.range(&start, &end).map(move |entry| {
        let (key, _) = entry?;
        decode_sequence(&key[owner_len..], "audit index")
    })
}

/// The owner bytes [`audit_index_after`] takes for a principal.
pub(crate) fn principal_owner(principal: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_principal(principal, &mut out);
    out
}

/// The owner bytes [`audit_index_after`] takes for an agency.
pub(crate) fn agency_owner(agency: &AgencyId) -> Vec<u8> {
    let mut out = Vec::new();
    encode_agency(agency, &mut out);
    out
}

/// The store's layout number, written once its indexes are in that layout's shape.
pub(crate) struct Layout;
impl Keyspace for Layout {
    const PREFIX: u8 = b'Y';
    type Key = ();
    type Value = u32;
    fn encode_key(_: &(), _: &mut Vec<u8>) {}
    fn decode_key(_: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The audit chain's head: the last event's sequence and hash, written with every event, so
/// that removing or changing the last event is noticed too.
pub(crate) struct AuditHead;
impl Keyspace for AuditHead {
    const PREFIX: u8 = b'W';
    type Key = ();
    type Value = (u64, [u8; 32]);
    fn encode_key(_: &(), _: &mut Vec<u8>) {}
    fn decode_key(_: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How many times the directory has changed: a node that finds it moved reads the directory
/// back, where otherwise it folds only the log other nodes wrote. Not backed up (a restore
/// starts it again, with every node stopped).
pub(crate) struct DirectoryStamp;
impl Keyspace for DirectoryStamp {
    const PREFIX: u8 = b'n';
    type Key = ();
    type Value = u64;
    fn encode_key(_: &(), _: &mut Vec<u8>) {}
    fn decode_key(_: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The keyspaces [`super::load_directory`] reads: a batch writing any of them moves the
/// [`DirectoryStamp`].
pub(crate) const DIRECTORY_KEYSPACES: [u8; 8] = [
    Places::PREFIX,
    Memberships::PREFIX,
    Ended::PREFIX,
    Aliases::PREFIX,
    Successions::PREFIX,
    Agencies::PREFIX,
    Populations::PREFIX,
    Neighbours::PREFIX,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyspace_has_its_own_prefix() {
        let mut prefixes = vec![
            Log::PREFIX,
            Latest::PREFIX,
            ByPlace::PREFIX,
            PlaceByKey::PREFIX,
            SubjectJournal::PREFIX,
            LegacyBySubject::PREFIX,
            StaleWatch::PREFIX,
            Checkpoints::PREFIX,
            CheckpointPlaces::PREFIX,
            Places::PREFIX,
            Memberships::PREFIX,
            Populations::PREFIX,
            Successions::PREFIX,
            Aliases::PREFIX,
            Ended::PREFIX,
            Neighbours::PREFIX,
            Boundaries::PREFIX,
            Agencies::PREFIX,
            Snapshots::PREFIX,
            Releases::PREFIX,
            Reviews::PREFIX,
            Actions::PREFIX,
            ActionsDue::PREFIX,
            ReleaseTables::PREFIX,
            AlertLog::PREFIX,
            AuditLog::PREFIX,
            AuditByPrincipal::PREFIX,
            AuditByAgency::PREFIX,
            Layout::PREFIX,
            AuditHead::PREFIX,
            DirectoryStamp::PREFIX,
        ];
        let all = prefixes.len();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), all, "two keyspaces share a prefix");
    }

    #[test]
    fn a_population_key_reads_back_and_sorts_by_place_then_year() {
        let place = PlaceCode::parse("E08000021").expect("code");
        let key = (place, 2024);
        assert_eq!(
            Populations::decode_key(&Populations::key(&key)[1..]).expect("decodes"),
            key
        );
        assert!(Populations::key(&(place, 2023)) < Populations::key(&(place, 2024)));
        assert!(Populations::decode_key(&[b'E', 0]).is_err());
    }

    #[test]
    fn action_keys_read_back_and_due_dates_sort_in_date_order() {
        let key = ActionKey {
            recommendation: RecommendationRef {
                review: 3,
                finding: 2,
                recommendation: 1,
            },
            number: 4,
        };
        let stored = Actions::key(&(key, 5));
        assert_eq!(
            Actions::decode_key(&stored[1..]).expect("decodes"),
            (key, 5)
        );
        assert!(stored[1..].starts_with(&Actions::of_action(&key)));
        assert!(stored[1..].starts_with(&Actions::of_recommendation(key.recommendation)));
        assert!(stored[1..].starts_with(&Actions::of_review(3)));
        let due = |date: time::Date| ActionsDue::key(&(date, key));
        let dates = [
            time::Date::MIN,
            time::macros::date!(1999 - 12 - 31),
            time::macros::date!(2026 - 06 - 30),
            time::macros::date!(2026 - 07 - 01),
        ];
        for pair in dates.windows(2) {
            assert!(
                due(pair[0]) < due(pair[1]),
                "{} before {}",
                pair[0],
                pair[1]
            );
        }
        for date in dates {
            assert_eq!(
                ActionsDue::decode_key(&due(date)[1..]).expect("decodes"),
                (date, key)
            );
        }
    }
}
