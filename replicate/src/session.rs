//! The replication session with one peer: a sans-IO state machine. It decides what to say and
//! what to ask for; a thin async task ([`crate::peer`]) moves bytes, reads and writes the store,
//! and feeds the results back in. Everything here is synchronous and deterministic.
//!
//! The protocol is epidemic-broadcast-tree style (as in SSB's EBT): each side sends a
//! [`Note`] per feed — what it holds, and whether this peer should send it that feed — and each
//! side streams, in seq order, what the other lacks of the feeds it asked for, then keeps
//! streaming new entries live. A node asks each feed of one peer at a time (the scheduler in
//! [`crate::node`] decides which), so a new entry normally arrives once.
//!
//! Reconnects are cheap: if both sides remember each other from an earlier session of the same
//! node processes (same epochs) and agree on the notes exchanged (same digests), each side sends
//! only the notes that changed since.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use scrip_feed::{Entry, FeedId, Seq};

use crate::error::{Error, Result};
use crate::limits::{
    MAX_ENTRIES_PER_MESSAGE, MAX_FORK_PROOFS_ON_CONNECT, MAX_NOTES_PER_MESSAGE,
    MAX_OTHER_NOTES_PER_PEER,
};
use crate::wire::{
    Attachment, Entries, Hello, Message, Note, PROTOCOL_NAME, PROTOCOL_VERSION, WireEntry,
    notes_digest,
};

/// Unsolicited entry messages tolerated from a peer before the session is closed. A few can
/// arrive legitimately after we stopped asking (they were already in flight).
pub const MAX_UNSOLICITED_MESSAGES: u32 = 64;

/// What a node remembers about a peer between sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMemory {
    /// The peer's epoch in the remembered session.
    pub epoch: u64,
    /// The notes the peer sent us.
    pub theirs: BTreeMap<FeedId, Note>,
    /// The notes we sent the peer.
    pub ours: BTreeMap<FeedId, Note>,
}

/// What became of entries the session asked to ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestResult {
    /// Stored (or already held); the feed's head is now `head`.
    Stored {
        /// The feed's latest seq.
        head: u64,
    },
    /// Entry `at` does not link to our entry `at - 1`.
    LinkMismatch {
        /// The seq of the entry that did not link.
        at: u64,
    },
    /// The store found the author signed two entries at one seq: the proof is stored.
    Forked,
    /// The store refused an entry as invalid.
    Refused {
        /// Why.
        reason: String,
    },
    /// The node's policy declined an entry before checking it
    /// (`AttachmentCheck::admit`): what came before it is stored, and the feed's head is now
    /// `head`.
    Declined {
        /// The feed's latest seq.
        head: u64,
        /// Why.
        reason: String,
    },
}

impl IngestResult {
    /// Summarises a store's report on entries of one feed: the first refusal decides, else
    /// `Stored` with the feed's `head` after the ingest.
    pub fn from_report(report: &scrip_feed::IngestReport, head: u64) -> IngestResult {
        IngestResult::from_outcomes(&report.outcomes, head)
    }

    /// As [`IngestResult::from_report`], for a slice of outcomes.
    pub fn from_outcomes(
        outcomes: &[scrip_feed::Result<scrip_feed::Appended>],
        head: u64,
    ) -> IngestResult {
        for outcome in outcomes {
            match outcome {
                Ok(_) => {}
                Err(scrip_feed::Error::Fork { .. }) => return IngestResult::Forked,
                Err(scrip_feed::Error::PrevMismatch { seq, .. }) => {
                    return IngestResult::LinkMismatch { at: seq.get() };
                }
                Err(err) => {
                    return IngestResult::Refused {
                        reason: err.to_string(),
                    };
                }
            }
        }
        IngestResult::Stored { head }
    }
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this message to the peer.
    Send(Message),
    /// Validate and store these entries of `feed` (decoded, in seq order) and their attachments,
    /// then report with [`Session::ingested`].
    Ingest {
        /// The feed.
        feed: FeedId,
        /// The entries with their attachments.
        items: Vec<(Entry, Vec<Attachment>)>,
    },
    /// Read up to `limit` entries of `feed` from `from` on, then report with
    /// [`Session::read_done`].
    Read {
        /// The feed.
        feed: FeedId,
        /// The first seq wanted.
        from: Seq,
        /// At most this many.
        limit: usize,
    },
    /// The peer told us what it holds of `feed` (for the node's scheduler).
    PeerNote {
        /// The feed.
        feed: FeedId,
        /// The peer's note.
        note: Note,
    },
    /// The peer sent a fork proof (not yet verified).
    ForkProof(Vec<u8>),
    /// We stopped taking `feed` from this peer because of what it sent.
    Refused {
        /// The feed.
        feed: FeedId,
        /// Why.
        reason: String,
    },
    /// We stopped taking `feed` from this peer for now: our policy declined entries of it
    /// ([`IngestResult::Declined`]). It may be asked for again ([`Session::set_wanted`]).
    Declined {
        /// The feed.
        feed: FeedId,
        /// Why.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    AwaitingHello,
    Running,
}

/// The state of replication with one peer.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    epoch: u64,
    memory: Option<PeerMemory>,
    peer_epoch: u64,
    /// Our latest seq of every feed we hold.
    local: BTreeMap<FeedId, u64>,
    /// Feeds we replicate, and whether we ask this peer for each.
    wanted: BTreeMap<FeedId, bool>,
    /// Feeds we never relay.
    blocked: BTreeSet<FeedId>,
    /// Feeds whose entries our policy declined: not taken from this peer until the node asks
    /// for them again.
    declined: BTreeSet<FeedId>,
    /// Feeds we stopped taking from this peer.
    refused: BTreeSet<FeedId>,
    /// Feeds for which we asked the peer to resend from an earlier seq (to find a fork), with
    /// the seq we claimed.
    rewound: BTreeMap<FeedId, u64>,
    /// Notes the peer has from us.
    ours: BTreeMap<FeedId, Note>,
    /// Notes we have from the peer.
    theirs: BTreeMap<FeedId, Note>,
    /// What the peer holds, as far as we know (its notes, what we sent, what it sent).
    peer_has: BTreeMap<FeedId, u64>,
    /// The feed being read for the peer, if any (one read at a time).
    reading: Option<FeedId>,
    /// Where the last read started, for round-robin fairness.
    last_read: Option<FeedId>,
    unsolicited: u32,
    /// Fork proofs to send once the session runs.
    early_proofs: Vec<Vec<u8>>,
    /// Feeds whose note to the peer is out of date (see [`Session::stored`]).
    stale_notes: BTreeSet<FeedId>,
    /// Notes kept about feeds we neither replicate nor hold (at most
    /// [`MAX_OTHER_NOTES_PER_PEER`]: they matter only for resuming the clock exchange).
    other_notes: usize,
    /// Notes were dropped beyond that bound: our copy of the peer's clock is incomplete, so it
    /// is not remembered for resuming (the next session exchanges full clocks).
    notes_dropped: bool,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session with a peer. `local`: our heads; `wanted`: the feeds we replicate and whether
    /// this peer is asked for each; `blocked`: feeds never relayed; `memory`: what we remember of
    /// this peer, if anything; `epoch`: our node's epoch.
    pub fn new(
        epoch: u64,
        local: BTreeMap<FeedId, u64>,
        wanted: BTreeMap<FeedId, bool>,
        blocked: BTreeSet<FeedId>,
        memory: Option<PeerMemory>,
    ) -> Session {
        Session {
            phase: Phase::New,
            epoch,
            memory,
            peer_epoch: 0,
            local,
            wanted,
            blocked,
            declined: BTreeSet::new(),
            refused: BTreeSet::new(),
            rewound: BTreeMap::new(),
            ours: BTreeMap::new(),
            theirs: BTreeMap::new(),
            peer_has: BTreeMap::new(),
            reading: None,
            last_read: None,
            unsolicited: 0,
            early_proofs: Vec::new(),
            stale_notes: BTreeSet::new(),
            other_notes: 0,
            notes_dropped: false,
            actions: VecDeque::new(),
        }
    }

    /// Starts the session: queues our [`Hello`].
    pub fn start(&mut self) {
        if self.phase != Phase::New {
            return;
        }
        self.phase = Phase::AwaitingHello;
        let hello = Hello {
            protocol: PROTOCOL_NAME.into(),
            version: PROTOCOL_VERSION,
            features: Vec::new(),
            epoch: self.epoch,
            known_epoch: self.memory.as_ref().map(|m| m.epoch),
            received_notes: self.memory.as_ref().map(|m| notes_digest(&m.theirs)),
            sent_notes: self.memory.as_ref().map(|m| notes_digest(&m.ours)),
        };
        self.actions.push_back(Action::Send(Message::Hello(hello)));
    }

    /// What to remember of this peer after the session: nothing if notes had to be dropped
    /// (the copy of its clock would not match the peer's, so resuming would fail anyway).
    pub fn memory(&self) -> Option<PeerMemory> {
        (!self.notes_dropped).then(|| PeerMemory {
            epoch: self.peer_epoch,
            theirs: self.theirs.clone(),
            ours: self.ours.clone(),
        })
    }

    /// True if this node replicates `feed` or holds it (a peer's note about it matters).
    fn relevant(&self, feed: &FeedId) -> bool {
        self.wanted.contains_key(feed) || self.local.contains_key(feed)
    }

    /// Notes kept from the peer (its clock, as far as it matters here).
    pub fn notes_kept(&self) -> usize {
        self.theirs.len()
    }

    /// True once both Hellos are exchanged.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The next thing to do, if any (never an [`Action::Read`]: see [`Session::poll_read`]).
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next store read to serve the peer, if any: an [`Action::Read`]. Separate from
    /// [`Session::poll_action`] so that the driver starts reads only when it has room to send.
    pub fn poll_read(&mut self) -> Option<Action> {
        self.next_read()
    }

    fn note_for(&self, feed: &FeedId) -> Note {
        match self.wanted.get(feed) {
            None => Note::Ignore,
            Some(&ask) => {
                let local = self.local.get(feed).copied().unwrap_or(0);
                Note::At {
                    seq: self.rewound.get(feed).map_or(local, |&r| r.min(local)),
                    send: ask && !self.refused.contains(feed) && !self.declined.contains(feed),
                }
            }
        }
    }

    fn send_notes(&mut self, notes: Vec<(FeedId, Note)>) {
        for (feed, note) in &notes {
            self.ours.insert(*feed, *note);
        }
        for chunk in notes.chunks(MAX_NOTES_PER_MESSAGE) {
            self.actions
                .push_back(Action::Send(Message::Clock(chunk.to_vec())));
        }
    }

    /// Handles a message from the peer. `Err` means the peer broke the protocol and the
    /// connection should be closed.
    pub fn handle(&mut self, message: Message) -> Result<()> {
        match (self.phase, message) {
            (Phase::Running, Message::Hello(_)) => Err(Error::Protocol {
                reason: "a second Hello".into(),
            }),
            (_, Message::Hello(hello)) => self.on_hello(hello),
            (Phase::Running, Message::Clock(notes)) => {
                self.on_clock(notes);
                Ok(())
            }
            (Phase::Running, Message::Entries(entries)) => self.on_entries(entries),
            (Phase::Running, Message::ForkProof(bytes)) => {
                self.actions.push_back(Action::ForkProof(bytes));
                Ok(())
            }
            (_, Message::Ping) => Ok(()),
            (_, other) => Err(Error::Protocol {
                reason: format!("{} before Hello", message_name(&other)),
            }),
        }
    }

    fn on_hello(&mut self, hello: Hello) -> Result<()> {
        if hello.protocol != PROTOCOL_NAME || hello.version != PROTOCOL_VERSION {
            return Err(Error::Incompatible {
                expected: format!("{PROTOCOL_NAME}/{PROTOCOL_VERSION}"),
                found: format!("{}/{}", hello.protocol, hello.version),
            });
        }
        if self.phase == Phase::New {
            self.start();
        }
        self.phase = Phase::Running;
        self.peer_epoch = hello.epoch;
        // Both sides decide the same way, from the two Hellos: a direction resumes iff the sender
        // remembers the receiver's current process and both remember the same notes.
        let memory = self.memory.take().filter(|m| m.epoch == hello.epoch);
        let receive_resumes = memory.as_ref().is_some_and(|m| {
            hello.known_epoch == Some(self.epoch)
                && hello.sent_notes == Some(notes_digest(&m.theirs))
        });
        let send_resumes = memory.as_ref().is_some_and(|m| {
            hello.known_epoch == Some(self.epoch)
                && hello.received_notes == Some(notes_digest(&m.ours))
        });
        if receive_resumes && let Some(memory) = &memory {
            self.theirs = memory.theirs.clone();
            for (feed, note) in &self.theirs {
                self.peer_has.insert(*feed, note.seq());
            }
        }
        let previous = match memory {
            Some(memory) if send_resumes => memory.ours,
            _ => BTreeMap::new(),
        };
        self.ours = previous.clone();
        let mut notes: Vec<(FeedId, Note)> = Vec::new();
        let feeds: BTreeSet<FeedId> = self.wanted.keys().chain(previous.keys()).copied().collect();
        for feed in feeds {
            let note = self.note_for(&feed);
            // A feed we no longer replicate is announced as Ignore only if the peer had a note.
            if previous.get(&feed) != Some(&note)
                && (note != Note::Ignore || previous.contains_key(&feed))
            {
                notes.push((feed, note));
            }
        }
        self.send_notes(notes);
        for bytes in std::mem::take(&mut self.early_proofs) {
            self.actions
                .push_back(Action::Send(Message::ForkProof(bytes)));
        }
        Ok(())
    }

    fn on_clock(&mut self, notes: Vec<(FeedId, Note)>) {
        for (feed, note) in notes {
            if !self.relevant(&feed) {
                // A feed we neither replicate nor hold: kept (for resuming) only up to a bound,
                // never reported, never asked for.
                if !self.theirs.contains_key(&feed) {
                    if self.other_notes >= MAX_OTHER_NOTES_PER_PEER {
                        self.notes_dropped = true;
                        continue;
                    }
                    self.other_notes += 1;
                }
                self.theirs.insert(feed, note);
                continue;
            }
            self.theirs.insert(feed, note);
            // The peer's latest word wins, even if lower: it may be asking us to resend (after a
            // link mismatch, to find a fork).
            self.peer_has.insert(feed, note.seq());
            // The peer replicates the feed but takes it from someone else: make sure it knows
            // how far we are, in case its source lags.
            if let Note::At { seq, send: false } = note
                && self.local.get(&feed).copied().unwrap_or(0) > seq
            {
                self.stale_notes.insert(feed);
            }
            self.actions.push_back(Action::PeerNote { feed, note });
        }
    }

    fn on_entries(&mut self, entries: Entries) -> Result<()> {
        let feed = entries.feed;
        if self.declined.contains(&feed) {
            // Sent before our note saying we stopped reached the peer: dropped, not held
            // against it (a decline is our policy, not its fault; what it may still send is
            // bounded by its bytes per second).
            return Ok(());
        }
        let asked = matches!(self.ours.get(&feed), Some(Note::At { .. }))
            && !self.refused.contains(&feed)
            && !self.blocked.contains(&feed);
        if !asked {
            self.unsolicited = self.unsolicited.saturating_add(1);
            if self.unsolicited > MAX_UNSOLICITED_MESSAGES {
                return Err(Error::Protocol {
                    reason: format!(
                        "more than {MAX_UNSOLICITED_MESSAGES} unsolicited entry messages"
                    ),
                });
            }
            return Ok(());
        }
        let mut items = Vec::with_capacity(entries.items.len());
        let mut expected: Option<Seq> = None;
        for WireEntry {
            header,
            payload,
            attachments,
        } in entries.items
        {
            let entry = match Entry::decode_owned(header, payload) {
                Ok(entry) => entry,
                Err(err) => {
                    self.refuse(feed, format!("an undecodable entry: {err}"));
                    return Ok(());
                }
            };
            if entry.author() != feed {
                self.refuse(
                    feed,
                    format!("an entry by {} in feed {feed}", entry.author()),
                );
                return Ok(());
            }
            if let Some(expected) = expected
                && entry.seq() != expected
            {
                self.refuse(feed, "entries out of order".into());
                return Ok(());
            }
            expected = entry.seq().next();
            items.push((entry, attachments));
        }
        if let Some((last, _)) = items.last() {
            let last = last.seq().get();
            let has = self.peer_has.entry(feed).or_insert(0);
            *has = (*has).max(last);
            // The peer now counts us as holding these: keep our record of the note it has from
            // us in step, as it does (so remembered clocks agree on reconnect).
            if let Some(Note::At { seq, .. }) = self.ours.get_mut(&feed) {
                *seq = (*seq).max(last);
            }
        }
        self.actions.push_back(Action::Ingest { feed, items });
        Ok(())
    }

    /// Stops taking `feed` from this peer: tells it, and tells the node.
    pub fn refuse(&mut self, feed: FeedId, reason: String) {
        if !self.refused.insert(feed) {
            return;
        }
        self.note_changed(feed);
        self.actions.push_back(Action::Refused { feed, reason });
    }

    /// Tells the peer our note about `feed` if it is not the one it has.
    fn note_changed(&mut self, feed: FeedId) {
        let note = self.note_for(&feed);
        if self.ours.get(&feed) != Some(&note) {
            self.send_notes(vec![(feed, note)]);
        }
    }

    /// Stops taking `feed` from this peer for now (our policy declined entries of it): tells
    /// it, and tells the node, which may ask for the feed again later ([`Session::set_wanted`]).
    /// Entries of it still arriving (sent before our note reached the peer) are dropped.
    pub fn decline(&mut self, feed: FeedId, reason: String) {
        if !self.declined.insert(feed) {
            return;
        }
        self.note_changed(feed);
        self.actions.push_back(Action::Declined { feed, reason });
    }

    /// Reports the result of an [`Action::Ingest`].
    pub fn ingested(&mut self, feed: FeedId, result: IngestResult) {
        match result {
            IngestResult::Stored { head } => {
                self.stored(feed, head);
                if self.rewound.get(&feed).is_some_and(|&r| head > r) {
                    // Back in step (the resent entries matched ours): stop rewinding.
                    self.rewound.remove(&feed);
                }
            }
            IngestResult::LinkMismatch { at } => {
                // The peer's entry `at` links to another entry at `at - 1` than ours: the author
                // forked there (or the peer lies). Ask once to resend from `at - 1`, so that the
                // store sees both entries at one seq and can prove the fork.
                let claim = at.saturating_sub(2);
                if self.rewound.contains_key(&feed) || at < 2 {
                    self.refuse(
                        feed,
                        format!(
                            "entry #{at} does not link to our entry #{}",
                            at.saturating_sub(1)
                        ),
                    );
                    return;
                }
                self.rewound.insert(feed, claim);
                let note = self.note_for(&feed);
                self.send_notes(vec![(feed, note)]);
            }
            IngestResult::Forked => self.refuse(feed, "the feed forked; it is frozen".into()),
            IngestResult::Refused { reason } => self.refuse(feed, reason),
            IngestResult::Declined { head, reason } => {
                self.stored(feed, head);
                self.decline(feed, reason);
            }
        }
    }

    /// Our store now holds `feed` up to `seq` (from any source).
    pub fn stored(&mut self, feed: FeedId, seq: u64) {
        let local = self.local.entry(feed).or_insert(0);
        if seq <= *local {
            return;
        }
        *local = seq;
        // A peer that replicates the feed but does not take it from us should learn that we
        // have more, so that its scheduler can switch to us if its source lags.
        if matches!(self.theirs.get(&feed), Some(Note::At { send: false, .. })) {
            self.stale_notes.insert(feed);
        }
    }

    /// Sends the notes made stale by [`Session::stored`] (call it now and then: it batches).
    pub fn flush_notes(&mut self) {
        if self.phase != Phase::Running || self.stale_notes.is_empty() {
            return;
        }
        let notes: Vec<(FeedId, Note)> = std::mem::take(&mut self.stale_notes)
            .into_iter()
            .map(|feed| (feed, self.note_for(&feed)))
            .filter(|(feed, note)| self.ours.get(feed) != Some(note))
            .collect();
        if !notes.is_empty() {
            self.send_notes(notes);
        }
    }

    /// The node changed what we ask this peer for: `Some(true)` ask for `feed`, `Some(false)`
    /// replicate it but not from this peer, `None` stop replicating it.
    pub fn set_wanted(&mut self, feed: FeedId, wanted: Option<bool>) {
        // Asked again (or not): what was declined may be taken again.
        self.declined.remove(&feed);
        match wanted {
            Some(ask) => {
                let newly = self.wanted.insert(feed, ask).is_none();
                // The peer may have told us about this feed while it did not matter here: that
                // note was kept but not acted on. Now it matters.
                if newly
                    && !self.local.contains_key(&feed)
                    && let Some(note) = self.theirs.get(&feed).copied()
                {
                    self.other_notes = self.other_notes.saturating_sub(1);
                    self.peer_has.insert(feed, note.seq());
                    self.actions.push_back(Action::PeerNote { feed, note });
                }
            }
            None => {
                self.wanted.remove(&feed);
            }
        }
        if self.phase != Phase::Running {
            return;
        }
        let note = self.note_for(&feed);
        let known = self.ours.get(&feed);
        if known != Some(&note) && (note != Note::Ignore || known.is_some()) {
            self.send_notes(vec![(feed, note)]);
        }
    }

    /// `feed` must never be relayed to this peer (or must again be relayable).
    pub fn set_blocked(&mut self, feed: FeedId, blocked: bool) {
        if blocked {
            self.blocked.insert(feed);
        } else {
            self.blocked.remove(&feed);
        }
    }

    /// Queues a fork proof to send (after the Hellos, if they are not exchanged yet).
    pub fn send_fork_proof(&mut self, bytes: Vec<u8>) {
        if self.phase == Phase::Running {
            self.actions
                .push_back(Action::Send(Message::ForkProof(bytes)));
        } else if self.early_proofs.len() < MAX_FORK_PROOFS_ON_CONNECT {
            self.early_proofs.push(bytes);
        }
    }

    /// Reports an [`Action::Read`]: the entries read (possibly fewer than asked, possibly none)
    /// with their attachments.
    pub fn read_done(&mut self, feed: FeedId, entries: Vec<(Entry, Vec<Attachment>)>) {
        if self.reading == Some(feed) {
            self.reading = None;
        }
        let Some((last, _)) = entries.last() else {
            // Nothing more to read: believe the store over our head count.
            if let (Some(has), Some(local)) = (self.peer_has.get(&feed), self.local.get_mut(&feed))
            {
                *local = (*local).min(*has);
            }
            return;
        };
        let last = last.seq().get();
        let has = self.peer_has.entry(feed).or_insert(0);
        *has = (*has).max(last);
        if let Some(Note::At { seq, .. }) = self.theirs.get_mut(&feed) {
            *seq = (*seq).max(last);
        }
        let items = entries
            .into_iter()
            .map(|(entry, attachments)| {
                let (header, payload) = entry.into_bytes();
                WireEntry {
                    header,
                    payload,
                    attachments,
                }
            })
            .collect();
        self.actions
            .push_back(Action::Send(Message::Entries(Entries { feed, items })));
    }

    /// The next feed to stream to the peer, round-robin from the last one.
    fn next_read(&mut self) -> Option<Action> {
        if self.phase != Phase::Running || self.reading.is_some() {
            return None;
        }
        let behind = |(feed, note): (&FeedId, &Note)| {
            let local = self.local.get(feed).copied().unwrap_or(0);
            let has = self.peer_has.get(feed).copied().unwrap_or(0);
            (note.wants() && local > has && !self.blocked.contains(feed)).then_some((*feed, has))
        };
        let after = self
            .last_read
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let (feed, has) = self
            .theirs
            .range((after, std::ops::Bound::Unbounded))
            .find_map(behind)
            .or_else(|| self.theirs.iter().find_map(behind))?;
        self.reading = Some(feed);
        self.last_read = Some(feed);
        Some(Action::Read {
            feed,
            from: Seq::new(has.saturating_add(1)),
            limit: MAX_ENTRIES_PER_MESSAGE,
        })
    }
}

fn message_name(message: &Message) -> &'static str {
    match message {
        Message::Hello(_) => "Hello",
        Message::Clock(_) => "Clock",
        Message::Entries(_) => "Entries",
        Message::ForkProof(_) => "ForkProof",
        Message::Ping => "Ping",
    }
}
