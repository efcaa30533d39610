//! Invalid entries, one per validation rule, built deterministically. The validation tests
//! assert each one's exact error; the vector generator writes them to
//! `docs/protocol/vectors/feed.json`.

use scrip_feed::identity::{domain, signing_bytes};
use scrip_feed::limits::{MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES};
use scrip_feed::validate::validate_entry;
use scrip_feed::{
    Entry, EntryId, Error, FeedId, Hash, Head, HeaderFields, Keypair, Result, Seq, Timestamp,
};

use super::{key, post};

/// One invalid input and the error it must raise.
pub struct Case {
    /// Name (also the vector's name).
    pub name: &'static str,
    /// The signed header bytes offered.
    pub header: Vec<u8>,
    /// The payload offered with it.
    pub payload: Option<Vec<u8>>,
    /// The feed it is offered to.
    pub feed: FeedId,
    /// That feed's head before the offer.
    pub prev: Option<Head>,
    /// The error it must raise.
    pub expected: Error,
}

/// Decode then validate, as a store does.
pub fn check(
    header: &[u8],
    payload: Option<Vec<u8>>,
    feed: &FeedId,
    prev: Option<Head>,
) -> Result<()> {
    let entry = Entry::decode(header, payload)?;
    validate_entry(feed, prev.as_ref(), &entry)
}

pub fn alice() -> Keypair {
    key(0xa1)
}

pub fn bob() -> Keypair {
    key(0xb0)
}

/// Alice's valid three-entry feed used as the base of the cases.
pub fn alice_feed() -> Vec<Entry> {
    let alice = alice();
    let mut entries: Vec<Entry> = Vec::new();
    for (i, text) in ["hello", "second", "third"].iter().enumerate() {
        let entry = Entry::create(
            &alice,
            entries.last().map(Entry::head),
            Timestamp::from_millis(1_700_000_000_000 + i as u64 * 1000),
            post(text),
        )
        .unwrap();
        entries.push(entry);
    }
    entries
}

/// Fields of alice's entry 2.
fn fields_2() -> HeaderFields {
    alice_feed()[1].header().fields.clone()
}

/// Encodes `fields` and signs them with `signer`.
pub fn signed(signer: &Keypair, fields: &HeaderFields) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(fields).unwrap();
    let signature = signer.sign_prepared(&signing_bytes(domain::ENTRY, &bytes));
    bytes.extend_from_slice(signature.as_bytes());
    bytes
}

/// Signs raw field bytes (possibly non-canonical) with `signer`.
fn signed_raw(signer: &Keypair, mut bytes: Vec<u8>) -> Vec<u8> {
    let signature = signer.sign_prepared(&signing_bytes(domain::ENTRY, &bytes));
    bytes.extend_from_slice(signature.as_bytes());
    bytes
}

fn small_order_point() -> [u8; 32] {
    // The identity point (0, 1).
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    bytes
}

fn off_curve_point() -> [u8; 32] {
    // y = 2 has no x on the curve.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    bytes
}

/// Every case, one per rule.
pub fn all() -> Vec<Case> {
    let alice = alice();
    let bob = bob();
    let feed = alice_feed();
    let (e1, e2, e3) = (&feed[0], &feed[1], &feed[2]);
    let a = alice.id();
    let payload2 = || e2.payload().map(<[u8]>::to_vec);
    let case = |name, header: Vec<u8>, payload, prev, expected| Case {
        name,
        header,
        payload,
        feed: a,
        prev,
        expected,
    };
    let mut cases = Vec::new();

    // ----- format -----
    let mut oversized = e2.header_bytes().to_vec();
    oversized.resize(MAX_HEADER_BYTES + 1, 0);
    cases.push(case(
        "header-too-large",
        oversized,
        None,
        Some(e1.head()),
        Error::TooLarge {
            what: "entry header",
            max: MAX_HEADER_BYTES,
            found: MAX_HEADER_BYTES + 1,
        },
    ));
    cases.push(case(
        "empty-header",
        vec![],
        None,
        None,
        Error::Malformed {
            what: "entry header",
            detail: "empty".into(),
        },
    ));
    let mut v2 = fields_2();
    v2.version = 2;
    cases.push(case(
        "unsupported-version",
        signed(&alice, &v2),
        payload2(),
        Some(e1.head()),
        Error::UnsupportedVersion {
            what: "entry header",
            expected: 1,
            found: 2,
        },
    ));
    let mut trailing = e2.header_bytes().to_vec();
    trailing.push(0);
    cases.push(case(
        "trailing-byte",
        trailing,
        payload2(),
        Some(e1.head()),
        Error::NonCanonical {
            what: "entry header",
        },
    ));
    // seq 2 written as the over-long varint 0x82 0x00, correctly signed.
    let mut overlong = vec![1u8];
    overlong.extend_from_slice(a.as_bytes());
    overlong.extend_from_slice(&[0x82, 0x00]);
    overlong.extend_from_slice(&postcard::to_stdvec(&e2.prev()).unwrap());
    overlong.extend_from_slice(&postcard::to_stdvec(&e2.timestamp()).unwrap());
    overlong.extend_from_slice(&postcard::to_stdvec(&e2.header().fields.payload_len).unwrap());
    overlong.extend_from_slice(e2.header().fields.payload_hash.as_bytes());
    cases.push(case(
        "overlong-varint",
        signed_raw(&alice, overlong),
        payload2(),
        Some(e1.head()),
        Error::NonCanonical {
            what: "entry header",
        },
    ));
    let truncated = e2.header_bytes()[..e2.header_bytes().len() - 10].to_vec();
    cases.push(case(
        "truncated-header",
        truncated,
        None,
        Some(e1.head()),
        Error::Malformed {
            what: "entry header",
            detail: "Hit the end of buffer, expected more data".into(),
        },
    ));
    let mut bad_tag = e2.header_bytes().to_vec();
    // version(1) + author(32) + seq(1): the prev option tag.
    bad_tag[34] = 2;
    cases.push(case(
        "bad-option-tag",
        bad_tag,
        None,
        Some(e1.head()),
        Error::Malformed {
            what: "entry header",
            detail: "Found an Option discriminant that wasn't 0 or 1".into(),
        },
    ));
    let mut huge = fields_2();
    huge.payload_len = u32::try_from(MAX_PAYLOAD_BYTES + 1).unwrap();
    cases.push(case(
        "payload-length-over-limit",
        signed(&alice, &huge),
        None,
        Some(e1.head()),
        Error::TooLarge {
            what: "payload",
            max: MAX_PAYLOAD_BYTES,
            found: MAX_PAYLOAD_BYTES + 1,
        },
    ));

    // ----- shape -----
    let mut zero = e1.header().fields.clone();
    zero.seq = Seq::new(0);
    cases.push(case(
        "zero-seq",
        signed(&alice, &zero),
        None,
        None,
        Error::ZeroSeq { author: a },
    ));
    let mut first_with_prev = e1.header().fields.clone();
    first_with_prev.prev = Some(e3.id());
    cases.push(case(
        "first-entry-with-prev",
        signed(&alice, &first_with_prev),
        None,
        None,
        Error::UnexpectedPrev {
            author: a,
            found: e3.id(),
        },
    ));
    let mut no_prev = fields_2();
    no_prev.prev = None;
    cases.push(case(
        "missing-prev",
        signed(&alice, &no_prev),
        None,
        Some(e1.head()),
        Error::MissingPrev {
            author: a,
            seq: Seq::new(2),
        },
    ));

    // ----- signature -----
    let mut flipped = e2.header_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    cases.push(case(
        "flipped-signature-bit",
        flipped,
        payload2(),
        Some(e1.head()),
        Error::BadSignature {
            author: a,
            seq: Seq::new(2),
        },
    ));
    let mut tampered = fields_2();
    tampered.timestamp = Timestamp::from_millis(1);
    let mut tampered_bytes = postcard::to_stdvec(&tampered).unwrap();
    tampered_bytes.extend_from_slice(e2.header().signature.as_bytes());
    cases.push(case(
        "tampered-field",
        tampered_bytes,
        payload2(),
        Some(e1.head()),
        Error::BadSignature {
            author: a,
            seq: Seq::new(2),
        },
    ));
    cases.push(case(
        "signed-by-someone-else",
        signed(&bob, &fields_2()),
        payload2(),
        Some(e1.head()),
        Error::BadSignature {
            author: a,
            seq: Seq::new(2),
        },
    ));
    let weak = FeedId::from_bytes(small_order_point());
    let mut weak_fields = e1.header().fields.clone();
    weak_fields.author = weak;
    cases.push(Case {
        name: "weak-author-key",
        header: signed(&alice, &weak_fields),
        payload: None,
        feed: weak,
        prev: None,
        expected: Error::WeakAuthorKey { author: weak },
    });
    let invalid = FeedId::from_bytes(off_curve_point());
    let mut invalid_fields = e1.header().fields.clone();
    invalid_fields.author = invalid;
    cases.push(Case {
        name: "invalid-author-key",
        header: signed(&alice, &invalid_fields),
        payload: None,
        feed: invalid,
        prev: None,
        expected: Error::InvalidAuthorKey { author: invalid },
    });

    // ----- payload -----
    let mut longer = payload2().unwrap();
    longer.push(b'!');
    let longer_len = longer.len();
    cases.push(case(
        "payload-length-mismatch",
        e2.header_bytes().to_vec(),
        Some(longer),
        Some(e1.head()),
        Error::PayloadLengthMismatch {
            author: a,
            seq: Seq::new(2),
            expected: e2.header().fields.payload_len,
            found: longer_len,
        },
    ));
    let mut altered = payload2().unwrap();
    let end = altered.len() - 1;
    altered[end] ^= 0x20;
    let altered_hash = Hash::of(&altered);
    cases.push(case(
        "payload-hash-mismatch",
        e2.header_bytes().to_vec(),
        Some(altered),
        Some(e1.head()),
        Error::PayloadHashMismatch {
            author: a,
            seq: Seq::new(2),
            expected: e2.header().fields.payload_hash,
            found: altered_hash,
        },
    ));
    cases.push(case(
        "payload-too-large",
        e2.header_bytes().to_vec(),
        Some(vec![0u8; MAX_PAYLOAD_BYTES + 1]),
        Some(e1.head()),
        Error::TooLarge {
            what: "payload",
            max: MAX_PAYLOAD_BYTES,
            found: MAX_PAYLOAD_BYTES + 1,
        },
    ));

    // ----- link -----
    cases.push(case(
        "seq-gap",
        e3.header_bytes().to_vec(),
        None,
        Some(e1.head()),
        Error::SeqMismatch {
            author: a,
            expected: Seq::new(2),
            found: Seq::new(3),
        },
    ));
    cases.push(case(
        "not-the-first-entry",
        e2.header_bytes().to_vec(),
        None,
        None,
        Error::SeqMismatch {
            author: a,
            expected: Seq::new(1),
            found: Seq::new(2),
        },
    ));
    let other = EntryId::of_header(b"some other entry");
    let mut wrong_prev = fields_2();
    wrong_prev.prev = Some(other);
    cases.push(case(
        "prev-mismatch",
        signed(&alice, &wrong_prev),
        None,
        Some(e1.head()),
        Error::PrevMismatch {
            author: a,
            seq: Seq::new(2),
            expected: e1.id(),
            found: other,
        },
    ));
    let bobs_first = Entry::create(&bob, None, Timestamp::from_millis(0), post("bob")).unwrap();
    cases.push(case(
        "author-mismatch",
        bobs_first.header_bytes().to_vec(),
        None,
        None,
        Error::AuthorMismatch {
            expected: a,
            found: bob.id(),
        },
    ));
    cases
}
