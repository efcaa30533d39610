//! One test per validation rule: each offers an entry that breaks exactly that rule and checks
//! the precise error (with its expected and found data). The same cases are the invalid test
//! vectors in `docs/protocol/vectors/feed.json`.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::cases::{self, Case};
use scrip_feed::Error;

fn run(name: &str) {
    let all = cases::all();
    let case: &Case = all.iter().find(|c| c.name == name).unwrap();
    let got = cases::check(&case.header, case.payload.clone(), &case.feed, case.prev);
    match (&got, &case.expected) {
        // The decoder's wording is not ours to freeze; the rule is.
        (Err(Error::Malformed { what: got, .. }), Error::Malformed { what: want, .. }) => {
            assert_eq!(got, want);
        }
        _ => assert_eq!(got, Err(case.expected.clone()), "case {name}"),
    }
}

macro_rules! rules {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { run($name); })*

        #[test]
        fn every_case_has_a_test() {
            let tested = [$($name),*];
            for case in cases::all() {
                assert!(tested.contains(&case.name), "no test for case {}", case.name);
            }
        }
    };
}

rules! {
    header_larger_than_the_limit_is_refused => "header-too-large",
    empty_header_is_malformed => "empty-header",
    unknown_version_is_refused => "unsupported-version",
    trailing_byte_is_not_canonical => "trailing-byte",
    overlong_varint_is_not_canonical => "overlong-varint",
    truncated_header_is_malformed => "truncated-header",
    bad_option_tag_is_malformed => "bad-option-tag",
    payload_length_over_the_limit_is_refused => "payload-length-over-limit",
    seq_zero_is_refused => "zero-seq",
    first_entry_with_prev_is_refused => "first-entry-with-prev",
    later_entry_without_prev_is_refused => "missing-prev",
    flipped_signature_bit_is_refused => "flipped-signature-bit",
    field_changed_after_signing_is_refused => "tampered-field",
    signature_by_another_key_is_refused => "signed-by-someone-else",
    weak_author_key_is_refused => "weak-author-key",
    author_key_off_the_curve_is_refused => "invalid-author-key",
    payload_of_wrong_length_is_refused => "payload-length-mismatch",
    payload_with_wrong_hash_is_refused => "payload-hash-mismatch",
    payload_larger_than_the_limit_is_refused => "payload-too-large",
    gap_in_seq_is_refused => "seq-gap",
    feed_must_start_at_seq_one => "not-the-first-entry",
    prev_not_the_previous_entry_is_refused => "prev-mismatch",
    entry_by_another_author_is_refused => "author-mismatch",
}

#[test]
fn the_valid_base_feed_validates() {
    let feed = cases::alice_feed();
    let mut head = None;
    for entry in &feed {
        cases::check(
            entry.header_bytes(),
            entry.payload().map(<[u8]>::to_vec),
            &cases::alice().id(),
            head,
        )
        .unwrap();
        head = Some(entry.head());
    }
}
