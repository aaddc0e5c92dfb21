//! Technician accounts: who may log in to the relay, at which tier and in which role, and the
//! session tokens a login hands out.
//!
//! Stored in the relay's database ([`crate::storage`]: SQLite or PostgreSQL). Passwords are kept
//! only as Argon2id hashes (PHC strings, so the parameters travel with each hash). A successful
//! login returns a random 256-bit [`Token`]; the database keeps only its SHA-256 (a token is
//! high-entropy, so a fast hash suffices), with an expiry, and a token can be revoked one by
//! one or all at once per account. Changing a password, disabling or removing an account revokes
//! its tokens.
//!
//! Failed logins are counted per account: after [`LoginPolicy::free_failures`] of them the
//! account is locked for a delay that doubles with each further failure, up to
//! [`LoginPolicy::max_delay`]; a login during the delay is refused without looking at the
//! password. A success clears the count. (Limits per source address are the server's, with
//! [`crate::ratelimit`].)
//!
//! Names are compared without regard to case (`Alice` is `alice`), on both backends.
//!
//! Blocking and CPU-heavy on purpose (Argon2 takes tens of milliseconds): the server calls it
//! from `spawn_blocking`. The time is an argument, so tests need no clock.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::storage::{params, Conn, Database, DbError, Row, Sql};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (hashing cost grows with length).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Highest tier: tier 1 takes first contact, tier 2 what tier 1 escalates, tier 3 the rest.
pub const MAX_TIER: u8 = 3;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountRole {
    /// Takes requests and joins sessions.
    Technician,
    /// Reads audit records and session logs; joins no session.
    Auditor,
    /// Manages accounts; also works as a technician.
    Admin,
    /// Works as a technician and sees the desk's dashboard (queues, who is available).
    Lead,
}

impl AccountRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Technician => "technician",
            AccountRole::Auditor => "auditor",
            AccountRole::Admin => "admin",
            AccountRole::Lead => "lead",
        }
    }

    /// May this account be paired with an agent?
    pub fn may_join_sessions(self) -> bool {
        matches!(
            self,
            AccountRole::Technician | AccountRole::Admin | AccountRole::Lead
        )
    }

    /// Does this account see the desk's dashboard?
    pub fn sees_dashboard(self) -> bool {
        matches!(self, AccountRole::Admin | AccountRole::Lead)
    }
}

impl fmt::Display for AccountRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "technician" => Ok(AccountRole::Technician),
            "auditor" => Ok(AccountRole::Auditor),
            "admin" => Ok(AccountRole::Admin),
            "lead" => Ok(AccountRole::Lead),
            other => Err(format!(
                "unknown role {other:?}; the roles are technician, lead, auditor and admin"
            )),
        }
    }
}

/// An account as the relay knows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician {
    pub name: String,
    pub tier: u8,
    pub role: AccountRole,
    pub enabled: bool,
    /// Until when logins are refused after repeated failures, if that is in force.
    pub locked_until: Option<SystemTime>,
}

/// A session token as the client holds it: 64 hex digits (256 random bits). Not shown by
/// `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The text the client stores and presents.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(token: &str) -> Vec<u8> {
        Sha256::digest(token.as_bytes()).to_vec()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: Token,
    pub expires_at: SystemTime,
    pub technician: Technician,
}

/// How logins are limited and how long tokens live.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    pub token_ttl: Duration,
    /// Failures in a row allowed before the first delay.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(12 * 3600),
            free_failures: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl LoginPolicy {
    /// How long an account is locked after its `failures`-th failure in a row.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free_failures)?.checked_sub(1)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account is called {0:?}")]
    Unknown(String),
    #[error("an account called {0:?} already exists")]
    Exists(String),
    #[error("{0:?} is not a usable name: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    #[error("tier {0} is not valid: tiers run from 1 to {MAX_TIER}")]
    BadTier(u8),
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("the accounts database: {0}")]
    Database(#[from] DbError),
}

/// Why a login was refused. The words are for the technician; the server logs the variant.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown name or wrong password (deliberately the same answer).
    #[error("wrong name or password")]
    BadCredentials,
    #[error("too many failed logins for this account; try again in {} seconds", .retry_after.as_secs().max(1))]
    LockedOut { retry_after: Duration },
    #[error("this account is disabled; ask an administrator")]
    Disabled,
    #[error("this account may not join sessions (role {0})")]
    NotAllowed(AccountRole),
    /// The password was right; the account's one-time code is needed too.
    #[error("a one-time code is needed too")]
    SecondFactorRequired,
    /// The policy requires a one-time code and the account has no second factor enrolled.
    #[error("the relay requires a one-time code and this account has no second factor")]
    SecondFactorMissing,
    /// The one-time code was wrong, old or used before (counted as a failure).
    #[error("wrong one-time code")]
    WrongCode,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<DbError> for LoginError {
    fn from(e: DbError) -> Self {
        LoginError::Account(AccountError::Database(e))
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the login token is not known; log in again")]
    Unknown,
    #[error("the login token expired; log in again")]
    Expired,
    #[error("the login token was revoked; log in again")]
    Revoked,
    #[error("this account is disabled; ask an administrator")]
    Disabled,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<DbError> for TokenError {
    fn from(e: DbError) -> Self {
        TokenError::Account(AccountError::Database(e))
    }
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_string()))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::PasswordTooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AccountError> {
    let mut b = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(b)
}

/// The technician accounts and their tokens.
pub struct Accounts {
    conn: Conn,
    policy: LoginPolicy,
    hasher: Argon2<'static>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What a password login reads of an account.
#[derive(Clone)]
struct Found {
    name: String,
    tier: u8,
    role: String,
    enabled: bool,
    hash: String,
    failures: u32,
    /// Milliseconds since the epoch.
    locked_until: i64,
    /// Base32 TOTP secret, when the account has a second factor.
    totp: Option<String>,
    /// The last time step whose one-time code was used.
    totp_last_step: i64,
}

/// What a password login checks against, read from the database (see
/// [`Accounts::login_candidate`]).
pub struct Candidate {
    found: Option<Found>,
    stored: String,
    hasher: Argon2<'static>,
}

impl Candidate {
    /// Whether `password` is the account's (always false for an unknown name, after the same
    /// work; a malformed stored hash never verifies). Argon2: run it off the database lock and
    /// off the async threads.
    pub fn check(&self, password: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.stored) else {
            return false;
        };
        password.len() <= MAX_PASSWORD_BYTES
            && self
                .hasher
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
            && self.found.is_some()
    }
}

impl Accounts {
    /// The accounts of `db`, with the default policy and Argon2id parameters (19 MiB, 2
    /// passes, 1 lane: the OWASP recommendation).
    pub fn open(db: &Database) -> Result<Self, AccountError> {
        Self::open_with(db, LoginPolicy::default(), Argon2::default())
    }

    /// As [`Accounts::open`], with a policy and hasher of the caller's choosing (tests use cheap
    /// Argon2 parameters). Hashes made with other parameters still verify.
    pub fn open_with(
        db: &Database,
        policy: LoginPolicy,
        hasher: Argon2<'static>,
    ) -> Result<Self, AccountError> {
        Ok(Self {
            conn: db.connect()?,
            policy,
            hasher,
        })
    }

    /// An in-memory database (tests, benchmarks).
    pub fn in_memory(policy: LoginPolicy, hasher: Argon2<'static>) -> Result<Self, AccountError> {
        Ok(Self {
            conn: Conn::in_memory()?,
            policy,
            hasher,
        })
    }

    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    fn hash_password(&self, password: &str) -> Result<String, AccountError> {
        check_password(password)?;
        let salt = SaltString::encode_b64(&random_bytes::<16>()?)
            .map_err(|e| AccountError::Hash(e.to_string()))?;
        self.hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    }

    /// A hash to verify against when the name is unknown, so that an unknown name takes as long
    /// as a wrong password.
    fn dummy_hash(&self) -> &'static str {
        static DUMMY: OnceLock<String> = OnceLock::new();
        DUMMY.get_or_init(|| {
            let salt = SaltString::encode_b64(&[7u8; 16]).expect("16 bytes make a salt");
            self.hasher
                .hash_password(b"no such account, no such password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
    }

    /// Creates an enabled account.
    pub fn add_user(
        &mut self,
        name: &str,
        password: &str,
        tier: u8,
        role: AccountRole,
        now: SystemTime,
    ) -> Result<Technician, AccountError> {
        check_name(name)?;
        if tier == 0 || tier > MAX_TIER {
            return Err(AccountError::BadTier(tier));
        }
        let hash = self.hash_password(password)?;
        let inserted = self.conn.execute(
            "INSERT INTO technicians (name, tier, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            params![name, tier, role.as_str(), &hash, millis(now)],
        )?;
        if inserted == 0 {
            return Err(AccountError::Exists(name.to_string()));
        }
        Ok(Technician {
            name: name.to_string(),
            tier,
            role,
            enabled: true,
            locked_until: None,
        })
    }

    /// Sets a new password; clears failed logins and revokes the account's tokens.
    pub fn set_password(
        &mut self,
        name: &str,
        password: &str,
        now: SystemTime,
    ) -> Result<(), AccountError> {
        let hash = self.hash_password(password)?;
        self.conn.transaction(|tx| {
            let n = tx.execute(
                "UPDATE technicians SET password_hash = $2, failed_logins = 0, locked_until = 0
                 WHERE lower(name) = lower($1)",
                params![name, &hash],
            )?;
            if n == 0 {
                return Err(AccountError::Unknown(name.to_string()));
            }
            revoke_all(tx, name, now)?;
            Ok(())
        })
    }

    /// Disables an account (it can no longer log in, its tokens stop working) or enables it.
    pub fn set_enabled(
        &mut self,
        name: &str,
        enabled: bool,
        now: SystemTime,
    ) -> Result<(), AccountError> {
        self.conn.transaction(|tx| {
            let n = tx.execute(
                "UPDATE technicians SET enabled = $2, failed_logins = 0, locked_until = 0
                 WHERE lower(name) = lower($1)",
                params![name, enabled],
            )?;
            if n == 0 {
                return Err(AccountError::Unknown(name.to_string()));
            }
            if !enabled {
                revoke_all(tx, name, now)?;
            }
            Ok(())
        })
    }

    /// Disables an account and revokes its tokens.
    pub fn disable(&mut self, name: &str, now: SystemTime) -> Result<(), AccountError> {
        self.set_enabled(name, false, now)
    }

    /// Deletes an account and its tokens.
    pub fn remove(&mut self, name: &str) -> Result<(), AccountError> {
        let n = self.conn.execute(
            "DELETE FROM technicians WHERE lower(name) = lower($1)",
            params![name],
        )?;
        if n == 0 {
            return Err(AccountError::Unknown(name.to_string()));
        }
        Ok(())
    }

    /// The account of a row `name, tier, role, enabled, locked_until`.
    fn technician(row: &Row, now: SystemTime) -> Result<Technician, DbError> {
        let role: String = row.get(2)?;
        let locked_until: i64 = row.get(4)?;
        Ok(Technician {
            name: row.get(0)?,
            tier: row.get(1)?,
            role: role.parse().unwrap_or(AccountRole::Technician),
            enabled: row.get(3)?,
            locked_until: (locked_until > millis(now)).then(|| from_millis(locked_until)),
        })
    }

    /// One account, if it exists.
    pub fn get(&self, name: &str, now: SystemTime) -> Result<Option<Technician>, AccountError> {
        let row = self.conn.query_opt(
            "SELECT name, tier, role, enabled, locked_until FROM technicians
             WHERE lower(name) = lower($1)",
            params![name],
        )?;
        Ok(row.map(|r| Self::technician(&r, now)).transpose()?)
    }

    /// Every account, by name.
    pub fn list(&self, now: SystemTime) -> Result<Vec<Technician>, AccountError> {
        let rows = self.conn.query(
            "SELECT name, tier, role, enabled, locked_until FROM technicians
             ORDER BY lower(name)",
            params![],
        )?;
        Ok(rows
            .iter()
            .map(|r| Self::technician(r, now))
            .collect::<Result<_, _>>()?)
    }

    /// Checks a name and password. On success returns a fresh token; on failure counts the
    /// failure against the account and, past the free ones, locks it for a growing delay.
    pub fn verify_login(
        &mut self,
        name: &str,
        password: &str,
        now: SystemTime,
    ) -> Result<Login, LoginError> {
        let candidate = self.login_candidate(name)?;
        let matched = candidate.check(password);
        self.login_outcome(&candidate, matched, now)
    }

    /// The first step of a password login, quick: what the database holds of `name`. The
    /// password is then checked with [`Candidate::check`] (Argon2, tens of milliseconds) without
    /// the database, and the outcome recorded with [`Accounts::login_outcome`].
    pub fn login_candidate(&self, name: &str) -> Result<Candidate, AccountError> {
        let found = if check_name(name).is_ok() {
            self.conn.query_opt(
                "SELECT name, tier, role, enabled, password_hash, failed_logins, locked_until,
                     totp_secret, totp_last_step
                 FROM technicians WHERE lower(name) = lower($1)",
                params![name],
            )?
        } else {
            None
        };
        let found = found
            .map(|r| {
                Ok::<_, DbError>(Found {
                    name: r.get(0)?,
                    tier: r.get(1)?,
                    role: r.get(2)?,
                    enabled: r.get(3)?,
                    hash: r.get(4)?,
                    failures: r.get(5)?,
                    locked_until: r.get(6)?,
                    totp: r.get(7)?,
                    totp_last_step: r.get(8)?,
                })
            })
            .transpose()?;
        // An unknown name is checked against a dummy hash: the same work as a wrong password.
        let stored = found
            .as_ref()
            .map_or_else(|| self.dummy_hash().to_string(), |f| f.hash.clone());
        Ok(Candidate {
            found,
            stored,
            hasher: self.hasher.clone(),
        })
    }

    /// The last step of a password login: counts a failure or issues a token. A locked account
    /// is locked whatever the password, and a disabled one answers [`LoginError::Disabled`]
    /// only when the password was right: the relay's [`crate::login::Gate`] gives the peer the
    /// same answer for all of these as for an unknown name, so that nothing tells a guesser
    /// which names exist or confirms a password.
    pub fn login_outcome(
        &mut self,
        candidate: &Candidate,
        matched: bool,
        now: SystemTime,
    ) -> Result<Login, LoginError> {
        self.login_outcome_with(candidate, matched, None, false, now)
    }

    /// As [`Accounts::login_outcome`], with the one-time code given (if any) and whether the
    /// relay requires one of every account. An account with a second factor logs in only with
    /// its code of now (give or take a step), each code once; a wrong code counts as a failed
    /// login.
    pub fn login_outcome_with(
        &mut self,
        candidate: &Candidate,
        matched: bool,
        one_time: Option<&str>,
        require_totp: bool,
        now: SystemTime,
    ) -> Result<Login, LoginError> {
        let Some(found) = candidate.found.clone() else {
            return Err(LoginError::BadCredentials);
        };
        let now_ms = millis(now);
        if found.locked_until > now_ms {
            return Err(LoginError::LockedOut {
                retry_after: Duration::from_millis((found.locked_until - now_ms) as u64),
            });
        }
        let fail = |this: &mut Self| -> Result<(), LoginError> {
            let failures = found.failures.saturating_add(1);
            let until = this
                .policy
                .delay_after(failures)
                .map_or(0, |d| now_ms.saturating_add(d.as_millis() as i64));
            this.conn.execute(
                "UPDATE technicians SET failed_logins = $2, locked_until = $3 WHERE name = $1",
                params![&found.name, failures, until],
            )?;
            Ok(())
        };
        if !matched {
            fail(self)?;
            return Err(LoginError::BadCredentials);
        }
        if !found.enabled {
            return Err(LoginError::Disabled);
        }
        match (&found.totp, one_time) {
            (None, _) if require_totp => return Err(LoginError::SecondFactorMissing),
            (None, _) => {}
            (Some(_), None) => return Err(LoginError::SecondFactorRequired),
            (Some(secret), Some(code)) => {
                let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                let last = u64::try_from(found.totp_last_step).unwrap_or(0);
                match crate::totp::check(secret, code, secs, last) {
                    Some(step) => {
                        self.conn.execute(
                            "UPDATE technicians SET totp_last_step = $2 WHERE name = $1",
                            params![&found.name, step],
                        )?;
                    }
                    None => {
                        fail(self)?;
                        return Err(LoginError::WrongCode);
                    }
                }
            }
        }
        if found.failures != 0 {
            self.conn.execute(
                "UPDATE technicians SET failed_logins = 0, locked_until = 0 WHERE name = $1",
                params![&found.name],
            )?;
        }
        let Found {
            name,
            tier,
            role,
            enabled,
            ..
        } = found;
        let technician = Technician {
            name,
            tier,
            role: role.parse().unwrap_or(AccountRole::Technician),
            enabled,
            locked_until: None,
        };
        let token = Token(hex::encode(
            random_bytes::<32>().map_err(LoginError::Account)?,
        ));
        let expires_at = now + self.policy.token_ttl;
        self.conn.execute(
            "INSERT INTO tokens (hash, name, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
            params![
                &Token::hash(token.as_str()),
                &technician.name,
                now_ms,
                millis(expires_at)
            ],
        )?;
        Ok(Login {
            token,
            expires_at,
            technician,
        })
    }

    /// Gives account `name` a new second factor (a fresh TOTP secret, returned base32), or takes
    /// it away (`enrol` false). Either way the account's logins end: the next one asks for the
    /// code of the new secret, or none.
    pub fn set_totp(
        &mut self,
        name: &str,
        enrol: bool,
        now: SystemTime,
    ) -> Result<Option<String>, AccountError> {
        let secret = enrol.then(crate::totp::new_secret);
        self.conn.transaction(|tx| {
            let n = tx.execute(
                "UPDATE technicians SET totp_secret = $2, totp_last_step = 0
                 WHERE lower(name) = lower($1)",
                params![name, secret.as_ref()],
            )?;
            if n == 0 {
                return Err(AccountError::Unknown(name.to_string()));
            }
            revoke_all(tx, name, now)?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Whether account `name` has a second factor.
    pub fn has_totp(&self, name: &str) -> Result<bool, AccountError> {
        let row = self.conn.query_opt(
            "SELECT totp_secret FROM technicians WHERE lower(name) = lower($1)",
            params![name],
        )?;
        match row {
            None => Err(AccountError::Unknown(name.to_string())),
            Some(r) => Ok(r.get::<Option<String>>(0)?.is_some()),
        }
    }

    /// The account a token belongs to, if the token is valid at `now` and the account enabled.
    pub fn check_token(&self, token: &str, now: SystemTime) -> Result<Technician, TokenError> {
        self.token_login(token, now).map(|(t, _)| t)
    }

    /// As [`Accounts::check_token`], with the time the token expires.
    pub fn token_login(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<(Technician, SystemTime), TokenError> {
        if token.len() != 64 {
            return Err(TokenError::Unknown);
        }
        let found = self.conn.query_opt(
            "SELECT a.name, a.tier, a.role, a.enabled, 0, t.expires_at, t.revoked_at
             FROM tokens t JOIN technicians a ON a.name = t.name WHERE t.hash = $1",
            params![&Token::hash(token)],
        )?;
        let Some(row) = found else {
            return Err(TokenError::Unknown);
        };
        let technician = Self::technician(&row, now)?;
        let expires_at: i64 = row.get(5)?;
        // A disabled account's tokens are revoked too; say the more useful of the two.
        if !technician.enabled {
            return Err(TokenError::Disabled);
        }
        if row.get::<Option<i64>>(6)?.is_some() {
            return Err(TokenError::Revoked);
        }
        if millis(now) >= expires_at {
            return Err(TokenError::Expired);
        }
        Ok((technician, from_millis(expires_at)))
    }

    /// Revokes one token (a logout). False if it was not known or already revoked.
    pub fn revoke_token(&mut self, token: &str, now: SystemTime) -> Result<bool, AccountError> {
        let n = self.conn.execute(
            "UPDATE tokens SET revoked_at = $2 WHERE hash = $1 AND revoked_at IS NULL",
            params![&Token::hash(token), millis(now)],
        )?;
        Ok(n > 0)
    }

    /// Revokes every token of an account; returns how many were live.
    pub fn revoke_tokens(&mut self, name: &str, now: SystemTime) -> Result<usize, AccountError> {
        if self.get(name, now)?.is_none() {
            return Err(AccountError::Unknown(name.to_string()));
        }
        Ok(revoke_all(&self.conn, name, now)? as usize)
    }

    /// Deletes tokens that expired before `now` (revoked or not); returns how many.
    pub fn purge_expired(&mut self, now: SystemTime) -> Result<usize, AccountError> {
        Ok(self.conn.execute(
            "DELETE FROM tokens WHERE expires_at <= $1",
            params![millis(now)],
        )? as usize)
    }
}

/// Revokes every live token of account `name` (however its case is written).
fn revoke_all(sql: &dyn Sql, name: &str, now: SystemTime) -> Result<u64, DbError> {
    sql.execute(
        "UPDATE tokens SET revoked_at = $2
         WHERE name IN (SELECT name FROM technicians WHERE lower(name) = lower($1))
             AND revoked_at IS NULL",
        params![name, millis(now)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::each_backend;
    use crate::storage::Database;
    use argon2::{Algorithm, Params, Version};

    const PW: &str = "correct horse battery";

    fn cheap() -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn accounts(db: &Database) -> Accounts {
        Accounts::open_with(db, LoginPolicy::default(), cheap()).unwrap()
    }

    #[test]
    fn accounts_persist_with_argon2id_hashes_only() {
        each_backend(|db| {
            {
                let mut a = accounts(db);
                a.add_user("alice", PW, 2, AccountRole::Technician, t(0))
                    .unwrap();
                a.add_user("bob", PW, 3, AccountRole::Admin, t(0)).unwrap();
            }
            let a = accounts(db);
            let list = a.list(t(1)).unwrap();
            assert_eq!(
                list.iter()
                    .map(|u| (u.name.as_str(), u.tier, u.role))
                    .collect::<Vec<_>>(),
                [
                    ("alice", 2, AccountRole::Technician),
                    ("bob", 3, AccountRole::Admin)
                ]
            );
            let stored: String = a
                .conn
                .query_one(
                    "SELECT password_hash FROM technicians WHERE name = 'alice'",
                    params![],
                )
                .and_then(|r| r.get(0))
                .unwrap();
            assert!(stored.starts_with("$argon2id$"), "{stored}");
            assert!(!stored.contains(PW));
            // The default hasher verifies hashes made with other parameters.
            let d = Accounts::open(&Database::open(db.location()).unwrap()).unwrap();
            assert!(d.login_candidate("alice").unwrap().check(PW));
        });
    }

    #[test]
    fn add_refuses_bad_input_and_duplicates() {
        each_backend(|db| {
            let mut a = accounts(db);
            a.add_user("alice", PW, 1, AccountRole::Technician, t(0))
                .unwrap();
            assert!(matches!(
                a.add_user("ALICE", PW, 1, AccountRole::Technician, t(0)),
                Err(AccountError::Exists(_))
            ));
            assert!(matches!(
                a.add_user("a b", PW, 1, AccountRole::Technician, t(0)),
                Err(AccountError::BadName(_))
            ));
            assert!(matches!(
                a.add_user("carol", PW, 0, AccountRole::Technician, t(0)),
                Err(AccountError::BadTier(0))
            ));
            assert!(matches!(
                a.add_user("carol", "short", 1, AccountRole::Technician, t(0)),
                Err(AccountError::PasswordTooShort)
            ));
        });
    }

    #[test]
    fn login_gives_a_token_that_checks_until_it_expires() {
        each_backend(|db| {
            let mut a = accounts(db);
            a.add_user("alice", PW, 2, AccountRole::Technician, t(0))
                .unwrap();
            let login = a.verify_login("alice", PW, t(10)).unwrap();
            assert_eq!(login.token.as_str().len(), 64);
            assert_eq!(login.technician.tier, 2);
            let who = a.check_token(login.token.as_str(), t(20)).unwrap();
            assert_eq!(who.name, "alice");
            let ttl = a.policy().token_ttl;
            assert!(matches!(
                a.check_token(login.token.as_str(), t(10) + ttl),
                Err(TokenError::Expired)
            ));
            assert!(matches!(
                a.check_token(&"0".repeat(64), t(20)),
                Err(TokenError::Unknown)
            ));
            assert!(matches!(
                a.check_token("short", t(20)),
                Err(TokenError::Unknown)
            ));
            // The database holds only the token's hash.
            let n: i64 = a
                .conn
                .query_one(
                    "SELECT count(*) FROM tokens WHERE hash = $1",
                    params![login.token.as_str().as_bytes()],
                )
                .and_then(|r| r.get::<i64>(0))
                .unwrap();
            assert_eq!(n, 0);
            assert_eq!(a.purge_expired(t(10) + ttl).unwrap(), 1);
        });
    }

    #[test]
    fn wrong_password_and_unknown_name_get_the_same_answer() {
        each_backend(|db| {
            let mut a = accounts(db);
            a.add_user("alice", PW, 1, AccountRole::Technician, t(0))
                .unwrap();
            assert!(matches!(
                a.verify_login("alice", "wrong password!", t(1)),
                Err(LoginError::BadCredentials)
            ));
            assert!(matches!(
                a.verify_login("mallory", PW, t(1)),
                Err(LoginError::BadCredentials)
            ));
            assert!(matches!(
                a.verify_login("bad name", PW, t(1)),
                Err(LoginError::BadCredentials)
            ));
        });
    }

    #[test]
    fn failures_lock_the_account_for_a_growing_delay() {
        each_backend(|db| {
            let mut a = accounts(db);
            a.add_user("alice", PW, 1, AccountRole::Technician, t(0))
                .unwrap();
            let p = a.policy().clone();
            let mut now = t(100);
            for _ in 0..p.free_failures {
                assert!(matches!(
                    a.verify_login("alice", "nope nope nope", now),
                    Err(LoginError::BadCredentials)
                ));
            }
            // Still free: the right password works and clears the count.
            a.verify_login("alice", PW, now).unwrap();
            let mut delays = Vec::new();
            for i in 0..(p.free_failures + 4) {
                assert!(matches!(
                    a.verify_login("alice", "nope nope nope", now),
                    Err(LoginError::BadCredentials)
                ));
                if i >= p.free_failures {
                    // Locked: even the right password is refused, without being checked.
                    let Err(LoginError::LockedOut { retry_after }) =
                        a.verify_login("alice", PW, now)
                    else {
                        panic!("locked out expected");
                    };
                    assert!(a.get("alice", now).unwrap().unwrap().locked_until.is_some());
                    delays.push(retry_after);
                    now += retry_after;
                }
            }
            assert_eq!(
                delays,
                [2, 4, 8, 16].map(Duration::from_secs),
                "the delay doubles"
            );
            a.verify_login("alice", PW, now).unwrap();
            assert_eq!(p.delay_after(1000), Some(p.max_delay));
            assert_eq!(p.delay_after(p.free_failures), None);
        });
    }

    #[test]
    fn revoking_disabling_and_password_changes_end_tokens() {
        each_backend(|db| {
            let mut a = accounts(db);
            a.add_user("alice", PW, 1, AccountRole::Technician, t(0))
                .unwrap();
            let t1 = a.verify_login("alice", PW, t(1)).unwrap().token;
            let t2 = a.verify_login("alice", PW, t(1)).unwrap().token;
            assert!(a.revoke_token(t1.as_str(), t(2)).unwrap());
            assert!(!a.revoke_token(t1.as_str(), t(2)).unwrap());
            assert!(matches!(
                a.check_token(t1.as_str(), t(3)),
                Err(TokenError::Revoked)
            ));
            a.check_token(t2.as_str(), t(3)).unwrap();
            assert_eq!(a.revoke_tokens("alice", t(4)).unwrap(), 1);
            assert!(matches!(
                a.check_token(t2.as_str(), t(5)),
                Err(TokenError::Revoked)
            ));

            let t3 = a.verify_login("alice", PW, t(6)).unwrap().token;
            a.disable("alice", t(7)).unwrap();
            assert!(matches!(
                a.check_token(t3.as_str(), t(8)),
                Err(TokenError::Disabled)
            ));
            assert!(matches!(
                a.verify_login("alice", PW, t(8)),
                Err(LoginError::Disabled)
            ));
            assert!(matches!(
                a.verify_login("alice", "wrong password!", t(8)),
                Err(LoginError::BadCredentials)
            ));
            a.set_enabled("alice", true, t(9)).unwrap();
            let t4 = a.verify_login("alice", PW, t(9)).unwrap().token;
            a.set_password("alice", "a new long password", t(10))
                .unwrap();
            assert!(matches!(
                a.check_token(t4.as_str(), t(11)),
                Err(TokenError::Revoked)
            ));
            assert!(a.verify_login("alice", PW, t(11)).is_err());
            let t5 = a
                .verify_login("alice", "a new long password", t(11))
                .unwrap()
                .token;

            a.remove("alice").unwrap();
            assert!(matches!(
                a.check_token(t5.as_str(), t(12)),
                Err(TokenError::Unknown)
            ));
            assert!(matches!(a.remove("alice"), Err(AccountError::Unknown(_))));
            assert!(matches!(
                a.set_password("alice", PW, t(12)),
                Err(AccountError::Unknown(_))
            ));
            assert!(matches!(
                a.revoke_tokens("alice", t(12)),
                Err(AccountError::Unknown(_))
            ));
        });
    }

    #[test]
    fn roles_parse_and_say_who_may_join() {
        assert_eq!("Admin".parse::<AccountRole>().unwrap(), AccountRole::Admin);
        assert!("boss".parse::<AccountRole>().is_err());
        assert!(AccountRole::Technician.may_join_sessions());
        assert!(!AccountRole::Auditor.may_join_sessions());
    }
}
