//! One run of the agent, from the relay connection to the end of the session: connect, get a
//! code and show it, wait for a technician, run the [`session`](crate::session), say how it
//! ended. Status goes to the terminal (or, with `--json`, to scripts) through the [`Reporter`]
//! and to the window through the [`Person`]'s [`StatusTx`](crate::status::StatusTx); the
//! binary only parses flags and prints the final error. What the technician and the relay said
//! (who it is, why it ended, why it failed) is printed escaped ([`crate::shown`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use link::client::QueueNews;
use link::report::Reporter;
use link::sealed::{Meeting, PeerPlaneError};
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{PeerInfo, RequestFiling, Role};
use protocol::e2e::{CodeSecret, HandshakeError, UserCode};
use protocol::peer::EndReason;
use serde_json::json;

use crate::session::{self, Ended, Person, SessionOptions};
use crate::shown;
use crate::sink::InputSink;
use crate::source::SourceFactory;
use crate::status::{EndedWhy, Status};

/// Where to reach the relay, and how to run the session.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    /// `HOST:PORT`.
    pub relay: String,
    /// The relay's certificate fingerprint, if given; else the remembered one (or the first
    /// seen, then remembered).
    pub fingerprint: Option<Fingerprint>,
    /// The file of remembered relay fingerprints.
    pub known_relays: PathBuf,
    pub session: SessionOptions,
    /// File a help request in the relay's queue instead of showing a code.
    pub request: Option<RequestFiling>,
}

/// How a run ended, when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// The person cancelled before a technician came.
    Cancelled,
    /// A session took place and ended so.
    Session(Ended),
}

impl Outcome {
    /// Whether the program should exit with success.
    pub fn success(&self) -> bool {
        !matches!(self, Outcome::Session(Ended::Reason(EndReason::Error(_))))
    }
}

/// The words a window says for `outcome`.
pub fn ended_why(outcome: &Outcome) -> EndedWhy {
    match outcome {
        Outcome::Cancelled => EndedWhy::Cancelled,
        Outcome::Session(Ended::Unanswered) => EndedWhy::TimedOut,
        Outcome::Session(Ended::PeerLeft(why)) => EndedWhy::TechnicianLeft(why.clone()),
        Outcome::Session(Ended::Reason(r)) => match r {
            EndReason::UserEnded => EndedWhy::UserEnded,
            EndReason::TechnicianEnded => EndedWhy::TechnicianEnded,
            EndReason::SourceFinished => EndedWhy::SourceFinished,
            EndReason::ConsentDenied => EndedWhy::Denied,
            EndReason::Error(e) => EndedWhy::Error(e.clone()),
        },
    }
}

/// A failed run in words a person can act on (printable: the relay's and the technician's words
/// in it escaped), and what the window says for it.
pub fn explain_error(e: &anyhow::Error) -> (String, EndedWhy) {
    match e.downcast_ref::<LinkError>() {
        Some(LinkError::PeerLeft(r)) => {
            let why = r.to_string();
            (
                format!("the technician left: {}", shown::reason(&why)),
                EndedWhy::TechnicianLeft(why),
            )
        }
        Some(LinkError::PeerPlane(PeerPlaneError::Handshake(HandshakeError::CodeMismatch))) => (
            format!(
                "{e}: the technician entered another code, and nothing was shared. \
                 The code is spent; start the agent again for a new one"
            ),
            EndedWhy::CodeMismatch,
        ),
        _ => {
            let message = format!("{e:#}");
            (
                protocol::text::printable(&message).into_owned(),
                EndedWhy::Failed(message),
            )
        }
    }
}

/// Runs the agent once: until the session ends, the person cancels (End session in the
/// window, or Ctrl+C), or something fails.
pub async fn run(
    opts: ShareOptions,
    factory: SourceFactory,
    describe: String,
    sink: Box<dyn InputSink>,
    person: &mut Person,
    report: Reporter,
) -> anyhow::Result<Outcome> {
    let policy = opts.session.consent;
    if let crate::consent::ConsentPolicy::Preset(state) = policy {
        let control = state == protocol::peer::ConsentState::Control;
        report.event(
            "unattended",
            json!({ "consent": if control { "control" } else { "view_only" } }),
            format!(
                "UNATTENDED: any technician with the code will be let in {} without asking (--consent).",
                if control { "with control of mouse and keyboard" } else { "to view the screen" }
            ),
        );
    }
    person.status.send(Status::Connecting {
        relay: opts.relay.clone(),
    });
    let (mut conn, trusted) = RelayConnection::connect_trusting(
        &opts.relay,
        opts.fingerprint,
        &opts.known_relays,
        Role::Agent,
    )
    .await?;
    report.trust(&opts.relay, &trusted, &opts.known_relays);
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software, "source": describe }),
        format!("Connected to the relay at {}. Ready to share {describe}.", conn.relay_addr),
    );
    let window_end = person.input.end_requested();
    let status = person.status.clone();
    let mut user_end = Box::pin(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => status.send(Status::Interrupted),
            _ = window_end => {}
        }
    });
    let (meeting, peer) = match opts.request.clone() {
        Some(filing) => match queue(&mut conn, filing, person, &report, &mut user_end).await? {
            Some(met) => met,
            None => return Ok(Outcome::Cancelled),
        },
        None => match by_code(&mut conn, person, &report, &mut user_end).await? {
            Some(met) => met,
            None => return Ok(Outcome::Cancelled),
        },
    };
    let account = peer.account.as_ref();
    report.event(
        "paired",
        json!({
            "peer": peer.description, "software": peer.software,
            "technician": account.map(|a| &a.name), "tier": account.map(|a| a.tier),
            "organisation": account.map(|a| &a.organisation),
        }),
        format!("A technician connected: {}.", shown::introduce(&peer)),
    );
    let ended = session::run(
        &mut conn,
        &meeting,
        &peer,
        factory,
        sink,
        person,
        opts.session,
        report,
        user_end,
    )
    .await?;
    finish(conn, ended, &report).await
}

/// Shows a code and waits for the technician who enters it; `None` if the person cancelled.
async fn by_code(
    conn: &mut RelayConnection,
    person: &mut Person,
    report: &Reporter,
    user_end: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<(Meeting, PeerInfo)>> {
    let (rendezvous, expires) = conn.register().await?;
    // The secret part is drawn here and never sent: the relay knows only the nine digits.
    let code = UserCode::new(rendezvous, CodeSecret::generate());
    let copied = format!("{}-{}", code.rendezvous().digits(), code.secret().digits());
    person.status.send(Status::Code {
        shown: code.to_string(),
        copied: copied.clone(),
        expires_at: Instant::now() + Duration::from_secs(u64::from(expires)),
    });
    report.event(
        "code",
        json!({
            "code": copied,
            "rendezvous": code.rendezvous().digits(),
            "expires_in_secs": expires,
        }),
        format!(
            "Session code: {code}\nGive the whole code to your technician. It works once and expires in {} minutes.",
            expires.div_ceil(60)
        ),
    );
    let peer = tokio::select! {
        p = conn.wait_paired() => p?,
        _ = &mut *user_end => {
            cancelled(conn, report).await;
            return Ok(None);
        }
    };
    Ok(Some((Meeting::Code(code), peer)))
}

async fn cancelled(conn: &mut RelayConnection, report: &Reporter) {
    conn.close_and_wait("the user cancelled").await;
    report.event(
        "ended",
        json!({ "reason": "cancelled" }),
        "Cancelled; no session took place.",
    );
}

/// Files a help request and waits in the queue until a technician takes it, saying the place
/// as it moves; `None` if the person cancelled (the request is withdrawn).
async fn queue(
    conn: &mut RelayConnection,
    filing: RequestFiling,
    person: &mut Person,
    report: &Reporter,
    user_end: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<(Meeting, PeerInfo)>> {
    let queued = conn.file_request(filing).await?;
    let (request, position) = (queued.request, queued.position);
    person.status.send(Status::Queued {
        request,
        position,
        expected_wait_secs: queued.expected_wait_secs,
    });
    report.event(
        "queued",
        json!({ "request": request, "position": position, "expected_wait_secs": queued.expected_wait_secs }),
        format!(
            "Help request {request} is in the queue, number {position}{}. A technician will take it; keep this open.",
            expected(queued.expected_wait_secs)
        ),
    );
    loop {
        let news = tokio::select! {
            n = conn.next_in_queue() => n?,
            _ = &mut *user_end => {
                conn.cancel_request().await?;
                match conn.next_in_queue().await? {
                    QueueNews::Taken(peer) => return Ok(Some((Meeting::Queue(conn.session.clone().unwrap_or_default()), peer))),
                    _ => {
                        cancelled(conn, report).await;
                        return Ok(None);
                    }
                }
            }
        };
        match news {
            QueueNews::Place {
                position,
                expected_wait_secs,
            } => {
                person.status.send(Status::Queued {
                    request,
                    position,
                    expected_wait_secs,
                });
                report.event(
                    "queue_place",
                    json!({ "request": request, "position": position, "expected_wait_secs": expected_wait_secs }),
                    format!("Number {position} in the queue{}.", expected(expected_wait_secs)),
                )
            }
            QueueNews::Taken(peer) => {
                report.event(
                    "claimed",
                    json!({ "request": request }),
                    "A technician took your help request.",
                );
                return Ok(Some((
                    Meeting::Queue(conn.session.clone().unwrap_or_default()),
                    peer,
                )));
            }
            QueueNews::Cancelled => {
                cancelled(conn, report).await;
                return Ok(None);
            }
        }
    }
}

/// `, expected wait about 5 minutes`, when it is known.
fn expected(secs: Option<u32>) -> String {
    secs.map(|s| format!(", expected wait about {} minute(s)", s.div_ceil(60).max(1)))
        .unwrap_or_default()
}

/// Closes the link after the session and says how it ended.
async fn finish(conn: RelayConnection, ended: Ended, report: &Reporter) -> anyhow::Result<Outcome> {
    let (reason, human) = match &ended {
        Ended::Reason(r) => (
            protocol::text::clip(&format!("{r:?}"), protocol::text::MAX_REASON).into_owned(),
            shown::end_reason(r),
        ),
        Ended::Unanswered => (
            format!("{:?}", EndReason::ConsentDenied),
            "nobody answered in time, so the session was denied".to_string(),
        ),
        Ended::PeerLeft(why) => (
            "PeerLeft".to_string(),
            format!("the technician left: {}", shown::reason(why)),
        ),
    };
    conn.close_and_wait(&human).await;
    report.event(
        "ended",
        json!({ "reason": reason, "message": human }),
        format!("Session ended: {human}."),
    );
    Ok(Outcome::Session(ended))
}
