//! Operator tools that need no chain: `flip` runs coin flips with a committee given in a
//! file over the real secret swarm (what the latency bench and the byzantine tests
//! drive), `audit` audits one hoster once. Both print JSON.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use datdot_net::audit::AuditOutput;
use datdot_protocol::coinflip::{self, CoinFlip, Outcome, SessionId};
use datdot_protocol::hash::blake2b256;
use datdot_protocol::identity::{Ed25519Verifier, Keypair, PublicKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::flip::{self, Tamper};
use datdot_net::swarm::{Member, Swarm, SwarmCounters};

/// A committee for `flip`, in committee order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitteeFile {
    /// Base session id (64 hex); flip `k` runs in `BLAKE2b-256("datdot/v1/flip-tool" || base || k)`.
    pub session: String,
    /// The members.
    pub members: Vec<CommitteeMember>,
}

/// One member of a [`CommitteeFile`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitteeMember {
    /// Its committee listener.
    pub addr: SocketAddr,
    /// Its Noise key (hex).
    pub noise: String,
    /// Its signing key (hex).
    pub signing: String,
}

fn key32(s: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .with_context(|| format!("{what} must be 64 hex characters"))
}

impl CommitteeFile {
    /// Read and check a committee file (≤ 256 members, ≤ 1 MiB).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= 1 << 20,
            "{} is larger than 1 MiB",
            path.display()
        );
        let text = std::fs::read_to_string(path)?;
        let c: CommitteeFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            (2..=coinflip::MAX_COMMITTEE).contains(&c.members.len()),
            "a committee has 2..={} members",
            coinflip::MAX_COMMITTEE
        );
        key32(&c.session, "session")?;
        for m in &c.members {
            key32(&m.noise, "noise")?;
            key32(&m.signing, "signing")?;
        }
        Ok(c)
    }

    fn session(&self, k: u64) -> SessionId {
        let base = key32(&self.session, "session").expect("checked on load");
        blake2b256(&[b"datdot/v1/flip-tool", &base, &k.to_le_bytes()])
    }
}

/// One flip's result line.
#[derive(Debug, Serialize)]
pub struct FlipLine {
    /// Flip number.
    pub flip: u64,
    /// success / offline / malicious.
    pub outcome: &'static str,
    /// The final round.
    pub round: u32,
    /// `R` (hex), on success.
    pub result: Option<String>,
    /// Time from joining to `R`, ms.
    pub ms_to_result: Option<f64>,
    /// Time from joining to the outcome (every peer confirmed `R`), ms.
    pub ms_total: f64,
    /// Fraud proofs: kind, offender (hex), detected here.
    pub fraud: Vec<(String, String, bool)>,
    /// Members named unresponsive (offline outcome).
    pub unresponsive: Vec<String>,
}

/// Run `rounds` coin flips as the member whose signing key is ours, printing one JSON
/// line per flip to `out`. With `start_at` (Unix ms) the first flip waits until then;
/// `phase` overrides the per-phase timeouts (all members must agree).
#[allow(clippy::too_many_arguments)]
pub async fn flip_rounds(
    signing_seed: [u8; 32],
    noise_seed: [u8; 32],
    listen: SocketAddr,
    committee: &CommitteeFile,
    rounds: u64,
    start_at: Option<u64>,
    phase: Option<std::time::Duration>,
    mut tamper: impl FnMut() -> Option<Tamper>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let kp = Keypair::from_seed(&signing_seed);
    let keys: Vec<PublicKey> = committee
        .members
        .iter()
        .map(|m| {
            PublicKey::from_bytes(&key32(&m.signing, "signing")?)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let me = keys
        .iter()
        .position(|k| *k == kp.public())
        .context("our signing key is not in the committee file")?;
    let members: Vec<Member> = committee
        .members
        .iter()
        .map(|m| {
            Ok(Member {
                addr: m.addr,
                noise: key32(&m.noise, "noise")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let swarm = Swarm::bind(listen, &noise_seed, Arc::new(SwarmCounters::default())).await?;
    if let Some(t) = start_at {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        if t > now {
            tokio::time::sleep(std::time::Duration::from_millis(t - now)).await;
        }
    }
    let epoch = std::time::Instant::now();
    for k in 0..rounds {
        let session_id = committee.session(k);
        let mut entropy = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        let mut cfg = coinflip::Config::new(session_id, keys.clone());
        if let Some(p) = phase {
            cfg.commit_timeout = p;
            cfg.reveal_timeout = p;
            cfg.confirm_timeout = p;
        }
        let cf = CoinFlip::new(
            cfg,
            Keypair::from_seed(&signing_seed),
            entropy,
            Ed25519Verifier,
            flip::instant(epoch),
        )
        .map_err(|e| anyhow::anyhow!("coin flip: {e}"))?;
        let session = swarm.join(session_id, members.clone(), me)?;
        let rep = flip::run(
            session,
            cf,
            keys.clone(),
            kp.public(),
            epoch,
            tamper(),
            |_| {},
        )
        .await;
        let (outcome, round, result, unresponsive) = match &rep.outcome {
            Outcome::Success { round, result, .. } => {
                ("success", *round, Some(hex::encode(result)), vec![])
            }
            Outcome::Offline {
                round,
                unresponsive,
                ..
            } => (
                "offline",
                *round,
                None,
                unresponsive
                    .iter()
                    .map(|k| hex::encode(k.as_bytes()))
                    .collect(),
            ),
            Outcome::Malicious { .. } => (
                "malicious",
                rep.rounds.last().map(|r| r.0).unwrap_or(0),
                None,
                vec![],
            ),
        };
        let line = FlipLine {
            flip: k,
            outcome,
            round,
            result,
            ms_to_result: rep.to_result.map(|d| d.as_secs_f64() * 1e3),
            ms_total: rep.elapsed.as_secs_f64() * 1e3,
            fraud: rep
                .fraud
                .iter()
                .map(|f| {
                    (
                        format!("{:?}", f.verdict.kind),
                        hex::encode(f.verdict.offender.as_bytes()),
                        f.detected_here,
                    )
                })
                .collect(),
            unresponsive,
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
        out.flush()?;
    }
    // Let the last flip's final messages leave before the process exits.
    tokio::time::sleep(flip::LINGER).await;
    Ok(())
}

/// An audit's result as JSON (`datdot-attestor audit`).
pub fn audit_json(out: &AuditOutput) -> serde_json::Value {
    let s = &out.summary;
    serde_json::json!({
        "outcome": format!("{:?}", s.outcome),
        "requests": s.requests,
        "verified": s.ok_blocks,
        "lacks_data": s.lacks_data,
        "misbehaved": s.misbehaved,
        "timeouts": s.timeouts,
        "bytes": s.bytes_received,
        "latency_us": {"p50": s.latency_p50_us, "p90": s.latency_p90_us, "p99": s.latency_p99_us, "max": s.latency_max_us},
        "ttfb_us": {"p50": s.ttfb_p50_us, "p99": s.ttfb_p99_us},
        "throughput_bps": s.throughput_bps,
        "throughput_p50_bps": s.throughput_p50_bps,
        "connect_us": s.connect_time_us,
        "receipts": out.receipts.len(),
        "receipted_blocks": out.receipts.iter().map(|r| r.entries.len()).sum::<usize>(),
        "bad_receipts": out.bad_receipts,
        "fraud_proofs": out.fraud.len(),
        "unproven": out.unproven.len(),
        "failures": out.failures.iter().map(|f| (f.block_index, format!("{:?}", f.kind))).collect::<Vec<_>>(),
    })
}
