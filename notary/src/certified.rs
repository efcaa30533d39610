//! Certified wallet entries in a feed store: an entry plus its certificate, kept as the feed
//! attachment of kind `scrip/certificate`; conversions to and from their wire bytes; citations;
//! and the attachment check that keeps only valid certificates.

use std::sync::Arc;

use scrip_feed::{Attachment, Entry, FeedId, Seq, Store};
use scrip_ledger::certificate::CERTIFICATE_KIND;
use scrip_ledger::verify::{VerifyAll, certify};
use scrip_ledger::{Certificate, CertifiedBytes, CertifiedEntry, Citation, NotarySet, WalletEntry};
use scrip_replicate::AttachmentCheck;

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

/// Durably stores certified entries (entries, then their certificates).
pub fn store_certified(store: &dyn Store, entries: &[CertifiedEntry]) -> Result<()> {
    let report = store.ingest(entries.iter().map(|c| c.entry.clone()).collect())?;
    if let Some(Err(err)) = report.outcomes.iter().find(|o| o.is_err()) {
        return Err(Error::Feed(err.clone()));
    }
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
    store.put_attachments(attachments)?;
    Ok(())
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
        header: certified.entry.header_bytes().to_vec(),
        payload: payload.to_vec(),
        certificate,
    })
}

/// A certified entry from its wire bytes (decoded, not yet verified).
pub fn from_bytes(bytes: &CertifiedBytes) -> Result<CertifiedEntry> {
    Ok(CertifiedEntry {
        entry: Entry::decode(&bytes.header, Some(bytes.payload.clone()))?,
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
    let Some(genesis) = store.get(wallet, Seq::FIRST)? else {
        return Ok(None);
    };
    let Some(payload) = genesis.payload() else {
        return Ok(None);
    };
    Ok(match WalletEntry::from_payload(payload) {
        Ok(WalletEntry::Genesis(g)) => NotarySet::new(&g.notaries).ok(),
        _ => None,
    })
}

/// Keeps a `scrip/certificate` attachment only if it certifies its entry under the wallet's
/// notary set (from the wallet's genesis in the store); other kinds are kept as they are.
#[derive(Clone)]
pub struct CertificateCheck {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for CertificateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateCheck")
    }
}

impl CertificateCheck {
    /// A check reading genesis entries from `store`.
    pub fn new(store: Arc<dyn Store>) -> CertificateCheck {
        CertificateCheck { store }
    }
}

impl AttachmentCheck for CertificateCheck {
    fn accept(&self, entry: &Entry, kind: &str, bytes: &[u8]) -> bool {
        if kind != CERTIFICATE_KIND {
            return true;
        }
        let Ok(certificate) = Certificate::decode(bytes) else {
            return false;
        };
        let set = if entry.seq() == Seq::FIRST {
            // The genesis is certified by the set it names.
            self.store
                .get(&entry.author(), Seq::FIRST)
                .ok()
                .flatten()
                .and_then(|g| g.payload().map(<[u8]>::to_vec))
                .and_then(|p| match WalletEntry::from_payload(&p) {
                    Ok(WalletEntry::Genesis(g)) => NotarySet::new(&g.notaries).ok(),
                    _ => None,
                })
        } else {
            notary_set(self.store.as_ref(), &entry.author())
                .ok()
                .flatten()
        };
        set.is_some_and(|set| certify(&certificate, &set, entry, &VerifyAll).is_ok())
    }
}
