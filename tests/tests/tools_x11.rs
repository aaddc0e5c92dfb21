//! The session's tools on real X servers (Xvfb): the clipboard (text on CLIPBOARD and PRIMARY,
//! a PNG image) passes between the user's and the technician's own X displays through real
//! selections, and nothing passes in view-only mode or with the user's switch off; the user's
//! pointer reaches the technician with its shape and position; a monitor switch shows the
//! other monitor's pixels, and all of them, bit for bit.

use std::time::Duration;

use serde_json::Value;
use tests::x11::{png_rgb, x11_agent, Xvfb};
use tests::{run, Proc, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(60);

/// Waits for a JSON event of `p` for which `pred` holds.
fn wait_for(p: &mut Proc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = p.wait_line(PROMPT, what, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
    });
    serde_json::from_str(&line).unwrap()
}

fn is(v: &Value, event: &str, direction: &str, kind: &str) -> bool {
    v["event"] == event && v["direction"] == direction && v["kind"] == kind
}

/// A small PNG file, as an image viewer would copy it.
fn png_file() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 7, 5);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        let pixels: Vec<u8> = (0..7 * 5 * 3).map(|i| (i * 37 % 251) as u8).collect();
        w.write_image_data(&pixels).unwrap();
    }
    out
}

/// Says something in the chat and waits until the technician has it: what was sent before it
/// has arrived too.
fn barrier(agent: &mut Proc, tech: &mut Proc, words: &str) {
    agent.send_line(&format!("> {words}"));
    wait_for(tech, "the user's chat message", |v| {
        v["event"] == "chat" && v["text"] == words
    });
}

#[test]
fn clipboard_text_and_a_png_pass_through_real_selections_both_ways_until_switched_off() {
    let user = Xvfb::start(640, 480);
    let desk = Xvfb::start(320, 240);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let (mut agent, code) = x11_agent(&relay, &user, &["--consent", "control"], true);
    let mut tech = tests::start_technician_env(
        &relay,
        &code,
        &["--clipboard"],
        &[("DISPLAY", &desk.display)],
    );
    wait_for(&mut tech, "the shared clipboard", |v| {
        v["event"] == "clipboard_shared" && v["shared"] == true
    });

    // The technician copies a command; the user pastes it.
    let command = "lpstat -t # the printer's queue, «é»";
    desk.copy("clipboard", "UTF8_STRING", command.as_bytes());
    wait_for(&mut agent, "the technician's clipboard", |v| {
        is(v, "clipboard", "from_technician", "text")
    });
    assert_eq!(
        user.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(command.as_bytes())
    );
    // Text selected with the mouse travels as PRIMARY.
    desk.copy("primary", "UTF8_STRING", b"selected words");
    wait_for(&mut agent, "the technician's selection", |v| {
        is(v, "clipboard", "from_technician", "text") && v["selection"] == "primary"
    });
    assert_eq!(
        user.paste("primary", "UTF8_STRING").as_deref(),
        Some(&b"selected words"[..])
    );
    // The user copies a picture; the technician pastes the same PNG file.
    let png = png_file();
    user.copy("clipboard", "image/png", &png);
    wait_for(&mut tech, "the user's picture", |v| {
        is(v, "clipboard", "from_user", "png")
    });
    assert_eq!(desk.paste("clipboard", "image/png"), Some(png.clone()));
    // And text.
    user.copy("clipboard", "UTF8_STRING", b"error 0x8007");
    wait_for(&mut tech, "the user's text", |v| {
        is(v, "clipboard", "from_user", "text")
    });
    assert_eq!(
        desk.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(&b"error 0x8007"[..])
    );

    // The user switches the clipboard off: nothing passes either way.
    agent.send_line("clipboard off");
    wait_for(&mut tech, "word of the switch", |v| {
        v["event"] == "clipboard_shared" && v["shared"] == false
    });
    desk.copy("clipboard", "UTF8_STRING", b"not for the user");
    wait_for(&mut tech, "the refusal", |v| {
        v["event"] == "clipboard_refused"
    });
    user.copy("clipboard", "UTF8_STRING", b"not for the technician");
    wait_for(&mut agent, "the refusal", |v| {
        v["event"] == "clipboard_refused" && v["direction"] == "to_technician"
    });
    barrier(&mut agent, &mut tech, "the switch is off");
    assert_eq!(
        user.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(&b"not for the technician"[..])
    );
    assert_eq!(
        desk.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(&b"not for the user"[..])
    );
    assert_eq!(
        tech.events("clipboard")
            .iter()
            .filter(|v| v["direction"] == "from_user")
            .count(),
        2,
        "{}",
        tech.transcript()
    );

    agent.send_line("q");
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    // The log has each clipboard that passed: which way, kind, size; no content by default.
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = run("technician", &["log", "show", "--json", &log], "");
    let clips: Vec<Value> = shown
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "clipboard")
        .map(|v| v["record"].clone())
        .collect();
    let summary: Vec<(String, String, String, u64)> = clips
        .iter()
        .map(|r| {
            assert!(
                r.get("text").is_none(),
                "content kept against the policy: {r}"
            );
            (
                r["direction"].as_str().unwrap().into(),
                r["selection"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
                r["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str, n: usize| (a.into(), b.into(), c.into(), n as u64);
    assert_eq!(
        summary,
        vec![
            s("to_user", "clipboard", "text", command.len()),
            s("to_user", "primary", "text", 14),
            s("from_user", "clipboard", "png", png.len()),
            s("from_user", "clipboard", "text", 12),
        ]
    );
}

#[test]
fn nothing_is_copied_in_view_only_mode() {
    let user = Xvfb::start(640, 480);
    let desk = Xvfb::start(320, 240);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let (mut agent, code) = x11_agent(&relay, &user, &["--consent", "view"], true);
    let mut tech = tests::start_technician_env(
        &relay,
        &code,
        &["--clipboard"],
        &[("DISPLAY", &desk.display)],
    );
    tech.wait_event("session_start", PROMPT);
    desk.copy("clipboard", "UTF8_STRING", b"from the desk");
    wait_for(&mut tech, "the refusal", |v| {
        v["event"] == "clipboard_refused"
    });
    user.copy("clipboard", "UTF8_STRING", b"the user's own");
    user.copy("primary", "UTF8_STRING", b"selected by the user");
    barrier(&mut agent, &mut tech, "view only");
    assert!(tech.events("clipboard").is_empty(), "{}", tech.transcript());
    assert!(
        agent.events("clipboard").is_empty(),
        "{}",
        agent.transcript()
    );
    assert!(
        agent.events("clipboard_refused").is_empty(),
        "what the user copies while nobody controls is not mentioned"
    );
    assert_eq!(
        user.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(&b"the user's own"[..])
    );
    assert_eq!(
        desk.paste("clipboard", "UTF8_STRING").as_deref(),
        Some(&b"from the desk"[..])
    );
    assert_eq!(desk.paste("primary", "UTF8_STRING"), None);
    agent.send_line("q");
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
}

#[test]
fn the_users_pointer_reaches_the_technician_with_its_shape() {
    let user = Xvfb::start(640, 480);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let (mut agent, code) = x11_agent(&relay, &user, &["--consent", "view"], true);
    let mut tech = tests::start_technician(&relay, &code, &["--report-updates"]);
    tech.wait_event("session_start", PROMPT);
    tech.wait_event("cursor_shape", PROMPT);
    // The user's pointer turns into an I-beam (as over a text field) and moves.
    let owner = user.set_root_cursor(152);
    user.move_pointer(123, 45);
    let (serial, sha256) = user.cursor_image();
    let shape = wait_for(&mut tech, "the I-beam", |v| {
        v["event"] == "cursor_shape" && v["id"] == serial
    });
    assert_eq!(shape["sha256"], sha256.as_str(), "{shape}");
    wait_for(&mut tech, "the pointer where the user moved it", |v| {
        v["event"] == "cursor"
            && v["x"] == 123
            && v["y"] == 45
            && v["shape"] == serial
            && v["visible"] == true
    });
    // A shape whose owner has gone (as `xsetroot -cursor_name` leaves it) cannot be read; the
    // pointer is followed all the same, and the technician keeps the last shape it has.
    drop(owner);
    drop(user.set_root_cursor(60));
    user.move_pointer(200, 100);
    wait_for(
        &mut tech,
        "the pointer moved after an unreadable shape",
        |v| v["event"] == "cursor" && v["x"] == 200 && v["y"] == 100 && v["shape"] != serial,
    );
    agent.send_line("q");
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
}

#[test]
fn a_monitor_switch_shows_the_other_monitor_and_then_all_of_them_bit_for_bit() {
    let x = Xvfb::start(1024, 768);
    x.split_in_two_monitors();
    let _left = x.test_window(100, 80, 300, 200);
    let _right = x.test_window(600, 300, 300, 200);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let (mut agent, code) = x11_agent(&relay, &x, &["--consent", "view", "--display", "0"], true);
    let (right, all) = (dir.path().join("right.png"), dir.path().join("all.png"));
    let script = dir.path().join("monitors.txt");
    std::fs::write(
        &script,
        format!(
            "monitor 1\nwait-change 3000\nwait 700\nsnapshot {}\nmonitor all\nwait-change 3000\nwait 700\nsnapshot {}\nend\n",
            right.display(),
            all.display()
        ),
    )
    .unwrap();
    let mut tech =
        tests::start_technician(&relay, &code, &["--input-script", script.to_str().unwrap()]);
    assert!(
        tech.wait_exit(SESSION).success(),
        "{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    let listed = tech.events("monitors");
    assert_eq!(listed[0]["monitors"].as_array().unwrap().len(), 2);
    let shown: Vec<&str> = listed
        .iter()
        .map(|m| m["shown"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["0", "1", "all"]);
    let root = x.root_rgb();
    let right_half: Vec<u8> = (0..768usize)
        .flat_map(|y| root[(y * 1024 + 512) * 3..(y * 1024 + 1024) * 3].to_vec())
        .collect();
    let (w, h, seen) = png_rgb(&right);
    assert_eq!((w, h), (512, 768));
    assert!(
        seen == right_half,
        "the technician's picture is not the right-hand monitor"
    );
    let (w, h, seen) = png_rgb(&all);
    assert_eq!((w, h), (1024, 768));
    assert!(
        seen == root,
        "the technician's picture is not the whole desktop"
    );
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert_eq!(agent.events("monitor").len(), 2, "{}", agent.transcript());
}
