//! One run of the agent, from the relay connection to the end of the session: connect, get a
//! code and show it, wait for a technician, run the [`session`](crate::session), say how it
//! ended. Status goes to the terminal (or, with `--json`, to scripts) through the [`Reporter`]
//! and to the window through the [`Person`]'s [`StatusTx`](crate::status::StatusTx); the
//! binary only parses flags and prints the final error. What the technician and the relay said
//! (who it is, why it ended, why it failed) is printed escaped ([`crate::shown`]).
//!
//! A help request is filed at the start (`--request`), or from the window while the code is
//! shown ([`ToDesk::AskHelp`](crate::desk::ToDesk)). In the second case the code's connection
//! is closed first and the request filed on a new one. The relay withdraws a waiting code when
//! its connection closes, so the code is dead before the request exists; and a technician who
//! enters the code at that very moment meets a closed connection and is told the agent left,
//! rather than reaching a connection that has moved on to the queue (on the same connection,
//! their pairing could arrive where the agent waits for the request's place). The cost is one
//! more handshake with the relay, once.
//!
//! When the desk closes the request, its one-question survey is asked only if a technician saw
//! the screen in one of the request's sessions (the person allowed control or view only): a
//! request closed after the person said no, let the question go unanswered, or ended the
//! session before anything was shared, asks nothing, as "how well were you helped" has no
//! answer then. The window asks it ([`Status::Survey`]); without a window, `--survey` answers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use link::client::QueueNews;
use link::report::Reporter;
use link::sealed::{Meeting, PeerPlaneError};
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{ErrorCode, PeerInfo, RequestFiling, Role};
use protocol::e2e::{CodeSecret, HandshakeError, UserCode};
use protocol::peer::EndReason;
use serde_json::json;

use crate::desk::{HelpAsked, Machine, SurveyAnswer};
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
    /// What a help request filed from the window says of this machine.
    pub machine: Machine,
    /// Without a window: the answer to the desk's survey once the request is closed, score
    /// 1 to 5 and comment.
    pub survey: Option<(u8, String)>,
}

/// How a run ended, when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// The person cancelled before a technician came.
    Cancelled,
    /// A session took place and ended so.
    Session(Ended),
    /// The desk closed the help request after its last session ended so; `answered`: the
    /// survey was answered.
    RequestClosed { last: Ended, answered: bool },
}

impl Outcome {
    /// Whether the program should exit with success.
    pub fn success(&self) -> bool {
        !matches!(
            self,
            Outcome::Session(Ended::Reason(EndReason::Error(_)))
                | Outcome::RequestClosed {
                    last: Ended::Reason(EndReason::Error(_)),
                    ..
                }
        )
    }
}

/// The words a window says for `outcome`.
pub fn ended_why(outcome: &Outcome) -> EndedWhy {
    match outcome {
        Outcome::Cancelled => EndedWhy::Cancelled,
        Outcome::RequestClosed { answered, .. } => EndedWhy::RequestClosed { thanked: *answered },
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

/// What makes the input sink and the screen source of a session: a help request may have
/// several sessions in one run (escalated, held, or back after a lost connection).
pub type SessionParts =
    Box<dyn FnMut() -> anyhow::Result<(Box<dyn InputSink>, SourceFactory)> + Send>;

/// Connects to the relay (again, for a help request's next step).
async fn connect(opts: &ShareOptions, report: &Reporter) -> anyhow::Result<RelayConnection> {
    let (conn, trusted) = RelayConnection::connect_trusting(
        &opts.relay,
        opts.fingerprint,
        &opts.known_relays,
        Role::Agent,
    )
    .await?;
    report.trust(&opts.relay, &trusted, &opts.known_relays);
    Ok(conn)
}

/// Runs the agent once: until the session ends (for a help request: until the desk closes it),
/// the person cancels (End session in the window, or Ctrl+C), or something fails.
pub async fn run(
    opts: ShareOptions,
    mut parts: SessionParts,
    describe: String,
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
    let mut conn = connect(&opts, &report).await?;
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software, "source": describe }),
        format!("Connected to the relay at {}. Ready to share {describe}.", conn.relay_addr),
    );
    // Made anew for each wait: one that has fired is not waited on again.
    let user_end = |person: &Person| {
        let window_end = person.input.end_requested();
        let status = person.status.clone();
        Box::pin(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    status.send(Status::Interrupted);
                }
                _ = window_end => {}
            }
        })
    };
    // The help request, while there is one: what takes it back after each session.
    let mut ticket: Option<(u64, String)> = None;
    let mut end = user_end(person);
    let met = match opts.request.clone() {
        Some(filing) => file(&mut conn, filing, &mut ticket, person, &report, &mut end).await?,
        None => match by_code(&mut conn, person, &report, &mut end).await? {
            Waited::Met(meeting, peer) => Some((meeting, peer)),
            Waited::Cancelled => None,
            Waited::AskedHelp(asked) => {
                // The code's connection is closed; the request goes on a new one.
                conn = connect(&opts, &report).await?;
                let filing = opts
                    .machine
                    .filing(&asked.description, asked.ticket.as_deref());
                file(&mut conn, filing, &mut ticket, person, &report, &mut end).await?
            }
        },
    };
    let Some((mut meeting, mut peer)) = met else {
        return Ok(Outcome::Cancelled);
    };
    loop {
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
        let (sink, factory) = parts()?;
        let ended = session::run(
            conn,
            meeting,
            peer,
            factory,
            sink,
            person,
            opts.session.clone(),
            report,
            user_end(person),
        )
        .await?;
        let last = finish(ended, &report);
        let Some((request, secret)) = ticket.clone() else {
            return Ok(Outcome::Session(last));
        };
        // The desk has the request's next step: back in a queue (escalated, held, a lost
        // connection), or closed.
        conn = connect(&opts, &report).await?;
        match conn.resume_request(request, secret.clone()).await {
            Ok(queued) => {
                let mut end = user_end(person);
                match queue(&mut conn, queued, true, person, &report, &mut end).await? {
                    Some(met) => (meeting, peer) = met,
                    None => return Ok(Outcome::Cancelled),
                }
            }
            Err(LinkError::Refused {
                code: ErrorCode::UnknownRequest,
                ..
            }) => {
                conn.close("the help request is closed");
                let shared = person.status.has_shared();
                report.event(
                    "request_closed",
                    json!({ "request": request, "shared": shared }),
                    format!(
                        "The desk closed help request {request}.{}",
                        if shared {
                            ""
                        } else {
                            " No technician saw this screen, so there is no survey to answer."
                        }
                    ),
                );
                let mut answered = false;
                if shared {
                    let answer =
                        survey_answer(&opts, request, person, &report, user_end(person)).await;
                    if let Some((score, comment)) = answer {
                        survey(&opts, request, secret, score, comment, &report).await?;
                        answered = true;
                    }
                }
                return Ok(Outcome::RequestClosed { last, answered });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The answer to the survey of the closed request `request`: asked in the window when there is
/// one, else `--survey`'s; `None` when there is none (skipped, the window closed, Ctrl+C).
async fn survey_answer(
    opts: &ShareOptions,
    request: u64,
    person: &mut Person,
    report: &Reporter,
    user_end: impl std::future::Future<Output = ()>,
) -> Option<(u8, String)> {
    if !person.status.send(Status::Survey { request }) {
        return opts.survey.clone();
    }
    report.event(
        "survey_asked",
        json!({ "request": request }),
        "How well were you helped? The window asks; answer there.",
    );
    let answer = tokio::select! {
        answer = person.input.survey_answer() => answer,
        _ = user_end => SurveyAnswer::Skipped,
    };
    match answer {
        SurveyAnswer::Score { score, comment } => Some((score, comment)),
        SurveyAnswer::Skipped => {
            report.event(
                "survey_skipped",
                json!({ "request": request }),
                "The survey was not answered.",
            );
            None
        }
    }
}

/// Files a help request and waits in the queue with it (see [`queue`]); `ticket` becomes its
/// number and secret, to take it back after each session.
async fn file(
    conn: &mut RelayConnection,
    filing: RequestFiling,
    ticket: &mut Option<(u64, String)>,
    person: &mut Person,
    report: &Reporter,
    user_end: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<(Meeting, PeerInfo)>> {
    let queued = conn.file_request(filing).await?;
    *ticket = Some((queued.request, queued.secret.clone()));
    queue(conn, queued, false, person, report, user_end).await
}

/// Answers the desk's one-question survey of a closed help request.
async fn survey(
    opts: &ShareOptions,
    request: u64,
    secret: String,
    score: u8,
    comment: String,
    report: &Reporter,
) -> anyhow::Result<()> {
    let mut conn = connect(opts, report).await?;
    conn.answer_survey(request, secret, score, comment).await?;
    conn.close("the survey is answered");
    report.event(
        "survey_answered",
        json!({ "request": request, "score": score }),
        format!("Thank you: your answer ({score} of 5) went to the desk."),
    );
    Ok(())
}

/// How the wait with a code ended.
enum Waited {
    /// A technician entered the code.
    Met(Meeting, PeerInfo),
    /// The person cancelled.
    Cancelled,
    /// The person asked the desk for help instead; the code's connection is closed, so the
    /// relay has withdrawn the code.
    AskedHelp(HelpAsked),
}

/// Shows a code and waits for the technician who enters it, or until the person cancels or
/// asks for help instead.
async fn by_code(
    conn: &mut RelayConnection,
    person: &mut Person,
    report: &Reporter,
    user_end: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Waited> {
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
            return Ok(Waited::Cancelled);
        }
        asked = person.input.help_asked() => {
            conn.close_and_wait("the user asked the desk for help instead").await;
            report.event(
                "code_withdrawn",
                json!({ "reason": "help_requested" }),
                "The code no longer works: you asked the desk for help instead.",
            );
            return Ok(Waited::AskedHelp(asked));
        }
    };
    Ok(Waited::Met(Meeting::Code(code), peer))
}

async fn cancelled(conn: &mut RelayConnection, report: &Reporter) {
    conn.close_and_wait("the user cancelled").await;
    report.event(
        "ended",
        json!({ "reason": "cancelled" }),
        "Cancelled; no session took place.",
    );
}

/// Waits in the queue with a filed (or taken back) help request until a technician takes it,
/// saying the place as it moves; `None` if the person cancelled (the request is withdrawn).
/// `again`: the request comes back to the queue after a session (escalated, held, or its
/// session's connection lost).
async fn queue(
    conn: &mut RelayConnection,
    queued: link::client::Queued,
    again: bool,
    person: &mut Person,
    report: &Reporter,
    user_end: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<(Meeting, PeerInfo)>> {
    let (request, position) = (queued.request, queued.position);
    person.status.send(Status::Queued {
        request,
        position,
        expected_wait_secs: queued.expected_wait_secs,
    });
    let said = if again {
        format!(
            "Help request {request} waits for its next technician, number {position} in the queue{}. Keep this open.",
            expected(queued.expected_wait_secs)
        )
    } else {
        format!(
            "Help request {request} is in the queue, number {position}{}. A technician will take it; keep this open.",
            expected(queued.expected_wait_secs)
        )
    };
    report.event(
        "queued",
        json!({ "request": request, "position": position, "expected_wait_secs": queued.expected_wait_secs, "again": again }),
        said,
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

/// Says how the session ended (each technician's connection was closed with its words).
fn finish(ended: Ended, report: &Reporter) -> Ended {
    let (reason, human) = session::ended_words(&ended);
    report.event(
        "ended",
        json!({ "reason": reason, "message": human }),
        format!("Session ended: {human}."),
    );
    ended
}
