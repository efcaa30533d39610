//! Wallet content vectors: every `WalletEntry` kind in both content versions, built from fixed
//! keys (ed25519 signatures are deterministic), encoded and compared with the checked-in
//! `docs/protocol/vectors/wallet.json`, then decoded back; plus payloads that must be refused,
//! and a hash lock. A change to any layout fails here and needs a version bump. To regenerate
//! after a deliberate change: `SCRIP_REGEN_VECTORS=1 cargo test -p scrip-ledger --test it vectors::`.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::PathBuf;
use std::sync::Arc;

use scrip_feed::{Content, Keypair, Seq, Timestamp};
use scrip_ledger::content::{
    Accept, Cancel, Preimage, Reclaim, Refund, Reject, WALLET_KIND, WalletEntry,
};
use scrip_ledger::fate::Fate;
use scrip_ledger::kit::{KitWallet, notaries, order};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol/vectors/wallet.json")
}

/// (name, version, payload) for every kind, in a small world: issuer (seed 1) pays alice
/// (seed 2); notaries seeds 10..13.
fn valid() -> Vec<(&'static str, u8, WalletEntry)> {
    let set = notaries(10, 4);
    let mut issuer = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
    let mut alice = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), set);
    let eur = issuer.currency("EUR", 2).unwrap();
    issuer.mint(&eur, 12_345);
    let expiry = Timestamp::from_millis(1_800_000_000_000);
    let preimage = Preimage([7; 32]);
    let plain = issuer.push(&order(alice.id(), &eur, 100, expiry, None));
    let locked = issuer.push(&order(alice.id(), &eur, 200, expiry, Some(preimage.lock())));
    let rejected = issuer.push(&order(alice.id(), &eur, 300, expiry, None));
    let rejection = alice.push(&WalletEntry::Reject(Reject {
        order: issuer.cite(rejected),
        reason: "no thanks".into(),
    }));
    let genesis = || issuer.log[0].entry.payload().unwrap().to_vec();
    let decode = |payload: &[u8]| WalletEntry::from_payload(payload).unwrap();
    vec![
        ("genesis", 2, decode(&genesis())),
        ("mint", 2, decode(issuer.log[1].entry.payload().unwrap())),
        (
            "order",
            2,
            decode(
                issuer.log[plain.get() as usize - 1]
                    .entry
                    .payload()
                    .unwrap(),
            ),
        ),
        (
            "order-hash-locked",
            2,
            decode(
                issuer.log[locked.get() as usize - 1]
                    .entry
                    .payload()
                    .unwrap(),
            ),
        ),
        (
            "order-v1",
            1,
            WalletEntry::Order(scrip_ledger::content::Order {
                to: alice.id(),
                currency: eur,
                amount: scrip_ledger::Amount::from_minor(100),
                memo: "lunch".into(),
                expiry: None,
                condition: None,
            }),
        ),
        (
            "accept",
            2,
            WalletEntry::Accept(Accept {
                order: issuer.cite(plain),
                preimage: None,
                claim: Some(issuer.fate(plain, Fate::Claimed)),
            }),
        ),
        (
            "accept-with-preimage",
            2,
            WalletEntry::Accept(Accept {
                order: issuer.cite(locked),
                preimage: Some(preimage),
                claim: Some(issuer.fate(locked, Fate::Claimed)),
            }),
        ),
        (
            "accept-v1",
            1,
            WalletEntry::Accept(Accept {
                order: issuer.cite(plain),
                preimage: None,
                claim: None,
            }),
        ),
        (
            "reclaim",
            2,
            WalletEntry::Reclaim(Reclaim {
                order: issuer.order_ref(rejected),
                rejection: alice.cite(rejection),
            }),
        ),
        (
            "cancel",
            2,
            WalletEntry::Cancel(Cancel {
                order: issuer.order_ref(plain),
                void: issuer.fate(plain, Fate::Cancelled),
            }),
        ),
        (
            "refund",
            2,
            WalletEntry::Refund(Refund {
                order: issuer.order_ref(locked),
                void: issuer.fate(locked, Fate::Expired),
            }),
        ),
    ]
}

fn payload(version: u8, entry: &WalletEntry) -> Vec<u8> {
    if version == 1 {
        entry.to_payload_v1().unwrap()
    } else {
        entry.to_payload().unwrap()
    }
}

fn app(bytes: Vec<u8>) -> Vec<u8> {
    Content::App {
        kind: WALLET_KIND.into(),
        bytes,
    }
    .encode()
    .unwrap()
}

/// Payloads every reader must refuse, with why.
fn invalid() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let cancel = WalletEntry::Cancel(Cancel {
        order: scrip_ledger::content::OrderRef {
            seq: Seq::new(3),
            id: scrip_feed::EntryId::of_header(b"x"),
        },
        void: scrip_ledger::FateCertificate {
            fate: Fate::Cancelled,
            votes: Vec::new(),
        },
    })
    .to_payload()
    .unwrap();
    let Content::App { bytes, .. } = Content::decode(&cancel).unwrap() else {
        unreachable!()
    };
    let mut v1_cancel = bytes.clone();
    v1_cancel[0] = 1;
    let mut v3 = bytes.clone();
    v3[0] = 3;
    let mut trailing = bytes;
    trailing.push(0);
    vec![
        (
            "v1-cancel",
            "index 6 does not exist in version 1",
            app(v1_cancel),
        ),
        ("unknown-version", "version 3 is unknown", app(v3)),
        ("trailing-bytes", "not canonical", app(trailing)),
    ]
}

fn generate() -> Value {
    let valid: Vec<Value> = valid()
        .iter()
        .map(|(name, version, entry)| {
            json!({
                "name": name,
                "version": version,
                "kind": entry.kind(),
                "payload": hex::encode(payload(*version, entry)),
            })
        })
        .collect();
    let invalid: Vec<Value> = invalid()
        .iter()
        .map(|(name, reason, payload)| {
            json!({ "name": name, "reason": reason, "payload": hex::encode(payload) })
        })
        .collect();
    let preimage = Preimage([7; 32]);
    let subject = scrip_ledger::FateSubject {
        wallet: Keypair::from_seed(&[1; 32]).id(),
        order: scrip_feed::EntryId::of_header(b"an order header"),
        fate: Fate::Claimed,
    };
    let notary = Keypair::from_seed(&[10; 32]);
    let alice = Keypair::from_seed(&[2; 32]);
    json!({
        "about": "scrip wallet content: feed App content of kind \"scrip/wallet\" whose bytes are \
                  postcard((version: u8, WalletEntry)); see docs/protocol/ledger.md section 1. \
                  Wallets: issuer seed [1; 32], alice seed [2; 32]; notaries seeds [10..13; 32]. \
                  Each valid payload decodes to its kind and re-encodes to the same bytes in its \
                  version.",
        "valid": valid,
        "invalid": invalid,
        "hash_lock": {
            "preimage": preimage.to_hex(),
            "lock": preimage.lock().to_hex(),
            "rule": "lock = blake3(preimage), preimage exactly 32 bytes",
        },
        "fate_vote": {
            "about": "a notary's vote for a fate: ed25519 over \"scrip/fate/v1\" || 0x00 || \
                      message; a wallet's request: over \"scrip/fate-request/v1\" || 0x00 || \
                      message; message = postcard((wallet, order, fate)), fate 0 = claimed, \
                      1 = cancelled, 2 = expired",
            "wallet": hex::encode(subject.wallet.as_bytes()),
            "order": hex::encode(subject.order.as_bytes()),
            "fate": subject.fate.name(),
            "message": hex::encode(subject.message()),
            "vote_by_notary_seed_10": hex::encode(subject.vote(&notary).signature.as_bytes()),
            "request_by_alice": hex::encode(subject.request(&alice).as_bytes()),
        },
    })
}

#[test]
fn wallet_content_matches_the_checked_in_vectors() {
    let generated = generate();
    if std::env::var("SCRIP_REGEN_VECTORS").is_ok() {
        std::fs::write(
            vectors_path(),
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "the wallet content format changed: the code no longer generates \
         docs/protocol/vectors/wallet.json"
    );
    // Each stored payload decodes to its kind and re-encodes to the same bytes.
    for v in stored["valid"].as_array().unwrap() {
        let bytes = hex::decode(v["payload"].as_str().unwrap()).unwrap();
        let entry = WalletEntry::from_payload(&bytes).unwrap();
        assert_eq!(entry.kind(), v["kind"].as_str().unwrap());
        let version = u8::try_from(v["version"].as_u64().unwrap()).unwrap();
        assert_eq!(payload(version, &entry), bytes, "{}", v["name"]);
    }
    for v in stored["invalid"].as_array().unwrap() {
        let bytes = hex::decode(v["payload"].as_str().unwrap()).unwrap();
        assert!(
            WalletEntry::from_payload(&bytes).is_err(),
            "{} must be refused",
            v["name"]
        );
    }
    let lock = &stored["hash_lock"];
    let preimage = Preimage::from_hex(lock["preimage"].as_str().unwrap()).unwrap();
    assert_eq!(preimage.lock().to_hex(), lock["lock"].as_str().unwrap());
}
