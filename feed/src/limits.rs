//! Every size bound of the feed format, as named constants.
//!
//! Bounds are enforced both when encoding (so we never produce what peers must refuse) and when
//! decoding (so a peer cannot make us allocate or store more than this).

/// Largest encoded payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Largest postcard varint encoding of a `u64`.
const MAX_U64_VARINT: usize = 10;
/// Largest postcard varint encoding of a `u32`.
const MAX_U32_VARINT: usize = 5;

/// Largest signed entry header, in bytes: version (1) + author (32) + seq (varint u64) +
/// prev (1 tag + 32) + timestamp (varint u64) + payload length (varint u32) + payload hash (32) +
/// signature (64).
pub const MAX_HEADER_BYTES: usize =
    1 + 32 + MAX_U64_VARINT + (1 + 32) + MAX_U64_VARINT + MAX_U32_VARINT + 32 + 64;

/// Longest nickname, in bytes of UTF-8.
pub const MAX_NICK_BYTES: usize = 64;

/// Longest `Pub` address (`host:port`), in bytes.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// Longest `App` kind tag, in bytes.
pub const MAX_APP_KIND_BYTES: usize = 32;

/// Largest encoded fork proof without evidence (version 1): version (1) + two length-prefixed
/// headers.
pub const MAX_FORK_PROOF_V1_BYTES: usize = 1 + 2 * (3 + MAX_HEADER_BYTES);

/// Most bytes of evidence (attachment bytes, kinds not counted) one half of a fork proof
/// carries: one attachment's worth, which holds a certificate of 64 notaries.
pub const MAX_FORK_EVIDENCE_BYTES: usize = MAX_ATTACHMENT_BYTES;

/// Largest encoded fork proof with evidence (version 2): the version 1 form plus, per half, a
/// list length (1) and up to [`MAX_ATTACHMENTS_PER_ENTRY`] items of a length-prefixed kind
/// (1 + 32) and a length prefix (3), with [`MAX_FORK_EVIDENCE_BYTES`] of bytes in all.
pub const MAX_FORK_PROOF_BYTES: usize = MAX_FORK_PROOF_V1_BYTES
    + 2 * (1
        + MAX_ATTACHMENTS_PER_ENTRY * (1 + MAX_ATTACHMENT_KIND_BYTES + 3)
        + MAX_FORK_EVIDENCE_BYTES);

/// Largest attachment (opaque bytes kept with an entry, e.g. a notary certificate: 64 votes of
/// 96 bytes fit).
pub const MAX_ATTACHMENT_BYTES: usize = 8 * 1024;

/// Longest attachment kind tag, in bytes.
pub const MAX_ATTACHMENT_KIND_BYTES: usize = 32;

/// Most attachments (of distinct kinds) per entry.
pub const MAX_ATTACHMENTS_PER_ENTRY: usize = 4;

/// Largest key file, in bytes (a key file is three short lines).
pub const MAX_KEY_FILE_BYTES: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bound_is_the_sum_of_its_fields() {
        assert_eq!(MAX_HEADER_BYTES, 187);
        // The bounds feed.md §9 states.
        assert_eq!(MAX_FORK_PROOF_V1_BYTES, 381);
        assert_eq!(MAX_FORK_PROOF_BYTES, 17_055);
        // A fork-proof header is length-prefixed with a varint; 187 needs two bytes, three is safe.
        const { assert!(MAX_HEADER_BYTES < 1 << 14) };
    }
}
