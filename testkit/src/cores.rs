//! Hypercore feeds for tests: a writer with deterministic blocks, an empty reader for a
//! key, appending in batches. (Was copied in `net/tests/common` and
//! `hoster/tests/common`.)

use std::path::Path;

use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};

/// Block `i` of a test feed: `size` deterministic bytes.
pub fn block(i: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i as usize * 31 + j * 7) as u8;
    }
    v
}

/// Append `blocks` blocks (`block(i)`) to `core`, 64 per batch.
///
/// # Panics
/// When the core refuses an append (a test fixture: the test fails).
pub async fn fill(core: &Hypercore, blocks: u64, block: impl Fn(u64) -> Vec<u8>) {
    for chunk in (0..blocks).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Vec<u8>> = chunk.iter().map(|i| block(*i)).collect();
        core.append_batch(&batch)
            .await
            .expect("append to a test feed");
    }
}

/// A writable feed with `n` blocks of [`block`]`(i, size)` (memory, or disk under `dir`).
///
/// # Panics
/// When the storage or the core cannot be created.
pub async fn writer(n: u64, size: usize, dir: Option<&Path>) -> Hypercore {
    let storage = match dir {
        Some(d) => Storage::new_disk(&d.to_path_buf(), true).await,
        None => Storage::new_memory().await,
    }
    .expect("test feed storage");
    let core = HypercoreBuilder::new(storage)
        .build()
        .await
        .expect("a test feed");
    fill(&core, n, |i| block(i, size)).await;
    core
}

/// The public key of `core`.
pub fn key_of(core: &Hypercore) -> [u8; 32] {
    core.key_pair().public.to_bytes()
}

/// An empty in-memory reader core for feed `key`.
///
/// # Panics
/// When `key` is not an ed25519 public key.
pub async fn reader(key: [u8; 32]) -> Hypercore {
    let storage = Storage::new_memory().await.expect("memory storage");
    HypercoreBuilder::new(storage)
        .key_pair(PartialKeypair {
            public: VerifyingKey::from_bytes(&key).expect("a feed key"),
            secret: None,
        })
        .build()
        .await
        .expect("a reader core")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_of_a_writers_key_is_empty_and_the_writer_full() {
        let w = writer(130, 100, None).await;
        assert_eq!(w.info().length, 130);
        let r = reader(key_of(&w)).await;
        assert_eq!(r.info().length, 0);
        assert_eq!(block(3, 4), block(3, 4));
        assert_ne!(block(3, 4), block(4, 4));
    }
}
