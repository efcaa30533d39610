//! The checked-in test vectors (`docs/protocol/vectors/feed.json`) are replayed against the
//! code, so the format cannot drift silently; and regenerating them from the code must give the
//! same file. To regenerate after a deliberate format change (which needs a version bump):
//! `SCRIP_REGEN_VECTORS=1 cargo test -p scrip-feed --test it vectors::`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::PathBuf;

use common::cases;
use scrip_feed::identity::{domain, signing_bytes};
use scrip_feed::validate::validate_entry;
use scrip_feed::{Content, Entry, EntryId, FeedId, ForkProof, Head, Keypair, Seq, Timestamp};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol/vectors/feed.json")
}

fn content_json(content: &Content) -> Value {
    match content {
        Content::Post { text } => json!({"type": "post", "text": text}),
        Content::Follow { feed } => json!({"type": "follow", "feed": feed.to_string()}),
        Content::Unfollow { feed } => json!({"type": "unfollow", "feed": feed.to_string()}),
        Content::Block { feed } => json!({"type": "block", "feed": feed.to_string()}),
        Content::Unblock { feed } => json!({"type": "unblock", "feed": feed.to_string()}),
        Content::Nick { name } => json!({"type": "nick", "name": name}),
        Content::Pub { address } => json!({"type": "pub", "address": address}),
        Content::App { kind, bytes } => {
            json!({"type": "app", "kind": kind, "bytes_hex": hex::encode(bytes)})
        }
    }
}

fn key_json(name: &str, key: &Keypair) -> Value {
    json!({
        "name": name,
        "seed_hex": hex::encode(key.seed().as_ref()),
        "public_hex": hex::encode(key.id().as_bytes()),
        "feed_id": key.id().to_string(),
    })
}

fn entry_json(name: &str, key_name: &str, entry: &Entry) -> Value {
    let fields = &entry.header().fields;
    let payload = entry.payload().unwrap();
    json!({
        "name": name,
        "key": key_name,
        "seq": fields.seq.get(),
        "prev": fields.prev.map(|p| p.to_string()),
        "timestamp_ms": fields.timestamp.as_millis(),
        "payload_len": fields.payload_len,
        "payload_hash_hex": fields.payload_hash.to_string(),
        "payload_hex": hex::encode(payload),
        "content": content_json(&Content::decode(payload).unwrap()),
        "signing_bytes_hex": hex::encode(signing_bytes(domain::ENTRY, entry.signed_fields_bytes())),
        "header_hex": hex::encode(entry.header_bytes()),
        "id": entry.id().to_string(),
        "id_hex": hex::encode(entry.id().as_bytes()),
    })
}

fn generate() -> Value {
    let alice = cases::alice();
    let bob = cases::bob();
    let feed = cases::alice_feed();
    let bobs = Entry::create(
        &bob,
        None,
        Timestamp::from_millis(1_700_000_500_000),
        Content::Follow { feed: alice.id() }.encode().unwrap(),
    )
    .unwrap();
    let rival = Entry::create(
        &alice,
        Some(feed[0].head()),
        Timestamp::from_millis(1_700_000_009_000),
        common::post("rival"),
    )
    .unwrap();
    let proof = ForkProof::new(&feed[1], &rival).unwrap();

    let contents = [
        Content::Post {
            text: "hello, scrip".into(),
        },
        Content::Follow { feed: bob.id() },
        Content::Unfollow { feed: bob.id() },
        Content::Block { feed: bob.id() },
        Content::Nick {
            name: "alice".into(),
        },
        Content::Pub {
            address: "198.51.100.7:8008".into(),
        },
        Content::App {
            kind: "scrip/wallet".into(),
            bytes: vec![1, 2, 3],
        },
        Content::Unblock { feed: bob.id() },
    ];

    let invalid: Vec<Value> = cases::all()
        .iter()
        .map(|case| {
            json!({
                "name": case.name,
                "feed": case.feed.to_string(),
                "prev_head": case.prev.map(|h| json!({"seq": h.seq.get(), "id": h.id.to_string()})),
                "header_hex": hex::encode(&case.header),
                // A payload of only zero bytes is given by its length, to keep the file small.
                "payload_hex": case.payload.as_ref().filter(|p| p.iter().any(|&b| b != 0)).map(hex::encode),
                "payload_zeros": case.payload.as_ref().filter(|p| p.iter().all(|&b| b == 0)).map(Vec::len),
                "error": case.expected.code(),
            })
        })
        .collect();

    let (first, second) = proof.entries();
    let wire = |a: &Entry, b: &Entry| {
        postcard::to_stdvec(&(1u8, a.header_bytes().to_vec(), b.header_bytes().to_vec())).unwrap()
    };
    let mut bad_sig = second.header_bytes().to_vec();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    let bad_sig = Entry::decode(&bad_sig, None).unwrap();
    let wire_v2 = |a: &Entry, b: &Entry, ea: &[(&str, &[u8])], eb: &[(&str, &[u8])]| {
        let list = |e: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
            e.iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect()
        };
        postcard::to_stdvec(&(
            2u8,
            a.header_bytes().to_vec(),
            b.header_bytes().to_vec(),
            list(ea),
            list(eb),
        ))
        .unwrap()
    };
    let ordered = |a: &Entry, b: &Entry| {
        if a.id() <= b.id() {
            wire(a, b)
        } else {
            wire(b, a)
        }
    };
    let bad_proofs = vec![
        json!({"name": "same-entry", "hex": hex::encode(wire(first, first)), "error": "fork-proof-same-entry"}),
        json!({"name": "different-authors", "hex": hex::encode(ordered(&feed[0], &bobs)), "error": "fork-proof-different-authors"}),
        json!({"name": "different-seqs", "hex": hex::encode(ordered(&feed[0], &feed[1])), "error": "fork-proof-different-seqs"}),
        json!({"name": "bad-signature", "hex": hex::encode(ordered(first, &bad_sig)), "error": "bad-signature"}),
        json!({"name": "out-of-order", "hex": hex::encode(wire(second, first)), "error": "fork-proof-order"}),
        json!({"name": "version-2-without-evidence", "hex": hex::encode(wire_v2(first, second, &[], &[])), "error": "non-canonical"}),
        json!({"name": "evidence-kind-twice", "hex": hex::encode(wire_v2(first, second, &[("k", &[1]), ("k", &[2])], &[])), "error": "fork-proof-evidence-order"}),
        json!({"name": "evidence-unsorted", "hex": hex::encode(wire_v2(first, second, &[("b", &[1]), ("a", &[2])], &[])), "error": "fork-proof-evidence-order"}),
        json!({"name": "evidence-too-large", "hex": hex::encode(wire_v2(first, second, &[("a", &[0; 4096]), ("b", &[0; 4097])], &[])), "error": "too-large"}),
    ];
    let with_evidence = ForkProof::with_evidence(
        first,
        vec![("scrip/certificate".to_owned(), vec![1, 2, 3])],
        second,
        vec![("scrip/certificate".to_owned(), vec![4, 5])],
    )
    .unwrap();

    json!({
        "format": "scrip feed test vectors v1",
        "notes": "Generated by feed/tests/it/vectors.rs; see docs/protocol/feed.md. Errors are Error::code() names.",
        "entry_domain": String::from_utf8(domain::ENTRY.to_vec()).unwrap(),
        "keys": [key_json("alice", &alice), key_json("bob", &bob)],
        "entries": [
            entry_json("alice-1", "alice", &feed[0]),
            entry_json("alice-2", "alice", &feed[1]),
            entry_json("alice-3", "alice", &feed[2]),
            entry_json("bob-1", "bob", &bobs),
            entry_json("alice-2-rival", "alice", &rival),
        ],
        "contents": contents.iter().map(|c| json!({
            "content": content_json(c),
            "payload_hex": hex::encode(c.encode().unwrap()),
        })).collect::<Vec<_>>(),
        "fork_proof": {
            "author": alice.id().to_string(),
            "seq": 2,
            "hex": hex::encode(proof.encode()),
        },
        "fork_proof_with_evidence": {
            "author": alice.id().to_string(),
            "seq": 2,
            "first_evidence": [["scrip/certificate", "010203"]],
            "second_evidence": [["scrip/certificate", "0405"]],
            "hex": hex::encode(with_evidence.encode()),
        },
        "invalid_fork_proofs": bad_proofs,
        "invalid_entries": invalid,
        "invalid_feed_ids": invalid_feed_ids(&alice),
        "signatures": signature_cases(&alice),
    })
}

/// Feed ids the parser refuses, each with the error it gives (`feed.md` §2).
fn invalid_feed_ids(alice: &Keypair) -> Vec<serde_json::Value> {
    // The smallest y with no point on the curve.
    let no_point = (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| {
            FeedId::from_bytes(*b)
                .to_string()
                .parse::<FeedId>()
                .is_err()
        })
        .expect("some small y has no point");
    // y + p for the smallest y < 19 that is a curve point: the same point written at or above
    // p (refused as not canonical before anything else is looked at).
    let y = (2u8..19)
        .find(|&y| {
            let mut b = [0u8; 32];
            b[0] = y;
            curve25519_dalek::edwards::CompressedEdwardsY(b)
                .decompress()
                .is_some()
        })
        .expect("some y < 19 is a curve point");
    let mut above_p = [0xffu8; 32];
    above_p[0] = 0xed + y;
    above_p[31] = 0x7f;
    [
        ("no @ prefix", alice.id().to_string()[1..].to_string()),
        ("trailing whitespace", format!("{} ", alice.id())),
        (
            "33 bytes (a leading zero byte)",
            format!("@1{}", &alice.id().to_string()[1..]),
        ),
        ("not base58", "@0OIl".to_string()),
        (
            "the identity point (y = 1): small order",
            FeedId::from_bytes({
                let mut b = [0u8; 32];
                b[0] = 1;
                b
            })
            .to_string(),
        ),
        (
            "y has no point on the curve",
            FeedId::from_bytes(no_point).to_string(),
        ),
        (
            "y written at or above p (not canonical)",
            FeedId::from_bytes(above_p).to_string(),
        ),
    ]
    .into_iter()
    .map(|(why, input)| {
        let error = input.parse::<FeedId>().expect_err(why).to_string();
        json!({ "input": input, "why": why, "error": error })
    })
    .collect()
}

/// The signature rule's edge cases (feed.md §4): each a key, the signed bytes, a signature, and
/// whether the rule accepts it. Built from alice's secret scalar with curve arithmetic, so that
/// the cases that need the secret (an R with a small-order component, say) are real signatures.
fn signature_cases(alice: &Keypair) -> Vec<Value> {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    // RFC 8032: the secret scalar is the clamped first half of SHA-512(seed).
    let h = Sha512::digest(alice.seed().as_ref());
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&h[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let public = B * a;
    assert_eq!(public.compress().as_bytes(), alice.id().as_bytes());
    let message = signing_bytes(b"scrip/test/v1", b"an edge case");
    let k_of = |r: &[u8; 32], key: &[u8; 32]| {
        Scalar::from_hash(
            Sha512::new()
                .chain_update(r)
                .chain_update(key)
                .chain_update(&message),
        )
    };
    // A signature (R bytes, S) with nonce point R = [r]B + extra, by the key `key` = A + key_extra.
    let sign = |r: Scalar, r_bytes: [u8; 32], key: [u8; 32]| {
        let s = r + k_of(&r_bytes, &key) * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    };
    let r = Scalar::from_bytes_mod_order(*blake3::hash(b"scrip/test/nonce").as_bytes());
    let honest_r = (B * r).compress().to_bytes();
    let honest = sign(r, honest_r, public.compress().to_bytes());
    // S + L: the same signature with a non-canonical S.
    let mut s_plus_l = honest;
    // L, the group order, little-endian.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s_plus_l[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    // R with a small-order component: [r]B + T (T of order 8).
    let mixed_r = (B * r + EIGHT_TORSION[1]).compress().to_bytes();
    let with_mixed_r = sign(r, mixed_r, public.compress().to_bytes());
    // R a small-order point (r = 0, R = T of order 4, y = 0): canonical, and written with
    // y = p (not canonical: decodes to the same point).
    let order4: EdwardsPoint = EIGHT_TORSION[2];
    let t4 = order4.compress().to_bytes();
    let mut t4_above_p = [0xffu8; 32];
    t4_above_p[0] = 0xed;
    t4_above_p[31] = 0x7f | (t4[31] & 0x80);
    assert_eq!(
        CompressedEdwardsY(t4_above_p).decompress(),
        Some(order4),
        "y = p decodes to the order-4 point"
    );
    let small_r = sign(Scalar::ZERO, t4, public.compress().to_bytes());
    let small_r_above_p = sign(Scalar::ZERO, t4_above_p, public.compress().to_bytes());
    // R bytes that are no point.
    let mut no_point_r = honest;
    let mut y = 2u8;
    loop {
        let mut candidate = [0u8; 32];
        candidate[0] = y;
        if CompressedEdwardsY(candidate).decompress().is_none() {
            no_point_r[..32].copy_from_slice(&candidate);
            break;
        }
        y += 1;
    }
    // Keys: A + T (mixed order), a small-order key, A written with y ≥ p is impossible for a
    // random A, so the small-order order-4 key written above p stands for non-canonical keys.
    let mixed_key = (public + EIGHT_TORSION[1]).compress().to_bytes();
    let by_mixed_key = sign(r, honest_r, mixed_key);
    let mut wrong_message = honest;
    wrong_message[40] ^= 1;

    let own = alice.id().as_bytes().to_owned();
    let cases: Vec<(&str, [u8; 32], [u8; 64], bool)> = vec![
        ("honest signature", own, honest, true),
        ("S + L (S not canonical)", own, s_plus_l, false),
        ("S altered", own, wrong_message, false),
        (
            "R with a small-order component (mixed order)",
            own,
            with_mixed_r,
            true,
        ),
        ("R a small-order point", own, small_r, true),
        (
            "R a small-order point written with y = p (not canonical)",
            own,
            small_r_above_p,
            true,
        ),
        ("R not a point", own, no_point_r, false),
        (
            "A with a small-order component (mixed order), signed by its owner",
            mixed_key,
            by_mixed_key,
            false,
        ),
        ("A a small-order point", t4, small_r, false),
        (
            "A written with y = p (not canonical)",
            t4_above_p,
            small_r_above_p,
            false,
        ),
    ];
    cases
        .into_iter()
        .map(|(why, key, signature, accept)| {
            json!({
                "why": why,
                "public_hex": hex::encode(key),
                "signed_hex": hex::encode(&message),
                "signature_hex": hex::encode(signature),
                "accept": accept,
            })
        })
        .collect()
}

#[test]
fn signature_edge_cases_are_accepted_or_refused_as_documented_singly_and_in_batches() {
    use scrip_feed::identity::verify_batch;
    use scrip_feed::{AuthorKey, Signature};
    let cases = load()["signatures"].as_array().unwrap().clone();
    assert!(cases.len() >= 10);
    // Each alone.
    let mut parsed = Vec::new();
    for case in &cases {
        let key: [u8; 32] = hex_of(&case["public_hex"]).try_into().unwrap();
        let signed = hex_of(&case["signed_hex"]);
        let signature = Signature::from_bytes(hex_of(&case["signature_hex"]).try_into().unwrap());
        let accept = case["accept"].as_bool().unwrap();
        let key = AuthorKey::new(&FeedId::from_bytes(key));
        let got = key
            .as_ref()
            .is_ok_and(|key| key.verify_prepared(&signed, &signature));
        assert_eq!(got, accept, "{}", case["why"]);
        if let Ok(key) = key {
            parsed.push((key, signed, signature, accept));
        }
    }
    // In batches: all the accepted ones together, then each refused one among them.
    let batch = |set: &[&(AuthorKey, Vec<u8>, Signature, bool)]| {
        let items: Vec<(&AuthorKey, &[u8], &Signature)> = set
            .iter()
            .map(|(k, m, s, _)| (k, m.as_slice(), s))
            .collect();
        verify_batch(&items)
    };
    let good: Vec<_> = parsed.iter().filter(|c| c.3).collect();
    assert!(good.len() >= 4);
    let mut many = good.clone();
    many.extend(good.iter().copied());
    assert!(batch(&many).iter().all(|ok| *ok));
    for bad in parsed.iter().filter(|c| !c.3) {
        let mut set = good.clone();
        set.insert(1, bad);
        let expected: Vec<bool> = set.iter().map(|c| c.3).collect();
        assert_eq!(batch(&set), expected);
    }
}

#[test]
fn checked_in_vectors_are_what_the_code_generates() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("SCRIP_REGEN_VECTORS").is_some() {
        std::fs::create_dir_all(vectors_path().parent().unwrap()).unwrap();
        std::fs::write(vectors_path(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(vectors_path()).unwrap();
    assert!(
        on_disk == generated,
        "the feed format changed: the code no longer generates docs/protocol/vectors/feed.json"
    );
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap()
}

#[test]
fn replay_keys() {
    for key in load()["keys"].as_array().unwrap() {
        let seed: [u8; 32] = hex_of(&key["seed_hex"]).try_into().unwrap();
        let keypair = Keypair::from_seed(&seed);
        assert_eq!(keypair.id().to_string(), key["feed_id"].as_str().unwrap());
        assert_eq!(
            hex::encode(keypair.id().as_bytes()),
            key["public_hex"].as_str().unwrap()
        );
        let parsed: FeedId = key["feed_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(parsed, keypair.id());
    }
}

#[test]
fn replay_valid_entries() {
    let vectors = load();
    let keys: Vec<(String, Keypair)> = vectors["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let seed: [u8; 32] = hex_of(&k["seed_hex"]).try_into().unwrap();
            (
                k["name"].as_str().unwrap().to_owned(),
                Keypair::from_seed(&seed),
            )
        })
        .collect();
    let mut heads: std::collections::HashMap<(String, u64), Head> = Default::default();
    for v in vectors["entries"].as_array().unwrap() {
        let key = &keys
            .iter()
            .find(|(n, _)| n == v["key"].as_str().unwrap())
            .unwrap()
            .1;
        let header = hex_of(&v["header_hex"]);
        let payload = hex_of(&v["payload_hex"]);
        let entry = Entry::decode(&header, Some(payload.clone())).unwrap();
        let seq = v["seq"].as_u64().unwrap();
        let fields = &entry.header().fields;
        assert_eq!(fields.author, key.id());
        assert_eq!(fields.seq, Seq::new(seq));
        assert_eq!(
            fields.prev.map(|p| p.to_string()),
            v["prev"].as_str().map(str::to_owned)
        );
        assert_eq!(
            fields.timestamp.as_millis(),
            v["timestamp_ms"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(fields.payload_len),
            v["payload_len"].as_u64().unwrap()
        );
        assert_eq!(
            fields.payload_hash.to_string(),
            v["payload_hash_hex"].as_str().unwrap()
        );
        assert_eq!(entry.id().to_string(), v["id"].as_str().unwrap());
        assert_eq!(
            hex::encode(entry.id().as_bytes()),
            v["id_hex"].as_str().unwrap()
        );
        assert_eq!(
            v["id"].as_str().unwrap().parse::<EntryId>().unwrap(),
            entry.id()
        );
        assert_eq!(
            hex::encode(signing_bytes(domain::ENTRY, entry.signed_fields_bytes())),
            v["signing_bytes_hex"].as_str().unwrap()
        );
        assert_eq!(
            content_json(&Content::decode(&payload).unwrap()),
            v["content"]
        );
        // The chain validates from the previous vector of the same key.
        let prev = seq
            .checked_sub(1)
            .and_then(|s| heads.get(&(key.id().to_string(), s)).copied());
        validate_entry(&key.id(), prev.as_ref(), &entry).unwrap();
        heads.insert((key.id().to_string(), seq), entry.head());
        // Encoding and signing the same fields reproduces the bytes (ed25519 is deterministic).
        let again = Entry::create(key, prev, fields.timestamp, payload).unwrap();
        assert_eq!(again.header_bytes(), &header[..]);
    }
}

#[test]
fn replay_contents() {
    for v in load()["contents"].as_array().unwrap() {
        let content = Content::decode(&hex_of(&v["payload_hex"])).unwrap();
        assert_eq!(content_json(&content), v["content"]);
        assert_eq!(content.encode().unwrap(), hex_of(&v["payload_hex"]));
    }
}

#[test]
fn replay_fork_proofs() {
    let vectors = load();
    let proof = ForkProof::decode(&hex_of(&vectors["fork_proof"]["hex"])).unwrap();
    assert_eq!(
        proof.author().to_string(),
        vectors["fork_proof"]["author"].as_str().unwrap()
    );
    assert_eq!(
        proof.seq().get(),
        vectors["fork_proof"]["seq"].as_u64().unwrap()
    );
    assert_eq!(proof.encode(), hex_of(&vectors["fork_proof"]["hex"]));
    let with = &vectors["fork_proof_with_evidence"];
    let proof = ForkProof::decode(&hex_of(&with["hex"])).unwrap();
    assert_eq!(proof.encode(), hex_of(&with["hex"]));
    for ((_, evidence), name) in proof
        .halves()
        .into_iter()
        .zip(["first_evidence", "second_evidence"])
    {
        let expected: Vec<(String, Vec<u8>)> = with[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_owned(), hex_of(&pair[1])))
            .collect();
        assert_eq!(evidence, &expected, "{name}");
    }
    for v in vectors["invalid_fork_proofs"].as_array().unwrap() {
        let err = ForkProof::decode(&hex_of(&v["hex"])).unwrap_err();
        assert_eq!(err.code(), v["error"].as_str().unwrap(), "{}", v["name"]);
    }
}

#[test]
fn replay_invalid_entries() {
    let vectors = load();
    let cases = vectors["invalid_entries"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for v in cases {
        let feed: FeedId = FeedId::from_bytes(
            bs58::decode(&v["feed"].as_str().unwrap()[1..])
                .into_vec()
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let prev = v["prev_head"].as_object().map(|h| Head {
            seq: Seq::new(h["seq"].as_u64().unwrap()),
            id: h["id"].as_str().unwrap().parse().unwrap(),
        });
        let payload = match (v["payload_hex"].as_str(), v["payload_zeros"].as_u64()) {
            (Some(p), None) => Some(hex::decode(p).unwrap()),
            (None, Some(n)) => Some(vec![0u8; usize::try_from(n).unwrap()]),
            (None, None) => None,
            (Some(_), Some(_)) => panic!("case {} has two payloads", v["name"]),
        };
        let err = cases::check(&hex_of(&v["header_hex"]), payload, &feed, prev).unwrap_err();
        assert_eq!(
            err.code(),
            v["error"].as_str().unwrap(),
            "case {}",
            v["name"]
        );
    }
}

#[test]
fn replay_invalid_feed_ids() {
    for case in load()["invalid_feed_ids"].as_array().unwrap() {
        let text = case["input"].as_str().unwrap();
        let err = text.parse::<FeedId>().expect_err(text);
        assert_eq!(err.to_string(), case["error"].as_str().unwrap(), "{text:?}");
    }
}
