//! The relay's door for technicians: logins with a password or a token, logouts, and the check
//! before a join, with the limits that keep guessing slow.
//!
//! Failed logins are limited three ways, each with a delay that doubles past a few free
//! failures: per source address and per account name here, in memory (names that do not exist
//! are limited exactly like those that do, so a lock-out tells nothing about which names
//! exist), and per account in the database ([`crate::accounts`], which survives a restart).
//! A token that is not known counts as a failure of its address. Every refusal is logged with
//! its reason and the account name, never the password or the token.
//!
//! Each password login is counted as a failure of its address and name *before* any work is
//! done, and given back if it succeeds: a burst of parallel guesses is limited exactly like the
//! same guesses one after another. At most [`ARGON2_AT_ONCE`] password checks run at a time
//! (Argon2 takes tens of milliseconds and 19 MiB each), on tokio's blocking pool and without the
//! accounts database's lock, so token checks (joins, resumes) never wait behind them. Names
//! longer than any account's are refused before they are used as a key anywhere. An unknown
//! name, a wrong password, a locked account and a disabled one get the same answer. Logouts
//! count unknown tokens as failures of their address, like resumes.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use protocol::control::{ErrorCode, TechnicianAccount};
use tracing::{error, info};

use crate::accounts::{Accounts, LoginError, Technician, TokenError};
use crate::limits::{source_of, Source};
use crate::ratelimit::{Backoff, BackoffPolicy};
use crate::server::Refusal;

/// Failed logins from one address before delays start, and how they grow. More generous than
/// per account: several technicians may share an office's address.
pub const ADDRESS_BACKOFF: BackoffPolicy = BackoffPolicy {
    free_failures: 10,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(5 * 60),
    forget_after: Duration::from_secs(15 * 60),
};

/// Failed logins per account name before delays start, and how they grow (the same as the
/// database's own lock-out, [`crate::accounts::LoginPolicy`]).
pub const NAME_BACKOFF: BackoffPolicy = BackoffPolicy {
    free_failures: 3,
    base_delay: Duration::from_secs(2),
    max_delay: Duration::from_secs(15 * 60),
    forget_after: Duration::from_secs(15 * 60),
};

/// Password checks (Argon2) that run at once; the rest wait their turn.
pub const ARGON2_AT_ONCE: usize = 2;

/// Longest account name (as [`crate::accounts`] allows them).
const MAX_NAME: usize = 64;

/// A technician logged in on one connection.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub account: TechnicianAccount,
    pub token: String,
    pub expires_in: Duration,
}

/// Logins, logouts and join checks against the accounts database, with their limits.
pub struct Gate {
    accounts: Arc<Mutex<Accounts>>,
    organisation: String,
    by_address: Mutex<Backoff<Source>>,
    by_name: Mutex<Backoff<String>>,
    argon2: tokio::sync::Semaphore,
    /// Password checks running now, and the most seen at once.
    checking: std::sync::atomic::AtomicUsize,
    most_checking: std::sync::atomic::AtomicUsize,
    /// Failures of the accounts database, for the relay's metrics.
    database_errors: std::sync::atomic::AtomicU64,
    /// Whether every account must give a one-time code (the relay's `require_totp`).
    require_totp: bool,
}

fn limited(secs_of: Duration, whom: String) -> Refusal {
    let secs = secs_of.as_secs_f64().ceil().max(1.0) as u32;
    Refusal::new(
        ErrorCode::RateLimited {
            retry_after_secs: secs,
        },
        format!("too many failed logins {whom}; try again in {secs} seconds"),
    )
}

impl Gate {
    pub fn new(accounts: Accounts, organisation: String) -> Self {
        Self::with_policy(accounts, organisation, false)
    }

    /// As [`Gate::new`]; with `require_totp` every account must log in with a one-time code.
    pub fn with_policy(accounts: Accounts, organisation: String, require_totp: bool) -> Self {
        Self {
            accounts: Arc::new(Mutex::new(accounts)),
            organisation,
            by_address: Mutex::new(Backoff::new(ADDRESS_BACKOFF)),
            by_name: Mutex::new(Backoff::new(NAME_BACKOFF)),
            argon2: tokio::sync::Semaphore::new(ARGON2_AT_ONCE),
            checking: Default::default(),
            most_checking: Default::default(),
            database_errors: Default::default(),
            require_totp,
        }
    }

    /// The most password checks that ran at once so far.
    pub fn most_checks_at_once(&self) -> usize {
        self.most_checking
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Failures of the accounts database so far.
    pub fn database_errors(&self) -> u64 {
        self.database_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The refusal for a failure of the accounts database, counted.
    fn internal(&self, e: impl std::fmt::Display) -> Refusal {
        error!(error = %e, "accounts database");
        self.database_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Refusal::new(
            ErrorCode::Internal,
            "the relay cannot read its accounts; try again later",
        )
    }

    /// Runs `f` on the accounts on the blocking pool.
    async fn with_accounts<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Accounts) -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let accounts = self.accounts.clone();
        tokio::task::spawn_blocking(move || {
            let mut a = accounts.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut a)
        })
        .await
        .map_err(|e| self.internal(e))
    }

    fn account(&self, t: &Technician) -> TechnicianAccount {
        TechnicianAccount {
            name: t.name.clone(),
            tier: t.tier,
            organisation: self.organisation.clone(),
        }
    }

    fn address_open(&self, ip: IpAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let source = source_of(ip);
        self.by_address
            .lock()
            .expect("backoff lock")
            .check(&source, now)
            .map_err(|wait| limited(wait, format!("from {source}")))
    }

    /// Checks the address and counts an attempt as its failure in one step, so that parallel
    /// attempts cannot all pass the check before any is counted.
    fn address_reserve(&self, ip: IpAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let source = source_of(ip);
        let mut by_address = self.by_address.lock().expect("backoff lock");
        by_address
            .check(&source, now)
            .map_err(|wait| limited(wait, format!("from {source}")))?;
        if let Some(wait) = by_address.fail(&source, now) {
            info!(peer = %source, wait_secs = wait.as_secs(), "logins from this address delayed after failures");
        }
        Ok(())
    }

    fn address_failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let source = source_of(ip);
        if let Some(wait) = self
            .by_address
            .lock()
            .expect("backoff lock")
            .fail(&source, now)
        {
            info!(peer = %source, wait_secs = wait.as_secs(), "logins from this address delayed after failures");
        }
    }

    /// A login with name and password.
    pub async fn password(
        &self,
        ip: IpAddr,
        name: String,
        password: String,
    ) -> Result<LoggedIn, Refusal> {
        self.password_and_code(ip, name, password, None).await
    }

    /// A login with name, password and, for an account with a second factor, its one-time
    /// code. A wrong code counts as a failure like a wrong password.
    pub async fn password_and_code(
        &self,
        ip: IpAddr,
        name: String,
        password: String,
        one_time: Option<String>,
    ) -> Result<LoggedIn, Refusal> {
        let bad = || Refusal::new(ErrorCode::BadCredentials, "wrong name or password");
        // Counted before the work, given back on success (see the module docs).
        self.address_reserve(ip)?;
        if name.len() > MAX_NAME {
            // No account has such a name: not worth a key in any table.
            info!(peer = %ip, name_bytes = name.len(), "login refused: name too long");
            return Err(bad());
        }
        let key = name.to_lowercase();
        let now = Instant::now();
        {
            let mut by_name = self.by_name.lock().expect("backoff lock");
            if let Err(wait) = by_name.check(&key, now) {
                drop(by_name);
                // Refused before any work: the address's attempt is given back.
                self.by_address
                    .lock()
                    .expect("backoff lock")
                    .refund(&source_of(ip));
                return Err(limited(wait, "for this account".into()));
            }
            by_name.fail(&key, now);
        }
        // `cleared`: a success, which forgets the name's failures; else only the failure
        // counted ahead is given back (the password was right, something else is missing).
        let refund = |cleared: bool| {
            let mut by_name = self.by_name.lock().expect("backoff lock");
            if cleared {
                by_name.succeed(&key);
            } else {
                by_name.refund(&key);
            }
            self.by_address
                .lock()
                .expect("backoff lock")
                .refund(&source_of(ip));
        };
        let permit = self.argon2.acquire().await.map_err(|e| self.internal(e))?;
        let who = name.clone();
        let candidate = self
            .with_accounts(move |a| a.login_candidate(&who))
            .await?
            .map_err(|e| self.internal(e))?;
        {
            use std::sync::atomic::Ordering::Relaxed;
            let now = self.checking.fetch_add(1, Relaxed) + 1;
            self.most_checking.fetch_max(now, Relaxed);
        }
        let checked = tokio::task::spawn_blocking(move || {
            let matched = candidate.check(&password);
            (candidate, matched)
        })
        .await;
        self.checking
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(permit);
        let (candidate, matched) = checked.map_err(|e| self.internal(e))?;
        let require = self.require_totp;
        let result = self
            .with_accounts(move |a| {
                a.login_outcome_with(
                    &candidate,
                    matched,
                    one_time.as_deref(),
                    require,
                    SystemTime::now(),
                )
            })
            .await?;
        let refusal = match result {
            Ok(login) => {
                refund(true);
                info!(peer = %ip, account = %login.technician.name, tier = login.technician.tier, "logged in");
                let expires_in = login
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                return Ok(LoggedIn {
                    account: self.account(&login.technician),
                    token: login.token.as_str().to_string(),
                    expires_in,
                });
            }
            Err(LoginError::NotAllowed(role)) => {
                refund(false);
                Refusal::new(
                    ErrorCode::NotPermitted,
                    format!("this account may not log in here (role {role})"),
                )
            }
            Err(LoginError::SecondFactorRequired) => {
                refund(false);
                Refusal::new(
                    ErrorCode::SecondFactorRequired,
                    "this account logs in with a one-time code too: give the six digits its \
                     authenticator app shows now",
                )
            }
            Err(LoginError::SecondFactorMissing) => {
                refund(false);
                Refusal::new(
                    ErrorCode::NotPermitted,
                    format!(
                        "this relay requires a one-time code with every login and the account \
                         {name} has no second factor yet; an administrator enrols it with: \
                         relay user totp {name}"
                    ),
                )
            }
            Err(LoginError::WrongCode) => {
                info!(peer = %ip, account = %name, "login refused: wrong one-time code");
                return Err(Refusal::new(
                    ErrorCode::BadCredentials,
                    "wrong name, password or one-time code",
                ));
            }
            Err(
                e @ (LoginError::BadCredentials
                | LoginError::LockedOut { .. }
                | LoginError::Disabled),
            ) => {
                // One answer for all three: nothing tells which names exist or that a
                // password was right. The log says which it was.
                info!(peer = %ip, account = %protocol::text::printable(&name), why = %e, "login refused");
                return Err(bad());
            }
            Err(LoginError::Account(e)) => return Err(self.internal(e)),
        };
        info!(peer = %ip, account = %name, code = ?refusal.code, reason = %refusal.message, "login refused");
        Err(refusal)
    }

    /// A login with the token of an earlier one.
    pub async fn resume(&self, ip: IpAddr, token: String) -> Result<LoggedIn, Refusal> {
        self.address_open(ip)?;
        let t = token.clone();
        let result = self
            .with_accounts(move |a| a.token_login(&t, SystemTime::now()))
            .await?;
        match result {
            Ok((technician, expires_at)) => {
                info!(peer = %ip, account = %technician.name, tier = technician.tier, "logged in with a token");
                Ok(LoggedIn {
                    account: self.account(&technician),
                    token,
                    expires_in: expires_at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default(),
                })
            }
            Err(e) => {
                if matches!(e, TokenError::Unknown) {
                    self.address_failed(ip);
                }
                let refusal = self.token_refusal(e)?;
                info!(peer = %ip, code = ?refusal.code, reason = %refusal.message, "token refused");
                Err(refusal)
            }
        }
    }

    /// Revokes a token (whoever presents it may end it). Limited like a resume: a token that
    /// is not known counts as a failure of the address.
    pub async fn logout(&self, ip: IpAddr, token: String) -> Result<(), Refusal> {
        self.address_open(ip)?;
        let revoked = self
            .with_accounts(move |a| a.revoke_token(&token, SystemTime::now()))
            .await?
            .map_err(|e| self.internal(e))?;
        if !revoked {
            self.address_failed(ip);
        }
        info!(peer = %ip, revoked, "logout");
        Ok(())
    }

    /// Checks, just before a join, that the login still holds (token live, account enabled)
    /// and that the account may join sessions.
    pub async fn may_join(&self, login: &LoggedIn) -> Result<TechnicianAccount, Refusal> {
        let token = login.token.clone();
        let result = self
            .with_accounts(move |a| a.check_token(&token, SystemTime::now()))
            .await?;
        let refusal = match result {
            Ok(t) if t.role.may_join_sessions() => return Ok(self.account(&t)),
            Ok(t) => Refusal::new(
                ErrorCode::NotPermitted,
                format!(
                    "the account {} has the role {} and may not join sessions",
                    t.name, t.role
                ),
            ),
            Err(e) => self.token_refusal(e)?,
        };
        info!(account = %login.account.name, code = ?refusal.code, reason = %refusal.message, "join refused");
        Err(refusal)
    }

    /// How many accounts are enabled.
    pub async fn enabled_accounts(&self) -> Result<usize, Refusal> {
        let all = self
            .with_accounts(|a| a.list(SystemTime::now()))
            .await?
            .map_err(|e| self.internal(e))?;
        Ok(all.iter().filter(|t| t.enabled).count())
    }

    /// The enabled account named `name` that may join sessions, if there is one.
    pub async fn technician_named(
        &self,
        name: String,
    ) -> Result<Option<crate::accounts::Technician>, Refusal> {
        let found = self
            .with_accounts(move |a| a.get(&name, SystemTime::now()))
            .await?
            .map_err(|e| self.internal(e))?;
        Ok(found.filter(|t| t.enabled && t.role.may_join_sessions()))
    }

    /// The account behind a login that still holds (token live, account enabled).
    pub async fn live_account(
        &self,
        login: &LoggedIn,
    ) -> Result<crate::accounts::Technician, Refusal> {
        let token = login.token.clone();
        let result = self
            .with_accounts(move |a| a.check_token(&token, SystemTime::now()))
            .await?;
        match result {
            Ok(t) => Ok(t),
            Err(e) => Err(self.token_refusal(e)?),
        }
    }

    /// Forgets failures that no longer delay anyone, and deletes expired tokens (in the
    /// background).
    pub fn purge(&self, now: Instant) {
        self.by_address.lock().expect("backoff lock").purge(now);
        self.by_name.lock().expect("backoff lock").purge(now);
        let accounts = self.accounts.clone();
        tokio::task::spawn_blocking(move || {
            let mut a = accounts.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = a.purge_expired(SystemTime::now()) {
                error!(error = %e, "cannot delete expired login tokens");
            }
        });
    }
}

impl Gate {
    /// The refusal for a token that does not hold; `Err` for a database failure.
    fn token_refusal(&self, e: TokenError) -> Result<Refusal, Refusal> {
        Ok(match e {
            TokenError::Unknown => Refusal::new(
                ErrorCode::TokenRevoked,
                "the login token is not known to this relay; log in again",
            ),
            TokenError::Revoked => Refusal::new(
                ErrorCode::TokenRevoked,
                "the login was ended (logout, password change or an administrator); log in again",
            ),
            TokenError::Expired => {
                Refusal::new(ErrorCode::TokenExpired, "the login expired; log in again")
            }
            TokenError::Disabled => Refusal::new(
                ErrorCode::AccountDisabled,
                "this account is disabled; ask an administrator of the relay",
            ),
            TokenError::Account(e) => return Err(self.internal(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{AccountRole, LoginPolicy};
    use argon2::{Algorithm, Argon2, Params, Version};

    const PW: &str = "correct horse battery";

    fn gate() -> Gate {
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let mut a = Accounts::in_memory(LoginPolicy::default(), cheap).unwrap();
        let now = SystemTime::now();
        a.add_user("alice", PW, 2, AccountRole::Technician, now)
            .unwrap();
        a.add_user("audrey", PW, 1, AccountRole::Auditor, now)
            .unwrap();
        Gate::new(a, "Example Support".into())
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn a_login_holds_until_the_account_is_disabled_or_the_token_revoked() {
        let g = gate();
        let l = g.password(ip(1), "alice".into(), PW.into()).await.unwrap();
        assert_eq!(l.account.name, "alice");
        assert_eq!(l.account.tier, 2);
        assert_eq!(l.account.organisation, "Example Support");
        assert!(l.expires_in > Duration::from_secs(11 * 3600));
        let again = g.resume(ip(2), l.token.clone()).await.unwrap();
        assert_eq!(again.account, l.account);
        assert_eq!(g.may_join(&l).await.unwrap(), l.account);

        // Disabled after the login: the join is refused all the same.
        g.accounts
            .lock()
            .unwrap()
            .disable("alice", SystemTime::now())
            .unwrap();
        let r = g.may_join(&l).await.unwrap_err();
        assert_eq!(r.code, ErrorCode::AccountDisabled);
        g.accounts
            .lock()
            .unwrap()
            .set_enabled("alice", true, SystemTime::now())
            .unwrap();
        // Disabling ended the token for good.
        assert_eq!(
            g.may_join(&l).await.unwrap_err().code,
            ErrorCode::TokenRevoked
        );

        // A logout ends a token between login and join.
        let l = g.password(ip(1), "alice".into(), PW.into()).await.unwrap();
        g.logout(ip(3), l.token.clone()).await.unwrap();
        assert_eq!(
            g.may_join(&l).await.unwrap_err().code,
            ErrorCode::TokenRevoked
        );
        assert_eq!(
            g.resume(ip(1), l.token.clone()).await.unwrap_err().code,
            ErrorCode::TokenRevoked
        );

        // An auditor logs in but joins nothing.
        let l = g.password(ip(1), "audrey".into(), PW.into()).await.unwrap();
        assert_eq!(
            g.may_join(&l).await.unwrap_err().code,
            ErrorCode::NotPermitted
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_parallel_guesses_is_limited_like_the_same_guesses_in_a_row() {
        let g = Arc::new(gate());
        let guesses = 40;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..guesses {
            let g = g.clone();
            tasks.spawn(async move {
                g.password(ip(1), format!("guess{i}"), "wrong password".into())
                    .await
                    .unwrap_err()
                    .code
            });
        }
        let (mut checked, mut limited) = (0, 0);
        while let Some(code) = tasks.join_next().await {
            match code.unwrap() {
                ErrorCode::BadCredentials => checked += 1,
                ErrorCode::RateLimited { .. } => limited += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // All forty start before any ends: only the free failures of the address and the one
        // that sets its delay are let through to a password check.
        assert!(
            checked <= ADDRESS_BACKOFF.free_failures as usize + 1,
            "{checked} of {guesses} parallel guesses were checked"
        );
        assert_eq!(checked + limited, guesses);
        assert!(g.most_checks_at_once() <= ARGON2_AT_ONCE);
        // A right password after that, from another address, still logs in and refunds.
        g.password(ip(7), "alice".into(), PW.into()).await.unwrap();
        // Logouts of unknown tokens count against the address too.
        let mut refused = None;
        for _ in 0..ADDRESS_BACKOFF.free_failures + 2 {
            if let Err(r) = g.logout(ip(8), "0".repeat(64)).await {
                refused = Some(r);
                break;
            }
        }
        assert!(
            matches!(
                refused,
                Some(Refusal {
                    code: ErrorCode::RateLimited { .. },
                    ..
                })
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_locked_or_disabled_account_answers_like_an_unknown_name() {
        let g = gate();
        g.accounts
            .lock()
            .unwrap()
            .disable("alice", SystemTime::now())
            .unwrap();
        let r = g
            .password(ip(1), "alice".into(), PW.into())
            .await
            .unwrap_err();
        assert_eq!(r.code, ErrorCode::BadCredentials, "{r:?}");
        assert_eq!(r.message, "wrong name or password");
        let r = g
            .password(ip(1), "x".repeat(10_000), PW.into())
            .await
            .unwrap_err();
        assert_eq!(r.code, ErrorCode::BadCredentials);
        assert_eq!(
            g.by_name.lock().unwrap().tracked(),
            1,
            "a long name is kept nowhere"
        );
    }

    #[tokio::test]
    async fn unknown_names_and_wrong_passwords_are_refused_and_limited_alike() {
        let g = gate();
        for name in ["alice", "mallory"] {
            for _ in 0..NAME_BACKOFF.free_failures + 1 {
                let r = g
                    .password(ip(1), name.into(), "wrong password".into())
                    .await
                    .unwrap_err();
                assert_eq!(r.code, ErrorCode::BadCredentials, "{name}");
                assert_eq!(r.message, "wrong name or password");
            }
            // Locked: the same words for a name that exists and one that does not.
            let r = g.password(ip(2), name.into(), PW.into()).await.unwrap_err();
            assert!(
                matches!(r.code, ErrorCode::RateLimited { retry_after_secs } if retry_after_secs >= 1),
                "{name}: {r:?}"
            );
            assert!(
                r.message
                    .starts_with("too many failed logins for this account"),
                "{}",
                r.message
            );
        }
        // Failures from one address add up across names, then that address waits.
        let mut i = 0;
        let r = loop {
            let r = g
                .password(ip(1), format!("guess{i}"), "wrong password".into())
                .await
                .unwrap_err();
            if r.code != ErrorCode::BadCredentials {
                break r;
            }
            i += 1;
            assert!(i <= ADDRESS_BACKOFF.free_failures, "never limited");
        };
        assert!(matches!(r.code, ErrorCode::RateLimited { .. }), "{r:?}");
        assert!(r.message.contains("from 10.0.0.1"), "{}", r.message);
        // Another address is not limited (but a locked name is, from anywhere).
        let r = g
            .password(ip(9), "guess".into(), "wrong password".into())
            .await
            .unwrap_err();
        assert_eq!(r.code, ErrorCode::BadCredentials);
        let r = g
            .password(ip(9), "alice".into(), PW.into())
            .await
            .unwrap_err();
        assert!(matches!(r.code, ErrorCode::RateLimited { .. }), "{r:?}");
        // Guessing tokens gets the same refusal as a revoked one.
        let r = g.resume(ip(5), "0".repeat(64)).await.unwrap_err();
        assert_eq!(r.code, ErrorCode::TokenRevoked);
    }
}
