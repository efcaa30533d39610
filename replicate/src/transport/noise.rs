//! The encrypted, mutually authenticated transport: Noise `XXpsk3` over any byte stream, with the
//! Noise static keys bound to the peers' ed25519 feed identities, and length-prefixed, chunked
//! framing. Specified in `docs/protocol/transport.md`.
//!
//! 1. **Handshake.** `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s` with prologue [`PROLOGUE`] and the
//!    32-byte network key as the PSK: a peer of another network cannot complete it. Each
//!    handshake message travels as `len u16 BE ‖ bytes`.
//! 2. **Identity proofs.** Each side then sends, encrypted, an [`IdentityProof`]: its feed id and
//!    an ed25519 signature (domain `scrip/handshake/v1`) over the final handshake hash, its role
//!    and its Noise static key. The receiver checks it against the static key Noise
//!    authenticated, so a proof cannot be replayed into another session or reflected back.
//! 3. **Frames.** Every later Noise message is `len u16 BE ‖ ciphertext`, whose plaintext is
//!    `kind u8 ‖ data`: kind 0 = a chunk with more to come, 1 = the last chunk of a message, 2 = an
//!    authenticated goodbye. Messages are reassembled up to [`MAX_MESSAGE_BYTES`].
//!
//! Everything here is generic over `AsyncRead + AsyncWrite`, so it runs over TCP, in-memory pipes
//! and turmoil's simulated network alike.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{AuthorKey, FeedId, Keypair, Signature};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use zeroize::Zeroizing;

use super::error::{Error, Result};
use crate::limits::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, MAX_FRAME_DATA, MAX_FRAME_PLAINTEXT,
    MAX_MESSAGE_BYTES, NOISE_MAX_MESSAGE, NOISE_TAG,
};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue: both sides must agree on it, so it names the transport and its version.
pub const PROLOGUE: &[u8] = b"scrip/transport/v1";
/// The signature domain of identity proofs.
pub const HANDSHAKE_DOMAIN: &[u8] = b"scrip/handshake/v1";
/// The identity proof format version.
pub const IDENTITY_PROOF_VERSION: u8 = 1;

const FRAME_MORE: u8 = 0;
const FRAME_LAST: u8 = 1;
const FRAME_GOODBYE: u8 = 2;

/// A network key: the Noise PSK. Peers with different keys cannot connect to each other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NetworkKey([u8; 32]);

impl NetworkKey {
    /// The default network: blake3 of `"scrip default network v1"`.
    pub fn default_network() -> NetworkKey {
        NetworkKey(*blake3::hash(b"scrip default network v1").as_bytes())
    }

    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> NetworkKey {
        NetworkKey(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Default for NetworkKey {
    fn default() -> Self {
        NetworkKey::default_network()
    }
}

impl fmt::Display for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret in the default network, but possibly private in others.
        f.write_str("NetworkKey(<redacted>)")
    }
}

impl FromStr for NetworkKey {
    type Err = String;

    /// Parses 64 lowercase hex digits.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let valid = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err("a network key is 64 lowercase hex digits".into());
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let digits = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            bytes[i] = u8::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
        }
        Ok(NetworkKey(bytes))
    }
}

/// Transport settings.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The network key (Noise PSK).
    pub network_key: NetworkKey,
    /// Time allowed for the handshake and identity proofs.
    pub handshake_timeout: Duration,
    /// Time a connection may stay silent before reads fail.
    pub idle_timeout: Duration,
    /// Largest message sent or accepted.
    pub max_message_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            network_key: NetworkKey::default_network(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

/// A node's identity on the wire: its feed key, and the X25519 Noise static key it proves it
/// owns. The Noise key is generated per [`LocalIdentity`] and never stored.
pub struct LocalIdentity {
    keypair: Arc<Keypair>,
    noise_private: Zeroizing<Vec<u8>>,
    noise_public: Vec<u8>,
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("feed", &self.keypair.id())
            .finish_non_exhaustive()
    }
}

fn noise_params() -> Result<snow::params::NoiseParams> {
    NOISE_PARAMS.parse().map_err(|e| Error::Handshake {
        reason: format!("noise parameters: {e:?}"),
    })
}

impl LocalIdentity {
    /// A new Noise static key for `keypair`.
    pub fn new(keypair: Arc<Keypair>) -> Result<LocalIdentity> {
        let noise = snow::Builder::new(noise_params()?)
            .generate_keypair()
            .map_err(|e| Error::Handshake {
                reason: format!("generating a Noise key: {e}"),
            })?;
        Ok(LocalIdentity {
            keypair,
            noise_private: Zeroizing::new(noise.private),
            noise_public: noise.public,
        })
    }

    /// The feed id this identity proves.
    pub fn id(&self) -> FeedId {
        self.keypair.id()
    }
}

/// Proof that the sender of a Noise session owns a feed key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdentityProof {
    /// [`IDENTITY_PROOF_VERSION`].
    pub version: u8,
    /// The sender's feed id.
    pub feed: FeedId,
    /// Signature (domain [`HANDSHAKE_DOMAIN`]) over `handshake hash ‖ role ‖ noise static key`.
    pub signature: Signature,
}

/// Who started the connection; part of the signed identity proof so it cannot be reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The dialer.
    Initiator,
    /// The listener.
    Responder,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Initiator => 0,
            Role::Responder => 1,
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}

fn proof_message(handshake_hash: &[u8], role: Role, noise_static: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(handshake_hash.len() + 1 + noise_static.len());
    message.extend_from_slice(handshake_hash);
    message.push(role.byte());
    message.extend_from_slice(noise_static);
    message
}

/// Checks a received identity proof.
///
/// Rules: version is [`IDENTITY_PROOF_VERSION`]; the feed key is valid and not weak; the
/// signature verifies over this session's handshake hash, the sender's role and the Noise static
/// key the handshake authenticated.
pub fn verify_identity_proof(
    proof: &IdentityProof,
    handshake_hash: &[u8],
    sender_role: Role,
    sender_noise_static: &[u8],
) -> Result<()> {
    if proof.version != IDENTITY_PROOF_VERSION {
        return Err(Error::BadIdentityProof {
            reason: format!("unknown version {}", proof.version),
        });
    }
    let key = AuthorKey::new(&proof.feed).map_err(|e| Error::BadIdentityProof {
        reason: e.to_string(),
    })?;
    let message = proof_message(handshake_hash, sender_role, sender_noise_static);
    if !key.verify(HANDSHAKE_DOMAIN, &message, &proof.signature) {
        return Err(Error::BadIdentityProof {
            reason: "the signature does not verify for this session".into(),
        });
    }
    Ok(())
}

fn handshake_error(e: snow::Error, during: &str) -> Error {
    let reason = match e {
        snow::Error::Decrypt => {
            format!("could not decrypt {during} (the peer is probably on another network key)")
        }
        other => format!("{during}: {other}"),
    };
    Error::Handshake { reason }
}

async fn write_raw<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| Error::MessageTooLarge {
        max: NOISE_MAX_MESSAGE,
        found: bytes.len(),
    })?;
    let mut frame = Vec::with_capacity(2 + bytes.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    writer
        .write_all(&frame)
        .await
        .map_err(|e| Error::io("writing to the peer", &e))?;
    writer
        .flush()
        .await
        .map_err(|e| Error::io("writing to the peer", &e))
}

async fn read_raw<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    during: &'static str,
) -> Result<()> {
    let mut len = [0u8; 2];
    reader
        .read_exact(&mut len)
        .await
        .map_err(|e| Error::io(during, &e))?;
    let len = usize::from(u16::from_be_bytes(len));
    if len < NOISE_TAG {
        return Err(Error::BadFrame {
            reason: format!("a {len}-byte Noise message is too short"),
        });
    }
    buf.resize(len, 0);
    reader
        .read_exact(buf)
        .await
        .map_err(|e| Error::io(during, &e))?;
    Ok(())
}

/// Connects as the dialer over `stream`; fails unless the peer is `expected` (when given).
pub async fn connect<S>(
    stream: S,
    local: &LocalIdentity,
    expected: Option<FeedId>,
    config: &TransportConfig,
) -> Result<SecureStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = handshake(stream, local, Role::Initiator, config);
    let secure = tokio::time::timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| Error::Timeout {
            what: "the handshake",
            after: config.handshake_timeout,
        })??;
    if let Some(expected) = expected
        && secure.remote != expected
    {
        return Err(Error::UnexpectedPeer {
            expected,
            found: secure.remote,
        });
    }
    Ok(secure)
}

/// Accepts a connection as the listener over `stream`.
pub async fn accept<S>(
    stream: S,
    local: &LocalIdentity,
    config: &TransportConfig,
) -> Result<SecureStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = handshake(stream, local, Role::Responder, config);
    tokio::time::timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| Error::Timeout {
            what: "the handshake",
            after: config.handshake_timeout,
        })?
}

// Long because: the three Noise messages and both identity proofs in protocol order (transport.md
// sections 1 and 2).
async fn handshake<S>(
    mut stream: S,
    local: &LocalIdentity,
    role: Role,
    config: &TransportConfig,
) -> Result<SecureStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let psk = Zeroizing::new(*config.network_key.as_bytes());
    let builder = snow::Builder::new(noise_params()?)
        .local_private_key(&local.noise_private)
        .and_then(|b| b.psk(3, &psk))
        .and_then(|b| b.prologue(PROLOGUE))
        .map_err(|e| handshake_error(e, "setting up"))?;
    let mut noise = match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
    .map_err(|e| handshake_error(e, "setting up"))?;

    let mut message = vec![0u8; NOISE_MAX_MESSAGE];
    let mut payload = vec![0u8; NOISE_MAX_MESSAGE];
    let mut received = Vec::new();
    let during = "during the handshake (is it on the same network key?)";
    while !noise.is_handshake_finished() {
        if noise.is_my_turn() {
            let len = noise
                .write_message(&[], &mut message)
                .map_err(|e| handshake_error(e, "writing a handshake message"))?;
            write_raw(&mut stream, &message[..len]).await?;
        } else {
            read_raw(&mut stream, &mut received, during).await?;
            noise
                .read_message(&received, &mut payload)
                .map_err(|e| handshake_error(e, "the peer's handshake message"))?;
        }
    }

    let handshake_hash = noise.get_handshake_hash().to_vec();
    let remote_static = noise
        .get_remote_static()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::Handshake {
            reason: "the peer sent no static key".into(),
        })?;
    let transport = noise
        .into_stateless_transport_mode()
        .map_err(|e| handshake_error(e, "finishing"))?;
    let cipher = Arc::new(transport);
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = SecureReader {
        inner: read_half,
        cipher: Arc::clone(&cipher),
        nonce: 0,
        frame: Vec::new(),
        plain: vec![0u8; MAX_FRAME_PLAINTEXT],
        idle_timeout: config.idle_timeout,
        max_message_bytes: config.max_message_bytes,
    };
    let mut writer = SecureWriter {
        inner: write_half,
        cipher,
        nonce: 0,
        out: vec![0u8; 2 + NOISE_MAX_MESSAGE],
        max_message_bytes: config.max_message_bytes,
    };

    // Identity proofs, both ways.
    let signed = proof_message(&handshake_hash, role, &local.noise_public);
    let proof = IdentityProof {
        version: IDENTITY_PROOF_VERSION,
        feed: local.keypair.id(),
        signature: local.keypair.sign(HANDSHAKE_DOMAIN, &signed),
    };
    let proof_bytes = postcard::to_stdvec(&proof).map_err(|e| Error::Handshake {
        reason: format!("encoding the identity proof: {e}"),
    })?;
    writer.send(&proof_bytes).await?;
    let theirs = reader
        .recv_during(during)
        .await?
        .ok_or(Error::Closed { during })?;
    let theirs: IdentityProof = scrip_feed::codec::decode_canonical("identity proof", &theirs)
        .map_err(|e| Error::BadIdentityProof {
            reason: e.to_string(),
        })?;
    verify_identity_proof(&theirs, &handshake_hash, role.other(), &remote_static)?;
    Ok(SecureStream {
        reader,
        writer,
        remote: theirs.feed,
    })
}

/// An authenticated, encrypted connection to a peer.
pub struct SecureStream<S> {
    reader: SecureReader<ReadHalf<S>>,
    writer: SecureWriter<WriteHalf<S>>,
    remote: FeedId,
}

impl<S> fmt::Debug for SecureStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureStream")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite> SecureStream<S> {
    /// The peer's proven feed id.
    pub fn remote(&self) -> FeedId {
        self.remote
    }

    /// Splits into a reading and a writing half (usable from different tasks).
    pub fn split(self) -> (SecureReader<ReadHalf<S>>, SecureWriter<WriteHalf<S>>) {
        (self.reader, self.writer)
    }

    /// Sends one message (see [`SecureWriter::send`]).
    pub async fn send(&mut self, message: &[u8]) -> Result<()> {
        self.writer.send(message).await
    }

    /// Receives one message (see [`SecureReader::recv`]).
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        self.reader.recv().await
    }

    /// Says an authenticated goodbye and closes (see [`SecureWriter::goodbye`]).
    pub async fn goodbye(&mut self) -> Result<()> {
        self.writer.goodbye().await
    }
}

/// The receiving half of a [`SecureStream`].
pub struct SecureReader<R> {
    inner: R,
    cipher: Arc<snow::StatelessTransportState>,
    nonce: u64,
    frame: Vec<u8>,
    plain: Vec<u8>,
    idle_timeout: Duration,
    max_message_bytes: usize,
}

impl<R> fmt::Debug for SecureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureReader").finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> SecureReader<R> {
    /// Receives the next whole message. `Ok(None)` means the peer said an authenticated goodbye.
    ///
    /// Errors: nothing arrived within the idle timeout ([`Error::Timeout`]); the connection ended
    /// without a goodbye ([`Error::Closed`]); a frame does not decrypt or is malformed
    /// ([`Error::BadFrame`]); the message would exceed the size limit
    /// ([`Error::MessageTooLarge`], detected before it is fully read).
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        self.recv_during("while reading a message").await
    }

    async fn recv_during(&mut self, during: &'static str) -> Result<Option<Vec<u8>>> {
        let mut message = Vec::new();
        loop {
            let read = read_raw(&mut self.inner, &mut self.frame, during);
            tokio::time::timeout(self.idle_timeout, read)
                .await
                .map_err(|_| Error::Timeout {
                    what: "waiting for the peer",
                    after: self.idle_timeout,
                })??;
            let len = self
                .cipher
                .read_message(self.nonce, &self.frame, &mut self.plain)
                .map_err(|_| Error::BadFrame {
                    reason: "a frame does not decrypt (corrupted, replayed or reordered)".into(),
                })?;
            self.nonce = self.nonce.checked_add(1).ok_or_else(|| Error::BadFrame {
                reason: "nonce exhausted".into(),
            })?;
            let Some((&kind, data)) = self.plain[..len].split_first() else {
                return Err(Error::BadFrame {
                    reason: "an empty frame".into(),
                });
            };
            match kind {
                FRAME_GOODBYE if data.is_empty() && message.is_empty() => return Ok(None),
                FRAME_MORE | FRAME_LAST => {
                    let total = message.len() + data.len();
                    if total > self.max_message_bytes {
                        return Err(Error::MessageTooLarge {
                            max: self.max_message_bytes,
                            found: total,
                        });
                    }
                    message.extend_from_slice(data);
                    if kind == FRAME_LAST {
                        return Ok(Some(message));
                    }
                }
                other => {
                    return Err(Error::BadFrame {
                        reason: format!("unknown frame kind {other}"),
                    });
                }
            }
        }
    }
}

/// The sending half of a [`SecureStream`].
pub struct SecureWriter<W> {
    inner: W,
    cipher: Arc<snow::StatelessTransportState>,
    nonce: u64,
    out: Vec<u8>,
    max_message_bytes: usize,
}

impl<W> fmt::Debug for SecureWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> SecureWriter<W> {
    /// Sends one message, in as many frames as it needs.
    ///
    /// Errors: the message exceeds the size limit ([`Error::MessageTooLarge`], nothing is sent);
    /// writing fails ([`Error::Io`]).
    pub async fn send(&mut self, message: &[u8]) -> Result<()> {
        if message.len() > self.max_message_bytes {
            return Err(Error::MessageTooLarge {
                max: self.max_message_bytes,
                found: message.len(),
            });
        }
        let mut chunks = message.chunks(MAX_FRAME_DATA).peekable();
        if chunks.peek().is_none() {
            return self.send_frame(FRAME_LAST, &[]).await;
        }
        while let Some(chunk) = chunks.next() {
            let kind = if chunks.peek().is_some() {
                FRAME_MORE
            } else {
                FRAME_LAST
            };
            self.send_frame(kind, chunk).await?;
        }
        Ok(())
    }

    /// Says an authenticated goodbye: the peer's reader returns `Ok(None)`.
    pub async fn goodbye(&mut self) -> Result<()> {
        self.send_frame(FRAME_GOODBYE, &[]).await?;
        self.inner
            .shutdown()
            .await
            .map_err(|e| Error::io("closing the connection", &e))
    }

    async fn send_frame(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        let mut plain = Vec::with_capacity(1 + data.len());
        plain.push(kind);
        plain.extend_from_slice(data);
        // Length prefix and ciphertext go out in one write.
        let len = self
            .cipher
            .write_message(self.nonce, &plain, &mut self.out[2..])
            .map_err(|e| Error::BadFrame {
                reason: format!("encrypting: {e}"),
            })?;
        self.nonce = self.nonce.checked_add(1).ok_or_else(|| Error::BadFrame {
            reason: "nonce exhausted".into(),
        })?;
        let len_prefix = u16::try_from(len).map_err(|_| Error::MessageTooLarge {
            max: NOISE_MAX_MESSAGE,
            found: len,
        })?;
        self.out[..2].copy_from_slice(&len_prefix.to_be_bytes());
        self.inner
            .write_all(&self.out[..2 + len])
            .await
            .map_err(|e| Error::io("writing to the peer", &e))?;
        self.inner
            .flush()
            .await
            .map_err(|e| Error::io("writing to the peer", &e))
    }
}
