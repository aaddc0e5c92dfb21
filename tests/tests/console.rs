//! The technician console as a real window on its own X server (Xvfb), joined through a real
//! relay to a real agent sharing another X server: at 1:1 its viewer holds exactly the agent
//! screen's pixels, read back from the console's X server; a click and typed text sent into the
//! console window with `xdotool` arrive at a window on the agent's display; SIGTERM ends the
//! session with the log sealed; each main screen is drawn.

use std::path::Path;
use std::time::Duration;

use tests::x11::{wait_until, Xvfb};
use tests::{Proc, Relay, PROMPT};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

/// The test window's place on the agent's screen.
const WIN: (i32, i32, u32, u32) = (60, 40, 400, 300);
const AGENT_SCREEN: (u32, u32) = (800, 600);
const CONSOLE_SCREEN: (u32, u32) = (1280, 1024);

/// Starts the console on `x` with `args` (plus the relay's and the test's files, `--json`).
fn console(relay: &Relay, x: &Xvfb, args: &[&str]) -> Proc {
    let mut all: Vec<String> = vec!["console".into()];
    all.extend(relay.peer_args());
    all.extend([
        "--tokens".into(),
        relay.tokens_file().display().to_string(),
        "--log-dir".into(),
        relay.data_dir.join("console-logs").display().to_string(),
        "--json".into(),
    ]);
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    Proc::spawn_env(
        "technician",
        &refs,
        &[
            ("DISPLAY", &x.display),
            ("WINIT_X11_SCALE_FACTOR", "1"),
            ("LANG", "C.UTF-8"),
        ],
        false,
    )
}

/// `xdotool ARGS` on `x`, which must succeed.
fn xdotool(x: &Xvfb, args: &[&str]) {
    let (ok, _) = x.xdotool(args);
    assert!(ok, "xdotool {args:?} failed");
}

/// RGB of a rectangle of the root window of `x`.
fn root_rect(x: &Xvfb, rx: i32, ry: i32, w: u32, h: u32) -> Vec<u8> {
    let conn = x.connect();
    let root = conn.setup().roots[0].root;
    let img = conn
        .get_image(
            ImageFormat::Z_PIXMAP,
            root,
            rx as i16,
            ry as i16,
            w as u16,
            h as u16,
            !0,
        )
        .expect("request")
        .reply()
        .expect("GetImage");
    img.data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}

/// Where the user's pointer is put while the screens are compared: the bottom right corner.
const POINTER: (u32, u32) = (AGENT_SCREEN.0 - 20, AGENT_SCREEN.1 - 20);

/// An RGB screen `width` wide with the corner where the pointer is drawn blacked out: a pointer
/// image is at most 64 pixels a side, its hot spot inside it.
fn without_pointer(mut rgb: Vec<u8>, width: u32) -> Vec<u8> {
    let (left, top) = (POINTER.0 - 64, POINTER.1 - 64);
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i as u32 % width, i as u32 / width);
        if x >= left && y >= top {
            px.fill(0);
        }
    }
    rgb
}

/// How many different colours a rectangle of the screen holds.
fn colours(rgb: &[u8]) -> usize {
    let mut seen: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

fn x11_agent(relay: &Relay, x: &Xvfb) -> (Proc, String) {
    let mut all: Vec<String> = relay.peer_args();
    all.extend(
        ["--json", "--source", "x11", "--consent", "control"]
            .iter()
            .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_env("agent", &refs, &[("DISPLAY", &x.display)], false);
    let code = agent.wait_event("code", PROMPT)["code"]
        .as_str()
        .unwrap()
        .to_string();
    (agent, code)
}

#[test]
fn the_console_shows_the_agent_screen_bit_for_bit_and_its_input_arrives() {
    let agent_x = Xvfb::start(AGENT_SCREEN.0, AGENT_SCREEN.1);
    let mut win = agent_x.test_window(WIN.0, WIN.1, WIN.2, WIN.3);
    let console_x = Xvfb::start(CONSOLE_SCREEN.0, CONSOLE_SCREEN.1);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    relay.ensure_technician();
    let (mut agent, code) = x11_agent(&relay, &agent_x);
    let mut tech = console(&relay, &console_x, &["--connect", &code, "--one-to-one"]);
    tech.wait_event("session_start", PROMPT);
    let area = tech.wait_event("viewer_area", PROMPT);
    let (ax, ay) = (
        area["x"].as_i64().unwrap() as i32,
        area["y"].as_i64().unwrap() as i32,
    );
    let (aw, ah) = (
        area["width"].as_u64().unwrap() as u32,
        area["height"].as_u64().unwrap() as u32,
    );
    assert_eq!(
        (aw, ah),
        AGENT_SCREEN,
        "at 1:1 on a larger screen the whole remote screen is in view: {area}"
    );

    // The viewer's pixels, as the console's X server holds them, equal the agent's screen, but
    // for the user's pointer, which the console draws over it: it is moved to the corner, away
    // from the test window, and the corner is left out.
    agent_x.move_pointer(POINTER.0 as i16, POINTER.1 as i16);
    let same = || {
        without_pointer(root_rect(&console_x, ax, ay, aw, ah), aw)
            == without_pointer(agent_x.root_rgb(), aw)
    };
    assert!(
        wait_until(Duration::from_secs(20), same),
        "the console's viewer never showed the agent's screen exactly\n{}",
        tech.transcript()
    );

    // A click into the console window where the test window is: it arrives at the test window.
    let (cx, cy) = (ax + WIN.0 + 37, ay + WIN.1 + 21);
    xdotool(
        &console_x,
        &["mousemove", &cx.to_string(), &cy.to_string(), "click", "1"],
    );
    let press = win.wait_line(PROMPT, "the click from the console", |l| {
        l.contains("\"event\":\"button\"") && l.contains("\"press\":true")
    });
    let press: serde_json::Value = serde_json::from_str(&press).unwrap();
    assert_eq!(
        (
            press["button"].as_u64(),
            press["x"].as_i64(),
            press["y"].as_i64()
        ),
        (Some(1), Some(37), Some(21)),
        "{press}"
    );
    // The click repaints the test window: the console shows the new pattern too.
    win.wait_event("repainted", PROMPT);
    agent_x.move_pointer(POINTER.0 as i16, POINTER.1 as i16);
    assert!(
        wait_until(Duration::from_secs(10), same),
        "the console did not follow the repaint\n{}",
        tech.transcript()
    );

    // Typed text (the console has the keyboard since the click) arrives as typed.
    // (ASCII only: xdotool types other characters by remapping a spare key for a moment, which
    // the console's keyboard handling does not pick up under Xvfb.)
    xdotool(&console_x, &["type", "--delay", "30", "Hi!"]);
    for (text, what) in [("H", "H"), ("i", "i"), ("!", "!")] {
        win.wait_line(PROMPT, what, |l| {
            l.contains("\"event\":\"key\"")
                && l.contains(&format!("\"text\":\"{text}\""))
                && l.contains("\"press\":true")
        });
    }

    // The console's window is not blank around the viewer: the toolbar is drawn.
    let toolbar = root_rect(&console_x, 0, 0, CONSOLE_SCREEN.0, ay.max(1) as u32);
    assert!(colours(&toolbar) > 4, "the toolbar is blank");

    // SIGTERM ends the session (the agent is told) and closes the console, log sealed.
    tech.signal(libc::SIGTERM);
    assert!(tech.wait_exit(PROMPT).success(), "{}", tech.transcript());
    tech.wait_event("recorded", PROMPT);
    let ended = agent.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "TechnicianEnded", "{ended}");
    agent.wait_exit(PROMPT);
}

/// The console's first screens: the login form without a kept login, home with one, the
/// player with a log; each is drawn (more than a few colours where its words are).
#[test]
fn each_main_screen_is_drawn() {
    let x = Xvfb::start(1024, 768);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let drawn = |what: &str, proc: &Proc| {
        let ok = wait_until(Duration::from_secs(20), || colours(&x.root_rgb()) > 8);
        assert!(ok, "the {what} screen is blank\n{}", proc.transcript());
    };
    let blank = || colours(&x.root_rgb()) <= 2;
    assert!(blank(), "a fresh X server is one colour");

    // Login: no login kept in this test's tokens file.
    let mut login = console(&relay, &x, &[]);
    drawn("login", &login);
    xdotool(&x, &["search", "--sync", "--name", "Tandem console"]);
    login.signal(libc::SIGTERM);
    login.wait_exit(PROMPT);
    assert!(
        wait_until(Duration::from_secs(10), blank),
        "the window closed"
    );

    // Home: logged in.
    relay.ensure_technician();
    let mut home = console(&relay, &x, &[]);
    drawn("home", &home);
    home.signal(libc::SIGTERM);
    home.wait_exit(PROMPT);
    assert!(
        wait_until(Duration::from_secs(10), blank),
        "the window closed"
    );

    // The player with a real session log.
    let log = record_a_log(&relay, dir.path());
    let log_arg = log.display().to_string();
    let mut player = console(&relay, &x, &["--play", &log_arg]);
    drawn("player", &player);
    player.signal(libc::SIGTERM);
    player.wait_exit(PROMPT);
}

/// Runs a short recorded session (corpus source, `technician connect`) and returns its log.
fn record_a_log(relay: &Relay, dir: &Path) -> std::path::PathBuf {
    let data = tests::data("typing.scrn");
    let source = format!("corpus:{}", data.display());
    let (mut agent, code) = tests::start_agent(relay, &["--source", &source, "--speed", "0"]);
    let _ = dir;
    let mut tech = tests::start_technician(relay, &code, &[]);
    assert!(
        tech.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        tech.transcript()
    );
    agent.wait_exit(PROMPT);
    let recorded = tech.wait_event("recorded", PROMPT);
    std::path::PathBuf::from(recorded["path"].as_str().unwrap())
}
