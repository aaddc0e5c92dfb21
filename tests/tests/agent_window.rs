//! The agent's real window on a real X server (Xvfb, GL through Mesa's llvmpipe): a real
//! relay, an agent in window mode sharing that X display, and a real technician. The window
//! is found with `xdotool`, read back from the X server (GetImage), and clicked with
//! `xdotool`: Allow control grants control as the technician sees it, the window becomes the
//! small bar, and End session ends the session at once, leaving the window on its last screen.
//! And a help request asked from the window instead of the code: typed into its form, taken by
//! a technician who sees those words, let in, closed as resolved, and rated in the window's
//! survey.
//!
//! The buttons are found in the X server's pixels by their fill, which nothing else in the
//! window uses (`agent::window::ui::ALLOW_CONTROL_FILL`, `END_FILL`, `PRIMARY_FILL` and
//! `SCORE_FILL`, repeated here).

use std::time::{Duration, Instant};

use tests::x11::Xvfb;
use tests::{start_technician, Proc, Relay, PROMPT};
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
use x11rb::rust_connection::RustConnection;

/// The fill of Allow control (`agent::window::ui::ALLOW_CONTROL_FILL`).
const ALLOW_CONTROL_FILL: [u8; 3] = [0x1a, 0x7f, 0x37];
/// The fill of End session (`agent::window::ui::END_FILL`).
const END_FILL: [u8; 3] = [0xb3, 0x26, 0x1e];
/// The fill of Request help, Send request and Send answer (`agent::window::ui::PRIMARY_FILL`).
const PRIMARY_FILL: [u8; 3] = [0x1f, 0x5f, 0xbf];
/// The fill of the survey's scores not chosen (`agent::window::ui::SCORE_FILL`).
const SCORE_FILL: [u8; 3] = [0xf2, 0xc0, 0x4e];

/// A window's pixels as the X server holds them, RGB, with its size.
struct Shot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn of(conn: &RustConnection, window: u32) -> Option<Shot> {
        let geo = conn.get_geometry(window).ok()?.reply().ok()?;
        let img = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                window,
                0,
                0,
                geo.width,
                geo.height,
                !0,
            )
            .ok()?
            .reply()
            .ok()?;
        let rgb: Vec<[u8; 3]> = img
            .data
            .chunks_exact(4)
            .map(|p| [p[2], p[1], p[0]])
            .collect();
        (rgb.len() == usize::from(geo.width) * usize::from(geo.height)).then_some(Shot {
            width: usize::from(geo.width),
            height: usize::from(geo.height),
            rgb,
        })
    }

    fn colours(&self) -> usize {
        let mut seen: Vec<[u8; 3]> = self.rgb.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// The centre of the pixels within a few steps of `colour`, if there are enough of them
    /// to be a button.
    fn find(&self, colour: [u8; 3]) -> Option<(usize, usize)> {
        let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
        for (i, p) in self.rgb.iter().enumerate() {
            if near(p, colour) {
                n += 1;
                sx += i % self.width;
                sy += i / self.width;
            }
        }
        (n >= 400).then(|| (sx / n, sy / n))
    }

    /// The centres of the buttons of `colour` side by side in a row, left to right: the runs of
    /// columns that hold its pixels, at the height of their centre.
    fn row_of(&self, colour: [u8; 3]) -> Vec<(usize, usize)> {
        let Some((_, cy)) = self.find(colour) else {
            return Vec::new();
        };
        let mut holds = vec![0usize; self.width];
        for (i, p) in self.rgb.iter().enumerate() {
            if near(p, colour) {
                holds[i % self.width] += 1;
            }
        }
        let mut runs = Vec::new();
        let mut start = None;
        for (x, &n) in holds.iter().chain([&0]).enumerate() {
            match (start, n >= 10) {
                (None, true) => start = Some(x),
                (Some(s), false) => {
                    runs.push(((s + x) / 2, cy));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }
}

fn near(p: &[u8; 3], colour: [u8; 3]) -> bool {
    (0..3).all(|i| p[i].abs_diff(colour[i]) <= 6)
}

/// The agent's window, once it is mapped.
fn find_window(x: &Xvfb, agent: &mut Proc) -> u32 {
    let deadline = Instant::now() + PROMPT;
    loop {
        let (ok, out) = x.xdotool(&["search", "--onlyvisible", "--name", "^Tandem"]);
        if let Some(id) = ok
            .then(|| out.lines().next().and_then(|l| l.trim().parse().ok()))
            .flatten()
        {
            return id;
        }
        if let Some(status) = agent.wait_exit_or(Duration::from_millis(200)) {
            panic!(
                "the agent exited ({status}) before its window appeared\n{}",
                agent.transcript()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no window named Tandem on {} within {PROMPT:?}\n{}",
            x.display,
            agent.transcript()
        );
    }
}

/// Waits until the window shows `colour`; that screenshot.
fn wait_for_colour(conn: &RustConnection, window: u32, colour: [u8; 3], what: &str) -> Shot {
    let deadline = Instant::now() + PROMPT;
    loop {
        if let Some(shot) = Shot::of(conn, window) {
            if shot.find(colour).is_some() {
                return shot;
            }
            assert!(
                Instant::now() < deadline,
                "the window did not show {what} within {PROMPT:?} ({}x{}, {} colours)",
                shot.width,
                shot.height,
                shot.colours()
            );
        } else {
            assert!(Instant::now() < deadline, "cannot read the window's pixels");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the window no longer shows `colour`.
fn wait_for_no_colour(conn: &RustConnection, window: u32, colour: [u8; 3], what: &str) {
    let deadline = Instant::now() + PROMPT;
    while Shot::of(conn, window).is_none_or(|s| s.find(colour).is_some()) {
        assert!(Instant::now() < deadline, "{what} stayed for {PROMPT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn click(x: &Xvfb, window: u32, (cx, cy): (usize, usize)) {
    let (id, cx, cy) = (window.to_string(), cx.to_string(), cy.to_string());
    let (ok, _) = x.xdotool(&["mousemove", "--window", &id, &cx, &cy]);
    assert!(ok, "xdotool mousemove failed");
    // egui sees the pointer arrive before the button goes down.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _) = x.xdotool(&["click", "1"]);
    assert!(ok, "xdotool click failed");
}

/// An X server with GLX, with xdotool there (a test fails, never skips, without it).
fn display() -> Xvfb {
    let x = Xvfb::start_with(1280, 800, &["+extension", "GLX"]);
    x.xdotool(&["version"]);
    x
}

/// The agent in window mode on `x`, sharing it and asking the person; with --json for the test
/// to read its events (--window opens the window all the same).
fn window_agent(x: &Xvfb, relay: &Relay) -> Proc {
    let mut args = relay.peer_args();
    args.extend(
        ["--json", "--window", "--source", "x11", "--consent", "ask"]
            .iter()
            .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn_env(
        "agent",
        &refs,
        &[
            ("DISPLAY", &x.display),
            ("WINIT_X11_SCALE_FACTOR", "1"),
            ("LC_ALL", "en_US.UTF-8"),
        ],
        false,
    )
}

#[test]
fn allow_control_clicked_in_the_real_window_grants_control() {
    let x = display();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--organisation", "Example Support"]);
    let mut agent = window_agent(&x, &relay);
    let code = agent.wait_event("code", PROMPT)["code"]
        .as_str()
        .expect("the code")
        .to_string();
    let window = find_window(&x, &mut agent);
    let conn = x.connect();
    let mut tech = start_technician(&relay, &code, &[]);
    agent.wait_event("consent_request", PROMPT);

    // The consent screen: drawn, not blank, with its Allow control button.
    let shot = wait_for_colour(&conn, window, ALLOW_CONTROL_FILL, "Allow control");
    assert!(
        shot.colours() > 8,
        "the consent screen is nearly blank: {} colours",
        shot.colours()
    );
    let allow = shot.find(ALLOW_CONTROL_FILL).expect("found above");
    click(&x, window, allow);
    let granted = tech.wait_line(PROMPT, "control granted", |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["event"] == "consent" && v["state"] == "control")
    });
    assert!(granted.contains("control"), "{granted}");
    let consent = agent.wait_event("consent", PROMPT);
    assert_eq!(consent["state"], "control", "{consent}");
    assert_eq!(consent["timed_out"], false, "{consent}");

    // While shared: the small bar, drawn, with End session.
    let bar = wait_for_colour(&conn, window, END_FILL, "the bar's End session");
    assert!(
        bar.height < 120,
        "the bar is {}x{}, not a small bar",
        bar.width,
        bar.height
    );
    assert!(bar.colours() > 8, "the bar is nearly blank");
    let end = bar.find(END_FILL).expect("found above");
    click(&x, window, end);
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "UserEnded", "{ended}");

    let agent_ended = agent.wait_event("ended", PROMPT);
    assert_eq!(agent_ended["reason"], "UserEnded", "{agent_ended}");

    // The end screen: a full window again, drawn, without the bar's button. (Close is left to
    // the kittest tests; there is no window manager here to ask the window to close.)
    let deadline = Instant::now() + PROMPT;
    loop {
        let shot = Shot::of(&conn, window);
        if shot
            .as_ref()
            .is_some_and(|s| s.height > 200 && s.colours() > 8 && s.find(END_FILL).is_none())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the window did not show the end\n{}",
            agent.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        agent.wait_exit_or(Duration::from_millis(500)).is_none(),
        "the agent left before the person closed its window\n{}",
        agent.transcript()
    );
}

/// `technician take --next` as the test's technician, playing `script`.
fn take_next(relay: &Relay, dir: &std::path::Path, script: &str) -> Proc {
    relay.ensure_technician();
    let file = dir.join("script.txt");
    std::fs::write(&file, script).unwrap();
    let mut args = vec!["take".to_string(), "--next".to_string()];
    args.extend(relay.peer_args());
    args.extend([
        "--tokens".to_string(),
        relay.tokens_file().display().to_string(),
        "--json".into(),
        "--log-dir".into(),
        dir.join("logs").display().to_string(),
        "--input-script".into(),
        file.display().to_string(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn("technician", &refs)
}

#[test]
fn a_help_request_typed_in_the_real_window_is_taken_closed_and_rated_there() {
    let x = display();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut agent = window_agent(&x, &relay);
    agent.wait_event("code", PROMPT);
    let window = find_window(&x, &mut agent);
    let conn = x.connect();

    // Request help, beside the code; the form opens with the keyboard in its description (Send
    // request is greyed until something is written there).
    let shot = wait_for_colour(&conn, window, PRIMARY_FILL, "Request help");
    click(&x, window, shot.find(PRIMARY_FILL).expect("found above"));
    wait_for_no_colour(&conn, window, PRIMARY_FILL, "Request help");
    // There is no window manager to give the window the keyboard: give it as one would.
    let (ok, _) = x.xdotool(&["windowfocus", "--sync", &window.to_string()]);
    assert!(ok, "xdotool windowfocus failed");
    let wrong = "the printer stops after each page";
    let (ok, _) = x.xdotool(&["type", "--delay", "20", wrong]);
    assert!(ok, "xdotool type failed");
    let shot = wait_for_colour(&conn, window, PRIMARY_FILL, "Send request");
    click(&x, window, shot.find(PRIMARY_FILL).expect("found above"));
    let withdrawn = agent.wait_event("code_withdrawn", PROMPT);
    assert_eq!(withdrawn["reason"], "help_requested", "{withdrawn}");
    let queued = agent.wait_event("queued", PROMPT);

    // The technician reads what was typed, with this machine's name, and closes it once let in.
    let mut tech = take_next(&relay, dir.path(), "resolve cleared the print queue\n");
    let taken = tech.wait_event("request", PROMPT);
    let filing = &taken["request"]["filing"];
    assert_eq!(taken["request"]["id"], queued["request"], "{taken}");
    assert_eq!(filing["description"], wrong, "{taken}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(filing["machine"], host.trim(), "{taken}");
    agent.wait_event("consent_request", PROMPT);
    let shot = wait_for_colour(&conn, window, ALLOW_CONTROL_FILL, "Allow control");
    click(
        &x,
        window,
        shot.find(ALLOW_CONTROL_FILL).expect("found above"),
    );
    let passed = tech.wait_event("request_passed", PROMPT);
    assert_eq!(passed["words"], "closed as resolved", "{passed}");
    let closed = agent.wait_event("request_closed", PROMPT);
    assert_eq!(closed["shared"], true, "{closed}");

    // The survey: five scores in a row, the last "5 Very well"; then Send answer.
    agent.wait_event("survey_asked", PROMPT);
    let shot = wait_for_colour(&conn, window, SCORE_FILL, "the survey's scores");
    let scores = shot.row_of(SCORE_FILL);
    assert_eq!(scores.len(), 5, "scores at {scores:?}");
    click(&x, window, scores[4]);
    let shot = wait_for_colour(&conn, window, PRIMARY_FILL, "Send answer");
    click(&x, window, shot.find(PRIMARY_FILL).expect("found above"));
    let answered = agent.wait_event("survey_answered", PROMPT);
    assert_eq!(answered["score"], 5, "{answered}");
    assert_eq!(answered["request"], queued["request"], "{answered}");
}
