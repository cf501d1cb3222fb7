//! What the attestor must remember across a restart to still report a challenge: the
//! challenge lifecycle's [`Progress`] (`datdot_protocol::lifecycle`: the window, the coin
//! flip's entropy and record, the signed report once built, whether it was accepted, our
//! signed reveals and the accusations answered). One redb table per chain,
//! `challenges/<chain id hex>`: challenge id → the progress in its codec encoding (tag
//! 0x70, ≤ [`lifecycle::MAX_PROGRESS`] bytes), written in its own transaction at each
//! step (redb commits are durable). Challenge ids repeat on a reset dev chain, so records
//! are keyed by the chain's identity too: a record of the old chain is never applied to
//! the new one's challenge (its entropy would make us commit twice in a session nobody
//! else is in, its report would be the old chain's). Other chains' tables are left alone.
//!
//! Records written before the lifecycle machine are JSON with hex fields; they are still
//! read (converted on read, rewritten in the new encoding at the next step).

use std::path::Path;

use anyhow::Context;
use datdot_protocol::codec::{self, Decode, Message as _, Reader};
use datdot_protocol::coinflip::{self, Msg, SignedCommit, Transcript};
use datdot_protocol::lifecycle::{self, FlipRecord, Notice, Progress};
use datdot_protocol::report::{self, Report};
use redb::{Database, ReadableTable, TableDefinition};
use serde::Deserialize;

/// Largest record read (an old JSON record holds a report ≤ 64 KiB in hex).
pub const MAX_RECORD: usize = 1 << 20;

/// The attestor's state file, seen for one chain.
#[derive(Debug)]
pub struct State {
    db: Database,
    table: String,
    chain: [u8; 32],
}

impl State {
    /// Open (or create) the state file, for the records of `chain` (its chain id).
    pub fn open(path: &Path, chain: &[u8; 32]) -> anyhow::Result<Self> {
        let db =
            Database::create(path).with_context(|| format!("opening state {}", path.display()))?;
        // Round secrets live here until the report reveals them.
        datdot_node::keystore::owner_only(path)?;
        let st = State {
            db,
            table: format!("challenges/{}", hex::encode(chain)),
            chain: *chain,
        };
        let w = st.db.begin_write()?;
        w.open_table(st.def())?;
        w.commit()?;
        Ok(st)
    }

    fn def(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.table)
    }

    /// Store `p` (replacing what was there).
    pub fn put(&self, p: &Progress) -> anyhow::Result<()> {
        let bytes = codec::to_bytes(p);
        anyhow::ensure!(
            bytes.len() <= lifecycle::MAX_PROGRESS,
            "state record too large"
        );
        self.put_raw(p.notice.challenge, &bytes)
    }

    fn put_raw(&self, challenge: u64, bytes: &[u8]) -> anyhow::Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(self.def())?;
            t.insert(challenge, bytes)?;
        }
        w.commit()?;
        Ok(())
    }

    /// The record of `challenge`.
    pub fn get(&self, challenge: u64) -> anyhow::Result<Option<Progress>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(self.def())?;
        match t.get(challenge)? {
            Some(v) => decode(&self.chain, challenge, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Every record (a record that does not decode is skipped with an error logged).
    pub fn all(&self) -> anyhow::Result<Vec<Progress>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(self.def())?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            match decode(&self.chain, k.value(), v.value()) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!("skipping a state record: {e:#}"),
            }
        }
        Ok(out)
    }

    /// Forget `challenge`.
    pub fn remove(&self, challenge: u64) -> anyhow::Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(self.def())?;
            t.remove(challenge)?;
        }
        w.commit()?;
        Ok(())
    }
}

/// A record of `challenge` on `chain`: the codec encoding, else an old JSON record.
fn decode(chain: &[u8; 32], challenge: u64, bytes: &[u8]) -> anyhow::Result<Progress> {
    anyhow::ensure!(
        bytes.len() <= MAX_RECORD,
        "record of challenge {challenge} too large"
    );
    let p = match codec::from_bytes::<Progress>(bytes) {
        Ok(p) => p,
        Err(e) => match serde_json::from_slice::<Legacy>(bytes) {
            Ok(old) => old
                .into_progress(chain)
                .with_context(|| format!("old record of challenge {challenge} is corrupt"))?,
            Err(_) => {
                return Err(anyhow::anyhow!(
                    "record of challenge {challenge} is corrupt: {e}"
                ));
            }
        },
    };
    anyhow::ensure!(
        p.notice.challenge == challenge,
        "record of challenge {challenge} names another"
    );
    Ok(p)
}

/// A record as the attestor wrote it before the lifecycle machine (JSON, hex fields).
#[derive(Deserialize)]
struct Legacy {
    challenge: u64,
    start: u32,
    end: u32,
    report_deadline: u32,
    #[serde(default)]
    entropy: Option<String>,
    flip: Option<LegacyFlip>,
    /// Hex of the signed report's wire bytes.
    report: Option<String>,
    submitted: bool,
    /// (round, hex of the `coinflip::Msg::Reveal` wire bytes).
    reveals: Vec<(u32, String)>,
}

#[derive(Deserialize)]
struct LegacyFlip {
    round: u32,
    result: Option<String>,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    own: Option<String>,
    accused: Vec<String>,
}

fn key32(h: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(h)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("not 32 bytes of hex")
}

/// The value whose wire encoding (no version or tag: a part of a message) is hex `h`.
fn part<T: Decode>(h: &str) -> anyhow::Result<T> {
    let bytes = hex::decode(h).context("not hex")?;
    let mut r = Reader::new(&bytes);
    let v = T::decode(&mut r).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(r.remaining() == 0, "trailing bytes");
    Ok(v)
}

impl Legacy {
    fn into_progress(self, chain: &[u8; 32]) -> anyhow::Result<Progress> {
        let notice = Notice {
            challenge: self.challenge,
            start: self.start,
            end: self.end,
            report_deadline: self.report_deadline,
        };
        let entropy = self.entropy.as_deref().map(key32).transpose()?;
        let flip = match self.flip {
            Some(f) => {
                let result = f.result.as_deref().map(key32).transpose()?;
                let mut own = f.own.as_deref().map(key32).transpose()?;
                // A record from before own secrets (`R` agreed, no `own`): the one the
                // stored entropy gives, as the flip derived it.
                if own.is_none()
                    && result.is_some()
                    && let Some(e) = entropy
                {
                    let session = coinflip::challenge_session(chain, self.challenge);
                    own = Some(coinflip::round_secret(&e, &session, f.round));
                }
                let mut accused = f
                    .accused
                    .iter()
                    .map(|h| part::<SignedCommit>(h))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .context("an accused commit")?;
                accused.truncate(report::MAX_ACCUSED);
                Some(FlipRecord {
                    round: f.round,
                    result,
                    transcript: f
                        .transcript
                        .as_deref()
                        .map(part::<Transcript>)
                        .transpose()
                        .context("the transcript")?,
                    own,
                    accused,
                })
            }
            None => None,
        };
        let report = match self.report {
            Some(h) => {
                let b = hex::decode(h).context("the report is not hex")?;
                anyhow::ensure!(b.len() <= Report::MAX_SIZE, "the report is too large");
                Some(b)
            }
            None => None,
        };
        let mut reveals = Vec::with_capacity(self.reveals.len());
        for (_, h) in self.reveals.iter().take(lifecycle::MAX_REVEALS) {
            let b = hex::decode(h).context("a reveal is not hex")?;
            match codec::from_bytes::<Msg>(&b) {
                Ok(Msg::Reveal(r)) => reveals.push(r),
                _ => anyhow::bail!("a stored reveal is not one"),
            }
        }
        Ok(Progress {
            notice,
            entropy,
            flip,
            report,
            submitted: self.submitted,
            reveals,
            answered: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::codec::{Encode, Writer};
    use datdot_protocol::coinflip::SignedReveal;
    use datdot_protocol::identity::Keypair;
    use proptest::prelude::*;

    fn progress(challenge: u64) -> Progress {
        let key = Keypair::from_seed(&[5; 32]);
        let session = coinflip::challenge_session(&[1; 32], challenge);
        let mut p = Progress::new(Notice {
            challenge,
            start: 10,
            end: 20,
            report_deadline: 40,
        });
        p.entropy = Some([9; 32]);
        p.flip = Some(FlipRecord {
            round: 2,
            result: Some([4; 32]),
            transcript: None,
            own: Some([6; 32]),
            accused: vec![SignedCommit::sign(&key, session, 1, [7; 32])],
        });
        p.report = Some(vec![1, 2, 3]);
        p.reveals = vec![SignedReveal::sign(&key, session, 2, [8; 32])];
        p.answered = vec![1];
        p
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let mut p = progress(7);
        {
            let st = State::open(&path, &[1; 32]).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "round secrets are the owner's only");
            st.put(&p).unwrap();
            p.submitted = true;
            st.put(&p).unwrap();
            st.put(&progress(8)).unwrap();
            st.remove(8).unwrap();
        }
        let st = State::open(&path, &[1; 32]).unwrap();
        assert_eq!(st.get(7).unwrap(), Some(p.clone()));
        assert_eq!(st.all().unwrap(), vec![p]);
        assert_eq!(st.get(8).unwrap(), None);
    }

    /// A dev chain reset repeats challenge ids. The old code kept one table keyed by the
    /// id alone and applied the old chain's record (its entropy, flip and report) to the
    /// new chain's challenge of the same id.
    #[test]
    fn a_record_from_a_reset_chain_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let (old, new) = ([1; 32], [2; 32]);
        let p = progress(0);
        State::open(&path, &old).unwrap().put(&p).unwrap();
        let st = State::open(&path, &new).unwrap();
        assert_eq!(st.get(0).unwrap(), None);
        assert_eq!(st.all().unwrap(), vec![]);
        st.put(&Progress::new(p.notice)).unwrap();
        drop(st);
        assert_eq!(State::open(&path, &old).unwrap().get(0).unwrap(), Some(p));
    }

    fn hex_of<T: Encode>(v: &T) -> String {
        let mut w = Writer::new();
        v.encode(&mut w);
        hex::encode(w.into_bytes())
    }

    /// A record as the attestor wrote it before the lifecycle machine: JSON with hex
    /// fields, `R` agreed and no own secret (the oldest form). It is read as the same
    /// progress: typed fields, the own secret the entropy gives.
    #[test]
    fn an_old_json_record_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let chain = [1; 32];
        let key = Keypair::from_seed(&[5; 32]);
        let session = coinflip::challenge_session(&chain, 3);
        let commit = SignedCommit::sign(&key, session, 1, [7; 32]);
        let reveal = SignedReveal::sign(&key, session, 2, [8; 32]);
        let json = serde_json::json!({
            "challenge": 3,
            "start": 10,
            "end": 20,
            "report_deadline": 40,
            "entropy": hex::encode([9; 32]),
            "flip": {
                "round": 2,
                "result": hex::encode([4; 32]),
                "accused": [hex_of(&commit)],
            },
            "report": hex::encode([1, 2, 3]),
            "submitted": true,
            "reveals": [[2, hex::encode(codec::to_bytes(&Msg::Reveal(reveal.clone())))]],
        });
        let st = State::open(&path, &chain).unwrap();
        st.put_raw(3, &serde_json::to_vec(&json).unwrap()).unwrap();
        let p = st.get(3).unwrap().unwrap();
        assert_eq!(
            p,
            Progress {
                notice: Notice {
                    challenge: 3,
                    start: 10,
                    end: 20,
                    report_deadline: 40,
                },
                entropy: Some([9; 32]),
                flip: Some(FlipRecord {
                    round: 2,
                    result: Some([4; 32]),
                    transcript: None,
                    own: Some(coinflip::round_secret(&[9; 32], &session, 2)),
                    accused: vec![commit],
                }),
                report: Some(vec![1, 2, 3]),
                submitted: true,
                reveals: vec![reveal],
                answered: Vec::new(),
            }
        );
        assert_eq!(st.all().unwrap(), vec![p.clone()]);
        // Written back in the new encoding, it reads the same.
        st.put(&p).unwrap();
        assert_eq!(st.get(3).unwrap(), Some(p));
        // A JSON record with a bad field is an error, not a guess.
        let bad = serde_json::json!({
            "challenge": 4, "start": 1, "end": 2, "report_deadline": 3,
            "entropy": "zz", "flip": null, "report": null, "submitted": false, "reveals": [],
        });
        st.put_raw(4, &serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(st.get(4).is_err());
        assert_eq!(st.all().unwrap().len(), 1, "skipped");
    }

    proptest! {
        #[test]
        fn corrupt_records_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&[1; 32], 1, &bytes);
            let mut b = vec![codec::VERSION, 0x70];
            b.extend(&bytes);
            let _ = decode(&[1; 32], 1, &b);
            let mut j = b"{\"challenge\":1,".to_vec();
            j.extend(&bytes);
            let _ = decode(&[1; 32], 1, &j);
        }
    }
}
