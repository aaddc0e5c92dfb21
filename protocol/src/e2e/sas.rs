//! The short verification code of an exchange without a session code (the help-request queue).
//!
//! Both ends derive six digits from the handshake's transcript and shared secret. If someone sat
//! in the middle (a compromised relay), each end shares a different secret with it and the two
//! codes differ, except by a one-in-a-million chance: the handshake's commitment keeps the
//! attacker from choosing its keys after seeing the other side's, so it cannot search for a
//! match. The user and the technician read the code to each other on the phone.

use std::fmt;

/// Six decimal digits, shown as `123 456`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationCode(u32);

/// How many values a verification code takes.
pub const VERIFICATION_CODE_SPACE: u32 = 1_000_000;

impl VerificationCode {
    /// The code from 32 bytes of derived key material. The bias of reducing a 64-bit value
    /// modulo one million is below 2^-44.
    pub(crate) fn from_secret(secret: &[u8; 32]) -> Self {
        let mut first = [0u8; 8];
        first.copy_from_slice(&secret[..8]);
        Self((u64::from_le_bytes(first) % u64::from(VERIFICATION_CODE_SPACE)) as u32)
    }

    /// The code as a number below one million.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The six digits without a space, as scripts compare them.
    pub fn digits(self) -> String {
        format!("{:06}", self.0)
    }
}

impl fmt::Display for VerificationCode {
    /// `042 917`: two groups of three, as a person reads them out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationCode({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_six_digits_in_two_groups() {
        let c = VerificationCode(42_917);
        assert_eq!(c.to_string(), "042 917");
        assert_eq!(c.digits(), "042917");
        let c = VerificationCode::from_secret(&[0xff; 32]);
        assert!(c.value() < VERIFICATION_CODE_SPACE);
    }
}
