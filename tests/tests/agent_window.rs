//! The agent's real window on a real X server (Xvfb, GL through Mesa's llvmpipe): a real
//! relay, an agent in window mode sharing that X display, and a real technician. The window
//! is found with `xdotool`, read back from the X server (GetImage), and clicked with
//! `xdotool`: Allow control grants control as the technician sees it, the window becomes the
//! small bar, and End session ends the session at once, leaving the window on its last screen.
//!
//! The buttons are found in the X server's pixels by their fill, which nothing else in the
//! window uses (`agent::window::ui::ALLOW_CONTROL_FILL` and `END_FILL`, repeated here).

use std::time::{Duration, Instant};

use tests::x11::Xvfb;
use tests::{start_technician, Proc, Relay, PROMPT};
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
use x11rb::rust_connection::RustConnection;

/// The fill of Allow control (`agent::window::ui::ALLOW_CONTROL_FILL`).
const ALLOW_CONTROL_FILL: [u8; 3] = [0x1a, 0x7f, 0x37];
/// The fill of End session (`agent::window::ui::END_FILL`).
const END_FILL: [u8; 3] = [0xb3, 0x26, 0x1e];

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
        let near = |p: &[u8; 3]| (0..3).all(|i| p[i].abs_diff(colour[i]) <= 6);
        let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
        for (i, p) in self.rgb.iter().enumerate() {
            if near(p) {
                n += 1;
                sx += i % self.width;
                sy += i / self.width;
            }
        }
        (n >= 400).then(|| (sx / n, sy / n))
    }
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

fn click(x: &Xvfb, window: u32, (cx, cy): (usize, usize)) {
    let (id, cx, cy) = (window.to_string(), cx.to_string(), cy.to_string());
    let (ok, _) = x.xdotool(&["mousemove", "--window", &id, &cx, &cy]);
    assert!(ok, "xdotool mousemove failed");
    // egui sees the pointer arrive before the button goes down.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _) = x.xdotool(&["click", "1"]);
    assert!(ok, "xdotool click failed");
}

#[test]
fn allow_control_clicked_in_the_real_window_grants_control() {
    let x = Xvfb::start_with(1280, 800, &["+extension", "GLX"]);
    // Fail, never skip, when xdotool is missing.
    x.xdotool(&["version"]);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--organisation", "Example Support"]);
    let mut args = relay.peer_args();
    // --json for the test to read the code; --window so that it opens the window all the same.
    args.extend(
        ["--json", "--window", "--source", "x11", "--consent", "ask"]
            .iter()
            .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_env(
        "agent",
        &refs,
        &[
            ("DISPLAY", &x.display),
            ("WINIT_X11_SCALE_FACTOR", "1"),
            ("LC_ALL", "en_US.UTF-8"),
        ],
        false,
    );
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
