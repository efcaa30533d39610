//! The thin async driver of one [`Session`]: moves messages between the session and the
//! encrypted stream, runs store reads and ingests on blocking threads, and reports to the node.
//!
//! Tasks per connection: a reader (decodes messages, enforces the byte rate), a writer, an
//! ingest worker (verifies on all cores and commits, batching queued messages), and this loop.
//! The loop never waits on the writer while it has input to process (outgoing messages wait in
//! a small outbox, and new reads are only started when the outbox is nearly empty), so two
//! peers streaming to each other cannot deadlock; it stops reading input while ingests are
//! queued, which pushes back on a fast sender through TCP.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Attachment as StoredAttachment, Entry, FeedId, ForkProof, Seq, Store};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::limits::MAX_INGEST_BATCH_BYTES;
use crate::session::{Action, IngestResult, PeerMemory, Session};
use crate::transport::{self, SecureStream};
use crate::wire::{self, Attachment, Message, Note};

/// Decoded messages waiting for the session loop.
const INBOUND_QUEUE: usize = 4;
/// Ingest jobs (each one received message) waiting for the ingest worker.
const INGEST_QUEUE: usize = 4;
/// Checked batches waiting to be stored: the next batch is checked while one is stored.
const CHECKED_QUEUE: usize = 1;
/// Start no new store read while this many messages wait to be written.
const OUTBOX_LOW_WATER: usize = 2;
/// How often notes made stale by new entries are sent (batched).
const NOTES_INTERVAL: Duration = Duration::from_millis(250);
/// Time allowed to say goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// Decides whether to keep an attachment that arrived with an entry (e.g. verifies a notary
/// certificate). It runs before the batch is stored, so that each entry and its attachments
/// are stored in one commit: a reader (another peer's session) never sees the entry without
/// them. The entry passed its signature check; `batch` is everything received with it (the
/// store may not hold those entries yet, e.g. the wallet's genesis arriving in the same batch).
pub trait AttachmentCheck: Send + Sync + 'static {
    /// True to keep it.
    fn accept(&self, entry: &Entry, kind: &str, bytes: &[u8], batch: &[Entry]) -> bool;

    /// The kind of attachment `entry` must arrive with (and [`AttachmentCheck::accept`] keep)
    /// to be stored at all, if its feed requires one (a wallet entry counts only with its
    /// certificate). An entry without it is refused like an invalid entry. `batch` as for
    /// `accept`. By default nothing is required.
    fn required(&self, _entry: &Entry, _batch: &[Entry]) -> Option<&'static str> {
        None
    }

    /// Whether a fork proof (signatures already checked) is enough to freeze its author's feed
    /// here, whose first entry this node holds: `first` (`docs/protocol/feed.md` §9: a
    /// wallet's proof needs a valid certificate on both halves). By default every valid proof
    /// counts.
    fn proof_counts(&self, _proof: &ForkProof, _first: &Entry) -> bool {
        true
    }

    /// Whether the node takes `entry` in from a peer at all (`Err`: why not), asked before
    /// anything of it is checked: a feed's entries from the first one declined on are not
    /// checked or stored, and the feed is not asked of that peer for
    /// [`NodeConfig::decline_backoff`](crate::NodeConfig::decline_backoff), with the reason
    /// (`replication.md` §2.5, §4). For a node whose policy bounds what it keeps of some feeds
    /// beyond their validity (a notary and its strangers' wallets). `batch` as for `accept`.
    /// By default every entry is taken in.
    fn admit(&self, _entry: &Entry, _batch: &[Entry]) -> Result<(), String> {
        Ok(())
    }
}

/// Keeps every attachment within the size limits (the first one of each kind wins).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl AttachmentCheck for AcceptAll {
    fn accept(&self, _entry: &Entry, _kind: &str, _bytes: &[u8], _batch: &[Entry]) -> bool {
        true
    }
}

/// What the node tells a connection.
#[derive(Debug, Clone)]
pub(crate) enum PeerCommand {
    SetWanted(FeedId, Option<bool>),
    Blocked(FeedId, bool),
    ForkProof(Vec<u8>),
}

/// The node's end of one connection: a bounded command queue, and a close signal that does not
/// wait in that queue (a connection whose queue is full can still be told to close).
#[derive(Debug, Clone)]
pub(crate) struct PeerHandle {
    commands: mpsc::Sender<PeerCommand>,
    close: Arc<tokio::sync::Notify>,
}

/// The connection's end of a [`PeerHandle`].
#[derive(Debug)]
pub(crate) struct PeerCommands {
    commands: mpsc::Receiver<PeerCommand>,
    close: Arc<tokio::sync::Notify>,
}

impl PeerHandle {
    /// A handle and its connection's end, with room for `capacity` commands.
    pub(crate) fn new(capacity: usize) -> (PeerHandle, PeerCommands) {
        let (commands, receiver) = mpsc::channel(capacity);
        let close = Arc::new(tokio::sync::Notify::new());
        (
            PeerHandle {
                commands,
                close: Arc::clone(&close),
            },
            PeerCommands {
                commands: receiver,
                close,
            },
        )
    }

    /// Queues a command that keeps the connection in step with the node (what it wants, what
    /// is blocked). If the queue is full the connection can no longer be kept in step, so it is
    /// closed instead; returns whether the command was queued.
    pub(crate) fn send(&self, command: PeerCommand) -> bool {
        if self.commands.try_send(command).is_ok() {
            true
        } else {
            self.close();
            false
        }
    }

    /// Queues a command that may be lost without harm (a fork proof: the peer hears of it again
    /// from others or on its next connection).
    pub(crate) fn offer(&self, command: PeerCommand) {
        let _ = self.commands.try_send(command);
    }

    /// Tells the connection to close (at once, whatever waits in its queue).
    pub(crate) fn close(&self) {
        // `notify_one` stores the signal if the connection is not waiting right now.
        self.close.notify_one();
    }
}

impl PeerCommands {
    /// The next command; `None` once the node said close (or dropped its handle).
    async fn next(&mut self) -> Option<PeerCommand> {
        tokio::select! {
            biased;
            () = self.close.notified() => None,
            command = self.commands.recv() => command,
        }
    }
}

/// What a connection tells the node.
#[derive(Debug)]
pub(crate) enum PeerReport {
    Note {
        peer: FeedId,
        feed: FeedId,
        note: Note,
    },
    Refused {
        peer: FeedId,
        feed: FeedId,
        reason: String,
    },
    Declined {
        peer: FeedId,
        feed: FeedId,
        reason: String,
    },
    ForkProof {
        peer: FeedId,
        bytes: Vec<u8>,
    },
    Stored {
        peer: FeedId,
        feed: FeedId,
        head: u64,
        new: usize,
        received: usize,
    },
    Forked {
        author: FeedId,
    },
    Closed {
        peer: FeedId,
        connection: u64,
        memory: Option<PeerMemory>,
        reason: String,
    },
}

/// What a connection needs from its node.
pub(crate) struct PeerContext {
    pub store: Arc<dyn Store>,
    pub store_calls: crate::node::StoreCalls,
    pub reports: mpsc::Sender<PeerReport>,
    pub attachments: Arc<dyn AttachmentCheck>,
    pub bytes_per_sec: u64,
    pub ingest_batch: usize,
    pub keepalive: Duration,
    /// Where received entries are checked and stored, if not on tokio's blocking pool (see
    /// `NodeConfig::background_ingest`). On the pool, one batch is checked while the one before
    /// it is stored; on the one background thread the two take turns.
    pub background: Option<crate::background::Background>,
}

struct IngestJob {
    feed: FeedId,
    items: Vec<(Entry, Vec<Attachment>)>,
}

impl IngestJob {
    /// The bytes of its entries (headers and payloads) and attachments.
    fn bytes(&self) -> usize {
        self.items
            .iter()
            .map(|(entry, attachments)| {
                entry.header_bytes().len()
                    + entry.payload().map_or(0, <[u8]>::len)
                    + attachments.iter().map(|a| a.bytes.len()).sum::<usize>()
            })
            .sum()
    }
}

struct IngestDone {
    feed: FeedId,
    result: IngestResult,
    new: usize,
    received: usize,
    forked: bool,
}

enum Outgoing {
    Message(Vec<u8>),
    Goodbye,
}

/// Runs the session until the connection ends; reports `Closed` to the node at the end.
///
/// `stored_rx` must be subscribed when `session`'s heads were taken (by the node actor, in one
/// step), so that no announcement falls between the two.
// Long because: the one select loop of a connection; every branch shares the session and the flow-
// control state, and the order of the branches is the order of events it guarantees.
pub(crate) async fn run<S>(
    stream: SecureStream<S>,
    mut session: Session,
    context: Arc<PeerContext>,
    mut commands: PeerCommands,
    mut stored_rx: broadcast::Receiver<(FeedId, u64)>,
    connection: u64,
    slot: Option<crate::transport::Slot>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = stream.remote();
    let (reader, mut writer) = stream.split();

    let (inbound_tx, mut inbound) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let reader_task = tokio::spawn(read_loop(reader, inbound_tx, context.bytes_per_sec));

    let (outbound, mut outbound_rx) = mpsc::channel::<Outgoing>(crate::limits::SEND_QUEUE_CAPACITY);
    let writer_task = tokio::spawn(async move {
        while let Some(outgoing) = outbound_rx.recv().await {
            match outgoing {
                Outgoing::Message(bytes) => writer.send(&bytes).await?,
                Outgoing::Goodbye => {
                    writer.goodbye().await?;
                    break;
                }
            }
        }
        Ok::<(), Error>(())
    });

    let (ingest_tx, ingest_rx) = mpsc::channel::<IngestJob>(INGEST_QUEUE);
    let (done_tx, mut done_rx) = mpsc::channel::<Vec<IngestDone>>(INGEST_QUEUE + 2);
    let ingest_task = tokio::spawn(ingest_loop(Arc::clone(&context), ingest_rx, done_tx));

    let (read_tx, mut read_rx) =
        mpsc::channel::<(FeedId, Result<Vec<(Entry, Vec<Attachment>)>>)>(1);
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + context.keepalive, context.keepalive);
    let mut notes_timer = tokio::time::interval(NOTES_INTERVAL);
    notes_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut outbox: VecDeque<Vec<u8>> = VecDeque::new();
    let mut pending_ingest: VecDeque<IngestJob> = VecDeque::new();
    let mut ingests_in_flight = 0usize;
    let mut reading = false;

    session.start();
    let reason: Result<String> = 'session: loop {
        // Act on everything the session wants done.
        while let Some(action) = session.poll_action() {
            match action {
                Action::Send(message) => {
                    if let (Some(slot), Message::Entries { .. }) = (&slot, &message) {
                        slot.useful(Instant::now());
                    }
                    match wire::encode(&message) {
                        Ok(bytes) => outbox.push_back(bytes),
                        Err(err) => break 'session Err(err),
                    }
                }
                Action::Ingest { feed, items } => {
                    pending_ingest.push_back(IngestJob { feed, items })
                }
                Action::Read { .. } => {}
                Action::PeerNote { feed, note } => {
                    report(&context, PeerReport::Note { peer, feed, note }).await;
                }
                Action::ForkProof(bytes) => {
                    report(&context, PeerReport::ForkProof { peer, bytes }).await;
                }
                Action::Refused { feed, reason } => {
                    tracing::debug!(%peer, %feed, %reason, "stopped taking a feed from a peer");
                    report(&context, PeerReport::Refused { peer, feed, reason }).await;
                }
                Action::Declined { feed, reason } => {
                    tracing::debug!(%peer, %feed, %reason, "declined a feed from a peer for now");
                    report(&context, PeerReport::Declined { peer, feed, reason }).await;
                }
            }
        }
        if !reading
            && outbox.len() < OUTBOX_LOW_WATER
            && let Some(Action::Read { feed, from, limit }) = session.poll_read()
        {
            reading = true;
            let store = Arc::clone(&context.store);
            let read_tx = read_tx.clone();
            let calls = context.store_calls;
            tokio::spawn(async move {
                let result = calls
                    .run(move || read_entries(store.as_ref(), &feed, from, limit))
                    .await
                    .and_then(|r| r);
                let _ = read_tx.send((feed, result)).await;
            });
        }
        // Hand queued ingests to the worker as it has room.
        while let Some(job) = pending_ingest.pop_front() {
            match ingest_tx.try_send(job) {
                Ok(()) => ingests_in_flight += 1,
                Err(mpsc::error::TrySendError::Full(job)) => {
                    pending_ingest.push_front(job);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    break 'session Err(Error::Shutdown);
                }
            }
        }
        let may_read_input = pending_ingest.is_empty();

        tokio::select! {
            message = inbound.recv(), if may_read_input => match message {
                Some(Inbound::Message(message)) => {
                    if let (Some(slot), Message::Entries { .. }) = (&slot, &message) {
                        slot.useful(Instant::now());
                    }
                    if let Err(err) = session.handle(message) {
                        break 'session Err(err);
                    }
                }
                Some(Inbound::Goodbye) => break 'session Ok("the peer said goodbye".into()),
                Some(Inbound::Failed(err)) => break 'session Err(err),
                None => break 'session Err(transport::Error::Closed { during: "while reading" }.into()),
            },
            permit = outbound.reserve(), if !outbox.is_empty() => match permit {
                Ok(permit) => {
                    if let Some(bytes) = outbox.pop_front() {
                        permit.send(Outgoing::Message(bytes));
                    }
                }
                Err(_) => break 'session Err(transport::Error::Closed { during: "while writing" }.into()),
            },
            () = evicted(slot.as_ref()) => {
                break 'session Ok("evicted: a newcomer took the slot of this idle peer".into())
            }
            command = commands.next() => match command {
                Some(PeerCommand::SetWanted(feed, wanted)) => session.set_wanted(feed, wanted),
                Some(PeerCommand::Blocked(feed, blocked)) => session.set_blocked(feed, blocked),
                Some(PeerCommand::ForkProof(bytes)) => session.send_fork_proof(bytes),
                None => break 'session Ok("closed by the node".into()),
            },
            stored = stored_rx.recv() => match stored {
                Ok((feed, seq)) => session.stored(feed, seq),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed announcements: ask the store for every head instead.
                    let store = Arc::clone(&context.store);
                    let heads = context.store_calls.run(move || store.heads()).await;
                    if let Ok(Ok(heads)) = heads {
                        for (feed, seq) in heads {
                            session.stored(feed, seq);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break 'session Err(Error::Shutdown),
            },
            done = done_rx.recv() => match done {
                Some(done) => {
                    ingests_in_flight = ingests_in_flight.saturating_sub(1);
                    for IngestDone { feed, result, new, received, forked } in done {
                        if forked {
                            report(&context, PeerReport::Forked { author: feed }).await;
                        }
                        if let IngestResult::Stored { head } = result {
                            report(&context, PeerReport::Stored { peer, feed, head, new, received }).await;
                        }
                        session.ingested(feed, result);
                    }
                }
                None => break 'session Err(Error::Shutdown),
            },
            read = read_rx.recv() => {
                reading = false;
                match read {
                    Some((feed, Ok(entries))) => session.read_done(feed, entries),
                    Some((_, Err(err))) => break 'session Err(err),
                    None => break 'session Err(Error::Shutdown),
                }
            },
            _ = notes_timer.tick() => session.flush_notes(),
            _ = keepalive.tick() => {
                if let Ok(bytes) = wire::encode(&Message::Ping) {
                    outbox.push_back(bytes);
                }
            },
        }
    };
    let _ = ingests_in_flight;

    // Say goodbye (best effort) after what is already queued.
    let goodbye = async {
        for bytes in outbox.drain(..) {
            if outbound.send(Outgoing::Message(bytes)).await.is_err() {
                return;
            }
        }
        let _ = outbound.send(Outgoing::Goodbye).await;
    };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await;
    drop(outbound);
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, writer_task).await;
    reader_task.abort();
    drop(ingest_tx);
    // Let queued ingests finish: what was received valid is stored.
    let _ = tokio::time::timeout(Duration::from_secs(5), ingest_task).await;

    let reason = match reason {
        Ok(reason) => reason,
        Err(err) => err.to_string(),
    };
    let _ = context
        .reports
        .send(PeerReport::Closed {
            peer,
            connection,
            memory: session.memory(),
            reason,
        })
        .await;
}

async fn report(context: &PeerContext, report: PeerReport) {
    // The node never waits on a connection, so this cannot deadlock.
    let _ = context.reports.send(report).await;
}

fn read_entries(
    store: &dyn Store,
    feed: &FeedId,
    from: Seq,
    limit: usize,
) -> Result<Vec<(Entry, Vec<Attachment>)>> {
    let entries = store.range(feed, from, limit)?;
    // Most feeds have no attachments: one look for the feed instead of one per entry.
    if !store.may_have_attachments(feed)? {
        return Ok(entries.into_iter().map(|e| (e, Vec::new())).collect());
    }
    entries
        .into_iter()
        .map(|entry| {
            let attachments = store
                .attachments(&entry.id())?
                .into_iter()
                .map(|(kind, bytes)| Attachment { kind, bytes })
                .collect();
            Ok((entry, attachments))
        })
        .collect()
}

/// What the reader task hands the session loop.
enum Inbound {
    Message(Message),
    Goodbye,
    Failed(Error),
}

/// Resolves when the connection's slot was taken by a newcomer (never, without a slot).
async fn evicted(slot: Option<&crate::transport::Slot>) {
    match slot {
        Some(slot) => slot.evicted().await,
        None => std::future::pending().await,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: crate::transport::SecureReader<R>,
    inbound: mpsc::Sender<Inbound>,
    bytes_per_sec: u64,
) {
    // At most one second of bytes ahead; a message counts at least 64 bytes.
    let mut bucket = transport::TokenBucket::new(bytes_per_sec, Instant::now());
    loop {
        let received = match reader.recv().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let _ = inbound.send(Inbound::Goodbye).await;
                return;
            }
            Err(err) => {
                let _ = inbound.send(Inbound::Failed(err.into())).await;
                return;
            }
        };
        let size = u64::try_from(received.len().max(64)).unwrap_or(u64::MAX);
        let wait = bucket.take(Instant::now(), size);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (message, failed) = match wire::decode(&received) {
            Ok(message) => (Inbound::Message(message), false),
            Err(err) => (Inbound::Failed(err), true),
        };
        if inbound.send(message).await.is_err() || failed {
            return;
        }
    }
}

/// Takes jobs as they come, up to `ingest_batch` entries at a time, checks each batch and hands
/// it to [`store_loop`]: checking the next batch (all cores) overlaps storing the one before.
async fn ingest_loop(
    context: Arc<PeerContext>,
    mut jobs: mpsc::Receiver<IngestJob>,
    done: mpsc::Sender<Vec<IngestDone>>,
) {
    let (checked_tx, checked_rx) = mpsc::channel::<Checked>(CHECKED_QUEUE);
    let storing = tokio::spawn(store_loop(Arc::clone(&context), checked_rx, done));
    while let Some(first) = jobs.recv().await {
        let batch = take_batch(first, &mut jobs, context.ingest_batch);
        let checking = Arc::clone(&context);
        let Ok(checked) = off_the_runtime(&context, move || check(&checking, batch)).await else {
            break;
        };
        if checked_tx.send(checked).await.is_err() {
            break;
        }
    }
    drop(checked_tx);
    let _ = storing.await;
}

/// `first` and the jobs waiting behind it, while the batch holds fewer than `max_entries`
/// entries and [`MAX_INGEST_BATCH_BYTES`] bytes: what one check and one commit take.
fn take_batch(
    first: IngestJob,
    jobs: &mut mpsc::Receiver<IngestJob>,
    max_entries: usize,
) -> Vec<IngestJob> {
    let (mut count, mut bytes) = (first.items.len(), first.bytes());
    let mut batch = vec![first];
    while count < max_entries && bytes < MAX_INGEST_BATCH_BYTES {
        match jobs.try_recv() {
            Ok(job) => {
                count += job.items.len();
                bytes += job.bytes();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    batch
}

/// Runs an ingest step where the node runs them: its background thread, or the blocking pool.
async fn off_the_runtime<T: Send + 'static>(
    context: &PeerContext,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    match &context.background {
        Some(background) => background.run(call).await,
        None => context.store_calls.run(call).await,
    }
}

/// Stores checked batches in order and reports each.
async fn store_loop(
    context: Arc<PeerContext>,
    mut checked: mpsc::Receiver<Checked>,
    done: mpsc::Sender<Vec<IngestDone>>,
) {
    while let Some(batch) = checked.recv().await {
        let storing = Arc::clone(&context);
        match off_the_runtime(&context, move || store_checked(&storing, batch)).await {
            Ok(Ok(results)) => {
                if done.send(results).await.is_err() {
                    return;
                }
            }
            Ok(Err(err)) => {
                tracing::error!(%err, "storing received entries failed");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A batch of jobs whose entries' payloads and signatures are checked: what [`store_checked`]
/// stores. Checking needs nothing stored, so it may run ahead of the batch before.
struct Checked {
    spans: Vec<Span>,
    batch: VerifiedBatch,
    attachments: Vec<(usize, Attachment)>,
}

/// One job's entries in a [`Checked`] batch.
struct Span {
    feed: FeedId,
    entries: std::ops::Range<usize>,
    /// Why the job's entries from one on were not taken in ([`AttachmentCheck::admit`]); those
    /// are not in the batch.
    declined: Option<String>,
}

/// Checks the entries of `jobs` on all cores, those the node takes in
/// ([`AttachmentCheck::admit`]: a feed's entries from the first one declined on are left out).
fn check(context: &PeerContext, jobs: Vec<IngestJob>) -> Checked {
    let mut spans = Vec::with_capacity(jobs.len());
    let mut entries = Vec::new();
    let mut attachments = Vec::new();
    let mut declined_feeds: BTreeMap<FeedId, String> = BTreeMap::new();
    for IngestJob { feed, items } in jobs {
        let start = entries.len();
        let (mut received, mut carried): (Vec<Entry>, Vec<Vec<Attachment>>) =
            items.into_iter().unzip();
        let declined = match declined_feeds.get(&feed) {
            Some(reason) => Some((0, reason.clone())),
            None => received.iter().enumerate().find_map(|(i, entry)| {
                context
                    .attachments
                    .admit(entry, &received)
                    .err()
                    .map(|reason| (i, reason))
            }),
        };
        if let Some((at, reason)) = &declined {
            received.truncate(*at);
            carried.truncate(*at);
            declined_feeds.insert(feed, reason.clone());
        }
        for (entry, atts) in received.into_iter().zip(carried) {
            for attachment in atts {
                attachments.push((entries.len(), attachment));
            }
            entries.push(entry);
        }
        spans.push(Span {
            feed,
            entries: start..entries.len(),
            declined: declined.map(|(_, reason)| reason),
        });
    }
    Checked {
        spans,
        batch: VerifiedBatch::new(entries),
        attachments,
    }
}

/// Stores a checked batch: the attachments of entries that passed are checked against the
/// batch and the store (an entry without an attachment its feed requires is refused), then
/// entries and attachments are stored in one commit.
fn store_checked(context: &PeerContext, checked: Checked) -> Result<Vec<IngestDone>> {
    let store = context.store.as_ref();
    let Checked {
        spans,
        mut batch,
        attachments,
    } = checked;
    let to_store: Vec<StoredAttachment> = attachments
        .into_iter()
        .filter(|(i, a)| {
            batch.passed(*i)
                && context.attachments.accept(
                    &batch.entries()[*i],
                    &a.kind,
                    &a.bytes,
                    batch.entries(),
                )
        })
        .map(|(i, a)| StoredAttachment {
            entry: batch.entries()[i].id(),
            kind: a.kind,
            bytes: a.bytes,
        })
        .collect();
    for index in 0..batch.len() {
        let entry = &batch.entries()[index];
        if !batch.passed(index) {
            continue;
        }
        if let Some(kind) = context.attachments.required(entry, batch.entries()) {
            let id = entry.id();
            if !to_store.iter().any(|a| a.entry == id && a.kind == kind) {
                batch.refuse(
                    index,
                    scrip_feed::Error::MissingAttachment {
                        id,
                        kind: kind.to_owned(),
                    },
                );
            }
        }
    }
    // An attachment whose entry the store refused is refused with it: nothing to do.
    let (report, _attached) = store.ingest_with_attachments(batch, to_store)?;
    let mut results = Vec::with_capacity(spans.len());
    for Span {
        feed,
        entries: span,
        declined,
    } in spans
    {
        let outcomes = &report.outcomes[span];
        let head = store.head(&feed)?.map_or(0, |h| h.seq.get());
        let new = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(scrip_feed::Appended::Stored)))
            .count();
        let forked = outcomes
            .iter()
            .any(|o| matches!(o, Err(scrip_feed::Error::Fork { .. })));
        // What was taken in is stored; the rest was declined: the feed is not taken from this
        // peer for a while (unless something it sent was wrong, which says more).
        let result = match (IngestResult::from_outcomes(outcomes, head), declined) {
            (IngestResult::Stored { head }, Some(reason)) => {
                IngestResult::Declined { head, reason }
            }
            (result, _) => result,
        };
        results.push(IngestDone {
            feed,
            result,
            new,
            received: outcomes.len(),
            forked,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(n: u8) -> FeedId {
        FeedId::from_bytes([n; 32])
    }

    fn job(entries: usize, payload: usize) -> IngestJob {
        let key = scrip_feed::Keypair::from_seed(&[9; 32]);
        let items = (0..entries)
            .map(|_| {
                let entry = Entry::create(
                    &key,
                    None,
                    scrip_feed::Timestamp::from_millis(1),
                    vec![0; payload],
                )
                .unwrap();
                (entry, Vec::new())
            })
            .collect();
        IngestJob {
            feed: key.id(),
            items,
        }
    }

    #[tokio::test]
    async fn an_ingest_batch_stops_at_its_entry_and_byte_bounds() {
        // Small entries: the entry bound (3 jobs of 10 reach 25).
        let (tx, mut rx) = mpsc::channel(16);
        for _ in 0..5 {
            tx.try_send(job(10, 10)).ok().unwrap();
        }
        let batch = take_batch(job(10, 10), &mut rx, 25);
        assert_eq!(batch.len(), 3);
        // Big payloads: the byte bound, however many entries are allowed.
        let (tx, mut rx) = mpsc::channel(64);
        let per_job = 16 * 60_000;
        let jobs = MAX_INGEST_BATCH_BYTES.div_ceil(per_job) + 5;
        for _ in 0..jobs {
            tx.try_send(job(16, 60_000)).ok().unwrap();
        }
        let batch = take_batch(job(16, 60_000), &mut rx, usize::MAX);
        let bytes: usize = batch.iter().map(IngestJob::bytes).sum();
        assert!(bytes >= MAX_INGEST_BATCH_BYTES, "{bytes}");
        assert!(bytes < MAX_INGEST_BATCH_BYTES + per_job, "{bytes}");
        assert!(batch.len() < jobs, "{}", batch.len());
    }

    #[tokio::test]
    async fn a_connection_whose_command_queue_is_full_is_closed_not_left_out_of_step() {
        let (handle, mut commands) = PeerHandle::new(2);
        assert!(handle.send(PeerCommand::SetWanted(feed(1), Some(true))));
        assert!(handle.send(PeerCommand::SetWanted(feed(2), Some(true))));
        // The third cannot be queued: the connection is told to close instead, ahead of what
        // waits in its queue.
        assert!(!handle.send(PeerCommand::Blocked(feed(3), true)));
        assert!(commands.next().await.is_none());
    }

    #[tokio::test]
    async fn close_reaches_a_connection_however_full_its_queue_and_lost_proofs_close_nothing() {
        let (handle, mut commands) = PeerHandle::new(1);
        handle.offer(PeerCommand::ForkProof(vec![1]));
        handle.offer(PeerCommand::ForkProof(vec![2])); // dropped: the queue is full
        assert!(matches!(
            commands.next().await,
            Some(PeerCommand::ForkProof(bytes)) if bytes == [1]
        ));
        handle.close();
        handle.offer(PeerCommand::ForkProof(vec![3]));
        assert!(commands.next().await.is_none());
    }
}
