//! The console's network worker against a real relay and agent, without a window: a lead's
//! console sees the dashboard follow a tier-1 technician's presence and the queues; the tier-1
//! console is offered a user's request, declines it, takes it, and escalates it to tier 2 from
//! the window's side of the session; the lead's queue then shows it with the note. The steps
//! of the session's Files panel list a folder of the user's, fetch a file from it and send one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use link::report::Reporter;
use protocol::control::{EscalationTarget, Presence, QueueEntry};
use technician::console::model::{Dashboard, Event};
use technician::console::net::{Net, NetConfig, Request};
use technician::desk::DeskAction;
use technician::viewer::Viewer;
use tests::{Relay, PROMPT, TECHNICIAN_PASSWORD};
use tokio::sync::mpsc;

/// Creates `name` (of `tier`, with `extra` arguments such as a role), logs it in with a logins
/// file of its own, and starts a console's network worker with that login.
fn console(relay: &Relay, dir: &Path, name: &str, tier: u8, extra: &[&str]) -> Net {
    let t = tier.to_string();
    let mut add = vec!["add", name, "--tier", &t];
    add.extend(extra);
    let r = relay.user(&add, &format!("{TECHNICIAN_PASSWORD}\n"));
    assert!(r.success, "relay user add {name}: {}", r.text());
    let tokens = dir.join(format!("{name}-tokens.json"));
    let mut args = vec!["login".to_string(), "--user".into(), name.into()];
    args.extend(relay.peer_args());
    args.extend(["--tokens".into(), tokens.display().to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = tests::run("technician", &refs, &format!("{TECHNICIAN_PASSWORD}\n"));
    assert!(r.success, "technician login as {name}: {}", r.text());
    let config = NetConfig {
        pinned: Some((relay.addr.clone(), relay.fingerprint())),
        known_relays: relay.known_relays_file(),
        tokens,
        log_dir: Some(dir.join(format!("{name}-logs"))),
        report: Reporter::new(false),
    };
    let net = Net::start(
        config,
        Arc::new(Mutex::new(Viewer::new())),
        Arc::new(Mutex::new(None)),
        Arc::new(|| {}),
    )
    .expect("the network worker starts");
    net.send(Request::WatchQueue {
        relay: relay.addr.clone(),
    });
    net
}

/// Waits for the first event `pick` takes, passing over the others.
fn wait_for<T>(net: &Net, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let until = Instant::now() + PROMPT;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some(found) = net.next_event(left).and_then(&mut pick) {
            return found;
        }
    }
    panic!("no {what} within {PROMPT:?}");
}

/// Waits for a dashboard that `check` accepts.
fn dashboard(net: &Net, what: &str, check: impl Fn(&Dashboard) -> bool) -> Dashboard {
    wait_for(net, what, |e| match e {
        Event::Dashboard(d) if check(&d) => Some(d),
        _ => None,
    })
}

fn presence_of(d: &Dashboard, name: &str) -> Option<Presence> {
    d.technicians
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.presence)
}

/// Waits for a queue that holds request `id` as `check` wants it.
fn queued(net: &Net, what: &str, id: u64, check: impl Fn(&QueueEntry) -> bool) -> QueueEntry {
    wait_for(net, what, |e| match e {
        Event::Queue { requests, .. } => requests.into_iter().find(|r| r.id == id && check(r)),
        _ => None,
    })
}

#[test]
fn the_console_follows_presence_declines_an_offer_takes_it_and_escalates_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tests::relay_config(
        dir.path(),
        "[desk.tier1]\nrouting = \"least-busy\"\noffer_secs = 30\n",
    );
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let lead = console(&relay, dir.path(), "lee", 2, &["--role", "lead"]);
    let ann = console(&relay, dir.path(), "ann", 1, &[]);

    // The lead sees ann as she says she is.
    dashboard(&lead, "ann available", |d| {
        presence_of(d, "ann") == Some(Presence::Available)
    });
    ann.send(Request::SetPresence { away: true });
    dashboard(&lead, "ann away", |d| {
        presence_of(d, "ann") == Some(Presence::Away)
    });
    ann.send(Request::SetPresence { away: false });
    dashboard(&lead, "ann available again", |d| {
        presence_of(d, "ann") == Some(Presence::Available)
    });

    // A user asks for help: routing offers it to ann, the only tier-1 technician.
    let source = format!("corpus:{}", tests::data("typing.scrn").display());
    let mut args = relay.peer_args();
    args.extend(
        [
            "--json",
            "--consent",
            "control",
            "--source",
            &source,
            "--request",
            "the printer stops after each page",
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = tests::Proc::spawn("agent", &refs);
    let id = agent.wait_event("queued", PROMPT)["request"]
        .as_u64()
        .unwrap();
    let (offered, secs) = wait_for(&ann, "an offer", |e| match e {
        Event::Offer {
            request,
            expires_in_secs,
            ..
        } => Some((request.id, expires_in_secs)),
        _ => None,
    });
    assert_eq!(offered, id);
    assert!((1..=30).contains(&secs), "{secs}");
    let tier1 = dashboard(&lead, "tier 1 waiting", |d| d.tiers[0].waiting == 1);
    assert!(tier1.tiers[0].oldest_queued_unix_ms.is_some());

    // Ann's queue marks it as offered to her; she declines: nobody else of tier 1 is there, so
    // it waits, offered to no one.
    queued(&ann, "the request marked as offered to ann", id, |r| {
        r.offered_to.as_deref() == Some("ann")
    });
    ann.send(Request::Decline { request: id });
    queued(&ann, "the request offered to no one", id, |r| {
        r.offered_to.is_none()
    });

    // Ann takes it after all, and escalates it to tier 2 from the window's side.
    let (_input_tx, input) = mpsc::channel(16);
    let (desk_tx, desk) = mpsc::channel(4);
    let (_tools_tx, tools) = mpsc::channel(4);
    let (_control_tx, control) = mpsc::channel(4);
    ann.send(Request::Take {
        relay: relay.addr.clone(),
        request: Some(id),
        input,
        tools,
        control,
        desk,
    });
    let taken = wait_for(&ann, "the request taken", |e| match e {
        Event::RequestTaken(entry) => Some(entry),
        Event::JoinFailed(why) => panic!("the take failed: {why}"),
        _ => None,
    });
    assert_eq!(taken.id, id);
    assert_eq!(
        taken.filing.description,
        "the printer stops after each page"
    );
    desk_tx
        .try_send(DeskAction::Escalate {
            to: EscalationTarget::Tier(2),
            note: "the driver needs an administrator".into(),
        })
        .unwrap();
    let words = wait_for(&ann, "the relay's answer", |e| match e {
        Event::RequestPassed(words) => Some(words),
        Event::RequestRefused(why) => panic!("refused: {why}"),
        _ => None,
    });
    assert_eq!(words, "escalated to tier 2");
    wait_for(&ann, "the session's end", |e| match e {
        Event::SessionEnded { .. } => Some(()),
        _ => None,
    });

    // The user waits again, now in tier 2's queue, which the lead sees with ann's note.
    let entry = queued(&lead, "the escalated request", id, |r| r.tier == 2);
    let handoff = entry.handoff.expect("the note of the escalation");
    assert_eq!(
        (handoff.by.as_str(), handoff.note.as_str(), handoff.held),
        ("ann", "the driver needs an administrator", false)
    );
    dashboard(&lead, "tier 2 waiting", |d| {
        d.tiers.iter().any(|t| t.tier == 2 && t.waiting == 1)
    });
    agent.signal(libc::SIGTERM);
    let _ = agent.wait_exit_or(Duration::from_secs(5));
}

/// The steps the console's Files panel makes, against a real agent: a folder of the user's
/// listed, a file picked from it fetched bit-exact, and a file sent to the user.
#[test]
fn the_consoles_file_steps_list_fetch_and_send_through_a_real_session() {
    use technician::files::FileStep;
    use technician::session::ToolAction;
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ann = console(&relay, dir.path(), "ann", 1, &[]);
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let pick: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(shared.join("pick.bin"), &pick).unwrap();
    let inbox = dir.path().join("inbox");
    let source = format!("corpus:{}", tests::data("typing.scrn").display());
    let inbox_arg = inbox.display().to_string();
    let (mut agent, code) = tests::start_agent(
        &relay,
        &[
            "--source",
            &source,
            "--speed",
            "0.05",
            "--consent",
            "control",
            "--allow-browse",
            "--accept-files",
            &inbox_arg,
        ],
    );

    let (_input_tx, input) = mpsc::channel(16);
    let (tools_tx, tools) = mpsc::channel(4);
    let (_control_tx, control) = mpsc::channel(4);
    ann.send(Request::Join {
        relay: relay.addr.clone(),
        code,
        input,
        tools,
        control,
    });
    // The panel's steps go once the screen shows (as the window offers them).
    wait_for(&ann, "the screen", |e| match e {
        Event::ScreenStarted { .. } => Some(()),
        Event::JoinFailed(why) => panic!("the join failed: {why}"),
        _ => None,
    });
    let files = |step| tools_tx.try_send(ToolAction::Files(step)).unwrap();
    // The folder, as the panel lists it.
    files(FileStep::List {
        path: shared.display().to_string(),
    });
    let listing = wait_for(&ann, "the listing", |e| match e {
        Event::Listed(l) => Some(l),
        Event::FilesNote(n) => panic!("{n:?}"),
        _ => None,
    });
    let entry = &listing.entries[..];
    assert_eq!(entry.len(), 1, "{listing:?}");
    assert_eq!(
        (entry[0].name.as_str(), entry[0].size),
        ("pick.bin", 3 << 20)
    );

    // The file picked from it, fetched into the technician's folder.
    let back = dir.path().join("back");
    files(FileStep::Fetch {
        path: listing.child("pick.bin"),
        dir: back.clone(),
    });
    let row = wait_for(&ann, "the fetched file's row ended", |e| match e {
        Event::File(r) if r.ended.is_some() => Some(r),
        Event::FilesNote(n) => panic!("{n:?}"),
        _ => None,
    });
    assert_eq!(row.ended, Some(Ok(())), "{row:?}");
    assert!(row.incoming);
    assert!(std::fs::read(back.join("pick.bin")).unwrap() == pick);

    // A file sent to the user lands in the agent's folder.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"restart the print spooler").unwrap();
    files(FileStep::Send(vec![notes]));
    let row = wait_for(&ann, "the sent file's row ended", |e| match e {
        Event::File(r) if r.ended.is_some() && !r.incoming => Some(r),
        Event::FilesNote(n) => panic!("{n:?}"),
        _ => None,
    });
    assert_eq!(row.ended, Some(Ok(())), "{row:?}");
    assert_eq!(
        std::fs::read(inbox.join("notes.txt")).unwrap(),
        b"restart the print spooler"
    );
    agent.signal(libc::SIGTERM);
    let _ = agent.wait_exit_or(Duration::from_secs(5));
}
