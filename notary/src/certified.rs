//! Certified wallet entries in a feed store: an entry plus its certificate, kept as the feed
//! attachment of kind `scrip/certificate`; conversions to and from their wire bytes; citations;
//! and the attachment check that keeps only valid certificates.

use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Attachment, Entry, EntryBytes, FeedId, IngestReport, Seq, Store};
use scrip_ledger::certificate::CERTIFICATE_KIND;
use scrip_ledger::content::wallet_notaries;
use scrip_ledger::verify::{VerifyAll, certify};
use scrip_ledger::{Certificate, CertifiedBytes, CertifiedEntry, Citation, NotarySet};

use crate::error::{Error, Result};

/// The certificate stored with `entry`, if any.
pub fn certificate_of(store: &dyn Store, entry: &Entry) -> Result<Option<Certificate>> {
    for (kind, bytes) in store.attachments(&entry.id())? {
        if kind == CERTIFICATE_KIND {
            return Ok(Certificate::decode(&bytes).ok());
        }
    }
    Ok(None)
}

/// `wallet`'s entries from `from` (at most `limit`), each with its certificate if stored.
pub fn log(
    store: &dyn Store,
    wallet: &FeedId,
    from: u64,
    limit: usize,
) -> Result<Vec<CertifiedEntry>> {
    store
        .range(wallet, Seq::new(from.max(1)), limit)?
        .into_iter()
        .map(|entry| {
            let certificate = certificate_of(store, &entry)?;
            Ok(CertifiedEntry { entry, certificate })
        })
        .collect()
}

/// The certified prefix of `wallet`'s log in `store`: its entries up to the first one without a
/// certificate.
pub fn certified_log(store: &dyn Store, wallet: &FeedId) -> Result<Vec<CertifiedEntry>> {
    let mut entries = log(store, wallet, 1, usize::MAX)?;
    let certified = entries
        .iter()
        .position(|e| e.certificate.is_none())
        .unwrap_or(entries.len());
    entries.truncate(certified);
    Ok(entries)
}

/// Copies the certified entries of `wallet` that `to` lacks from `from`, each certificate
/// checked under the wallet's notary set as replication's `CertificateCheck` (in the CLI)
/// would (what a running node receives by gossip; used by tests and the benchmark). Stops at the first entry
/// without a valid certificate. Each entry copied is remembered in `seen` as the daemon's
/// certificate check remembers it (its signature is checked when `to` stores it; the entry is
/// copied only if that succeeds).
pub fn copy_certified(
    from: &dyn Store,
    to: &dyn Store,
    wallet: &FeedId,
    seen: &std::sync::Mutex<scrip_ledger::verify::Seen>,
) -> Result<()> {
    let next = to.head(wallet)?.map_or(1, |head| head.seq.get() + 1);
    let mut entries = log(from, wallet, next, usize::MAX)?;
    let mut set = notary_set(to, wallet)?;
    let mut valid = 0;
    for certified in &entries {
        if set.is_none() && certified.entry.seq() == Seq::FIRST {
            set = wallet_notaries(&certified.entry);
        }
        let ok = match (&certified.certificate, &set) {
            (Some(certificate), Some(set)) => {
                certify(certificate, set, &certified.entry, &VerifyAll).is_ok()
            }
            _ => false,
        };
        if !ok {
            break;
        }
        valid += 1;
    }
    entries.truncate(valid);
    if entries.is_empty() {
        return Ok(());
    }
    store_certified(to, &entries)?;
    // Remembered only once the store verified and stored them.
    let head = to.head(wallet)?.map_or(0, |h| h.seq.get());
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for certified in entries.iter().filter(|c| c.entry.seq().get() <= head) {
        if let Some(certificate) = &certified.certificate {
            seen.insert(certified.entry.id(), certificate);
        }
    }
    Ok(())
}

/// Durably stores certified entries with their certificates, in one commit.
pub fn store_certified(store: &dyn Store, entries: &[CertifiedEntry]) -> Result<()> {
    let batch = VerifiedBatch::new(entries.iter().map(|c| c.entry.clone()).collect());
    store_batch(store, batch, entries)
}

/// Durably stores a wallet's own entry with the certificate its client just assembled from
/// votes it checked one by one. The entry's signature and payload are not checked again: the
/// client signed it, and the honest notaries of the quorum checked both before voting.
pub fn store_own_certified(store: &dyn Store, certified: &CertifiedEntry) -> Result<()> {
    let batch = VerifiedBatch::already_verified(vec![certified.entry.clone()]);
    store_batch(store, batch, std::slice::from_ref(certified))
}

/// Stores `batch` (the entries of `entries`) with their certificates in one durable commit;
/// any refusal is an error.
fn store_batch(store: &dyn Store, batch: VerifiedBatch, entries: &[CertifiedEntry]) -> Result<()> {
    let (report, attached) = offer_certified(store, batch, entries, true)?;
    if let Some(Err(err)) = report.outcomes.into_iter().find(Result::is_err) {
        return Err(Error::Feed(err));
    }
    if let Some(Err(err)) = attached.into_iter().find(Result::is_err) {
        return Err(Error::Feed(err));
    }
    Ok(())
}

/// Offers `batch` (the entries of `entries`) with the certificates of `entries` (where they have
/// one) to `store` in one commit, and reports what happened to each: refusals are not errors
/// here. With `flush` false the commit does not wait for its flush (see
/// [`Store::ingest_without_flush`]).
pub fn offer_certified(
    store: &dyn Store,
    batch: VerifiedBatch,
    entries: &[CertifiedEntry],
    flush: bool,
) -> Result<(IngestReport, Vec<scrip_feed::Result<bool>>)> {
    let attachments = entries
        .iter()
        .filter_map(|c| {
            c.certificate.as_ref().map(|certificate| Attachment {
                entry: c.entry.id(),
                kind: CERTIFICATE_KIND.into(),
                bytes: certificate.encode(),
            })
        })
        .collect();
    Ok(if flush {
        store.ingest_with_attachments(batch, attachments)?
    } else {
        store.ingest_without_flush(batch, attachments)?
    })
}

/// The wire bytes of a certified entry (it must have a payload and a certificate).
pub fn to_bytes(certified: &CertifiedEntry) -> Result<CertifiedBytes> {
    let payload = certified
        .entry
        .payload()
        .ok_or_else(|| Error::Wallet("a certified entry without its payload".into()))?;
    let certificate = certified
        .certificate
        .clone()
        .ok_or_else(|| Error::Wallet("an entry without a certificate".into()))?;
    Ok(CertifiedBytes {
        bytes: EntryBytes {
            header: certified.entry.header_bytes().to_vec(),
            payload: payload.to_vec(),
        },
        certificate,
    })
}

/// A certified entry from its wire bytes (decoded, not yet verified).
pub fn from_bytes(bytes: &CertifiedBytes) -> Result<CertifiedEntry> {
    Ok(CertifiedEntry {
        entry: bytes.bytes.decode()?,
        certificate: Some(bytes.certificate.clone()),
    })
}

/// A citation of `wallet`'s entry at `seq`, from `store` (it must hold both that entry and the
/// wallet's genesis, with certificates).
pub fn citation(store: &dyn Store, wallet: &FeedId, seq: Seq) -> Result<Citation> {
    let entry = log(store, wallet, seq.get(), 1)?
        .pop()
        .filter(|e| e.entry.seq() == seq)
        .ok_or_else(|| Error::Wallet(format!("entry #{seq} of {wallet} is not here")))?;
    let genesis = log(store, wallet, 1, 1)?
        .pop()
        .ok_or_else(|| Error::Wallet(format!("the genesis of {wallet} is not here")))?;
    Ok(Citation {
        entry: to_bytes(&entry)?,
        genesis: to_bytes(&genesis)?,
    })
}

/// The notary set of `wallet` as its genesis in `store` says, if held.
pub fn notary_set(store: &dyn Store, wallet: &FeedId) -> Result<Option<NotarySet>> {
    Ok(store
        .get(wallet, Seq::FIRST)?
        .and_then(|genesis| wallet_notaries(&genesis)))
}
