//! Byzantine committee members, for tests, the simulator and test harnesses only
//! (feature `byzantine`; never enabled by a shipped binary's defaults).
//!
//! A byzantine member runs the honest [`CoinFlip`](super::CoinFlip) and passes every
//! outgoing message through [`Byzantine::tamper`], which rewrites or drops it. The
//! deviations are the ones SPEC §3.3 names: equivocation, a bad reveal, withholding the
//! reveal, going silent, and confirming a wrong result.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use rand_core::RngCore;

use super::msg::{Msg, SignedCommit, SignedConfirm, SignedReveal};
use super::transcript::commit_value;
use crate::identity::Keypair;

/// What a byzantine member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// Sends a different signed commit to the peers of even committee index.
    Equivocate,
    /// Reveals a signed `x` that does not match its commit.
    BadReveal,
    /// Never sends its own reveal (relays others').
    WithholdReveal,
    /// Goes silent (sends nothing) from the start.
    Offline,
    /// Confirms a wrong result (signed).
    Divergent,
}

impl Behaviour {
    /// All behaviours.
    pub const ALL: [Behaviour; 5] = [
        Behaviour::Equivocate,
        Behaviour::BadReveal,
        Behaviour::WithholdReveal,
        Behaviour::Offline,
        Behaviour::Divergent,
    ];

    /// Whether the behaviour leaves objective evidence (a fraud proof).
    pub fn provable(self) -> bool {
        matches!(
            self,
            Behaviour::Equivocate | Behaviour::BadReveal | Behaviour::Divergent
        )
    }

    /// Name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Equivocate => "equivocate",
            Behaviour::BadReveal => "bad-reveal",
            Behaviour::WithholdReveal => "withhold",
            Behaviour::Offline => "offline",
            Behaviour::Divergent => "divergent",
        }
    }

    /// The behaviour with this [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }
}

/// The tampering state of one byzantine member.
#[derive(Debug)]
pub struct Byzantine {
    kind: Behaviour,
    kp: Keypair,
    /// The alternative commit per round (equivocation), so each peer sees one value.
    alt: BTreeMap<u32, Arc<Msg>>,
}

impl Byzantine {
    /// A member signing with `kp` that behaves as `kind`.
    pub fn new(kind: Behaviour, kp: Keypair) -> Self {
        Byzantine {
            kind,
            kp,
            alt: BTreeMap::new(),
        }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.kind
    }

    /// Rewrite (or drop: `None`) an outgoing message to the peer of committee index `to`.
    pub fn tamper(&mut self, rng: &mut impl RngCore, to: usize, msg: Arc<Msg>) -> Option<Arc<Msg>> {
        let me = self.kp.public();
        match (self.kind, &*msg) {
            (Behaviour::Offline, _) => None,
            (Behaviour::Equivocate, Msg::Commit(c)) if to.is_multiple_of(2) => {
                let alt = self.alt.entry(c.round).or_insert_with(|| {
                    let mut x = [0u8; 32];
                    rng.fill_bytes(&mut x);
                    Arc::new(Msg::Commit(SignedCommit::sign(
                        &self.kp,
                        c.session,
                        c.round,
                        commit_value(&x),
                    )))
                });
                Some(alt.clone())
            }
            (Behaviour::BadReveal, Msg::Reveal(r)) if r.signer == me => {
                let mut x = r.x;
                x[0] ^= 0x55;
                Some(Arc::new(Msg::Reveal(SignedReveal::sign(
                    &self.kp, r.session, r.round, x,
                ))))
            }
            (Behaviour::WithholdReveal, Msg::Reveal(r)) if r.signer == me => None,
            (Behaviour::Divergent, Msg::Confirm(c)) if c.signer == me => {
                let mut wrong = [0u8; 32];
                rng.fill_bytes(&mut wrong);
                Some(Arc::new(Msg::Confirm(SignedConfirm::sign(
                    &self.kp,
                    c.kind,
                    c.session,
                    c.round,
                    c.commits_digest,
                    &wrong,
                ))))
            }
            _ => Some(msg),
        }
    }
}
