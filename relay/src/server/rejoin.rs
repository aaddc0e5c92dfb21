//! Rejoining: the two ends of a live session whose relay connection died come back (to this
//! relay restarted, or to this relay instead of a gone one) and are paired again.
//!
//! Each end presents the ticket both derive from the session's keys ([`ToRelay::Rejoin`]); the
//! relay pairs an agent and a technician that present the same one, as it pairs a code, and
//! forwards their peer plane from then on. The ticket says nothing else to the relay: the two
//! ends prove to each other that they are the same session's (`link::resume`), so a relay that
//! pairs the wrong two only gets them refused by each other. The first to come waits at most
//! [`REJOIN_WAIT`], or until it leaves; a later one of the same role takes its place.
//!
//! [`ToRelay::Rejoin`]: protocol::control::ToRelay::Rejoin

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use link::channel::{FramedRecv, FramedSend};
use protocol::control::{ErrorCode, FromRelay, PeerInfo, Role, ToRelay};
use quinn::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::{paired, send, Recorded, Refusal, Shared, Side};
use crate::limits::Windows;

/// Longest an end waits here for the other to rejoin: as long as an end keeps trying by
/// default (`link::resume::RESUME_LIMIT`).
pub const REJOIN_WAIT: Duration = Duration::from_secs(30);

/// Tickets longer than this are refused before they are stored.
const MAX_TICKET: usize = 64;

/// One end waiting for the other under a ticket.
struct Waiting {
    role: Role,
    session: String,
    conn: Connection,
    info: PeerInfo,
    pair: oneshot::Sender<(Connection, PeerInfo)>,
}

/// The ends waiting to rejoin, by ticket.
#[derive(Default)]
pub struct Rejoining(Mutex<HashMap<String, Waiting>>);

impl Rejoining {
    /// The other end waiting under `ticket`, taken out of the table; or, if none is there yet,
    /// this end put in (replacing an earlier attempt of the same role).
    fn meet(&self, ticket: &str, me: Waiting) -> Option<Waiting> {
        let mut table = self.0.lock().expect("rejoining lock");
        match table.remove(ticket) {
            Some(other) if other.role != me.role => Some(other),
            _ => {
                table.insert(ticket.to_string(), me);
                None
            }
        }
    }

    /// Takes this connection's entry out (it gave up or left), leaving a later one alone.
    fn leave(&self, ticket: &str, conn: &Connection) {
        let mut table = self.0.lock().expect("rejoining lock");
        if table
            .get(ticket)
            .is_some_and(|w| w.conn.stable_id() == conn.stable_id())
        {
            table.remove(ticket);
        }
    }
}

/// Pairs this end with the other end rejoining under `ticket`, then forwards the session as
/// any paired one. `technician`: the account, for a technician (logged in).
#[allow(clippy::too_many_arguments)]
pub(super) async fn rejoin(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    info: PeerInfo,
    ticket: String,
    session: String,
    technician: Option<&str>,
) -> Result<(), Refusal> {
    if ticket.len() > MAX_TICKET || session.len() > MAX_TICKET {
        return Err(Refusal::violation(
            "a rejoin ticket or session longer than any",
        ));
    }
    let role = info.role;
    let gone = || {
        Refusal::new(
            ErrorCode::UnknownSession,
            format!(
                "the other end of the session did not come back within {} seconds",
                REJOIN_WAIT.as_secs()
            ),
        )
    };
    let (tx, rx) = oneshot::channel();
    let me = Waiting {
        role,
        session: session.clone(),
        conn: conn.clone(),
        info: info.clone(),
        pair: tx,
    };
    let (other_conn, other_info) = match shared.rejoining.meet(&ticket, me) {
        Some(other) => {
            if other.session != session {
                return Err(Refusal::new(
                    ErrorCode::UnknownSession,
                    "the two ends name different sessions",
                ));
            }
            let found = (other.conn.clone(), other.info.clone());
            other.pair.send((conn.clone(), info)).map_err(|_| gone())?;
            found
        }
        None => {
            let waited = tokio::select! {
                r = tokio::time::timeout(REJOIN_WAIT, rx) => r.ok().and_then(Result::ok),
                _ = conn.closed() => None,
                _ = super::read(inp) => None,
            };
            match waited {
                Some(found) => found,
                None => {
                    shared.rejoining.leave(&ticket, conn);
                    return Err(gone());
                }
            }
        }
    };
    info!(peer = %conn.remote_address(), %role, %session, "rejoined a live session");
    Windows::paired(conn);
    send(
        out,
        FromRelay::Paired {
            peer: other_info,
            session: session.clone(),
            request: None,
        },
    )
    .await?;
    let side = match technician {
        Some(name) => Side::Technician(Recorded {
            technician: name,
            session: &session,
            required: shared.cfg.audit_key.is_some() && !shared.cfg.allow_no_record,
            request: None,
        }),
        // Nobody invites further technicians through a rejoined session.
        None => Side::Agent(mpsc::channel(1).1),
    };
    let ended = Box::pin(paired(conn, role, &other_conn, out, inp, shared, side)).await;
    if technician.is_some() {
        let why = match &ended {
            Ok(words) => words.clone(),
            Err(r) => r.message.clone(),
        };
        super::close_in_ledger(shared, &session, why).await;
    }
    ended.map(|_| ())
}
