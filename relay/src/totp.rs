//! One-time codes (TOTP, RFC 6238) as a second factor for technicians' logins.
//!
//! A secret of 20 random bytes per account, written in base32 inside an `otpauth://` URI that
//! any authenticator app takes (shown as a QR code by `relay user totp NAME`). A code is six
//! digits of HMAC-SHA1 over the 30-second time step; the relay takes the code of the step
//! before, the current one and the one after (for clocks a little apart), and each step's code
//! once only: the account remembers the last step used, and a code of that step or an earlier
//! one is refused, so a code seen over a shoulder or in a log cannot be used again.

use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha1::Sha1;

/// Seconds per step (RFC 6238's default, which authenticator apps assume).
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps either side of now whose codes are taken.
pub const SKEW_STEPS: u64 = 1;

/// A new secret: 20 random bytes (the HMAC-SHA1 block RFC 4226 recommends), base32.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .expect("the operating system's random source failed");
    data_encoding::BASE32_NOPAD.encode(&b)
}

/// The code of time step `step` for the base32 `secret` (`None` if it is not base32).
pub fn code_at(secret: &str, step: u64) -> Option<u32> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    Some(bin % 10u32.pow(DIGITS))
}

/// The time step of `unix_secs`.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The step whose code `given` is, among those taken at `unix_secs` and after `last_used`, if
/// any. `given` may hold spaces (as apps show it: "123 456").
pub fn check(secret: &str, given: &str, unix_secs: u64, last_used: u64) -> Option<u64> {
    let digits: String = given.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = digits.parse().ok()?;
    let now = step_of(unix_secs);
    (now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS)
        .filter(|&s| s > last_used)
        .find(|&s| code_at(secret, s) == Some(want))
}

/// The `otpauth://` URI of an account's secret, as authenticator apps read it.
pub fn uri(secret: &str, account: &str, issuer: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// `text` as a QR code drawn with half-block characters, two modules a character row, with the
/// quiet zone around it that scanners need.
pub fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let width = code.width();
    let dark = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < width
            && code[(x as usize, y as usize)] == qrcode::Color::Dark
    };
    let quiet = 2isize;
    let mut out = String::new();
    let mut y = -quiet;
    while y < width as isize + quiet {
        for x in -quiet..width as isize + quiet {
            // Light modules print as the terminal's foreground: a dark terminal shows the code
            // the way scanners expect (dark modules dark).
            out.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => '█',
                (false, true) => '▀',
                (true, false) => '▄',
                (true, true) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret "12345678901234567890", whose 8-digit codes the
    /// RFC lists; ours are their last six digits.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_match_the_rfc_test_vectors() {
        for (unix, eight) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, step_of(unix)),
                Some(eight % 1_000_000),
                "{unix}"
            );
        }
    }

    #[test]
    fn a_code_is_taken_near_its_time_and_once() {
        let s = new_secret();
        let now = 1_800_000_000;
        let code = format!("{:06}", code_at(&s, step_of(now)).unwrap());
        let step = check(&s, &code, now, 0).expect("taken");
        assert_eq!(step, step_of(now));
        // A little later, from a clock a step behind, still taken; a step is used only once.
        assert!(check(&s, &code, now + STEP_SECS, 0).is_some());
        assert!(check(&s, &code, now, step).is_none(), "used once");
        assert!(
            check(&s, &code, now + 3 * STEP_SECS, 0).is_none(),
            "too old"
        );
        assert!(check(&s, "12345", now, 0).is_none());
        assert!(check(&s, "abcdef", now, 0).is_none());
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(check(&s, &spaced, now, 0).is_some());
    }

    #[test]
    fn the_uri_and_qr_code_carry_the_secret() {
        let u = uri("ABC", "alice", "Example Support");
        assert_eq!(
            u,
            "otpauth://totp/Example%20Support:alice?secret=ABC&issuer=Example%20Support&algorithm=SHA1&digits=6&period=30"
        );
        let q = qr(&u).unwrap();
        assert!(q.lines().count() > 10);
        assert!(q
            .lines()
            .all(|l| l.chars().count() == q.lines().next().unwrap().chars().count()));
    }
}
