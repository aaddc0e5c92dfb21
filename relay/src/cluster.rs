//! Several relays of one organisation: which relay holds the agent of a code or a help request,
//! and where a technician who asked another relay must go.
//!
//! Relays of a cluster share one database (`database_url`). Each records itself in `relays`
//! (its name, the address peers reach it at, its certificate's fingerprint) and says every
//! [`SEEN_EVERY`] that it is still there; one not heard from for [`GONE_AFTER`], or that
//! stopped and struck itself off, is gone (what it held is refused as a gone relay's until it
//! expires or the relay starts again). Each records in `agents_at` which of its agents wait
//! under a code (by the code's SHA-256, never the code) or a help request. A relay asked for a
//! code or a request whose agent it does not hold looks it up here ([`Cluster::find`]): the
//! technician is sent to the relay that holds it ([`Whereabouts::At`]), or told that relay is
//! gone. [`judge`] is the decision, pure; [`Cluster`] the queries around it.
//!
//! Each also records in `live_at` its live sessions (not the leads' monitoring), so that a
//! lead on any relay sees every session of the cluster on the dashboard, and a lead who asks to
//! monitor one, or a technician who takes the escalated request of one, is sent to the relay
//! that runs it ([`Cluster::find_session`], [`Cluster::live_elsewhere`]).

use std::collections::HashMap;
use std::time::Duration;

use protocol::control::{LiveSession, RelayPointer, SessionCode, RESUME_RELAYS_MAX};
use sha2::{Digest, Sha256};

use crate::ledger::now_ms;
use crate::storage::{params, Conn, Database, DbError, Row, Sql};

/// How often a relay of a cluster says it is still there.
pub const SEEN_EVERY: Duration = Duration::from_secs(2);

/// A relay not heard from for this long is gone: its codes and requests are refused.
pub const GONE_AFTER: Duration = Duration::from_secs(10);

/// A relay as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The relay's name ([`crate::identity::relay_name`]).
    pub name: String,
    /// The cluster's name (`cluster_name`): relays of other clusters on the same database are
    /// not peers.
    pub cluster: String,
    /// Where peers reach it (`public_addr`), `HOST:PORT`.
    pub public_addr: String,
    /// Its certificate's fingerprint, hex.
    pub fingerprint: String,
}

/// Where the agent of a code or a help request is, as one relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// No relay of the cluster holds it.
    Unknown,
    /// This relay holds it.
    Here,
    /// A live peer holds it: send the technician there.
    At(RelayPointer),
    /// The relay that held it is gone (stopped, or silent for [`GONE_AFTER`]).
    Gone { relay: String },
}

/// What `agents_at` holds for a code or request: the relay that holds its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub relay: String,
    pub until_ms: u64,
}

/// Where the agent is, from the row of `agents_at` (`holding`), the holder's row of `relays`
/// with when it was last seen (`holder`), this relay, and the time.
pub fn judge(
    holding: Option<&Holding>,
    holder: Option<(&Member, u64)>,
    me: &Member,
    now_ms: u64,
) -> Whereabouts {
    let Some(h) = holding.filter(|h| h.until_ms > now_ms) else {
        return Whereabouts::Unknown;
    };
    if h.relay == me.name {
        return Whereabouts::Here;
    }
    match holder.and_then(|(m, seen)| reachable(m, seen, me, now_ms).filter(|_| m.name == h.relay))
    {
        Some(to) => Whereabouts::At(to),
        None => Whereabouts::Gone {
            relay: h.relay.clone(),
        },
    }
}

/// The live peers of `me` among `members` (each with when it was last seen): those of its
/// cluster heard from within [`GONE_AFTER`], by name, at most [`RESUME_RELAYS_MAX`]. Told to
/// the ends of each session to resume through.
pub fn live_peers(members: &[(Member, u64)], me: &Member, now_ms: u64) -> Vec<RelayPointer> {
    let mut live: Vec<RelayPointer> = members
        .iter()
        .filter(|(m, _)| m.name != me.name)
        .filter_map(|(m, seen)| reachable(m, *seen, me, now_ms))
        .collect();
    live.sort_by(|a, b| a.name.cmp(&b.name));
    live.truncate(RESUME_RELAYS_MAX);
    live
}

/// Where to send a technician to relay `m`, last seen at `seen`, from relay `me`: `None` when
/// it is of another cluster or gone.
fn reachable(m: &Member, seen: u64, me: &Member, now_ms: u64) -> Option<RelayPointer> {
    (m.cluster == me.cluster && now_ms.saturating_sub(seen) < GONE_AFTER.as_millis() as u64).then(
        || RelayPointer {
            name: m.name.clone(),
            addr: m.public_addr.clone(),
            fingerprint: m.fingerprint.clone(),
        },
    )
}

/// What `agents_at` calls the agent waiting under `code`: the SHA-256 of its digits.
pub fn code_key(code: &SessionCode) -> String {
    format!(
        "code {}",
        hex::encode(Sha256::digest(code.digits().as_bytes()))
    )
}

/// What `agents_at` calls the agent of help request `id`.
pub fn request_key(id: u64) -> String {
    format!("request {id}")
}

/// This relay's place in the cluster, in the shared database.
pub struct Cluster {
    conn: Conn,
    me: Member,
}

impl Cluster {
    /// Records `me` in `db`'s relays (replacing an earlier row of the same name), and forgets
    /// the agents its last run held.
    pub fn enter(db: &Database, me: Member) -> Result<Self, DbError> {
        let c = Self {
            conn: db.connect()?,
            me,
        };
        for table in ["agents_at", "live_at"] {
            c.conn.execute(
                &format!("DELETE FROM {table} WHERE relay = $1"),
                params![&c.me.name],
            )?;
        }
        c.conn.execute(
            "INSERT INTO relays (name, cluster, public_addr, fingerprint, last_seen)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET cluster = $2, public_addr = $3, fingerprint = $4,
                 last_seen = $5",
            params![
                &c.me.name,
                &c.me.cluster,
                &c.me.public_addr,
                &c.me.fingerprint,
                now_ms()
            ],
        )?;
        Ok(c)
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Says this relay is still there, and drops the rows of codes past their expiry.
    pub fn seen(&self) -> Result<(), DbError> {
        let now = now_ms();
        self.conn.execute(
            "UPDATE relays SET last_seen = $2 WHERE name = $1",
            params![&self.me.name, now],
        )?;
        self.conn
            .execute("DELETE FROM agents_at WHERE until_at <= $1", params![now])?;
        Ok(())
    }

    /// The live peers of this relay ([`live_peers`]).
    pub fn peers(&self) -> Result<Vec<RelayPointer>, DbError> {
        let rows = self.conn.query(
            "SELECT name, cluster, public_addr, fingerprint, last_seen FROM relays
             WHERE cluster = $1 AND name <> $2",
            params![&self.me.cluster, &self.me.name],
        )?;
        let members = rows
            .iter()
            .map(member_seen)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(live_peers(&members, &self.me, now_ms()))
    }

    /// Strikes this relay off (it stops): its codes and requests are refused as gone at once,
    /// until they expire or it enters again.
    pub fn leave(&self) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM relays WHERE name = $1", params![&self.me.name])?;
        Ok(())
    }

    /// Records that this relay holds the agent of `what` (a [`code_key`] or [`request_key`])
    /// on the connection `holder`, until `until_ms`.
    pub fn hold(&self, what: &str, holder: &str, until_ms: u64) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO agents_at (what, relay, holder, until_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (what) DO UPDATE SET relay = $2, holder = $3, until_at = $4",
            params![what, &self.me.name, holder, until_ms],
        )?;
        Ok(())
    }

    /// Forgets `what`, if this relay still holds it on the connection `holder`.
    pub fn release(&self, what: &str, holder: &str) -> Result<(), DbError> {
        self.conn.execute(
            "DELETE FROM agents_at WHERE what = $1 AND relay = $2 AND holder = $3",
            params![what, &self.me.name, holder],
        )?;
        Ok(())
    }

    /// Where the agent of `what` is.
    pub fn find(&self, what: &str) -> Result<Whereabouts, DbError> {
        let holding = self
            .conn
            .query_opt(
                "SELECT relay, until_at FROM agents_at WHERE what = $1",
                params![what],
            )?
            .map(|r| {
                Ok::<_, DbError>(Holding {
                    relay: r.get(0)?,
                    until_ms: r.get(1)?,
                })
            })
            .transpose()?;
        let holder = match &holding {
            Some(h) => self
                .conn
                .query_opt(
                    "SELECT name, cluster, public_addr, fingerprint, last_seen FROM relays
                     WHERE name = $1",
                    params![&h.relay],
                )?
                .map(|r| member_seen(&r))
                .transpose()?,
            None => None,
        };
        Ok(judge(
            holding.as_ref(),
            holder.as_ref().map(|(m, seen)| (m, *seen)),
            &self.me,
            now_ms(),
        ))
    }
}

impl Cluster {
    /// The help requests whose agents wait on live peers of this relay, and where: a
    /// technician of this relay sees them waiting like its own, and taking one is sent there.
    /// (Those of gone relays are left out: their agents are not connected.)
    pub fn requests_elsewhere(&self) -> Result<HashMap<u64, RelayPointer>, DbError> {
        let now = now_ms();
        let rows = self.conn.query(
            "SELECT a.what, a.relay, a.until_at, r.name, r.cluster, r.public_addr,
                    r.fingerprint, r.last_seen
             FROM agents_at a JOIN relays r ON r.name = a.relay
             WHERE a.what LIKE 'request %' AND a.relay <> $1 AND a.until_at > $2",
            params![&self.me.name, now],
        )?;
        let mut elsewhere = HashMap::new();
        for r in rows {
            let what: String = r.get(0)?;
            let Some(id) = request_of(&what) else {
                continue;
            };
            let holding = Holding {
                relay: r.get(1)?,
                until_ms: r.get(2)?,
            };
            let holder = Member {
                name: r.get(3)?,
                cluster: r.get(4)?,
                public_addr: r.get(5)?,
                fingerprint: r.get(6)?,
            };
            let seen: u64 = r.get(7)?;
            if let Whereabouts::At(to) = judge(Some(&holding), Some((&holder, seen)), &self.me, now)
            {
                elsewhere.insert(id, to);
            }
        }
        Ok(elsewhere)
    }
}

impl Cluster {
    /// Records that session `live` runs on this relay.
    pub fn live(&self, live: &LiveSession) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO live_at (session, relay, technician, tier, request, started_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (session) DO UPDATE SET relay = $2, technician = $3, tier = $4,
                 request = $5, started_at = $6",
            params![
                &live.session,
                &self.me.name,
                &live.technician,
                live.tier,
                live.request,
                live.started_unix_ms
            ],
        )?;
        Ok(())
    }

    /// Forgets session `session` of this relay: it is over.
    pub fn not_live(&self, session: &str) -> Result<(), DbError> {
        self.conn.execute(
            "DELETE FROM live_at WHERE session = $1 AND relay = $2",
            params![session, &self.me.name],
        )?;
        Ok(())
    }

    /// The live sessions of this relay's live peers, each with where it runs.
    pub fn live_elsewhere(&self) -> Result<Vec<(LiveSession, RelayPointer)>, DbError> {
        self.live_rows("l.relay <> $1", &self.me.name)
    }

    /// What the live peers of this relay hold: the help requests whose agents wait there or
    /// whose sessions run there (a technician of this relay taking one is sent there: an
    /// escalation joins the session), and the sessions they run.
    pub fn elsewhere(&self) -> Result<Elsewhere, DbError> {
        let mut requests = self.requests_elsewhere()?;
        let sessions = self.live_elsewhere()?;
        for (l, to) in &sessions {
            if let Some(id) = l.request {
                requests.entry(id).or_insert_with(|| to.clone());
            }
        }
        Ok(Elsewhere { requests, sessions })
    }

    /// Where session `session` runs, if on a live peer of this relay.
    pub fn find_session(&self, session: &str) -> Result<Option<RelayPointer>, DbError> {
        let mut rows = self.live_rows("l.session = $1", session)?;
        Ok(rows
            .pop()
            .map(|(_, to)| to)
            .filter(|to| to.name != self.me.name))
    }

    /// The rows of `live_at` for which `condition` (on `$1` = `value`) holds, of relays that
    /// are live peers of this one.
    fn live_rows(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Vec<(LiveSession, RelayPointer)>, DbError> {
        let now = now_ms();
        let rows = self.conn.query(
            &format!(
                "SELECT l.session, l.technician, l.tier, l.request, l.started_at, r.name,
                        r.cluster, r.public_addr, r.fingerprint, r.last_seen
                 FROM live_at l JOIN relays r ON r.name = l.relay
                 WHERE {condition}"
            ),
            params![value],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let holder = Member {
                name: r.get(5)?,
                cluster: r.get(6)?,
                public_addr: r.get(7)?,
                fingerprint: r.get(8)?,
            };
            let Some(to) = reachable(&holder, r.get(9)?, &self.me, now) else {
                continue;
            };
            let live = LiveSession {
                session: r.get(0)?,
                technician: r.get(1)?,
                tier: r.get(2)?,
                request: r.get(3)?,
                started_unix_ms: r.get(4)?,
            };
            out.push((live, to));
        }
        Ok(out)
    }
}

/// A row of `relays` read as `name, cluster, public_addr, fingerprint, last_seen`: the member
/// and when it was last seen.
fn member_seen(r: &Row) -> Result<(Member, u64), DbError> {
    Ok((
        Member {
            name: r.get(0)?,
            cluster: r.get(1)?,
            public_addr: r.get(2)?,
            fingerprint: r.get(3)?,
        },
        r.get(4)?,
    ))
}

/// What the other live relays of a cluster hold, as one relay reads it ([`Cluster::elsewhere`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Elsewhere {
    /// Help requests, each with the relay that holds its agent.
    pub requests: HashMap<u64, RelayPointer>,
    /// Live sessions, each with the relay that runs it.
    pub sessions: Vec<(LiveSession, RelayPointer)>,
}

/// The help request a [`request_key`] names.
fn request_of(what: &str) -> Option<u64> {
    what.strip_prefix("request ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::each_backend;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            cluster: "north".into(),
            public_addr: format!("{name}.example.org:4433"),
            fingerprint: "ab".repeat(32),
        }
    }

    #[test]
    fn the_agent_is_here_at_a_live_peer_or_with_a_gone_one() {
        let (me, a) = (member("b"), member("a"));
        let held = |relay: &str, until_ms| Holding {
            relay: relay.into(),
            until_ms,
        };
        let now = 1_000_000;
        assert_eq!(judge(None, None, &me, now), Whereabouts::Unknown);
        // An expired code is no one's.
        assert_eq!(
            judge(Some(&held("a", now)), Some((&a, now)), &me, now),
            Whereabouts::Unknown
        );
        assert_eq!(
            judge(Some(&held("b", now + 1)), None, &me, now),
            Whereabouts::Here
        );
        let at_a = Whereabouts::At(RelayPointer {
            name: "a".into(),
            addr: "a.example.org:4433".into(),
            fingerprint: "ab".repeat(32),
        });
        assert_eq!(
            judge(Some(&held("a", now + 1)), Some((&a, now - 1_000)), &me, now),
            at_a
        );
        let gone = Whereabouts::Gone { relay: "a".into() };
        // Silent for too long, struck off, or of another cluster.
        let silent = now - GONE_AFTER.as_millis() as u64;
        assert_eq!(
            judge(Some(&held("a", now + 1)), Some((&a, silent)), &me, now),
            gone
        );
        assert_eq!(judge(Some(&held("a", now + 1)), None, &me, now), gone);
        let elsewhere = Member {
            cluster: "south".into(),
            ..a.clone()
        };
        assert_eq!(
            judge(Some(&held("a", now + 1)), Some((&elsewhere, now)), &me, now),
            gone
        );
    }

    #[test]
    fn the_live_peers_are_the_clusters_others_heard_from_by_name_and_bounded() {
        let me = member("m");
        let now = 1_000_000;
        let gone = now - GONE_AFTER.as_millis() as u64;
        let south = Member {
            cluster: "south".into(),
            ..member("s")
        };
        let members = vec![
            (member("c"), now - 500),
            (me.clone(), now),
            (member("a"), now),
            (member("silent"), gone),
            (south, now),
        ];
        let names: Vec<String> = live_peers(&members, &me, now)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a", "c"]);
        let many: Vec<(Member, u64)> = (0..40)
            .map(|i| (member(&format!("r{i:02}")), now))
            .collect();
        let told = live_peers(&many, &me, now);
        assert_eq!(told.len(), RESUME_RELAYS_MAX);
        assert_eq!(told[0].name, "r00");
        assert_eq!(told[0].addr, "r00.example.org:4433");
        assert_eq!(told[0].fingerprint, "ab".repeat(32));
    }

    #[test]
    fn relays_sharing_a_database_find_each_others_agents() {
        each_backend(|db| {
            let a = Cluster::enter(db, member("a")).unwrap();
            let b = Cluster::enter(db, member("b")).unwrap();
            let code = code_key(&SessionCode::parse("123456789").unwrap());
            assert!(!code.contains("123456789"), "the code itself is not kept");
            a.hold(&code, "conn-1", now_ms() + 60_000).unwrap();
            a.hold(&request_key(7), "conn-2", now_ms() + 60_000)
                .unwrap();
            assert_eq!(a.find(&code).unwrap(), Whereabouts::Here);
            assert!(matches!(b.find(&code).unwrap(), Whereabouts::At(p) if p.name == "a"));
            // Another connection's release leaves it; its own removes it.
            a.release(&request_key(7), "conn-9").unwrap();
            assert!(matches!(
                b.find(&request_key(7)).unwrap(),
                Whereabouts::At(_)
            ));
            a.release(&request_key(7), "conn-2").unwrap();
            assert_eq!(b.find(&request_key(7)).unwrap(), Whereabouts::Unknown);
            // B sees the requests A holds, A none of its own as elsewhere.
            a.hold(&request_key(9), "conn-4", now_ms() + 60_000)
                .unwrap();
            let seen_from_b = b.requests_elsewhere().unwrap();
            assert_eq!(seen_from_b.keys().collect::<Vec<_>>(), vec![&9]);
            assert_eq!(seen_from_b[&9].name, "a");
            assert!(a.requests_elsewhere().unwrap().is_empty());
            // Each is the other's live peer to resume through.
            assert_eq!(a.peers().unwrap()[0].name, "b");
            assert_eq!(b.peers().unwrap()[0].name, "a");
            // A relay that stops is gone at once; one that crashed once it is silent.
            a.seen().unwrap();
            b.hold(&request_key(8), "conn-3", now_ms() + 60_000)
                .unwrap();
            b.leave().unwrap();
            assert_eq!(
                a.find(&request_key(8)).unwrap(),
                Whereabouts::Gone { relay: "b".into() }
            );
            db.connect()
                .unwrap()
                .execute(
                    "UPDATE relays SET last_seen = 0 WHERE name = 'a'",
                    params![],
                )
                .unwrap();
            let b = Cluster::enter(db, member("b")).unwrap();
            assert_eq!(
                b.find(&code).unwrap(),
                Whereabouts::Gone { relay: "a".into() }
            );
            // A gone relay's requests are nowhere to be taken.
            assert!(b.requests_elsewhere().unwrap().is_empty());
        });
    }

    #[test]
    fn each_relay_sees_the_live_sessions_of_the_others_until_they_end_or_it_goes() {
        each_backend(|db| {
            let a = Cluster::enter(db, member("a")).unwrap();
            let b = Cluster::enter(db, member("b")).unwrap();
            let live = LiveSession {
                session: "s-1".into(),
                technician: "tom".into(),
                tier: 1,
                request: Some(7),
                started_unix_ms: 1_700_000_000_000,
            };
            a.live(&live).unwrap();
            // Its request is taken where it runs.
            assert_eq!(b.elsewhere().unwrap().requests[&7].name, "a");
            let seen = b.live_elsewhere().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0, live);
            assert_eq!(seen[0].1.name, "a");
            assert!(
                a.live_elsewhere().unwrap().is_empty(),
                "its own are not elsewhere"
            );
            assert_eq!(b.find_session("s-1").unwrap().unwrap().name, "a");
            assert_eq!(a.find_session("s-1").unwrap(), None, "here, not elsewhere");
            assert_eq!(b.find_session("s-2").unwrap(), None);
            // Only the relay running it ends it.
            b.not_live("s-1").unwrap();
            assert_eq!(b.live_elsewhere().unwrap().len(), 1);
            a.not_live("s-1").unwrap();
            assert!(b.live_elsewhere().unwrap().is_empty());
            // A relay that stops takes its sessions with it; one that enters again forgets
            // those of its last run.
            a.live(&live).unwrap();
            a.leave().unwrap();
            assert!(b.live_elsewhere().unwrap().is_empty());
            let a = Cluster::enter(db, member("a")).unwrap();
            assert!(b.live_elsewhere().unwrap().is_empty());
            assert_eq!(a.find_session("s-1").unwrap(), None);
        });
    }
}
