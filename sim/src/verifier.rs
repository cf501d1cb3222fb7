//! A signature verifier shared by all simulated nodes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use datdot_protocol::identity::{Domain, PublicKey, Signature, Verifier};

type Key = (Domain, [u8; 32], [u8; 64], Vec<u8>);

/// Memoises ed25519 verification across the nodes of one simulated run.
///
/// Verification is a pure function of (key, kind, payload, signature), so sharing the
/// results between nodes that live in one process changes no outcome; it removes the
/// n-fold repetition of the same check (every member verifies every broadcast
/// commit), which would otherwise dominate a 100-member run. Every distinct signature
/// — including every forged one a byzantine member produces — is still verified with
/// real ed25519 once, and failures are cached as failures.
#[derive(Clone, Debug, Default)]
pub struct SharedVerifier {
    cache: Rc<RefCell<HashMap<Key, bool>>>,
}

impl SharedVerifier {
    /// Distinct signatures verified so far.
    pub fn distinct(&self) -> usize {
        self.cache.borrow().len()
    }
}

impl Verifier for SharedVerifier {
    fn verify(&self, key: &PublicKey, domain: Domain, payload: &[u8], sig: &Signature) -> bool {
        let k = (domain, *key.as_bytes(), sig.0, payload.to_vec());
        if let Some(&ok) = self.cache.borrow().get(&k) {
            return ok;
        }
        let ok = key.verify(domain, payload, sig).is_ok();
        self.cache.borrow_mut().insert(k, ok);
        ok
    }
}
