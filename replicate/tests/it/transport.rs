//! Transport tests over in-memory pipes. Each hostile case must end in a clean refusal with a
//! clear error. The attacker is written against the wire format directly (with snow), so these
//! tests also check the spec in `docs/protocol/transport.md` independently of our handshake code.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{FeedId, Keypair};
use scrip_replicate::transport::{
    self, HANDSHAKE_DOMAIN, IDENTITY_PROOF_VERSION, IdentityProof, NOISE_PARAMS, PROLOGUE, Role,
    verify_identity_proof,
};
use scrip_replicate::transport::{Error, LocalIdentity, NetworkKey, TransportConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

fn identity(n: u8) -> LocalIdentity {
    LocalIdentity::new(Arc::new(Keypair::from_seed(&[n; 32]))).unwrap()
}

fn config() -> TransportConfig {
    TransportConfig {
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    }
}

fn pipe() -> (DuplexStream, DuplexStream) {
    duplex(256 * 1024)
}

#[tokio::test]
async fn peers_on_one_network_connect_and_exchange_messages() {
    let (a, b) = pipe();
    let (alice, bob) = (identity(1), identity(2));
    let cfg = config();
    let (dialed, accepted) = tokio::join!(
        transport::connect(a, &alice, Some(bob.id()), &cfg),
        transport::accept(b, &bob, &cfg)
    );
    let (mut dialed, mut accepted) = (dialed.unwrap(), accepted.unwrap());
    assert_eq!(dialed.remote(), bob.id());
    assert_eq!(accepted.remote(), alice.id());
    let sizes = [0usize, 1, 65_517, 65_518, 65_519, 200_000, 1024 * 1024];
    for size in sizes {
        let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (sent, got) = tokio::join!(dialed.send(&message), accepted.recv());
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap(), message, "size {size}");
    }
    let (_, mut writer) = dialed.split();
    writer.goodbye().await.unwrap();
    assert_eq!(accepted.recv().await, Ok(None));
}

#[tokio::test]
async fn wrong_network_key_is_refused_by_both_sides() {
    let (a, b) = pipe();
    let (alice, bob) = (identity(1), identity(2));
    let other = TransportConfig {
        network_key: NetworkKey::from_bytes([7; 32]),
        ..config()
    };
    let ours = config();
    let (dialed, accepted) = tokio::join!(
        transport::connect(a, &alice, None, &ours),
        transport::accept(b, &bob, &other)
    );
    let accept_err = accepted.unwrap_err();
    assert!(
        matches!(&accept_err, Error::Handshake { reason } if reason.contains("network key")),
        "{accept_err}"
    );
    // The dialer learns nothing about the listener's identity: the connection just ends.
    let dial_err = dialed.unwrap_err();
    assert!(
        matches!(dial_err, Error::Closed { .. } | Error::Io { .. }),
        "{dial_err}"
    );
}

#[tokio::test]
async fn dialing_the_wrong_identity_is_refused() {
    let (a, b) = pipe();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let cfg = config();
    let (dialed, _accepted) = tokio::join!(
        transport::connect(a, &alice, Some(carol.id()), &cfg),
        transport::accept(b, &bob, &cfg)
    );
    assert_eq!(
        dialed.unwrap_err(),
        Error::UnexpectedPeer {
            expected: carol.id(),
            found: bob.id()
        }
    );
}

/// A hand-written attacker speaking the wire format with snow directly.
mod raw {
    use super::*;

    pub struct Raw {
        pub stream: DuplexStream,
        pub cipher: snow::StatelessTransportState,
        pub hash: Vec<u8>,
        pub local_static: Vec<u8>,
        pub send_nonce: u64,
        pub recv_nonce: u64,
    }

    pub async fn write_raw(stream: &mut DuplexStream, bytes: &[u8]) {
        let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(bytes);
        stream.write_all(&frame).await.unwrap();
    }

    pub async fn read_raw(stream: &mut DuplexStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    }

    /// Runs the Noise handshake as the initiator, recording the handshake messages sent.
    pub async fn handshake(mut stream: DuplexStream, psk: [u8; 32]) -> (Raw, Vec<Vec<u8>>) {
        let builder = snow::Builder::new(NOISE_PARAMS.parse().unwrap());
        let keys = builder.generate_keypair().unwrap();
        let mut noise = snow::Builder::new(NOISE_PARAMS.parse().unwrap())
            .local_private_key(&keys.private)
            .unwrap()
            .psk(3, &psk)
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut buf = vec![0u8; 65_535];
        let mut payload = vec![0u8; 65_535];
        let mut sent = Vec::new();
        while !noise.is_handshake_finished() {
            if noise.is_my_turn() {
                let n = noise.write_message(&[], &mut buf).unwrap();
                sent.push(buf[..n].to_vec());
                write_raw(&mut stream, &buf[..n]).await;
            } else {
                let msg = read_raw(&mut stream).await;
                noise.read_message(&msg, &mut payload).unwrap();
            }
        }
        let hash = noise.get_handshake_hash().to_vec();
        let cipher = noise.into_stateless_transport_mode().unwrap();
        let raw = Raw {
            stream,
            cipher,
            hash,
            local_static: keys.public,
            send_nonce: 0,
            recv_nonce: 0,
        };
        (raw, sent)
    }

    impl Raw {
        pub async fn send_frame(&mut self, kind: u8, data: &[u8]) {
            let mut plain = vec![kind];
            plain.extend_from_slice(data);
            let mut out = vec![0u8; 65_535];
            let n = self
                .cipher
                .write_message(self.send_nonce, &plain, &mut out)
                .unwrap();
            self.send_nonce += 1;
            write_raw(&mut self.stream, &out[..n]).await;
        }

        pub async fn send_message(&mut self, message: &[u8]) {
            self.send_frame(1, message).await;
        }

        pub async fn recv_message(&mut self) -> Vec<u8> {
            let frame = read_raw(&mut self.stream).await;
            let mut plain = vec![0u8; 65_535];
            let n = self
                .cipher
                .read_message(self.recv_nonce, &frame, &mut plain)
                .unwrap();
            self.recv_nonce += 1;
            assert_eq!(plain[0], 1);
            plain[1..n].to_vec()
        }

        /// A correct identity proof for `key`, claiming `claimed`.
        pub fn proof(&self, key: &Keypair, claimed: FeedId) -> IdentityProof {
            let mut signed = self.hash.clone();
            signed.push(0); // initiator
            signed.extend_from_slice(&self.local_static);
            IdentityProof {
                version: IDENTITY_PROOF_VERSION,
                feed: claimed,
                signature: key.sign(HANDSHAKE_DOMAIN, &signed),
            }
        }
    }
}

#[tokio::test]
async fn spoofed_identity_is_refused() {
    let (a, b) = pipe();
    let bob = identity(2);
    let mallory = Keypair::from_seed(&[6; 32]);
    let alice = Keypair::from_seed(&[1; 32]);
    let cfg = config();
    let attacker = async move {
        let (mut raw, _) = raw::handshake(a, *NetworkKey::default_network().as_bytes()).await;
        // Signed by mallory, claiming to be alice.
        let proof = raw.proof(&mallory, alice.id());
        raw.send_message(&postcard::to_stdvec(&proof).unwrap())
            .await;
        raw
    };
    let (_raw, accepted) = tokio::join!(attacker, transport::accept(b, &bob, &cfg));
    let err = accepted.unwrap_err();
    assert!(matches!(err, Error::BadIdentityProof { .. }), "{err}");
}

#[tokio::test]
async fn honest_raw_client_is_accepted() {
    // Control for the test above: the same attacker code with a truthful proof gets in, so the
    // refusal above is caused by the forgery and nothing else.
    let (a, b) = pipe();
    let bob = identity(2);
    let alice = Keypair::from_seed(&[1; 32]);
    let cfg = config();
    let client = async move {
        let (mut raw, _) = raw::handshake(a, *NetworkKey::default_network().as_bytes()).await;
        let proof = raw.proof(&alice, alice.id());
        raw.send_message(&postcard::to_stdvec(&proof).unwrap())
            .await;
        raw
    };
    let (_raw, accepted) = tokio::join!(client, transport::accept(b, &bob, &cfg));
    assert_eq!(
        accepted.unwrap().remote(),
        Keypair::from_seed(&[1; 32]).id()
    );
}

#[test]
fn identity_proofs_bind_session_role_and_key() {
    let alice = Keypair::from_seed(&[1; 32]);
    let hash = [9u8; 32];
    let noise_static = [4u8; 32];
    let mut signed = hash.to_vec();
    signed.push(0);
    signed.extend_from_slice(&noise_static);
    let proof = IdentityProof {
        version: IDENTITY_PROOF_VERSION,
        feed: alice.id(),
        signature: alice.sign(HANDSHAKE_DOMAIN, &signed),
    };
    verify_identity_proof(&proof, &hash, Role::Initiator, &noise_static).unwrap();
    // Another session, the other role (reflection), another Noise key, another version.
    assert!(verify_identity_proof(&proof, &[8u8; 32], Role::Initiator, &noise_static).is_err());
    assert!(verify_identity_proof(&proof, &hash, Role::Responder, &noise_static).is_err());
    assert!(verify_identity_proof(&proof, &hash, Role::Initiator, &[5u8; 32]).is_err());
    let mut wrong_version = proof.clone();
    wrong_version.version = 2;
    assert!(verify_identity_proof(&wrong_version, &hash, Role::Initiator, &noise_static).is_err());
}

#[tokio::test]
async fn truncated_handshake_is_refused() {
    let (mut a, b) = pipe();
    let bob = identity(2);
    // Half of a 32-byte first message, then the connection closes.
    a.write_all(&[0, 32]).await.unwrap();
    a.write_all(&[1u8; 16]).await.unwrap();
    drop(a);
    let err = transport::accept(b, &bob, &config()).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err}");
}

#[tokio::test]
async fn garbage_bytes_are_refused() {
    for seed in 0u8..8 {
        let (mut a, b) = pipe();
        let bob = identity(2);
        let garbage: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> (seed % 24)) as u8)
            .collect();
        let writer = tokio::spawn(async move {
            let _ = a.write_all(&garbage).await;
            // Keep the pipe open a moment, then hang up.
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        let err = transport::accept(b, &bob, &config()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Handshake { .. } | Error::BadFrame { .. } | Error::Closed { .. }
            ),
            "{err}"
        );
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn oversized_message_is_refused_before_it_is_read_whole() {
    let (a, b) = pipe();
    let bob = identity(2);
    let alice = Keypair::from_seed(&[1; 32]);
    let small = TransportConfig {
        max_message_bytes: 100_000,
        ..config()
    };
    let accept = transport::accept(b, &bob, &small);
    let attacker = async move {
        let (mut raw, _) = raw::handshake(a, *NetworkKey::default_network().as_bytes()).await;
        let proof = raw.proof(&alice, alice.id());
        raw.send_message(&postcard::to_stdvec(&proof).unwrap())
            .await;
        let _their_proof = raw.recv_message().await;
        raw
    };
    let (raw, accepted) = tokio::join!(attacker, accept);
    let mut raw = raw;
    let mut stream = accepted.unwrap();
    // Two full chunks marked "more" exceed 100,000 bytes before any "last" chunk.
    let chunk = vec![0u8; 65_000];
    let sender = async {
        raw.send_frame(0, &chunk).await;
        raw.send_frame(0, &chunk).await;
        raw
    };
    let (_raw, got) = tokio::join!(sender, stream.recv());
    assert_eq!(
        got,
        Err(Error::MessageTooLarge {
            max: 100_000,
            found: 130_000
        })
    );
}

#[tokio::test]
async fn sending_an_oversized_message_is_refused() {
    let (a, b) = pipe();
    let (alice, bob) = (identity(1), identity(2));
    let cfg = TransportConfig {
        max_message_bytes: 1000,
        ..config()
    };
    let (dialed, _accepted) = tokio::join!(
        transport::connect(a, &alice, None, &cfg),
        transport::accept(b, &bob, &cfg)
    );
    let mut dialed = dialed.unwrap();
    assert_eq!(
        dialed.send(&[0u8; 1001]).await,
        Err(Error::MessageTooLarge {
            max: 1000,
            found: 1001
        })
    );
}

#[tokio::test]
async fn frame_shorter_than_a_tag_is_refused() {
    let (a, b) = pipe();
    let bob = identity(2);
    let alice = Keypair::from_seed(&[1; 32]);
    let cfg = config();
    let attacker = async move {
        let (mut raw, _) = raw::handshake(a, *NetworkKey::default_network().as_bytes()).await;
        let proof = raw.proof(&alice, alice.id());
        raw.send_message(&postcard::to_stdvec(&proof).unwrap())
            .await;
        let _ = raw.recv_message().await;
        raw::write_raw(&mut raw.stream, &[1, 2, 3]).await;
        raw
    };
    let (_raw, accepted) = tokio::join!(attacker, async {
        let mut stream = transport::accept(b, &bob, &cfg).await.unwrap();
        stream.recv().await
    });
    assert!(
        matches!(accepted, Err(Error::BadFrame { .. })),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn replayed_handshake_messages_are_refused() {
    // Record a legitimate client's handshake messages, then replay them to a fresh listener.
    let bob = identity(2);
    let (a, b) = pipe();
    let cfg = config();
    let ((_, recorded), _) = tokio::join!(
        raw::handshake(a, *NetworkKey::default_network().as_bytes()),
        transport::accept(b, &bob, &cfg)
    );
    assert_eq!(recorded.len(), 2, "the initiator sends messages 1 and 3");

    let (mut a, b) = pipe();
    let replay = async move {
        raw::write_raw(&mut a, &recorded[0]).await;
        let _message_2 = raw::read_raw(&mut a).await;
        raw::write_raw(&mut a, &recorded[1]).await;
        a
    };
    let (_a, accepted) = tokio::join!(replay, transport::accept(b, &bob, &cfg));
    let err = accepted.unwrap_err();
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn slow_loris_is_cut_off_by_the_handshake_timeout() {
    let (mut a, b) = pipe();
    let bob = identity(2);
    let cfg = TransportConfig {
        handshake_timeout: Duration::from_secs(3),
        ..config()
    };
    let trickle = tokio::spawn(async move {
        // One byte every second, forever.
        for byte in [0u8, 32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] {
            if a.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let err = transport::accept(b, &bob, &cfg).await.unwrap_err();
    assert_eq!(
        err,
        Error::Timeout {
            what: "the handshake",
            after: Duration::from_secs(3)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn silent_peer_is_cut_off_by_the_idle_timeout() {
    let (a, b) = pipe();
    let (alice, bob) = (identity(1), identity(2));
    let cfg = TransportConfig {
        idle_timeout: Duration::from_secs(30),
        ..config()
    };
    let (dialed, accepted) = tokio::join!(
        transport::connect(a, &alice, None, &cfg),
        transport::accept(b, &bob, &cfg)
    );
    let _dialed = dialed.unwrap();
    let mut accepted = accepted.unwrap();
    assert_eq!(
        accepted.recv().await,
        Err(Error::Timeout {
            what: "waiting for the peer",
            after: Duration::from_secs(30)
        })
    );
}

#[test]
fn network_key_text_form_is_strict() {
    let key = NetworkKey::default_network();
    assert_eq!(key.to_string().parse::<NetworkKey>().unwrap(), key);
    for bad in ["", "00", &"g".repeat(64), &"A".repeat(64), &"0".repeat(65)] {
        assert!(bad.parse::<NetworkKey>().is_err(), "accepted {bad:?}");
    }
    assert!(!format!("{key:?}").contains(&key.to_string()));
}
