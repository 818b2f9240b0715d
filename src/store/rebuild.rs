//! Rebuilding the counters off the writer after an import changed the geography.
//!
//! A record counts at its place, every ancestor and every footprint area containing it, so new
//! places or memberships change where records already in the log count. Replaying the whole
//! log on the writer would stop every write for as long as the replay takes; instead a
//! background thread replays the log up to the head of the import (h0) under the new
//! geography, writing checkpoints as it goes, while the writer keeps folding new changes into
//! its current counters. Between batches the writer takes the rebuilt counters, replays the
//! few revisions after h0 onto them and swaps them in.
//!
//! Until then the writer's counters (and what readers see, and what the alert rules read)
//! count the records written before the import under the geography they were folded with:
//! a newly imported footprint area shows only changes made after the import, and the old
//! places' counts are as they were. Such counters are never checkpointed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::writer::Command;
use super::{Directory, Shared, StoreError, fold};
use crate::domain::inspection::Inspection;

/// Counters replayed under one geography up to a sequence.
pub(super) struct Rebuilt {
    pub(super) inspection: Inspection,
    /// [`Directory::fingerprint`] of the geography they were replayed under.
    pub(super) geography: u64,
}

/// The writer's side of the background rebuild: at most one replay runs at a time.
pub(super) struct CounterRebuild {
    shared: Arc<Shared>,
    running: Option<Running>,
    /// The geography changed again while a replay ran: its answer is stale, and a new replay
    /// starts as soon as it has stopped.
    again: bool,
    /// The writer's counters count some records under an older geography.
    owed: bool,
}

struct Running {
    stop: Arc<AtomicBool>,
    /// Set just before the replay's thread nudges the writer, so the writer never misses it.
    done: Arc<AtomicBool>,
    replay: JoinHandle<Result<Rebuilt, StoreError>>,
}

impl CounterRebuild {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            running: None,
            again: false,
            owed: false,
        }
    }

    /// Whether the writer's counters count some records under an older geography (a rebuild
    /// runs, or failed and the next start rebuilds): they must not be checkpointed.
    pub(super) fn owed(&self) -> bool {
        self.owed
    }

    /// The geography changed with the log at `head`: replays the log up to it in the
    /// background, or, if a replay is running, stops it and starts again once it has stopped.
    pub(super) fn start(&mut self, head: u64) {
        self.owed = true;
        if let Some(running) = &self.running {
            running.stop.store(true, Ordering::Relaxed);
            self.shared.gate.wake();
            self.again = true;
            return;
        }
        self.spawn(head);
    }

    fn spawn(&mut self, head: u64) {
        self.again = false;
        self.shared.counters_rebuilding.send_replace(true);
        // A copy, so the replay holds no lock the writer or the readers wait on.
        let directory = self.shared.read_directory().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let stopping = Arc::clone(&stop);
        let done = Arc::new(AtomicBool::new(false));
        let finishing = Arc::clone(&done);
        let spawned = std::thread::Builder::new()
            .name("marr-rebuild".into())
            .spawn(move || {
                let answer = replay_all(&shared, &directory, head, &stopping);
                finishing.store(true, Ordering::Release);
                // A full queue needs no nudge: the writer looks after every command.
                let _ = shared.commands.try_send(Command::CountersRebuilt);
                answer
            });
        match spawned {
            Ok(replay) => self.running = Some(Running { stop, done, replay }),
            Err(error) => {
                // The counters stay as they are; the next start replays under the new
                // geography (the old checkpoints no longer match it).
                tracing::error!(%error, "counter rebuild could not start; the next start rebuilds");
                self.shared.counters_rebuilding.send_replace(false);
            }
        }
    }

    /// Whether a replay has ended, so [`CounterRebuild::finished`] has something to give.
    pub(super) fn ended(&self) -> bool {
        self.running.as_ref().is_some_and(|running| {
            running.done.load(Ordering::Acquire) || running.replay.is_finished()
        })
    }

    /// Counters rebuilt under the current geography, once a replay has finished; `head` is
    /// where a replay that must start again begins from. Never blocks.
    pub(super) fn finished(&mut self, head: u64) -> Option<Rebuilt> {
        let running = self.running.as_ref()?;
        // A replay that panicked never set `done`, but its thread has ended all the same.
        if !running.done.load(Ordering::Acquire) && !running.replay.is_finished() {
            return None;
        }
        let answer = self.join()?;
        if self.again {
            self.spawn(head);
            return None;
        }
        match answer {
            Ok(rebuilt) => Some(rebuilt),
            Err(error) => {
                // Nothing is lost: the log holds every change. The counters stay as they
                // are, and the next start replays under the new geography.
                tracing::error!(%error, "counter rebuild failed; the next start rebuilds");
                self.shared.counters_rebuilding.send_replace(false);
                None
            }
        }
    }

    /// The writer swapped rebuilt counters in: they count everything under the geography.
    pub(super) fn adopted(&mut self) {
        self.owed = false;
        self.shared.counters_rebuilding.send_replace(false);
    }

    /// Stops a running replay and waits for it (a close, or a repair rebuilding on the
    /// writer); the counters stay owed unless the caller rebuilds them.
    pub(super) fn stop(&mut self) {
        if let Some(running) = &self.running {
            running.stop.store(true, Ordering::Relaxed);
        }
        self.shared.gate.wake();
        self.join();
        self.again = false;
        self.shared.counters_rebuilding.send_replace(false);
    }

    /// The writer rebuilt the counters itself.
    pub(super) fn settled(&mut self) {
        self.stop();
        self.owed = false;
    }

    fn join(&mut self) -> Option<Result<Rebuilt, StoreError>> {
        let running = self.running.take()?;
        Some(running.replay.join().unwrap_or_else(|_| {
            Err(StoreError::WriterFailed(
                "counter rebuild thread panicked".into(),
            ))
        }))
    }
}

impl Drop for CounterRebuild {
    fn drop(&mut self) {
        // The replay holds the engine: it must let go before the store can be opened again.
        self.stop();
    }
}

/// Replays the whole log up to `until` under `directory`, in place of every checkpoint, which
/// were made under another geography; checkpoints are written at each interval.
fn replay_all(
    shared: &Shared,
    directory: &Directory,
    until: u64,
    stop: &AtomicBool,
) -> Result<Rebuilt, StoreError> {
    let inspection = fold::rebuild(
        &*shared.engine,
        directory,
        until,
        shared.checkpoint_every,
        stop,
    )?;
    shared.gate.pass(stop);
    Ok(Rebuilt {
        inspection,
        geography: directory.fingerprint,
    })
}

/// Lets a test hold finished rebuilds back from the writer, to watch the store while one
/// is outstanding.
#[derive(Default)]
pub(super) struct Gate {
    holds: Mutex<usize>,
    changed: Condvar,
}

impl Gate {
    /// Waits while the gate is held, unless the replay is told to stop.
    fn pass(&self, stop: &AtomicBool) {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        while *holds > 0 && !stop.load(Ordering::Relaxed) {
            holds = self.changed.wait(holds).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn wake(&self) {
        let _holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.notify_all();
    }

    pub(super) fn hold(self: &Arc<Self>) -> RebuildHold {
        *self.holds.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        RebuildHold {
            gate: Arc::clone(self),
        }
    }
}

/// Holds every counter rebuild back from being taken by the writer until dropped (for tests
/// that watch the store while a rebuild is outstanding).
pub struct RebuildHold {
    gate: Arc<Gate>,
}

impl Drop for RebuildHold {
    fn drop(&mut self) {
        let mut holds = self.gate.holds.lock().unwrap_or_else(|p| p.into_inner());
        *holds = holds.saturating_sub(1);
        self.gate.changed.notify_all();
    }
}
