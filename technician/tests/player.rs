//! The console's session-log player driven through egui_kittest, without a display: the frame
//! it shows at a time set on the timeline equals, pixel for pixel, the PNG that
//! `technician log frame --at` writes for that time (forwards, backwards, and on a tampered
//! log); the verdict of an intact, a cut-short and a byte-flipped log is on screen in words;
//! Play, Pause and the speed work from their buttons.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use protocol::codec::Encoder;
use protocol::control::Role;
use protocol::input::{InputEvent, Key, Modifiers, MouseButton};
use protocol::peer::{ConsentState, EndReason};
use protocol::sessionlog::{
    code_sha256, CloseReason, LogReader, LogWriter, Participant, SessionOpened, TypedText,
};
use technician::console::player::Player;
use technician::console::player_ui::{self, PlayerView};

const W: u32 = 64;
const H: u32 = 40;

fn opened() -> SessionOpened {
    SessionOpened {
        started_unix_ms: 1_714_572_192_000,
        relay_address: "127.0.0.1:4433".into(),
        relay_fingerprint: "00".repeat(32),
        relay_software: "relay test".into(),
        technician: Participant {
            role: Role::Technician,
            description: "alice (tier 2)".into(),
            software: "technician test".into(),
        },
        agent: Participant {
            role: Role::Agent,
            description: "bob's laptop".into(),
            software: "agent test".into(),
        },
        protocol_version: protocol::PROTOCOL_VERSION,
        code_sha256: code_sha256("123456789"),
        typed_text: TypedText::CountOnly,
    }
}

/// Screen `i`: stripes whose colours depend on `i`, and a block that moves with it, so that
/// every screen differs from the others.
fn screen(i: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            let in_block = (x + 64 - (i * 5) % 64) % 64 < 10 && (8..24).contains(&y);
            px.extend_from_slice(&if in_block {
                [0xf0, 0xf0, (i * 23) as u8, 0]
            } else {
                [(y * 6) as u8, (x * 4) as u8, (i * 11) as u8, 0]
            });
        }
    }
    px
}

/// A sealed log of 40 screens, one every 250 ms from 0, with consent, a second technician
/// joining, typing and clicks between. Returns the times of the screen updates.
fn write_log(path: &Path) -> Vec<u64> {
    let mut log = LogWriter::create(File::create(path).unwrap(), &opened()).unwrap();
    let mut enc = Encoder::new(W, H);
    let mut times = Vec::new();
    log.consent(0, ConsentState::Control).unwrap();
    for i in 0..40u32 {
        let t = u64::from(i) * 250;
        if let Some(u) = enc.encode(&screen(i), W, H, t, times.len() as u64 + 1) {
            log.screen_update(t, &u).unwrap();
            times.push(t);
        }
        if i == 8 {
            for c in "password1234".chars() {
                let key = InputEvent::Key {
                    down: true,
                    key: Key::Char(c),
                    text: Some(c.to_string()),
                    modifiers: Modifiers::NONE,
                };
                log.input(t + 1, &key).unwrap();
            }
        }
        if i == 20 {
            for down in [true, false, true, false, true, false] {
                let b = InputEvent::Button {
                    button: MouseButton::Left,
                    down,
                };
                log.input(t + 1, &b).unwrap();
            }
        }
        if i == 25 {
            let lead = Participant {
                role: Role::Technician,
                description: "carol (tier 3)".into(),
                software: "technician test".into(),
            };
            log.participant_joined(t + 1, &lead).unwrap();
            log.consent(t + 2, ConsentState::ViewOnly).unwrap();
        }
        log.tick(t).unwrap();
    }
    log.finish(10_000, &CloseReason::ByAgent(EndReason::UserEnded))
        .unwrap()
        .sync_all()
        .unwrap();
    times
}

fn log_in(dir: &Path) -> (PathBuf, Vec<u64>) {
    let path = dir.join("session.tlog");
    let times = write_log(&path);
    (path, times)
}

/// The pixels `technician log frame FILE --at T` writes, as BGRX like the player's frame.
fn frame_by_the_command(log: &Path, at_ms: u64, dir: &Path) -> (u32, u32, Vec<u8>) {
    let png_path = dir.join(format!("at-{at_ms}.png"));
    let at = format!("{}.{:03}", at_ms / 1000, at_ms % 1000);
    let out = Command::new(env!("CARGO_BIN_EXE_technician"))
        .args(["log", "frame"])
        .arg(log)
        .args(["--at", &at, "-o"])
        .arg(&png_path)
        .output()
        .expect("the technician binary runs");
    assert!(
        out.status.success(),
        "technician log frame --at {at}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dec = png::Decoder::new(BufReader::new(File::open(&png_path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut rgb = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut rgb).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let bgrx = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 0])
        .collect();
    (info.width, info.height, bgrx)
}

/// The player's frame with the padding byte cleared (the PNG has no fourth channel).
fn shown(player: &Player) -> (u32, u32, Vec<u8>) {
    let f = player.frame().expect("the player shows a screen");
    let px = f
        .pixels
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2], 0])
        .collect();
    (f.width, f.height, px)
}

/// Asserts two screens are equal, saying where they first differ instead of dumping them.
#[track_caller]
fn assert_same(got: &(u32, u32, Vec<u8>), want: &(u32, u32, Vec<u8>), what: &str) {
    assert_eq!((got.0, got.1), (want.0, want.1), "{what}: size");
    if let Some(i) = got.2.iter().zip(&want.2).position(|(a, b)| a != b) {
        let (x, y) = ((i / 4) as u32 % got.0, (i / 4) as u32 / got.0);
        panic!("{what}: the screens differ first at pixel ({x},{y})");
    }
}

/// Asserts a screen is the captured one to within the codec's near-lossless step: screens that
/// change every 250 ms are sent near-lossless while they change (`protocol::codec::encoder`).
#[track_caller]
fn assert_near(got: &(u32, u32, Vec<u8>), want: &(u32, u32, Vec<u8>), what: &str) {
    assert_eq!((got.0, got.1), (want.0, want.1), "{what}: size");
    let off = |a: u8, b: u8| a.abs_diff(b) > protocol::codec::encoder::LOSSY_STEP / 2;
    if let Some(i) = got.2.iter().zip(&want.2).position(|(&a, &b)| off(a, b)) {
        let (x, y) = ((i / 4) as u32 % got.0, (i / 4) as u32 / got.0);
        panic!("{what}: the screens differ by more than the codec's step at pixel ({x},{y})");
    }
}

struct App {
    player: Player,
    view: PlayerView,
}

fn harness(path: &Path) -> Harness<'static, App> {
    let app = App {
        player: Player::open(path).expect("the log opens"),
        view: PlayerView::new(),
    };
    Harness::builder()
        .with_size(egui::vec2(800.0, 600.0))
        .build_ui_state(
            |ui, app: &mut App| player_ui::show(ui, &mut app.player, &mut app.view),
            app,
        )
}

/// Presses the pointer on the timeline at `fraction` of its width and lets go.
fn click_timeline(h: &mut Harness<'_, App>, fraction: f32) {
    let rect = h.get_by_label(player_ui::TIMELINE).rect();
    let pos = egui::pos2(rect.left() + rect.width() * fraction, rect.center().y);
    h.hover_at(pos);
    h.drag_at(pos);
    h.step();
    h.drop_at(pos);
    h.step();
}

#[test]
fn the_frame_at_a_time_set_on_the_timeline_is_the_one_log_frame_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, times) = log_in(dir.path());
    assert_eq!(
        times.len(),
        40,
        "every screen differs, so each makes an update"
    );
    let mut h = harness(&log);
    h.step();
    h.get_by_label(player_ui::VERDICT_INTACT);
    assert_eq!(h.state().player.duration_ms(), 10_000);

    // Forwards with the pointer, a little past the middle of the timeline.
    click_timeline(&mut h, 0.55);
    let first = h.state().player.position_ms();
    assert!(
        (5_000..6_000).contains(&first),
        "the pointer set {first} ms"
    );
    let at_first = shown(&h.state().player);
    assert_same(
        &at_first,
        &frame_by_the_command(&log, first, dir.path()),
        "after a click on the timeline",
    );
    assert_eq!(
        h.state().view.uploaded_generation(),
        Some(h.state().player.generation()),
        "the texture holds the frame shown"
    );
    assert_eq!(
        h.state().view.texture_size(),
        Some([W as usize, H as usize])
    );

    // Backwards, to a time set exactly (as a screen reader sets it), between two updates.
    h.get_by_label(player_ui::TIMELINE).set_value_accesskit(2.6);
    h.step();
    assert_eq!(h.state().player.position_ms(), 2_600);
    let at_2600 = shown(&h.state().player);
    assert!(at_2600 != at_first, "another moment shows another screen");
    assert_same(
        &at_2600,
        &frame_by_the_command(&log, 2_600, dir.path()),
        "after seeking back to 2.6 s",
    );
    assert_near(
        &at_2600,
        &(W, H, screen(10)),
        "the update at 2.5 s as captured",
    );

    // Play forwards from there to the first position: the same frame as the jump gave.
    h.get_by_label(player_ui::PLAY).click();
    h.step();
    let mut steps = 0;
    while h.state().player.position_ms() < first && steps < 100 {
        h.step();
        steps += 1;
    }
    h.get_by_label(player_ui::PAUSE).click();
    h.step();
    let played_to = h.state().player.position_ms();
    assert!(played_to >= first, "played to {played_to} ms");
    h.get_by_label(player_ui::TIMELINE)
        .set_value_accesskit(first as f64 / 1000.0);
    h.step();
    assert_same(
        &shown(&h.state().player),
        &at_first,
        "played forward, then back to where the click went",
    );

    // The last moment.
    h.get_by_label(player_ui::TIMELINE)
        .set_value_accesskit(60.0);
    h.step();
    assert_eq!(h.state().player.position_ms(), 10_000);
    assert_near(&shown(&h.state().player), &(W, H, screen(39)), "at the end");
}

#[test]
fn play_pause_and_speed_work_from_their_buttons() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_in(dir.path());
    let mut h = Harness::builder()
        .with_size(egui::vec2(800.0, 600.0))
        .with_step_dt(0.25)
        .build_ui_state(
            |ui, app: &mut App| player_ui::show(ui, &mut app.player, &mut app.view),
            App {
                player: Player::open(&log).unwrap(),
                view: PlayerView::new(),
            },
        );
    h.step();
    h.get_by_label(player_ui::PLAY).click();
    h.step();
    assert!(h.state().player.is_playing());
    let start = h.state().player.position_ms();
    h.run_steps(4);
    let at_1x = h.state().player.position_ms() - start;
    assert_eq!(at_1x, 1_000, "four steps of 0.25 s at 1×");

    h.get_by_role(egui::accesskit::Role::ComboBox).click();
    h.run_steps(2);
    h.get_by_label("2×").click();
    h.step();
    assert_eq!(h.state().player.speed(), 2.0);
    let start = h.state().player.position_ms();
    h.run_steps(4);
    let at_2x = h.state().player.position_ms() - start;
    assert_eq!(at_2x, 2 * at_1x, "twice the speed goes twice as far");

    h.get_by_label(player_ui::PAUSE).click();
    h.step();
    let paused_at = h.state().player.position_ms();
    h.run_steps(4);
    assert_eq!(h.state().player.position_ms(), paused_at, "paused");
    assert!(!h.state().player.is_playing());
    h.get_by_label(player_ui::PLAY);
}

#[test]
fn the_verdict_is_shown_for_intact_cut_and_tampered_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_in(dir.path());
    let bytes = std::fs::read(&log).unwrap();
    let records: Vec<_> = LogReader::new(&bytes[..])
        .unwrap()
        .map(|r| r.unwrap())
        .collect();

    let mut h = harness(&log);
    h.step();
    h.get_by_label(player_ui::VERDICT_INTACT);
    assert!(h.query_by_label_contains("Tampered").is_none());

    // Cut inside record 20, as a kill leaves it.
    let cut = dir.path().join("cut.tlog");
    std::fs::write(&cut, &bytes[..records[20].offset as usize + 30]).unwrap();
    let mut h = harness(&cut);
    h.step();
    h.get_by_label("Ended early after record 19");
    h.get_by_label_contains("Not sealed, as a crash or a kill leaves it");
    assert!(h.query_by_label(player_ui::VERDICT_INTACT).is_none());
    assert_eq!(h.state().player.duration_ms(), records[19].time_ms);

    // One byte flipped in record 30: tampered there; plays up to record 29, clearly said.
    let mut bad = bytes.clone();
    bad[records[30].offset as usize + 70] ^= 0x20;
    let tampered = dir.path().join("tampered.tlog");
    std::fs::write(&tampered, &bad).unwrap();
    let mut h = harness(&tampered);
    h.step();
    h.get_by_label("Tampered at record 30");
    h.get_by_label_contains("Plays up to record 29");
    h.get_by_label_contains("its contents do not match its hash");
    let end = records[29].time_ms;
    assert_eq!(h.state().player.duration_ms(), end);
    h.get_by_label(player_ui::TIMELINE).set_value_accesskit(9.0);
    h.step();
    assert_eq!(
        h.state().player.position_ms(),
        end,
        "no further than record 29"
    );
    assert_same(
        &shown(&h.state().player),
        &frame_by_the_command(&tampered, end, dir.path()),
        "the last good frame of the tampered log",
    );
}

#[test]
fn hovering_a_marker_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_in(dir.path());
    let mut h = harness(&log);
    h.step();
    let labels: Vec<String> = h
        .state()
        .player
        .events()
        .iter()
        .map(|e| player_ui::event_label(&e.what))
        .collect();
    for want in [
        "Session opened: alice (tier 2) with bob's laptop",
        "The user allowed control",
        "Typed 12 characters",
        "3 clicks",
        "Technician joined: carol (tier 3)",
        "The user allowed viewing only",
        "Session ended: the user ended the session",
    ] {
        assert!(
            labels.iter().any(|l| l == want),
            "`{want}` not in {labels:?}"
        );
    }
    // The typing marker, at 2.001 s of 10 s.
    let rect = h.get_by_label(player_ui::TIMELINE).rect();
    let x = rect.left() + rect.width() * 0.2001;
    h.hover_at(egui::pos2(x, rect.center().y));
    h.run_steps(4);
    h.get_by_label_contains("Typed 12 characters");
}
