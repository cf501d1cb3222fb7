//! What the attestor must remember across a restart to still report a challenge: the
//! challenge's window, the coin flip's result, the signed report once built, whether
//! it was accepted, and our own signed reveals (to answer a withholding accusation).
//! One redb table per chain, `challenges/<chain id hex>`: challenge id → a JSON record
//! (≤ [`MAX_RECORD`] bytes), written in its own transaction at each step (redb commits
//! are durable). Challenge ids repeat on a reset dev chain, so records are keyed by the
//! chain's identity too: a record of the old chain is never applied to the new one's
//! challenge (its entropy would make us commit twice in a session nobody else is in, its
//! report would be the old chain's). Other chains' tables are left alone.

use std::path::Path;

use anyhow::Context;
use datdot_protocol::codec::{Decode, Encode, Reader, Writer};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Largest record accepted (a report is ≤ 64 KiB, hex doubles it).
pub const MAX_RECORD: usize = 1 << 20;

/// The coin flip's result as the report needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFlip {
    /// The round that produced `R` (or the last one tried).
    pub round: u32,
    /// `R` (hex), if the flip succeeded.
    pub result: Option<String>,
    /// The successful round's transcript (hex of its wire encoding).
    #[serde(default)]
    pub transcript: Option<String>,
    /// Our own secret for `round` (hex): the preimage of our `x` after a successful flip,
    /// a private random one otherwise. Seeds our sample and join time.
    #[serde(default)]
    pub own: Option<String>,
    /// Withholding accusations: the accused members' signed commits (hex of their wire
    /// encodings).
    pub accused: Vec<String>,
}

/// Hex of a value's wire encoding (no version or tag: a part of a message).
pub fn hex_of<T: Encode>(v: &T) -> String {
    let mut w = Writer::new();
    v.encode(&mut w);
    hex::encode(w.into_bytes())
}

/// The value [`hex_of`] encoded, if `h` is exactly one.
pub fn from_hex<T: Decode>(h: &str) -> Option<T> {
    let bytes = hex::decode(h).ok()?;
    let mut r = Reader::new(&bytes);
    let v = T::decode(&mut r).ok()?;
    (r.remaining() == 0).then_some(v)
}

/// One challenge's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Challenge id.
    pub challenge: u64,
    /// Window start / end and report deadline (blocks).
    pub start: u32,
    /// Audits end; reports accepted from here.
    pub end: u32,
    /// Last block a report is accepted.
    pub report_deadline: u32,
    /// The coin flip's entropy (hex), stored before its first message is sent: a
    /// restart within the flip derives the same round secrets, so it never signs a second
    /// commit for a round (`coinflip::round_secret`).
    #[serde(default)]
    pub entropy: Option<String>,
    /// Set once the coin flip finished.
    pub flip: Option<SavedFlip>,
    /// The signed report (hex of its wire bytes), once the audit is done.
    pub report: Option<String>,
    /// The chain accepted the report.
    pub submitted: bool,
    /// Our signed reveals: (round, hex of the `coinflip::Msg::Reveal` wire bytes).
    pub reveals: Vec<(u32, String)>,
}

impl Saved {
    /// A record for a new challenge.
    pub fn new(challenge: u64, start: u32, end: u32, report_deadline: u32) -> Self {
        Saved {
            challenge,
            start,
            end,
            report_deadline,
            entropy: None,
            flip: None,
            report: None,
            submitted: false,
            reveals: Vec::new(),
        }
    }
}

/// The attestor's state file, seen for one chain.
#[derive(Debug)]
pub struct State {
    db: Database,
    table: String,
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
        };
        let w = st.db.begin_write()?;
        w.open_table(st.def())?;
        w.commit()?;
        Ok(st)
    }

    fn def(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.table)
    }

    /// Store `s` (replacing what was there).
    pub fn put(&self, s: &Saved) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(s)?;
        anyhow::ensure!(bytes.len() <= MAX_RECORD, "state record too large");
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(self.def())?;
            t.insert(s.challenge, bytes.as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// The record of `challenge`.
    pub fn get(&self, challenge: u64) -> anyhow::Result<Option<Saved>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(self.def())?;
        match t.get(challenge)? {
            Some(v) => decode(challenge, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Update the record of `challenge` with `f` (nothing if there is none).
    pub fn update(&self, challenge: u64, f: impl FnOnce(&mut Saved)) -> anyhow::Result<()> {
        if let Some(mut s) = self.get(challenge)? {
            f(&mut s);
            self.put(&s)?;
        }
        Ok(())
    }

    /// Every record (a record that does not decode is skipped with an error logged).
    pub fn all(&self) -> anyhow::Result<Vec<Saved>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(self.def())?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            match decode(k.value(), v.value()) {
                Ok(s) => out.push(s),
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

fn decode(challenge: u64, bytes: &[u8]) -> anyhow::Result<Saved> {
    anyhow::ensure!(
        bytes.len() <= MAX_RECORD,
        "record of challenge {challenge} too large"
    );
    let s: Saved = serde_json::from_slice(bytes)
        .with_context(|| format!("record of challenge {challenge} is corrupt"))?;
    anyhow::ensure!(
        s.challenge == challenge,
        "record of challenge {challenge} names another"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.redb");
        let mut s = Saved::new(7, 10, 20, 40);
        {
            let st = State::open(&p, &[1; 32]).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "round secrets are the owner's only");
            st.put(&s).unwrap();
            st.update(7, |r| r.submitted = true).unwrap();
            st.put(&Saved::new(8, 1, 2, 3)).unwrap();
            st.remove(8).unwrap();
        }
        let st = State::open(&p, &[1; 32]).unwrap();
        s.submitted = true;
        assert_eq!(st.get(7).unwrap(), Some(s.clone()));
        assert_eq!(st.all().unwrap(), vec![s]);
        assert_eq!(st.get(8).unwrap(), None);
    }

    /// A dev chain reset repeats challenge ids. The old code kept one table keyed by the
    /// id alone and applied the old chain's record (its entropy, flip and report) to the
    /// new chain's challenge of the same id.
    #[test]
    fn a_record_from_a_reset_chain_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.redb");
        let (old, new) = ([1; 32], [2; 32]);
        let mut s = Saved::new(0, 10, 20, 40);
        s.entropy = Some(hex::encode([9; 32]));
        State::open(&p, &old).unwrap().put(&s).unwrap();
        let st = State::open(&p, &new).unwrap();
        assert_eq!(st.get(0).unwrap(), None);
        assert_eq!(st.all().unwrap(), vec![]);
        st.put(&Saved::new(0, 50, 60, 80)).unwrap();
        drop(st);
        assert_eq!(State::open(&p, &old).unwrap().get(0).unwrap(), Some(s));
    }

    proptest! {
        #[test]
        fn corrupt_records_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(1, &bytes);
        }
    }
}
