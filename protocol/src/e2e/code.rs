//! The code a user reads out to a technician, and the odds of guessing it.
//!
//! A [`UserCode`] has two parts, printed as one group: `123 456 789 - 4821`.
//!
//! - The *rendezvous part* (nine digits, a [`SessionCode`]) is issued by the relay and tells it
//!   which waiting agent a technician wants.
//! - The *secret part* (four digits, a [`CodeSecret`]) is drawn by the agent itself and never
//!   sent anywhere: it is the password of the SPAKE2 exchange between agent and technician
//!   ([`crate::e2e::Handshake`]). Whoever does not know it, the relay included, cannot complete
//!   the exchange, and a wrong guess is detected by both ends.
//!
//! Every code serves one attempt: the relay spends the rendezvous part when a technician joins
//! with it, and an agent whose exchange failed draws a new secret. So an attacker gets one guess
//! of the secret per code the user reads out, whatever it controls; [`online_guess_success`]
//! gives the odds.

use std::fmt;

use rand::Rng;
use zeroize::Zeroizing;

use crate::control::{SessionCode, SESSION_CODE_DIGITS};

/// Digits in the secret part of a code.
pub const SECRET_DIGITS: usize = 4;

/// Values the secret part can take.
pub const SECRET_SPACE: u64 = 10u64.pow(SECRET_DIGITS as u32);

/// Values the rendezvous part can take (nine digits).
pub const RENDEZVOUS_SPACE: u64 = 10u64.pow(SESSION_CODE_DIGITS as u32);

/// The secret part of a code: four decimal digits, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeSecret(Zeroizing<String>);

impl CodeSecret {
    /// Draws a fresh secret from the thread's CSPRNG (seeded by the operating system).
    pub fn generate() -> Self {
        let n = rand::rng().random_range(0..SECRET_SPACE);
        Self(Zeroizing::new(format!(
            "{n:0width$}",
            width = SECRET_DIGITS
        )))
    }

    /// Exactly [`SECRET_DIGITS`] decimal digits.
    pub fn from_digits(digits: &str) -> Option<Self> {
        (digits.len() == SECRET_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(Zeroizing::new(digits.to_string())))
    }

    /// The digits, for display to the user who reads them out.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The SPAKE2 password.
    pub(crate) fn password(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for CodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeSecret(****)")
    }
}

/// Why typed text is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeParseError {
    #[error("a code has only digits, spaces and dashes; found {0:?}")]
    BadCharacter(char),
    #[error(
        "the code has {got} digits; it needs {need}: nine, then the {SECRET_DIGITS} after the dash"
    )]
    TooShort { got: usize, need: usize },
    #[error("the code has {got} digits; it has at most {max}")]
    TooLong { got: usize, max: usize },
}

/// Longest rendezvous part accepted (as [`SessionCode`] allows).
const MAX_RENDEZVOUS_DIGITS: usize = 32;

/// The whole code the user reads out: rendezvous part and secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode {
    rendezvous: SessionCode,
    secret: CodeSecret,
}

impl UserCode {
    pub fn new(rendezvous: SessionCode, secret: CodeSecret) -> Self {
        Self { rendezvous, secret }
    }

    /// Parses a code as a person types it: `123 456 789 - 4821`, `123456789-4821` and
    /// `1234567894821` are the same code. Spaces and dashes anywhere are ignored; the last
    /// [`SECRET_DIGITS`] digits are the secret part, the rest the rendezvous part.
    pub fn parse(text: &str) -> Result<Self, CodeParseError> {
        let mut digits = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '\u{a0}' | '\u{2013}' | '\u{2014}' => {}
                other => return Err(CodeParseError::BadCharacter(other)),
            }
        }
        let need = SESSION_CODE_DIGITS + SECRET_DIGITS;
        let max = MAX_RENDEZVOUS_DIGITS + SECRET_DIGITS;
        if digits.len() < need {
            return Err(CodeParseError::TooShort {
                got: digits.len(),
                need,
            });
        }
        if digits.len() > max {
            return Err(CodeParseError::TooLong {
                got: digits.len(),
                max,
            });
        }
        let split = digits.len() - SECRET_DIGITS;
        let rendezvous = SessionCode::from_digits(digits[..split].to_string())
            .expect("length and digits were checked");
        let secret = CodeSecret::from_digits(&digits[split..]).expect("four digits");
        Ok(Self { rendezvous, secret })
    }

    /// The part the relay sees: the technician sends it in its join.
    pub fn rendezvous(&self) -> &SessionCode {
        &self.rendezvous
    }

    /// The part that stays with the two ends: the password of the exchange.
    pub fn secret(&self) -> &CodeSecret {
        &self.secret
    }
}

impl fmt::Display for UserCode {
    /// `123 456 789 - 4821`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.rendezvous, self.secret.digits())
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({} - ****)", self.rendezvous)
    }
}

/// The chance that an attacker who makes `attempts` online attempts completes at least one
/// exchange with a user's agent.
///
/// Each attempt spends one code, so each is one guess of the secret part, right with probability
/// 1 / [`SECRET_SPACE`]. `live_codes` says what the attacker knows of the rendezvous part:
///
/// - `None`: it knows the rendezvous part of every code it attacks (it *is* the relay, or it
///   overheard the first nine digits). Then each attempt wins with 1 in 10,000.
/// - `Some(n)`: it must also hit one of the `n` codes waiting at the relay out of the
///   [`RENDEZVOUS_SPACE`] possible, so an attempt wins with `n / 10^9 / 10^4`.
///
/// The relay's limits on joins (per address and per account) bound `attempts`.
pub fn online_guess_success(attempts: u64, live_codes: Option<u64>) -> f64 {
    let hit = match live_codes {
        None => 1.0,
        Some(n) => (n as f64 / RENDEZVOUS_SPACE as f64).min(1.0),
    };
    let per_attempt = hit / SECRET_SPACE as f64;
    // 1 - (1 - p)^attempts, computed without losing small p to rounding.
    -f64::exp_m1(attempts as f64 * f64::ln_1p(-per_attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_typed_and_prints_as_read_out() {
        for typed in [
            "123 456 789 - 4821",
            "123456789-4821",
            "1234567894821",
            " 123-456-789 4821 ",
        ] {
            let c = UserCode::parse(typed).unwrap();
            assert_eq!(c.rendezvous().digits(), "123456789");
            assert_eq!(c.secret().digits(), "4821");
            assert_eq!(c.to_string(), "123 456 789 - 4821");
        }
        assert_eq!(
            UserCode::parse("123 456 789").unwrap_err(),
            CodeParseError::TooShort { got: 9, need: 13 }
        );
        assert_eq!(
            UserCode::parse("123 456 789 - 48a1").unwrap_err(),
            CodeParseError::BadCharacter('a')
        );
        assert!(matches!(
            UserCode::parse(&"1".repeat(40)),
            Err(CodeParseError::TooLong { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = UserCode::parse("123 456 789 - 4821").unwrap();
        assert!(!format!("{c:?}").contains("4821"));
        assert!(!format!("{:?}", c.secret()).contains("4821"));
    }

    #[test]
    fn generated_secrets_are_four_digits_and_vary() {
        let s: Vec<String> = (0..20)
            .map(|_| CodeSecret::generate().digits().to_string())
            .collect();
        assert!(s
            .iter()
            .all(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit())));
        assert!(s.iter().any(|d| d != &s[0]));
    }

    #[test]
    fn odds_match_the_arithmetic() {
        // The relay itself, one attempt per code: 1 in 10,000.
        let p = online_guess_success(1, None);
        assert!((p - 1e-4).abs() < 1e-12);
        // 10,000 attempts by the relay: about 63 %.
        let p = online_guess_success(10_000, None);
        assert!((p - 0.632).abs() < 0.001, "{p}");
        // An outsider with 1,000 live codes and a million attempts: about 1e-4.
        let p = online_guess_success(1_000_000, Some(1_000));
        assert!((p - 1e-4).abs() < 1e-6, "{p}");
        assert_eq!(online_guess_success(0, None), 0.0);
    }
}
