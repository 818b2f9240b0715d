//! Pseudonymisation: every partner turns an NHS number into the same subject key with the
//! linkage key of their information sharing agreement, and nobody without that key can turn
//! it back.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::record::SubjectKey;

/// Shortest linkage key accepted: 32 bytes, the strength of the hash itself.
pub const LINKAGE_KEY_MIN_BYTES: usize = 32;

/// A ten-digit NHS number whose check digit is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NhsNumber([u8; 10]);

impl NhsNumber {
    /// Reads an NHS number, ignoring spaces (as in `943 476 5919`), and checks its modulus-11
    /// check digit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits: Vec<u8> = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c as u8)
            .collect();
        if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
            return Err("is not an NHS number (ten digits, spaces allowed)".to_string());
        }
        let value = |i: usize| u32::from(digits[i] - b'0');
        let sum: u32 = (0..9).map(|i| value(i) * (10 - i as u32)).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => {
                return Err(
                    "fails the modulus-11 check: no NHS number has these first nine digits"
                        .to_string(),
                );
            }
            check => check,
        };
        if check != value(9) {
            return Err("fails the modulus-11 check digit".to_string());
        }
        let mut out = [0u8; 10];
        out.copy_from_slice(&digits);
        Ok(Self(out))
    }
}

/// The secret of a local information sharing agreement.
pub struct LinkageKey(Vec<u8>);

impl LinkageKey {
    /// A key from its bytes; too short a key is refused.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < LINKAGE_KEY_MIN_BYTES {
            return Err(format!(
                "a linkage key must be at least {LINKAGE_KEY_MIN_BYTES} bytes, this one is {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// HMAC-SHA256 of the normalised NHS number (its ten digits) under this key.
    pub fn subject_key(&self, nhs_number: &NhsNumber) -> SubjectKey {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&nhs_number.0);
        SubjectKey::from_bytes(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_are_checked() {
        assert!(NhsNumber::parse("943 476 5919").is_ok());
        assert!(NhsNumber::parse("9434765919").is_ok());
        assert!(
            NhsNumber::parse("943 476 5918").is_err(),
            "wrong check digit"
        );
        assert!(NhsNumber::parse("943476591").is_err(), "nine digits");
        assert!(NhsNumber::parse("94347659I9").is_err(), "a letter");
        // 1000000010: the check digit would have to be 10.
        assert!(
            NhsNumber::parse("100 000 0010")
                .unwrap_err()
                .contains("modulus-11")
        );
    }

    #[test]
    fn the_subject_key_is_hmac_sha256_of_the_ten_digits() {
        let key = LinkageKey::new(b"north-east-information-sharing-agreement-2026-key".to_vec())
            .expect("key");
        let nhs = NhsNumber::parse("943 476 5919").expect("valid");
        // Computed independently with Python's hmac module.
        assert_eq!(
            key.subject_key(&nhs).to_string(),
            "22aa41a38b05eca347caa074ad2f2c84bbc6bf5235615c4c9d4c4d8afde1786f"
        );
        assert!(LinkageKey::new(b"short".to_vec()).is_err());
    }
}
