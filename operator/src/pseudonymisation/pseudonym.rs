//! Pseudonyms: HMAC-SHA256 of an identifier's canonical form under a domain's key version.
//!
//! The output has OpenBao Transit's form, `vault:v<version>:<base64>`, so the in-process
//! (`local`) mode and the `transit` mode give the very same pseudonym for the same key
//! version: a deployment can switch modes without re-pseudonymising anything.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// A domain key held in process memory (local mode). Wiped when dropped; never printed.
pub struct LocalKey {
    version: u64,
    mac: Hmac<Sha256>,
    /// `vault:v<version>:`, written once.
    prefix: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKey(v{}, <redacted>)", self.version)
    }
}

impl LocalKey {
    /// A key of `version` from its raw bytes.
    pub fn new(version: u64, key: Zeroizing<Vec<u8>>) -> Self {
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
        Self {
            version,
            mac,
            prefix: format!("vault:v{version}:"),
        }
    }

    /// The key version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The pseudonym of one canonical identifier.
    pub fn pseudonym(&self, canonical: &[u8]) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 44);
        self.pseudonym_into(canonical, &mut out);
        out
    }

    /// The pseudonym of one canonical identifier, written into `out` after clearing it: no
    /// allocation once `out` has room, for the service's bulk paths.
    pub fn pseudonym_into(&self, canonical: &[u8], out: &mut String) {
        let mut mac = self.mac.clone();
        mac.update(canonical);
        let tag = mac.finalize().into_bytes();
        // Encoded on the stack: 32 bytes are 44 characters of base64.
        let mut encoded = [0u8; 44];
        let written = STANDARD
            .encode_slice(tag, &mut encoded)
            .expect("44 bytes hold 32 bytes in base64");
        out.clear();
        out.push_str(&self.prefix);
        out.push_str(std::str::from_utf8(&encoded[..written]).expect("base64 is ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = LocalKey::new(1, Zeroizing::new(b"Jefe".to_vec()));
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got = key.pseudonym(b"what do ya want for nothing?");
        let tag = STANDARD
            .decode(got.trim_start_matches("vault:v1:"))
            .expect("base64");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn different_keys_give_unrelated_pseudonyms() {
        let a = LocalKey::new(1, Zeroizing::new(vec![1; 32]));
        let b = LocalKey::new(1, Zeroizing::new(vec![2; 32]));
        assert_ne!(a.pseudonym(b"198112189876"), b.pseudonym(b"198112189876"));
        assert_eq!(a.pseudonym(b"198112189876"), a.pseudonym(b"198112189876"));
    }

    #[test]
    fn debug_hides_the_key() {
        let k = LocalKey::new(3, Zeroizing::new(vec![7; 32]));
        assert_eq!(format!("{k:?}"), "LocalKey(v3, <redacted>)");
    }
}
