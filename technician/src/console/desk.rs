//! The support desk as the console shows it: the request routing offers this technician and
//! how long the offer stays open, the leads' dashboard, and the steps a technician takes with
//! the help request of a session (escalate, hold, close as resolved or not) through a form that
//! asks for what the step needs before it goes to the relay. Plain data and functions of it,
//! with the time passed in, so [`super::model`] and its tests need no egui, network or clock.

use protocol::control::{
    EscalationTarget, LiveSession, Presence, QueueEntry, TechnicianPresence, TierLoad,
};

use crate::desk::DeskAction;

/// A request routing offers this technician: take it or decline it before `expires_unix_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub request: QueueEntry,
    /// `None` for an offer seen only in the queue (made before this console followed it, or
    /// while its connection was down): the relay's clock ends it, and the queue says when.
    pub expires_unix_ms: Option<u64>,
}

impl Offer {
    /// The offer as it arrived at `now_unix_ms`, open for `expires_in_secs`.
    pub fn new(request: QueueEntry, expires_in_secs: u32, now_unix_ms: u64) -> Self {
        Self {
            request,
            expires_unix_ms: Some(now_unix_ms.saturating_add(u64::from(expires_in_secs) * 1000)),
        }
    }

    /// The first request the queue shows offered to `me`, whose user is connected, unless
    /// `me` declined it already (the queue may show it before the relay has the decline).
    pub fn in_queue(requests: &[QueueEntry], me: &str, declined: &[u64]) -> Option<Self> {
        requests
            .iter()
            .find(|e| {
                e.connected && e.offered_to.as_deref() == Some(me) && !declined.contains(&e.id)
            })
            .map(|e| Self {
                request: e.clone(),
                expires_unix_ms: None,
            })
    }

    /// Whole seconds left to answer at `now_unix_ms` (0: it has expired; `None`: not known).
    pub fn secs_left(&self, now_unix_ms: u64) -> Option<u64> {
        self.expires_unix_ms
            .map(|at| at.saturating_sub(now_unix_ms).div_ceil(1000))
    }

    /// Whether the offer still stands after the queue changed: the queue shows its request
    /// offered to `me`, or does not list it because more wait than it shows. Otherwise someone
    /// took it, the user withdrew it, or routing took the offer back.
    pub fn stands_in(&self, requests: &[QueueEntry], more: u32, me: &str) -> bool {
        match requests.iter().find(|e| e.id == self.request.id) {
            Some(e) => e.offered_to.as_deref() == Some(me),
            None => more > 0,
        }
    }
}

/// What leads see of the desk: each tier's queue and each technician's presence.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub tiers: Vec<TierLoad>,
    pub technicians: Vec<TechnicianPresence>,
    /// The live sessions a lead may monitor.
    pub sessions: Vec<LiveSession>,
}

impl Dashboard {
    /// The technicians of each presence, in the order a lead looks for them (available, busy,
    /// away, offline), leaving out the presences nobody has.
    pub fn by_presence(&self) -> Vec<(Presence, Vec<&TechnicianPresence>)> {
        [
            Presence::Available,
            Presence::Busy,
            Presence::Away,
            Presence::Offline,
        ]
        .into_iter()
        .map(|p| {
            let who: Vec<&TechnicianPresence> = self
                .technicians
                .iter()
                .filter(|t| t.presence == p)
                .collect();
            (p, who)
        })
        .filter(|(_, who)| !who.is_empty())
        .collect()
    }
}

/// A length of time as the console says it: whole hours, minutes and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub hours: u64,
    pub minutes: u64,
    pub seconds: u64,
}

impl Span {
    /// The time from `since_unix_ms` to `now_unix_ms` (none if `since` is later).
    pub fn between(since_unix_ms: u64, now_unix_ms: u64) -> Self {
        let secs = now_unix_ms.saturating_sub(since_unix_ms) / 1000;
        Self {
            hours: secs / 3600,
            minutes: secs / 60 % 60,
            seconds: secs % 60,
        }
    }
}

/// Which step of the session's help request a form is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskKind {
    Escalate,
    Hold,
    Resolved,
    Unresolved,
}

/// Where an escalation goes, as the form offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalateTo {
    Tier(u8),
    /// The technician named in [`DeskForm::name`].
    Technician,
}

/// What a form lacks before its step can go to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormProblem {
    /// An escalation needs a note for whoever takes the request next.
    NoteNeeded,
    /// An escalation to a technician needs their name.
    NameNeeded,
}

/// The form of one step: the note (and for an escalation, where to).
#[derive(Debug, Clone, PartialEq)]
pub struct DeskForm {
    pub kind: DeskKind,
    pub to: EscalateTo,
    pub name: String,
    pub note: String,
    pub problem: Option<FormProblem>,
}

impl DeskForm {
    fn new(kind: DeskKind) -> Self {
        Self {
            kind,
            to: EscalateTo::Tier(2),
            name: String::new(),
            note: String::new(),
            problem: None,
        }
    }

    /// The step the form asks for, or what it lacks.
    pub fn action(&self) -> Result<DeskAction, FormProblem> {
        let note = self.note.trim().to_string();
        Ok(match self.kind {
            DeskKind::Escalate => {
                let to = match self.to {
                    EscalateTo::Tier(t) => EscalationTarget::Tier(t),
                    EscalateTo::Technician => match self.name.trim() {
                        "" => return Err(FormProblem::NameNeeded),
                        name => EscalationTarget::Technician(name.to_string()),
                    },
                };
                if note.is_empty() {
                    return Err(FormProblem::NoteNeeded);
                }
                DeskAction::Escalate { to, note }
            }
            DeskKind::Hold => DeskAction::Hold { note },
            DeskKind::Resolved => DeskAction::Close {
                resolved: true,
                note,
            },
            DeskKind::Unresolved => DeskAction::Close {
                resolved: false,
                note,
            },
        })
    }
}

/// The relay's answer to the last step asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done, in the relay's words ("escalated to tier 2").
    Passed(String),
    /// Not done, and why; the technician may try again.
    Refused(String),
}

/// The help request a session came from, and the steps taken with it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRequest {
    /// The request as it was taken (the user's words, the note of who passed it on).
    pub entry: QueueEntry,
    pub form: Option<DeskForm>,
    /// Sent to the relay and not answered yet.
    pub asked: Option<DeskAction>,
    pub answer: Option<Answer>,
}

impl SessionRequest {
    pub fn new(entry: QueueEntry) -> Self {
        Self {
            entry,
            form: None,
            asked: None,
            answer: None,
        }
    }

    /// What the relay did with the request, once it did something.
    pub fn passed(&self) -> Option<&str> {
        match &self.answer {
            Some(Answer::Passed(words)) => Some(words),
            _ => None,
        }
    }

    /// Whether a step may be asked now: none is on its way and none was done. (The session
    /// may go on after a step, the technician staying as an observer, but the request is no
    /// longer theirs.)
    pub fn may_ask(&self) -> bool {
        self.asked.is_none() && self.passed().is_none()
    }

    /// Opens the form of `kind` (a note typed in another step's form is kept).
    pub fn open(&mut self, kind: DeskKind) {
        if !self.may_ask() {
            return;
        }
        let note = self.form.take().map(|f| f.note).unwrap_or_default();
        self.form = Some(DeskForm {
            note,
            ..DeskForm::new(kind)
        });
    }

    pub fn cancel(&mut self) {
        if self.asked.is_none() {
            self.form = None;
        }
    }

    /// The step the open form asks for, now on its way to the relay; `None` (with the problem
    /// in the form) when the form lacks something.
    pub fn submit(&mut self) -> Option<DeskAction> {
        if !self.may_ask() {
            return None;
        }
        let form = self.form.as_mut()?;
        match form.action() {
            Ok(action) => {
                form.problem = None;
                self.answer = None;
                self.asked = Some(action.clone());
                Some(action)
            }
            Err(problem) => {
                form.problem = Some(problem);
                None
            }
        }
    }

    /// The relay's answer: done closes the form; a refusal leaves it open to change and send
    /// again.
    pub fn answered(&mut self, answer: Answer) {
        self.asked = None;
        if matches!(answer, Answer::Passed(_)) {
            self.form = None;
        }
        self.answer = Some(answer);
    }
}

/// A waiting request of tier 1 for the tests: "the printer stops" on pc-17, its user connected.
#[cfg(test)]
pub(super) fn waiting(id: u64, offered_to: Option<&str>) -> QueueEntry {
    QueueEntry {
        id,
        tier: 1,
        filed_unix_ms: 0,
        filing: protocol::control::RequestFiling {
            description: "the printer stops".into(),
            machine: "pc-17".into(),
            os: "Debian 12".into(),
            ticket: None,
        },
        connected: true,
        queued_unix_ms: 0,
        overdue: false,
        offered_to: offered_to.map(str::to_string),
        reserved_for: None,
        handoff: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_counts_down_and_stands_while_the_queue_shows_it_offered_to_me() {
        let offer = Offer::new(waiting(7, Some("ann")), 30, 1_000_000);
        assert_eq!(offer.secs_left(1_000_000), Some(30));
        assert_eq!(
            offer.secs_left(1_029_001),
            Some(1),
            "a part of a second left is a second"
        );
        assert_eq!(offer.secs_left(1_030_000), Some(0));
        assert_eq!(offer.secs_left(2_000_000), Some(0));
        assert!(offer.stands_in(&[waiting(7, Some("ann"))], 0, "ann"));
        assert!(
            !offer.stands_in(&[waiting(7, Some("ben"))], 0, "ann"),
            "routing offered it to the next"
        );
        assert!(
            !offer.stands_in(&[waiting(7, None)], 0, "ann"),
            "taken back"
        );
        assert!(!offer.stands_in(&[waiting(8, None)], 0, "ann"), "taken");
        assert!(
            offer.stands_in(&[waiting(8, None)], 3, "ann"),
            "not listed among more than the queue shows"
        );
    }

    #[test]
    fn an_offer_made_before_the_console_followed_the_queue_is_found_in_it() {
        let away = QueueEntry {
            connected: false,
            ..waiting(5, Some("ann"))
        };
        let queue = [
            waiting(4, None),
            away,
            waiting(6, Some("ann")),
            waiting(7, Some("ann")),
        ];
        let found = Offer::in_queue(&queue, "ann", &[]).unwrap();
        assert_eq!(found.request.id, 6, "the first whose user is here");
        assert_eq!(found.secs_left(0), None, "its time is not known");
        assert_eq!(Offer::in_queue(&queue, "ann", &[6]).unwrap().request.id, 7);
        assert!(Offer::in_queue(&queue, "ben", &[]).is_none());
    }

    #[test]
    fn spans_are_whole_hours_minutes_and_seconds() {
        assert_eq!(
            Span::between(1_000, 1_000 + 3_725_999),
            Span {
                hours: 1,
                minutes: 2,
                seconds: 5
            }
        );
        assert_eq!(
            Span::between(5_000, 1_000),
            Span {
                hours: 0,
                minutes: 0,
                seconds: 0
            },
            "a clock behind the relay's shows no wait, not a wrapped one"
        );
    }

    #[test]
    fn the_dashboard_lists_technicians_by_presence_available_first() {
        let t = |name: &str, presence| TechnicianPresence {
            name: name.into(),
            tier: 1,
            presence,
            sessions: 0,
        };
        let d = Dashboard {
            tiers: vec![],
            sessions: vec![],
            technicians: vec![
                t("ann", Presence::Away),
                t("ben", Presence::Available),
                t("cy", Presence::Away),
            ],
        };
        let groups: Vec<(Presence, Vec<&str>)> = d
            .by_presence()
            .into_iter()
            .map(|(p, who)| (p, who.iter().map(|t| t.name.as_str()).collect()))
            .collect();
        assert_eq!(
            groups,
            vec![
                (Presence::Available, vec!["ben"]),
                (Presence::Away, vec!["ann", "cy"])
            ]
        );
    }

    #[test]
    fn an_escalation_needs_a_note_and_a_named_technician_needs_a_name() {
        let mut r = SessionRequest::new(waiting(3, None));
        assert_eq!(r.submit(), None, "no form open");
        r.open(DeskKind::Escalate);
        assert_eq!(r.submit(), None);
        assert_eq!(
            r.form.as_ref().unwrap().problem,
            Some(FormProblem::NoteNeeded)
        );
        let form = r.form.as_mut().unwrap();
        form.to = EscalateTo::Technician;
        form.note = "  needs an administrator ".into();
        assert_eq!(r.submit(), None);
        assert_eq!(
            r.form.as_ref().unwrap().problem,
            Some(FormProblem::NameNeeded)
        );
        r.form.as_mut().unwrap().name = " ana ".into();
        assert_eq!(
            r.submit(),
            Some(DeskAction::Escalate {
                to: EscalationTarget::Technician("ana".into()),
                note: "needs an administrator".into()
            })
        );
        assert!(!r.may_ask(), "one step at a time");
        r.open(DeskKind::Hold);
        assert_eq!(r.form.as_ref().unwrap().kind, DeskKind::Escalate);
        assert_eq!(r.submit(), None);
        r.answered(Answer::Refused("there is no technician \"ana\"".into()));
        assert!(r.may_ask() && r.form.is_some(), "the form stays to correct");
        r.form.as_mut().unwrap().to = EscalateTo::Tier(3);
        assert_eq!(
            r.submit(),
            Some(DeskAction::Escalate {
                to: EscalationTarget::Tier(3),
                note: "needs an administrator".into()
            })
        );
        r.answered(Answer::Passed("escalated to tier 3".into()));
        assert_eq!(r.passed(), Some("escalated to tier 3"));
        assert!(r.form.is_none() && !r.may_ask());
        r.open(DeskKind::Resolved);
        assert!(r.form.is_none(), "a request passed on takes no more steps");
    }

    #[test]
    fn hold_and_close_take_an_optional_note() {
        for (kind, action) in [
            (
                DeskKind::Hold,
                DeskAction::Hold {
                    note: String::new(),
                },
            ),
            (
                DeskKind::Resolved,
                DeskAction::Close {
                    resolved: true,
                    note: String::new(),
                },
            ),
            (
                DeskKind::Unresolved,
                DeskAction::Close {
                    resolved: false,
                    note: String::new(),
                },
            ),
        ] {
            let mut r = SessionRequest::new(waiting(3, None));
            r.open(kind);
            assert_eq!(r.submit(), Some(action));
        }
        let mut r = SessionRequest::new(waiting(3, None));
        r.open(DeskKind::Escalate);
        r.form.as_mut().unwrap().note = "the spooler".into();
        r.open(DeskKind::Unresolved);
        r.cancel();
        assert!(r.form.is_none());
        r.open(DeskKind::Unresolved);
        assert_eq!(
            r.form.as_ref().unwrap().note,
            "",
            "a cancelled form forgets"
        );
    }
}
