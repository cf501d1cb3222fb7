//! Coin-flip wire messages and their signed parts.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use crate::fraud::FraudProof;
use crate::hash::Hash;
use crate::identity::{Domain, Keypair, PublicKey, Signature, Verifier};

/// Identifies one coin flip (e.g. derived from the chain's challenge id). Every signed
/// part names it, so nothing signed for one session counts in another.
pub type SessionId = [u8; 32];

/// The largest committee the wire format accepts.
pub const MAX_COMMITTEE: usize = 256;

/// `y = H(x)`, signed by its author for one session and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCommit {
    /// The coin flip.
    pub session: SessionId,
    /// The retry round.
    pub round: u32,
    /// The author.
    pub signer: PublicKey,
    /// `H(x)`.
    pub y: Hash,
    /// The author's signature (domain `commit`).
    pub sig: Signature,
}

/// The secret `x` behind a commit, signed by its author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReveal {
    /// The coin flip.
    pub session: SessionId,
    /// The retry round.
    pub round: u32,
    /// The author.
    pub signer: PublicKey,
    /// The 32 random bytes.
    pub x: [u8; 32],
    /// The author's signature (domain `reveal`).
    pub sig: Signature,
}

/// Which half of the confirmation exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmKind {
    /// "I know R": carries `H(R || 1)`.
    Ping,
    /// "I know it too": carries `H(R || 2)`.
    Pong,
}

/// A signed claim to know the result `R` of the round whose commits hash to
/// `commits_digest`. Binding the commit set makes a divergent-result fraud proof
/// unforgeable: only the transcript with exactly those commits can be used against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedConfirm {
    /// Ping or pong.
    pub kind: ConfirmKind,
    /// The coin flip.
    pub session: SessionId,
    /// The retry round.
    pub round: u32,
    /// Digest of the round's commit set ([`crate::coinflip::Transcript::commits_digest`]).
    pub commits_digest: Hash,
    /// `H(R || 1)` for a ping, `H(R || 2)` for a pong.
    pub value: Hash,
    /// The author.
    pub signer: PublicKey,
    /// The author's signature (domain `ping` or `pong`).
    pub sig: Signature,
}

/// One member's commit as seen by the echoing peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoEntry {
    /// Committee index of the commit's author.
    pub member: u16,
    /// The commit value the echoer holds.
    pub y: Hash,
    /// The author's signature over it.
    pub sig: Signature,
}

/// A coin-flip message between committee members.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Msg {
    /// My commit.
    Commit(SignedCommit),
    /// The commit set I hold for the round: its members, its digest
    /// ([`crate::coinflip::commits_digest`]) and — in my first echo of the round — every
    /// commit with its author's signature (the evidence that exposes an equivocator).
    /// Later echoes, after the member set shrank, carry only members and digest.
    Echo {
        /// The coin flip.
        session: SessionId,
        /// The retry round.
        round: u32,
        /// Committee indices of the active members, ascending.
        members: Vec<u16>,
        /// Digest of those members' commits.
        digest: Hash,
        /// Empty, or one entry per member in the same order.
        commits: Vec<EchoEntry>,
    },
    /// A reveal (mine, or one relayed on request).
    Reveal(SignedReveal),
    /// Please send me the reveals you hold of these members for this round.
    RevealRequest {
        /// The coin flip.
        session: SessionId,
        /// The retry round.
        round: u32,
        /// Committee indices whose reveal I lack, ascending.
        missing: Vec<u16>,
    },
    /// Please send me the fraud proofs you hold (our member sets differ).
    ProofRequest {
        /// The coin flip.
        session: SessionId,
    },
    /// Confirmation ping or pong.
    Confirm(SignedConfirm),
    /// A fraud proof against a member: exclude it.
    Fraud(Box<FraudProof>),
}

impl Msg {
    /// The session this message belongs to.
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            Msg::Commit(c) => Some(&c.session),
            Msg::Echo { session, .. }
            | Msg::RevealRequest { session, .. }
            | Msg::ProofRequest { session } => Some(session),
            Msg::Reveal(r) => Some(&r.session),
            Msg::Confirm(c) => Some(&c.session),
            Msg::Fraud(p) => p.session(),
        }
    }

    /// The round this message belongs to, if it is round-specific.
    pub fn round(&self) -> Option<u32> {
        match self {
            Msg::Commit(c) => Some(c.round),
            Msg::Echo { round, .. } | Msg::RevealRequest { round, .. } => Some(*round),
            Msg::Reveal(r) => Some(r.round),
            Msg::Confirm(c) => Some(c.round),
            Msg::ProofRequest { .. } | Msg::Fraud(_) => None,
        }
    }
}

// ---- signing payloads -------------------------------------------------------------

fn commit_payload(session: &SessionId, round: u32, signer: &PublicKey, y: &Hash) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(session);
    w.u32(round);
    signer.encode(&mut w);
    w.array(y);
    w.into_bytes()
}

impl SignedCommit {
    /// Sign `y` for `session`/`round`.
    pub fn sign(kp: &Keypair, session: SessionId, round: u32, y: Hash) -> Self {
        let signer = kp.public();
        let sig = kp.sign(
            Domain::Commit,
            &commit_payload(&session, round, &signer, &y),
        );
        SignedCommit {
            session,
            round,
            signer,
            y,
            sig,
        }
    }
    /// Whether the signature is the signer's.
    pub fn verify(&self, v: &impl Verifier) -> bool {
        let p = commit_payload(&self.session, self.round, &self.signer, &self.y);
        v.verify(&self.signer, Domain::Commit, &p, &self.sig)
    }
}

impl SignedReveal {
    /// Sign the reveal of `x`.
    pub fn sign(kp: &Keypair, session: SessionId, round: u32, x: [u8; 32]) -> Self {
        let signer = kp.public();
        let sig = kp.sign(
            Domain::Reveal,
            &commit_payload(&session, round, &signer, &x),
        );
        SignedReveal {
            session,
            round,
            signer,
            x,
            sig,
        }
    }
    /// Whether the signature is the signer's.
    pub fn verify(&self, v: &impl Verifier) -> bool {
        let p = commit_payload(&self.session, self.round, &self.signer, &self.x);
        v.verify(&self.signer, Domain::Reveal, &p, &self.sig)
    }
}

impl ConfirmKind {
    fn domain(self) -> Domain {
        match self {
            ConfirmKind::Ping => Domain::Ping,
            ConfirmKind::Pong => Domain::Pong,
        }
    }
    /// The value this kind carries for result `r`.
    pub fn value_for(self, r: &Hash) -> Hash {
        let tag = match self {
            ConfirmKind::Ping => 1u8,
            ConfirmKind::Pong => 2u8,
        };
        crate::hash::blake2b256(&[r, &[tag]])
    }
}

fn confirm_payload(c: &SignedConfirm) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(&c.session);
    w.u32(c.round);
    w.array(&c.commits_digest);
    w.array(&c.value);
    c.signer.encode(&mut w);
    w.into_bytes()
}

impl SignedConfirm {
    /// Sign a ping or pong for result `r` of the round with commit set `commits_digest`.
    pub fn sign(
        kp: &Keypair,
        kind: ConfirmKind,
        session: SessionId,
        round: u32,
        commits_digest: Hash,
        r: &Hash,
    ) -> Self {
        let mut c = SignedConfirm {
            kind,
            session,
            round,
            commits_digest,
            value: kind.value_for(r),
            signer: kp.public(),
            sig: Signature([0; 64]),
        };
        c.sig = kp.sign(kind.domain(), &confirm_payload(&c));
        c
    }
    /// Whether the signature is the signer's.
    pub fn verify(&self, v: &impl Verifier) -> bool {
        v.verify(
            &self.signer,
            self.kind.domain(),
            &confirm_payload(self),
            &self.sig,
        )
    }
}

// ---- codec ------------------------------------------------------------------------

// Commits and reveals share one layout: session, round, signer, a 32-byte value, sig.
type Parts = (SessionId, u32, PublicKey, [u8; 32], Signature);
const PARTS_SIZE: usize = 32 + 4 + 32 + 32 + 64;

fn write_parts(w: &mut Writer, (session, round, signer, value, sig): Parts) {
    w.array(&session);
    w.u32(round);
    signer.encode(w);
    w.array(&value);
    sig.encode(w);
}

fn read_parts(r: &mut Reader<'_>) -> Result<Parts, DecodeError> {
    Ok((
        r.array()?,
        r.u32()?,
        PublicKey::decode(r)?,
        r.array()?,
        Signature::decode(r)?,
    ))
}

impl Encode for SignedCommit {
    fn encode(&self, w: &mut Writer) {
        write_parts(w, (self.session, self.round, self.signer, self.y, self.sig));
    }
}
impl Decode for SignedCommit {
    const MIN_SIZE: usize = PARTS_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (session, round, signer, y, sig) = read_parts(r)?;
        Ok(SignedCommit {
            session,
            round,
            signer,
            y,
            sig,
        })
    }
}

impl Encode for SignedReveal {
    fn encode(&self, w: &mut Writer) {
        write_parts(w, (self.session, self.round, self.signer, self.x, self.sig));
    }
}
impl Decode for SignedReveal {
    const MIN_SIZE: usize = PARTS_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (session, round, signer, x, sig) = read_parts(r)?;
        Ok(SignedReveal {
            session,
            round,
            signer,
            x,
            sig,
        })
    }
}

impl Encode for SignedConfirm {
    fn encode(&self, w: &mut Writer) {
        w.u8(match self.kind {
            ConfirmKind::Ping => 0,
            ConfirmKind::Pong => 1,
        });
        w.array(&self.session);
        w.u32(self.round);
        w.array(&self.commits_digest);
        w.array(&self.value);
        self.signer.encode(w);
        self.sig.encode(w);
    }
}
impl Decode for SignedConfirm {
    const MIN_SIZE: usize = 1 + 32 + 4 + 32 + 32 + 32 + 64;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = match r.u8()? {
            0 => ConfirmKind::Ping,
            1 => ConfirmKind::Pong,
            _ => return Err(DecodeError::Invalid("confirm kind")),
        };
        Ok(SignedConfirm {
            kind,
            session: r.array()?,
            round: r.u32()?,
            commits_digest: r.array()?,
            value: r.array()?,
            signer: PublicKey::decode(r)?,
            sig: Signature::decode(r)?,
        })
    }
}

impl Encode for EchoEntry {
    fn encode(&self, w: &mut Writer) {
        w.u16(self.member);
        w.array(&self.y);
        self.sig.encode(w);
    }
}
impl Decode for EchoEntry {
    const MIN_SIZE: usize = 2 + 32 + 64;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EchoEntry {
            member: r.u16()?,
            y: r.array()?,
            sig: Signature::decode(r)?,
        })
    }
}

impl Encode for Msg {
    fn encode(&self, w: &mut Writer) {
        match self {
            Msg::Commit(c) => {
                w.u8(0);
                c.encode(w);
            }
            Msg::Echo {
                session,
                round,
                members,
                digest,
                commits,
            } => {
                w.u8(1);
                w.array(session);
                w.u32(*round);
                w.list(members);
                w.array(digest);
                w.list(commits);
            }
            Msg::Reveal(r) => {
                w.u8(2);
                r.encode(w);
            }
            Msg::RevealRequest {
                session,
                round,
                missing,
            } => {
                w.u8(3);
                w.array(session);
                w.u32(*round);
                w.list(missing);
            }
            Msg::ProofRequest { session } => {
                w.u8(4);
                w.array(session);
            }
            Msg::Confirm(c) => {
                w.u8(5);
                c.encode(w);
            }
            Msg::Fraud(p) => {
                w.u8(6);
                p.encode(w);
            }
        }
    }
}

impl Decode for Msg {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Msg::Commit(SignedCommit::decode(r)?),
            1 => {
                let session = r.array()?;
                let round = r.u32()?;
                let members: Vec<u16> = r.list("echo members", MAX_COMMITTEE)?;
                let digest = r.array()?;
                let commits: Vec<EchoEntry> = r.list("echo commits", MAX_COMMITTEE)?;
                let ascending = members.windows(2).all(|w| w[0] < w[1])
                    && members.iter().all(|&m| usize::from(m) < MAX_COMMITTEE);
                let matching = commits.is_empty()
                    || (commits.len() == members.len()
                        && commits.iter().zip(&members).all(|(c, m)| c.member == *m));
                if !ascending || !matching {
                    return Err(DecodeError::Invalid("echo member list"));
                }
                Msg::Echo {
                    session,
                    round,
                    members,
                    digest,
                    commits,
                }
            }
            2 => Msg::Reveal(SignedReveal::decode(r)?),
            3 => Msg::RevealRequest {
                session: r.array()?,
                round: r.u32()?,
                missing: r.list("missing reveals", MAX_COMMITTEE)?,
            },
            4 => Msg::ProofRequest {
                session: r.array()?,
            },
            5 => Msg::Confirm(SignedConfirm::decode(r)?),
            6 => Msg::Fraud(Box::new(FraudProof::decode(r)?)),
            _ => return Err(DecodeError::Invalid("coin-flip message kind")),
        })
    }
}

impl Message for Msg {
    const TAG: u8 = 0x10;
    const MAX_SIZE: usize = 2 + 1 + FraudProof::MAX_ENCODED;
}
