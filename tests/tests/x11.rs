//! The real agent on a real X server (Xvfb): the technician sees the screen bit for bit (one
//! monitor of two, a resized screen), its input arrives at a real window, view-only and denial
//! hold, and nothing stays pressed.

use std::time::Duration;

use serde_json::Value;
use tests::x11::{png_rgb, wait_until, x11_agent, Xvfb};
use tests::{Proc, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(60);
/// The test window's place on the screen.
const WIN: (i32, i32, u32, u32) = (100, 80, 400, 300);

/// A 1024x768 X server with the test window on it, a relay, and an agent sharing the screen
/// with consent given in advance (`control` or `view`), with its session code.
fn desk(consent: &str) -> (Xvfb, Proc, tempfile::TempDir, Relay, Proc, String) {
    let x = Xvfb::start(1024, 768);
    let win = x.test_window(WIN.0, WIN.1, WIN.2, WIN.3);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    // A technician that vanishes is given up a second after its link is lost (not resumed).
    let (agent, code) = x11_agent(
        &relay,
        &x,
        &["--consent", consent, "--resume-secs", "1"],
        false,
    );
    (x, win, dir, relay, agent, code)
}

fn script(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("script.txt");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Waits for the technician's session to end well and reads the snapshot its script saved.
fn snapshot_of(tech: &mut Proc, agent: &Proc, snap: &std::path::Path) -> (u32, u32, Vec<u8>) {
    assert!(
        tech.wait_exit(SESSION).success(),
        "{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    png_rgb(snap)
}

fn window_events(win: &mut Proc, kind: &str) -> Vec<Value> {
    // Give the window a moment to log what already reached it.
    let _ = win.wait_exit_or(Duration::from_millis(300));
    win.events(kind)
}

#[test]
fn the_technician_sees_the_screen_bit_for_bit() {
    let (x, mut win, dir, relay, mut agent, code) = desk("control");
    let snap = dir.path().join("screen.png");
    // Click the window so it repaints with another pattern, wait for that change to arrive,
    // then let things settle and take the picture.
    let s = script(
        dir.path(),
        &format!(
            "move {} {}\nclick left\nwait-change 3000\nwait 700\nsnapshot {}\nend\n",
            WIN.0 + 50,
            WIN.1 + 50,
            snap.display()
        ),
    );
    let mut tech = tests::start_technician(&relay, &code, &["--input-script", &s]);
    assert!(
        tech.wait_exit(SESSION).success(),
        "{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    win.wait_event("repainted", PROMPT);
    let (w, h, seen) = png_rgb(&snap);
    assert_eq!((w, h), (x.width, x.height));
    let truth = x.root_rgb();
    let differing = seen
        .chunks(3)
        .zip(truth.chunks(3))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "{differing} pixels differ from the X server's own image"
    );
    // The picture shows the repainted window: it is not an image from before the click.
    let px = |buf: &[u8], x0: u32, y0: u32| buf[((y0 * x.width + x0) * 3) as usize..][..3].to_vec();
    assert_eq!(
        px(&seen, WIN.0 as u32 + 2, WIN.1 as u32 + 2),
        vec![0x30, 0xc0, 0x30]
    );
    agent.wait_exit(PROMPT);
}

#[test]
fn clicks_text_and_combinations_arrive_at_the_window() {
    let (_x, mut win, dir, relay, mut agent, code) = desk("control");
    let s = script(
        dir.path(),
        &format!(
            "move {} {}\nclick left\nwheel 0 2\nwheel -1 0\ntype Hello, World! é€\nkey ctrl+alt+t\nwait 300\nend\n",
            WIN.0 + 37,
            WIN.1 + 21
        ),
    );
    let mut tech = tests::start_technician(&relay, &code, &["--input-script", &s]);
    assert!(
        tech.wait_exit(SESSION).success(),
        "{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    agent.wait_exit(PROMPT);
    win.wait_line(PROMPT, "the t of ctrl+alt+t", |l| {
        l.contains("\"keysym\":116") && l.contains("\"press\":true")
    });

    let buttons = window_events(&mut win, "button");
    let press = buttons
        .iter()
        .find(|b| b["press"] == true)
        .expect("a button press");
    assert_eq!(
        (
            press["button"].as_u64(),
            press["x"].as_i64(),
            press["y"].as_i64()
        ),
        (Some(1), Some(37), Some(21))
    );

    // The wheel arrives as clicks of buttons 5 (down) and 6 (left).
    let presses = |n: u64| {
        buttons
            .iter()
            .filter(|b| b["press"] == true && b["button"] == n)
            .count()
    };
    assert_eq!((presses(5), presses(6)), (2, 1), "{buttons:?}");

    let keys = win.events("key");
    let typed: String = keys
        .iter()
        .filter(|k| k["press"] == true && k["state"].as_u64().unwrap() & 0x0c == 0)
        .filter_map(|k| k["text"].as_str())
        .collect();
    assert_eq!(typed, "Hello, World! é€");
    // ctrl+alt+t arrives as one event: a press of t with Control (4) and Mod1 (8) held.
    let t = keys
        .iter()
        .find(|k| k["press"] == true && k["keysym"] == 116)
        .expect("a press of t");
    assert_eq!(t["state"].as_u64().unwrap() & 0x0c, 0x0c, "{t}");
}

#[test]
fn view_only_drops_input_and_says_so() {
    let (_x, mut win, dir, relay, mut agent, code) = desk("view");
    let s = script(
        dir.path(),
        &format!(
            "move {} {}\nclick left\ntype no\nwait 300\nend\n",
            WIN.0 + 5,
            WIN.1 + 5
        ),
    );
    let mut tech = tests::start_technician(&relay, &code, &["--input-script", &s]);
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert_eq!(tech.events("consent").last().unwrap()["state"], "view_only");
    let dropped = agent.events("input_dropped");
    let last = dropped.last().expect("the agent reports dropped input");
    // move, button down and up, and two keys down and up.
    assert_eq!(last["count"], 7, "{last}");
    assert!(
        window_events(&mut win, "button").is_empty(),
        "{}",
        win.transcript()
    );
    assert!(win.events("key").is_empty(), "{}", win.transcript());
}

#[test]
fn a_denied_or_unanswered_request_shares_nothing() {
    let x = Xvfb::start(640, 480);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    for (answer, timeout) in [(Some("d"), "60"), (None, "1")] {
        let (mut agent, code) = x11_agent(
            &relay,
            &x,
            &["--report-updates", "--consent-timeout-secs", timeout],
            true,
        );
        let mut tech = tests::start_technician(&relay, &code, &["--report-updates"]);
        let request = agent.wait_event("consent_request", PROMPT);
        assert_eq!(
            request["recorded"], true,
            "the user is told the session is recorded"
        );
        tech.wait_line(PROMPT, "that the user is asked", |l| {
            l.contains("\"asking\"")
        });
        if let Some(a) = answer {
            agent.send_line(a);
        }
        tech.wait_exit(SESSION);
        agent.wait_exit(PROMPT);
        let ended = tech.wait_event("ended", PROMPT);
        assert_eq!(ended["reason"], "ConsentDenied", "{ended}");
        assert_eq!(ended["updates"], 0);
        assert!(tech.events("update").is_empty());
        assert!(
            tech.events("session_start").is_empty(),
            "not even the screen size is shared"
        );
        assert!(agent.events("update_sent").is_empty());
        let consent = agent.events("consent");
        assert_eq!(consent.last().unwrap()["timed_out"], answer.is_none());
    }
}

#[test]
fn nothing_stays_pressed_when_the_technician_vanishes() {
    let (x, mut win, dir, relay, mut agent, code) = desk("control");
    let s = script(
        dir.path(),
        &format!(
            "move {} {}\ndown shift\ndown left\nwait 60000\n",
            WIN.0 + 9,
            WIN.1 + 9
        ),
    );
    let tech = tests::start_technician(&relay, &code, &["--input-script", &s]);
    win.wait_line(PROMPT, "the button press", |l| {
        l.contains("\"button\"") && l.contains("\"press\":true")
    });
    let (buttons, keys) = x.held();
    assert_ne!(buttons, 0, "the button is held before the cut");
    assert!(!keys.is_empty(), "shift is held before the cut");
    tech.signal(libc::SIGKILL);
    // Released as soon as the relay says the technician is silent, long before the idle
    // timeout ends the session.
    agent.wait_event("peer_quiet", Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(1), || x.held() == (0, vec![])),
        "still held after the technician fell silent: {:?}",
        x.held()
    );
    assert!(
        agent.events("ended").is_empty(),
        "the session ended before the idle timeout\n{}",
        agent.transcript()
    );
    agent.wait_event("ended", PROMPT);
    assert_eq!(x.held(), (0, vec![]));
}

#[test]
fn a_resized_screen_is_followed() {
    let (x, _win, dir, relay, mut agent, code) = desk("control");
    let snap = dir.path().join("resized.png");
    // The picture is taken well after the resize below.
    let s = script(
        dir.path(),
        &format!("wait 3000\nsnapshot {}\nend\n", snap.display()),
    );
    let mut tech =
        tests::start_technician(&relay, &code, &["--report-updates", "--input-script", &s]);
    let first = tech.wait_event("update", PROMPT);
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(1024), Some(768))
    );
    x.resize(800, 600);
    tech.wait_line(PROMPT, "an update of the new size", |l| {
        l.contains("\"width\":800")
    });
    let (w, h, seen) = snapshot_of(&mut tech, &agent, &snap);
    assert_eq!((w, h), (800, 600));
    assert!(
        seen == x.root_rgb(),
        "the technician's picture differs from the resized screen"
    );
    agent.wait_exit(PROMPT);
}

#[test]
fn the_second_of_two_monitors_is_shared_alone() {
    let x = Xvfb::start(1024, 768);
    x.split_in_two_monitors();
    // One window on each monitor: the right one's must arrive, the left one's must not.
    let _left = x.test_window(100, 80, 300, 200);
    let _right = x.test_window(600, 300, 300, 200);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let (mut agent, code) = x11_agent(&relay, &x, &["--consent", "view", "--display", "1"], false);
    let snap = dir.path().join("right.png");
    let s = script(
        dir.path(),
        &format!("wait 1500\nsnapshot {}\nend\n", snap.display()),
    );
    let mut tech = tests::start_technician(&relay, &code, &["--input-script", &s]);
    let (w, h, seen) = snapshot_of(&mut tech, &agent, &snap);
    assert_eq!((w, h), (512, 768));
    let root = x.root_rgb();
    let right_half: Vec<u8> = (0..768usize)
        .flat_map(|y| root[(y * 1024 + 512) * 3..(y * 1024 + 1024) * 3].to_vec())
        .collect();
    assert!(
        seen == right_half,
        "the technician's picture is not the right-hand monitor"
    );
    agent.wait_exit(PROMPT);
}
