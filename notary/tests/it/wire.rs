//! Wire-format snapshot: every notary message kind, built from fixed keys (ed25519 signatures
//! are deterministic), encoded and compared with the checked-in
//! `docs/protocol/vectors/notary.json`, then decoded back. A change to any layout fails here and
//! needs a version bump. To regenerate after a deliberate change:
//! `SCRIP_REGEN_VECTORS=1 cargo test -p scrip-notary --test it wire::`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use scrip_feed::{Entry, Keypair, Seq, Timestamp};
use scrip_ledger::certificate::ROUND_ZERO;
use scrip_ledger::content::{Genesis, Mint, WalletEntry};
use scrip_ledger::verify::subject_of;
use scrip_ledger::{Amount, Certificate, CertifiedBytes, Currency, Vote};
use scrip_notary::Refusal;
use scrip_notary::wire::{self, Proposal, Request, Response, SlotInfo};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol/vectors/notary.json")
}

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

/// A wallet (seed 1) with notaries (seeds 10..13): its genesis certified by three of them, and
/// a mint proposed after it.
struct World {
    notaries: Vec<Keypair>,
    genesis: Entry,
    certificate: Certificate,
    mint: Entry,
}

fn world() -> World {
    let wallet = key(1);
    let notaries: Vec<Keypair> = (10..14).map(key).collect();
    let genesis = WalletEntry::Genesis(Genesis {
        notaries: notaries.iter().map(Keypair::id).collect(),
    });
    let genesis = Entry::create(
        &wallet,
        None,
        Timestamp::from_millis(1_700_000_000_000),
        genesis.to_payload().unwrap(),
    )
    .unwrap();
    let subject = subject_of(&genesis);
    let certificate = Certificate::from_votes(
        genesis.id(),
        ROUND_ZERO,
        notaries[..3]
            .iter()
            .map(|n| Vote::sign(n, &subject))
            .collect(),
    );
    let mint = WalletEntry::Mint(Mint {
        currency: Currency::new(wallet.id(), "EUR", 2).unwrap(),
        amount: Amount::from_minor(12_345),
    });
    let mint = Entry::create(
        &wallet,
        Some(genesis.head()),
        Timestamp::from_millis(1_700_000_000_001),
        mint.to_payload().unwrap(),
    )
    .unwrap();
    World {
        notaries,
        genesis,
        certificate,
        mint,
    }
}

fn messages() -> Vec<(&'static str, Result<Request, Response>)> {
    let w = world();
    let certified = CertifiedBytes {
        bytes: scrip_feed::EntryBytes::of(&w.genesis),
        certificate: w.certificate.clone(),
    };
    let vote = Vote::sign(&w.notaries[0], &subject_of(&w.mint));
    let wallet = w.genesis.author();
    // An order of the wallet (after its genesis) to the wallet of seed 2, hash-locked, and the
    // receiver's claim request for it.
    let receiver = key(2);
    let preimage = scrip_ledger::content::Preimage([7; 32]);
    let order = Entry::create(
        &key(1),
        Some(w.genesis.head()),
        Timestamp::from_millis(1_700_000_000_002),
        scrip_ledger::kit::order(
            receiver.id(),
            &Currency::new(wallet, "EUR", 2).unwrap(),
            500,
            Timestamp::from_millis(1_800_000_000_000),
            Some(preimage.lock()),
        )
        .to_payload()
        .unwrap(),
    )
    .unwrap();
    let order_certificate = Certificate::from_votes(
        order.id(),
        ROUND_ZERO,
        w.notaries[..3]
            .iter()
            .map(|n| Vote::sign(n, &subject_of(&order)))
            .collect(),
    );
    let fate = scrip_ledger::FateSubject {
        wallet,
        order: order.id(),
        fate: scrip_ledger::Fate::Claimed,
    };
    let fate_request = wire::FateRequest {
        order: scrip_ledger::Citation {
            entry: CertifiedBytes {
                bytes: scrip_feed::EntryBytes::of(&order),
                certificate: order_certificate,
            },
            genesis: certified.clone(),
        },
        fate: scrip_ledger::Fate::Claimed,
        preimage: Some(preimage),
        signature: fate.request(&receiver),
    };
    vec![
        (
            "request propose",
            Ok(Request::Propose(Proposal {
                entry: scrip_feed::EntryBytes::of(&w.mint),
                prefix: vec![certified.clone()],
            })),
        ),
        ("request slot-query", Ok(Request::SlotQuery { wallet })),
        (
            "request fetch",
            Ok(Request::Fetch {
                wallet,
                from: 1,
                limit: 64,
            }),
        ),
        ("request fate", Ok(Request::Fate(Box::new(fate_request)))),
        ("response vote", Err(Response::Vote(vote))),
        (
            "response vote (fate)",
            Err(Response::Vote(fate.vote(&w.notaries[0]))),
        ),
        (
            "response refusal not-a-notary",
            Err(Response::Refusal(Refusal::NotANotary)),
        ),
        (
            "response refusal need-prefix",
            Err(Response::Refusal(Refusal::NeedPrefix { from: 1 })),
        ),
        (
            "response refusal behind",
            Err(Response::Refusal(Refusal::Behind {
                have: 1,
                certified: 5,
            })),
        ),
        (
            "response refusal locked",
            Err(Response::Refusal(Refusal::Locked {
                seq: Seq::new(2).get(),
                voted: w.mint.id(),
                vote: Some(vote),
            })),
        ),
        (
            "response refusal already-certified",
            Err(Response::Refusal(Refusal::AlreadyCertified { seq: 1 })),
        ),
        (
            "response refusal rules",
            Err(Response::Refusal(Refusal::Rules {
                code: "overspend".into(),
                reason: "spends 5 EUR but holds 4 EUR".into(),
            })),
        ),
        (
            "response refusal malformed",
            Err(Response::Refusal(Refusal::Malformed {
                reason: "trailing bytes".into(),
            })),
        ),
        (
            "response refusal fate",
            Err(Response::Refusal(Refusal::Fate {
                code: "order-voided".into(),
                reason: "this notary already signed the order voided for its sender".into(),
            })),
        ),
        (
            "response refusal unavailable",
            Err(Response::Refusal(Refusal::Unavailable {
                reason: "rate limit".into(),
            })),
        ),
        (
            "response slot-info",
            Err(Response::SlotInfo(SlotInfo {
                wallet,
                certified_head: 1,
                heard: 1,
                voted: Some((2, w.mint.id())),
                pending: Some(scrip_feed::EntryBytes::of(&w.mint)),
            })),
        ),
        (
            "response certified",
            Err(Response::Certified(vec![certified])),
        ),
    ]
}

fn encode(message: &Result<Request, Response>) -> Vec<u8> {
    match message {
        Ok(request) => wire::encode(request).unwrap(),
        Err(response) => wire::encode(response).unwrap(),
    }
}

fn generate() -> Value {
    let messages: Vec<Value> = messages()
        .iter()
        .map(|(name, message)| {
            // The decoded value beside its bytes: each field by name, byte strings and keys as
            // arrays of numbers (serde's data model), so a reader can match bytes to fields.
            let decoded = match message {
                Ok(request) => json!({ "Request": request }),
                Err(response) => json!({ "Response": response }),
            };
            json!({"name": name, "hex": hex::encode(encode(message)), "decoded": decoded})
        })
        .collect();
    json!({
        "about": "scrip notary wire messages v1: postcard((version: u8 = 1, message)); \
                  see docs/protocol/notary.md. Keys: wallet seed [1; 32], notaries seeds \
                  [10..13; 32]. `decoded` is each message's value in serde's JSON form \
                  (fields by name, byte strings and keys as arrays of numbers).",
        "messages": messages,
    })
}

#[test]
fn checked_in_messages_are_what_the_code_encodes() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("SCRIP_REGEN_VECTORS").is_some() {
        std::fs::write(vectors_path(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(vectors_path()).unwrap();
    assert!(
        on_disk == generated,
        "the notary wire format changed: the code no longer encodes \
         docs/protocol/vectors/notary.json"
    );
}

#[test]
fn checked_in_messages_decode_to_the_same_values() {
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
    let expected = messages();
    let found = on_disk["messages"].as_array().unwrap();
    assert_eq!(found.len(), expected.len());
    for (vector, (name, message)) in found.iter().zip(&expected) {
        assert_eq!(vector["name"], *name);
        let bytes = hex::decode(vector["hex"].as_str().unwrap()).unwrap();
        match message {
            Ok(request) => assert_eq!(&wire::decode::<Request>(&bytes).unwrap(), request),
            Err(response) => assert_eq!(&wire::decode::<Response>(&bytes).unwrap(), response),
        }
        // One byte more is refused (canonical decoding).
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            wire::decode::<Request>(&longer).is_err() && wire::decode::<Response>(&longer).is_err()
        );
    }
}
