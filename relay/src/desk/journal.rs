//! The desk's events in the relay's database, and the desk as one relay sees them.
//!
//! [`Journal`] keeps the events in the order they happened, numbered 1, 2, 3, …, and never
//! rewrites one. Several relays may share it (in PostgreSQL): each holds a [`Replica`], the
//! [`Desk`] the events replay to, and stores a new event only as the one after the last it has
//! applied. That store is one conditional insert (nothing numbered from there on yet, and
//! `ON CONFLICT DO NOTHING` on the number), so the database decides: of two relays deciding on
//! the same desk at once, one stores its event and the other finds that the journal moved,
//! applies what it missed and decides again on the newer desk ([`Replica::commit`]). A request
//! is taken exactly once whichever relays its technicians reach, and every relay's desk is a
//! replay of the same events. A replica follows what the others store with
//! [`Replica::catch_up`], which the relay calls on the desk's clock.
//!
//! A take names the relay it went through (its session runs there), so that a relay starting
//! again gives back the requests of the sessions that died with it and no other's
//! ([`Replica::taken_here`]).

use super::{Desk, DeskError, Event};
use crate::storage::{params, Conn, Database, DbError, Sql};

/// How often a command is decided again when other relays keep storing events first.
const ATTEMPTS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the desk's events: {0}")]
    Db(#[from] DbError),
    #[error("a stored desk event does not read back: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error("other relays stored desk events first {0} times in a row; try again")]
    Busy(usize),
}

/// The desk's events in the relay's database, in the order they happened. Events are only ever
/// appended.
pub struct Journal {
    conn: Conn,
}

impl Journal {
    pub fn open(db: &Database) -> Result<Self, JournalError> {
        Ok(Self {
            conn: db.connect()?,
        })
    }

    /// Every event, in order.
    pub fn events(&self) -> Result<Vec<Event>, JournalError> {
        Ok(self.since(0)?.into_iter().map(|(_, e)| e).collect())
    }

    /// The events numbered after `seq`, in order, with their numbers.
    pub fn since(&self, seq: u64) -> Result<Vec<(u64, Event)>, JournalError> {
        let rows = self.conn.query(
            "SELECT seq, event FROM desk_events WHERE seq > $1 ORDER BY seq",
            params![seq],
        )?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.get(1)?;
            let event = serde_json::from_str(&text)
                .map_err(|e| JournalError::Corrupt(format!("{e}: {text}")))?;
            events.push((row.get(0)?, event));
        }
        Ok(events)
    }

    /// Stores `event` as number `seq`, if no event is numbered `seq` or later yet: whether it
    /// was stored (`false`: another relay stored one first).
    pub fn store_as(&self, seq: u64, event: &Event) -> Result<bool, JournalError> {
        let text =
            serde_json::to_string(event).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        let stored = self.conn.execute(
            "INSERT INTO desk_events (seq, request, kind, at, event)
             SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS TEXT),
                    CAST($4 AS BIGINT), CAST($5 AS TEXT)
             WHERE NOT EXISTS (SELECT 1 FROM desk_events WHERE seq >= $1)
             ON CONFLICT DO NOTHING",
            params![seq, event.id(), event.kind(), event.at(), &text],
        )?;
        Ok(stored == 1)
    }
}

/// The desk as one relay sees it: the journal's events replayed, followed as other relays
/// append to it. Dereferences to the [`Desk`] for reading.
pub struct Replica {
    desk: Desk,
    /// The number of the last event applied.
    seen: u64,
    journal: Journal,
    /// This relay's name, written in its takes.
    relay: String,
}

impl Replica {
    /// The desk as `journal` leaves it, for the relay called `relay`.
    pub fn open(journal: Journal, relay: &str) -> Result<Self, JournalError> {
        let mut replica = Self {
            desk: Desk::new(),
            seen: 0,
            journal,
            relay: relay.to_string(),
        };
        replica.catch_up()?;
        Ok(replica)
    }

    /// Applies the events stored since the last one applied (by other relays); returns how
    /// many.
    pub fn catch_up(&mut self) -> Result<usize, JournalError> {
        let events = self.journal.since(self.seen)?;
        for (seq, event) in &events {
            self.desk.check(event)?;
            self.desk.apply(event);
            self.seen = *seq;
        }
        Ok(events.len())
    }

    /// Decides `command` on the desk and stores the event it returns as the journal's next,
    /// then applies it. When another relay stored an event first, applies what it missed and
    /// decides again, on the newer desk: the command may then be refused (a request taken
    /// meanwhile is [`DeskError::AlreadyTaken`]). A take is marked as this relay's.
    pub fn commit(
        &mut self,
        mut command: impl FnMut(&Desk) -> Result<Event, DeskError>,
    ) -> Result<Event, JournalError> {
        for _ in 0..ATTEMPTS {
            if let Some(event) = self.commit_if_current(command(&self.desk)?)? {
                return Ok(event);
            }
        }
        Err(JournalError::Busy(ATTEMPTS))
    }

    /// Stores `event`, decided on the desk as this relay holds it, and applies it; unless
    /// another relay stored an event first: then applies what it missed and returns `None`,
    /// the event not stored (for what is decided again anyway, as the desk's rules of time on
    /// its next tick). A take is marked as this relay's.
    pub fn commit_if_current(&mut self, mut event: Event) -> Result<Option<Event>, JournalError> {
        if let Event::Taken { relay, .. } = &mut event {
            *relay = Some(self.relay.clone());
        }
        self.desk.check(&event)?;
        if self.journal.store_as(self.seen + 1, &event)? {
            self.desk.apply(&event);
            self.seen += 1;
            return Ok(Some(event));
        }
        self.catch_up()?;
        Ok(None)
    }

    /// The requests taken through this relay (or before takes named their relay) and still in
    /// hand: when the relay starts, their sessions are those that died with it.
    pub fn taken_here(&self) -> Vec<u64> {
        self.desk
            .in_hand()
            .filter(|r| r.taken_through.as_ref().is_none_or(|t| *t == self.relay))
            .map(|r| r.id)
            .collect()
    }

    /// The number of the last event applied.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

impl std::ops::Deref for Replica {
    type Target = Desk;
    fn deref(&self) -> &Desk {
        &self.desk
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::desk::{Filing, State};
    use crate::storage::testing::each_backend;

    fn filing(what: &str) -> Filing {
        Filing {
            description: what.into(),
            machine: "pc-17".into(),
            os: "Debian 12".into(),
            ticket: None,
        }
    }

    fn replica(db: &Database, relay: &str) -> Replica {
        Replica::open(Journal::open(db).unwrap(), relay).unwrap()
    }

    #[test]
    fn the_journal_keeps_the_events_across_opening_again() {
        each_backend(|db| {
            let mut first = replica(db, "relay-a");
            for i in 0..3 {
                first.commit(|d| d.file(filing("x"), "s", i)).unwrap();
            }
            first.commit(|d| d.take_next("alice", 1, 5)).unwrap();
            let again = replica(db, "relay-a");
            assert_eq!(again.seen(), 4);
            let ids: Vec<u64> = again.visible("bob", 1).map(|r| r.id).collect();
            assert_eq!(ids, vec![2, 3]);
            assert_eq!(
                again.get(1).map(|r| r.taken_through.clone()),
                Some(Some("relay-a".to_string())),
                "the take names its relay"
            );
            assert_eq!(Journal::open(db).unwrap().events().unwrap().len(), 4);
        });
    }

    #[test]
    fn a_relay_follows_the_events_another_relay_stores_and_decides_on_them() {
        each_backend(|db| {
            let mut a = replica(db, "relay-a");
            let mut b = replica(db, "relay-b");
            let filed = a.commit(|d| d.file(filing("printer"), "s", 1)).unwrap();
            assert_eq!(b.catch_up().unwrap(), 1);
            assert_eq!(b.waiting_count(), 1);
            // B files without having seen A's second filing: the journal decides, B's filing
            // is numbered after it.
            a.commit(|d| d.file(filing("mail"), "s", 2)).unwrap();
            let late = b.commit(|d| d.file(filing("vpn"), "s", 3)).unwrap();
            assert_eq!(late.id(), 3, "B learnt of request 2 before filing");
            // Both take request 1 on the desk they hold: one take is stored.
            b.commit(|d| d.take(filed.id(), "bob", 1, 4)).unwrap();
            let refused = a.commit(|d| d.take(filed.id(), "alice", 1, 5)).unwrap_err();
            assert!(
                matches!(
                    &refused,
                    JournalError::Desk(DeskError::AlreadyTaken { by, .. }) if by == "bob"
                ),
                "{refused}"
            );
            // A sees what B did; the requests taken through B are not A's to give back.
            assert_eq!(a.waiting_count(), 2);
            assert!(a.taken_here().is_empty());
            assert_eq!(b.taken_here(), vec![filed.id()]);
            // And every event stored replays in order.
            let events = Journal::open(db).unwrap().events().unwrap();
            assert_eq!(events.len(), 4);
            Desk::replay(&events).unwrap();
        });
    }

    #[test]
    fn ten_technicians_on_two_relays_racing_for_a_hundred_requests_take_each_exactly_once() {
        each_backend(|db| {
            const REQUESTS: u64 = 100;
            const TECHNICIANS: usize = 10;
            let relays: Vec<Arc<Mutex<Replica>>> = ["relay-a", "relay-b"]
                .into_iter()
                .map(|name| Arc::new(Mutex::new(replica(db, name))))
                .collect();
            for i in 0..REQUESTS {
                let relay = &relays[(i % 2) as usize];
                relay
                    .lock()
                    .unwrap()
                    .commit(|d| d.file(filing("help"), "s", i))
                    .unwrap();
            }
            // Each relay decides under its own lock, as the relay process does; the two
            // relays decide at once, and only the database orders them. The technicians take
            // in rounds, all ten at once, as people taking one request each and coming back
            // for the next after it: each round, all ten race for the oldest requests.
            let rounds = REQUESTS / TECHNICIANS as u64;
            let start = std::sync::Barrier::new(TECHNICIANS);
            let takes: Vec<(String, u64)> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..TECHNICIANS)
                    .map(|t| {
                        let relay = relays[t % 2].clone();
                        let start = &start;
                        s.spawn(move || {
                            let name = format!("tech{t}");
                            let mut mine = Vec::new();
                            for _ in 0..rounds {
                                start.wait();
                                let e = relay
                                    .lock()
                                    .unwrap()
                                    .commit(|d| d.take_next(&name, 1, 1000))
                                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                                mine.push((name.clone(), e.id()));
                            }
                            start.wait();
                            let none = relay
                                .lock()
                                .unwrap()
                                .commit(|d| d.take_next(&name, 1, 1000));
                            assert!(
                                matches!(none, Err(JournalError::Desk(DeskError::NoneWaiting(1)))),
                                "{name} found more to take after all were taken"
                            );
                            mine
                        })
                    })
                    .collect();
                racers.into_iter().flat_map(|r| r.join().unwrap()).collect()
            });
            let mut taken: HashMap<u64, Vec<String>> = HashMap::new();
            for (who, id) in &takes {
                taken.entry(*id).or_default().push(who.clone());
            }
            assert_eq!(taken.len() as u64, REQUESTS, "every request was taken");
            let twice: Vec<_> = taken.iter().filter(|(_, by)| by.len() > 1).collect();
            assert!(twice.is_empty(), "taken more than once: {twice:?}");
            // Each relay took its technicians' share, and each relay's desk agrees with the stored events.
            let per_relay = |name: &str| {
                relays[0]
                    .lock()
                    .unwrap()
                    .in_hand()
                    .filter(|r| r.taken_through.as_deref() == Some(name))
                    .count()
            };
            relays[0].lock().unwrap().catch_up().unwrap();
            assert_eq!(
                (per_relay("relay-a"), per_relay("relay-b")),
                (50, 50),
                "each technician took one a round, through its relay"
            );
            let events = Journal::open(db).unwrap().events().unwrap();
            let replayed = Desk::replay(&events).unwrap();
            for relay in &relays {
                let mut r = relay.lock().unwrap();
                r.catch_up().unwrap();
                for id in 1..=REQUESTS {
                    let (a, b) = (r.get(id).unwrap(), replayed.get(id).unwrap());
                    assert_eq!(a.state, b.state);
                    assert!(matches!(a.state, State::Taken { .. }));
                }
            }
        });
    }
}
