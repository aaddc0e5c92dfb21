//! The viewers as a person sees them: a real viewer window, full screen at 1:1 on a second
//! 1920x1080 Xvfb (`+extension GLX`, Mesa's software GL), read from that X server's pixels.
//!
//! - `vncviewer` (TigerVNC) connected to `X0tigervnc` serving the agent's display;
//! - the Tandem console (`technician console --connect CODE --fullscreen --one-to-one`)
//!   joined through a real relay to the real `agent`. It says where the remote screen lies on
//!   its display with `{"event":"viewer_area","x","y","width","height"}` JSON lines on stdout;
//!   remote pixel (px, py) is then at root (x + px, y + py) while it lies within width x height.
//!
//! Screen latency: T0 as for every system (the bench's fill executed by the agent's X server),
//! T1 the middle of the first [`PixelProbe`] look that finds the colour on the viewer display
//! where the square is. Input latency: after one click at the pointer's parking place (a
//! person's first click, after which TigerVNC's viewer forwards pointer moves), the viewer
//! display's pointer is warped over the square (the viewer receives a motion, as from a mouse)
//! at T0; T1 is the bench's window receiving the motion on the agent's display. CPU: the viewer process (with its children) and the server
//! (agent or X0tigervnc) over N seconds idle, N seconds of the 200x200 square repainting 30
//! times a second, and N seconds of a full-screen 1920x1080 checkerboard whose squares swap
//! colour 30 times a second (every pixel changes; no frame is one solid fill).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::pixels::PixelProbe;
use super::probe::Rect;
use super::procs;
use super::window::TestWindow;
use super::{colour, gap, pct, ACTIVE_HZ, POINTER_PARK, SAMPLE_TIMEOUT, SCREEN, WINDOW};
use crate::report::progress;
use harness::process::{Process, StdoutLines};
use harness::xvfb::Xvfb;

/// How long a viewer may take from its start to showing the screen (GL start-up included).
const FIRST_SCREEN: Duration = Duration::from_secs(60);
/// Time between two looks at the viewer display's pixels.
pub const LOOK_PERIOD: Duration = Duration::from_micros(300);
/// The full-screen phase's checkerboard squares, in pixels.
const CHECKER_CELL: u16 = 40;

/// Where the remote screen's top-left pixel is on the viewer display, and how much of the
/// remote screen shows there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerArea {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl ViewerArea {
    /// Where the remote rectangle `r` is on the viewer display (root coordinates), if all of it
    /// shows.
    pub(crate) fn place(&self, r: Rect) -> Option<Rect> {
        if r.x + r.width > self.width || r.y + r.height > self.height {
            return None;
        }
        let (x, y) = (self.x + r.x as i32, self.y + r.y as i32);
        (x >= 0 && y >= 0).then_some(Rect {
            x: x as u32,
            y: y as u32,
            width: r.width,
            height: r.height,
        })
    }

    /// Where the pointer is parked on the viewer display: over the remote screen's parking
    /// place, or the nearest point of the area to it when the area does not reach that far.
    fn park(&self) -> (i16, i16) {
        let px = (POINTER_PARK.0 as u32).min(self.width.saturating_sub(1));
        let py = (POINTER_PARK.1 as u32).min(self.height.saturating_sub(1));
        ((self.x + px as i32) as i16, (self.y + py as i32) as i16)
    }

    /// Where remote point (`px`, `py`) is on the viewer display, if it shows.
    fn point(&self, px: u32, py: u32) -> Option<(i16, i16)> {
        self.place(Rect {
            x: px,
            y: py,
            width: 1,
            height: 1,
        })
        .map(|r| (r.x as i16, r.y as i16))
    }
}

/// What the console has said on stdout, as its reader thread keeps it.
#[derive(Debug, Default)]
struct ConsoleState {
    area: Option<ViewerArea>,
    session_started: bool,
    /// The last few lines, for an error message.
    recent: VecDeque<String>,
    /// The output has ended (the console exited or closed stdout).
    ended: bool,
}

/// Reads the console's JSON lines into `state`.
fn read_console(lines: StdoutLines, state: Arc<Mutex<ConsoleState>>) {
    for line in lines {
        let mut s = state.lock().expect("console state lock");
        if let Some(area) = parse_viewer_area(&line) {
            s.area = Some(area);
        }
        if line.contains("\"session_start\"") {
            s.session_started = true;
        }
        s.recent.push_back(line);
        if s.recent.len() > 8 {
            s.recent.pop_front();
        }
    }
    state.lock().expect("console state lock").ended = true;
}

/// `{"event":"viewer_area","x":X,"y":Y,"width":W,"height":H}`, if `line` is that.
fn parse_viewer_area(line: &str) -> Option<ViewerArea> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["event"] != "viewer_area" {
        return None;
    }
    let int = |k: &str| v[k].as_i64();
    Some(ViewerArea {
        x: i32::try_from(int("x")?).ok()?,
        y: i32::try_from(int("y")?).ok()?,
        width: u32::try_from(int("width")?).ok()?,
        height: u32::try_from(int("height")?).ok()?,
    })
}

/// Where a viewer's area comes from: fixed (vncviewer full screen on a display the size of the
/// remote one), or the console's own word.
enum AreaSource {
    Fixed(ViewerArea),
    Console(Arc<Mutex<ConsoleState>>),
}

/// A viewer process with its window on the viewer display.
pub struct RunningViewer {
    proc: Process,
    area: AreaSource,
    log: PathBuf,
}

impl RunningViewer {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub(crate) fn area(&self) -> Option<ViewerArea> {
        match &self.area {
            AreaSource::Fixed(a) => Some(*a),
            AreaSource::Console(s) => s.lock().expect("console state lock").area,
        }
    }

    /// Fails, with what the viewer last said, if it has exited.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        if let Err(e) = self.proc.check_running() {
            return Err(anyhow::Error::from(e).context(self.last_words()));
        }
        Ok(())
    }

    /// The viewer's last stdout lines and stderr lines, for an error message.
    fn last_words(&self) -> String {
        let mut words = String::new();
        if let AreaSource::Console(s) = &self.area {
            let s = s.lock().expect("console state lock");
            if !s.recent.is_empty() {
                words.push_str("its last output: ");
                words.push_str(&s.recent.iter().cloned().collect::<Vec<_>>().join(" | "));
                words.push_str("; ");
            }
        }
        let tail = procs::log_tail(&self.log, 6);
        if tail.is_empty() {
            words.push_str("nothing on stderr");
        } else {
            words.push_str("stderr ends: ");
            words.push_str(&tail.replace('\n', " | "));
        }
        words
    }

    /// What the viewer is waiting for, for an error message.
    fn waiting_for(&self) -> String {
        match &self.area {
            AreaSource::Fixed(_) => "the screen".to_string(),
            AreaSource::Console(s) => {
                let s = s.lock().expect("console state lock");
                match (s.session_started, s.area) {
                    (false, None) => "a session_start and a viewer_area event".to_string(),
                    (false, Some(_)) => "a session_start event".to_string(),
                    (true, None) => "a viewer_area event".to_string(),
                    (true, Some(a)) => format!("the screen in its viewer area {a:?}"),
                }
            }
        }
    }
}

/// The viewer's own Xvfb: 1920x1080x24 with GLX.
pub fn viewer_display() -> anyhow::Result<Xvfb> {
    let xvfb = procs::xvfb(SCREEN.0, SCREEN.1, &["+extension", "GLX"])?;
    progress(
        super::BENCH,
        format!(
            "viewer Xvfb {} ({}x{}x24, GLX) pid {}",
            xvfb.display,
            SCREEN.0,
            SCREEN.1,
            xvfb.pid()
        ),
    );
    Ok(xvfb)
}

/// Starts `vncviewer` full screen on `display`, connected to the VNC server on loopback
/// `port`; `home` keeps its settings and history away from the user's.
pub fn start_vncviewer(display: &str, port: u16, home: &Path) -> anyhow::Result<RunningViewer> {
    let log = home.join("vncviewer.log");
    let mut command = Command::new("vncviewer");
    command
        .args(["-FullScreen", "-RemoteResize=0", "-Shared"])
        .arg(format!("127.0.0.1::{port}"))
        .env("DISPLAY", display)
        .env("HOME", home);
    let proc = procs::start_logged("vncviewer", command, &log)?;
    Ok(RunningViewer {
        proc,
        // Full screen on a display the size of the served one: 1:1 at the top-left.
        area: AreaSource::Fixed(ViewerArea {
            x: 0,
            y: 0,
            width: SCREEN.0,
            height: SCREEN.1,
        }),
        log,
    })
}

/// How to start the console: the binary, and the relay's files and account it logs in with.
pub struct ConsoleLaunch<'a> {
    pub technician: &'a Path,
    pub relay_addr: &'a str,
    pub fingerprint: String,
    pub known_relays: PathBuf,
    pub tokens: PathBuf,
    pub dir: &'a Path,
    pub code: &'a str,
}

/// Whether `technician` has the `console` subcommand; its `--help` text if so.
pub fn console_help(technician: &Path) -> Option<String> {
    let out = Command::new(technician)
        .args(["console", "--help"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `technician console --connect CODE --fullscreen --one-to-one --json` on `display`.
pub fn start_console(
    launch: &ConsoleLaunch<'_>,
    help: &str,
    display: &str,
) -> anyhow::Result<RunningViewer> {
    let log = launch.dir.join("console.log");
    let mut command = Command::new(launch.technician);
    command
        .args([
            "console",
            "--relay",
            launch.relay_addr,
            "--connect",
            launch.code,
        ])
        .args(["--fullscreen", "--one-to-one", "--json", "--fingerprint"])
        .arg(&launch.fingerprint)
        .arg("--known-relays")
        .arg(&launch.known_relays)
        .arg("--tokens")
        .arg(&launch.tokens);
    if help.contains("--log-dir") {
        command
            .arg("--log-dir")
            .arg(launch.dir.join("technician-logs"));
    }
    // Whatever the console keeps by default (settings, logs, GL caches) stays in the bench's
    // directory, not the user's.
    command
        .env("DISPLAY", display)
        .env("WINIT_X11_SCALE_FACTOR", "1")
        .env_remove("WAYLAND_DISPLAY")
        .env("HOME", launch.dir)
        .env("XDG_CONFIG_HOME", launch.dir.join("config"))
        .env("XDG_DATA_HOME", launch.dir.join("data"))
        .env("XDG_CACHE_HOME", launch.dir.join("cache"));
    let mut proc = procs::start_logged("technician console", command, &log)?;
    let state = Arc::new(Mutex::new(ConsoleState::default()));
    let lines = proc.take_stdout()?;
    let shared = state.clone();
    std::thread::Builder::new()
        .name("console-out".into())
        .spawn(move || read_console(lines, shared))
        .context("cannot start the console output thread")?;
    Ok(RunningViewer {
        proc,
        area: AreaSource::Console(state),
        log,
    })
}

/// `technician login` as `user`, the password on stdin, into `launch.tokens`.
pub fn login(launch: &ConsoleLaunch<'_>, user: &str, password: &str) -> anyhow::Result<()> {
    let mut command = Command::new(launch.technician);
    command
        .args(["login", "--user", user, "--relay", launch.relay_addr])
        .arg("--fingerprint")
        .arg(&launch.fingerprint)
        .arg("--known-relays")
        .arg(&launch.known_relays)
        .arg("--tokens")
        .arg(&launch.tokens)
        .arg("--json");
    let out = harness::process::run("technician login", command, &format!("{password}\n"))?;
    if !out.success {
        bail!("technician login failed: {}", out.text());
    }
    Ok(())
}

/// What a windowed viewer measured.
pub struct WindowMeasured {
    pub screen: Vec<Duration>,
    pub screen_lost: u32,
    /// `None` when no pointer motion came through during the warm-up.
    pub input: Option<(Vec<Duration>, u32)>,
    /// Round trips of the pixel probe's looks during the screen samples, sorted.
    pub look_costs: Vec<Duration>,
    /// The user's pointer moved on the agent's display until the viewer drew it there, sorted,
    /// and the samples lost; `None` where it was not measured.
    pub cursor: Option<(Vec<Duration>, u32)>,
    pub viewer_cpu: Phases,
    pub server_cpu: Phases,
    /// Where the remote screen was on the viewer display at the end.
    pub area: Option<ViewerArea>,
}

/// % of one core in each CPU phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub idle: f64,
    pub small: f64,
    pub full: f64,
}

/// Measures `viewer` (on the display `probe` reads) showing the agent display that `win` is
/// on, `server_pid` serving it; with `cursor`, also how soon it draws the user's own pointer
/// where it moved.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    agent_display: &str,
    win: &TestWindow,
    viewer: &mut RunningViewer,
    probe: &mut PixelProbe,
    server_pid: u32,
    samples: u32,
    warmup: u32,
    seconds: u64,
    cursor: bool,
) -> anyhow::Result<WindowMeasured> {
    anyhow::ensure!(
        probe.screen_size() == SCREEN,
        "the viewer display is {:?}, not {SCREEN:?}",
        probe.screen_size()
    );
    win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
    let first = 0x00c0_c0c0;
    wait_first_screen(win, viewer, probe, first)?;

    let mut screen = Vec::new();
    let mut screen_lost = 0;
    let mut prev = first;
    for i in 0..warmup + samples {
        let c = distinct_colour(colour(i), prev);
        prev = c;
        let t0 = win.fill(c)?;
        let rect = viewer
            .area()
            .and_then(|a| a.place(WINDOW))
            .with_context(|| {
                format!(
                    "the square no longer shows in {}'s viewer area {:?}",
                    viewer.proc.name(),
                    viewer.area()
                )
            })?;
        match probe.wait_for(rect, c, LOOK_PERIOD, t0 + SAMPLE_TIMEOUT)? {
            Some(t1) if i >= warmup => screen.push(t1.saturating_duration_since(t0)),
            Some(_) => {}
            None => {
                viewer.check()?;
                if i >= warmup {
                    screen_lost += 1;
                }
            }
        }
        std::thread::sleep(gap(i));
    }
    let look_costs = probe.take_look_costs();
    let cursor = if cursor {
        let measured = pointer_samples(win, viewer, probe, prev, samples, warmup)?;
        win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
        probe.take_look_costs();
        Some(measured)
    } else {
        None
    };

    // A click where the remote screen has nothing (the pointer's parking place) gives the
    // viewer the pointer, as a person's first click would.
    if let Some((px, py)) = viewer.area().map(|a| a.park()) {
        probe.click(px, py)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut input = Vec::new();
    let mut input_lost = 0;
    let mut arrived = 0;
    let mut input_measured = true;
    for i in 0..warmup + samples {
        if i == warmup && arrived == 0 {
            progress(
                super::BENCH,
                format!(
                    "{}: no pointer motion came through in {warmup} warm-up moves; input not measured",
                    viewer.proc.name()
                ),
            );
            input_measured = false;
            break;
        }
        let wx = [40, 160][(i % 2) as usize];
        let wy = 20 + (i % 16) as i16 * 10;
        let (sx, sy) = (WINDOW.x + wx as u32, WINDOW.y + wy as u32);
        let (rx, ry) = viewer
            .area()
            .and_then(|a| a.point(sx, sy))
            .context("the square no longer shows in the viewer area")?;
        let t0 = probe.warp_pointer(rx, ry)?;
        match win.wait_motion(wx, wy, t0 + SAMPLE_TIMEOUT) {
            Some(t1) => {
                arrived += 1;
                if i >= warmup {
                    input.push(t1.saturating_duration_since(t0));
                }
            }
            None => {
                viewer.check()?;
                if i >= warmup {
                    input_lost += 1;
                }
            }
        }
        std::thread::sleep(gap(i));
    }
    input.sort();
    screen.sort();

    // Park both pointers where no square is: the viewer's (which moves the remote one) and the
    // agent display's own.
    if let Some((px, py)) = viewer.area().map(|a| a.park()) {
        probe.warp_pointer(px, py)?;
    }
    std::thread::sleep(Duration::from_millis(100));
    win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
    std::thread::sleep(Duration::from_millis(500));

    let pids = [viewer.pid(), server_pid];
    let phase = Duration::from_secs(seconds);
    let idle = cpu_phase(pids, phase, |_| Ok(()))?;
    viewer.check()?;
    let small = cpu_phase(pids, phase, |n| {
        win.fill([0x00d0_4020, 0x0020_40d0][(n % 2) as usize])
            .map(drop)
    })?;
    viewer.check()?;
    let full = {
        let board = TestWindow::open(
            agent_display,
            Rect {
                x: 0,
                y: 0,
                width: SCREEN.0,
                height: SCREEN.1,
            },
            0x0030_3030,
        )?;
        // Let the viewer take the new window in before counting.
        std::thread::sleep(Duration::from_millis(500));
        let (a, b) = (0x00e0_c020, 0x0020_30a0);
        let full = cpu_phase(pids, phase, |n| {
            let (a, b) = if n % 2 == 0 { (a, b) } else { (b, a) };
            board.fill_checker(a, b, CHECKER_CELL).map(drop)
        })?;
        drop(board);
        full
    };
    viewer.check()?;
    probe.sync()?;

    Ok(WindowMeasured {
        screen,
        screen_lost,
        input: input_measured.then_some((input, input_lost)),
        look_costs,
        cursor,
        viewer_cpu: Phases {
            idle: idle[0],
            small: small[0],
            full: full[0],
        },
        server_cpu: Phases {
            idle: idle[1],
            small: small[1],
            full: full[1],
        },
        area: viewer.area(),
    })
}

/// Half the side of the patch watched for the pointer, around where it should be drawn.
pub const POINTER_REACH: u32 = 10;

/// The user's pointer, moved by a device (XTest) on the agent's display over the square of
/// `colour`, from one side of it to the other: from the move (T0) until the viewer display
/// shows something other than the square's colour around the new place (T1). Before each move
/// the patch is waited clean, so that a pointer still drawn there from before is not taken
/// for the new one. Sorted, and the samples lost.
fn pointer_samples(
    win: &TestWindow,
    viewer: &mut RunningViewer,
    probe: &mut PixelProbe,
    colour: u32,
    samples: u32,
    warmup: u32,
) -> anyhow::Result<(Vec<Duration>, u32)> {
    let mut got = Vec::new();
    let mut lost = 0;
    for i in 0..warmup + samples {
        let wx = [50, 150][(i % 2) as usize];
        let wy = 40 + (i % 13) * 10;
        let (sx, sy) = (WINDOW.x + wx, WINDOW.y + wy);
        let patch = Rect {
            x: sx - POINTER_REACH,
            y: sy - POINTER_REACH,
            width: 2 * POINTER_REACH,
            height: 2 * POINTER_REACH,
        };
        let rect = viewer
            .area()
            .and_then(|a| a.place(patch))
            .context("the square no longer shows in the viewer area")?;
        let clean = Instant::now() + SAMPLE_TIMEOUT;
        if probe.wait_for(rect, colour, LOOK_PERIOD, clean)?.is_none() {
            bail!(
                "the square's colour did not come back around {sx},{sy} on {}'s display",
                viewer.proc.name()
            );
        }
        let t0 = win.move_pointer(sx as i16, sy as i16)?;
        match probe.wait_for_mark(rect, colour, LOOK_PERIOD, t0 + SAMPLE_TIMEOUT)? {
            Some(t1) if i >= warmup => got.push(t1.saturating_duration_since(t0)),
            Some(_) => {}
            None => {
                viewer.check()?;
                if i >= warmup {
                    lost += 1;
                }
            }
        }
        std::thread::sleep(gap(i));
    }
    got.sort();
    Ok((got, lost))
}

/// Fills the square with `first` and waits until the viewer shows it (its start-up, GL and
/// the session's included), failing with what the viewer last said after [`FIRST_SCREEN`].
pub(crate) fn wait_first_screen(
    win: &TestWindow,
    viewer: &mut RunningViewer,
    probe: &mut PixelProbe,
    first: u32,
) -> anyhow::Result<()> {
    win.fill(first)?;
    let started = Instant::now();
    loop {
        viewer.check()?;
        if let Some(rect) = viewer.area().and_then(|a| a.place(WINDOW)) {
            let deadline = Instant::now() + Duration::from_millis(200);
            if probe
                .wait_for(rect, first, LOOK_PERIOD, deadline)?
                .is_some()
            {
                break;
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if started.elapsed() > FIRST_SCREEN {
            bail!(
                "{} did not show the agent's screen within {} s: still waiting for {}; {}",
                viewer.proc.name(),
                FIRST_SCREEN.as_secs(),
                viewer.waiting_for(),
                viewer.last_words()
            );
        }
    }
    progress(
        super::BENCH,
        format!(
            "{} shows the screen after {:.1} s, viewer area {:?}",
            viewer.proc.name(),
            started.elapsed().as_secs_f64(),
            viewer.area()
        ),
    );
    probe.take_look_costs();
    Ok(())
}

/// `c`, or `c` with its channels flipped if it is too close to `prev` to tell apart within the
/// probe's tolerance.
pub(crate) fn distinct_colour(c: u32, prev: u32) -> u32 {
    let far = (0..3).any(|i| ((c >> (8 * i)) as u8).abs_diff((prev >> (8 * i)) as u8) > 32);
    if far {
        c
    } else {
        c ^ 0x0080_8080
    }
}

/// The CPU used by each of `pids` (with children), in % of one core, over `phase` while `tick`
/// is called [`ACTIVE_HZ`] times a second (with the tick's number).
fn cpu_phase(
    pids: [u32; 2],
    phase: Duration,
    mut tick: impl FnMut(u32) -> anyhow::Result<()>,
) -> anyhow::Result<[f64; 2]> {
    let before = [
        procs::tree_cpu_time(pids[0])?,
        procs::tree_cpu_time(pids[1])?,
    ];
    let start = Instant::now();
    let period = Duration::from_secs(1) / ACTIVE_HZ;
    let mut n = 0u32;
    while start.elapsed() < phase {
        tick(n)?;
        n += 1;
        let next = start + period * n;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let wall = start.elapsed();
    Ok([
        pct(procs::tree_cpu_time(pids[0])? - before[0], wall),
        pct(procs::tree_cpu_time(pids[1])? - before[1], wall),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_area_events_are_read() {
        let line = r#"{"event":"viewer_area","x":0,"y":36,"width":1920,"height":1044}"#;
        assert_eq!(
            parse_viewer_area(line),
            Some(ViewerArea {
                x: 0,
                y: 36,
                width: 1920,
                height: 1044
            })
        );
        assert_eq!(
            parse_viewer_area(r#"{"event":"session_start","width":1920}"#),
            None
        );
        assert_eq!(parse_viewer_area("Connected."), None);
    }

    #[test]
    fn a_rectangle_is_placed_only_where_it_shows() {
        let a = ViewerArea {
            x: 10,
            y: 40,
            width: 400,
            height: 300,
        };
        let r = |x, y, width, height| Rect {
            x,
            y,
            width,
            height,
        };
        let placed = a.place(r(160, 120, 200, 180)).unwrap();
        assert_eq!((placed.x, placed.y), (170, 160));
        assert!(a.place(r(160, 120, 200, 181)).is_none());
        assert_eq!(a.point(0, 0), Some((10, 40)));
        assert_eq!(a.point(400, 0), None);
        // The parking place lies beyond this area: its nearest corner instead.
        assert_eq!(a.park(), (409, 339));
    }

    #[test]
    fn consecutive_probe_colours_are_far_apart() {
        let mut prev = 0x00c0_c0c0;
        for i in 0..10_000 {
            let c = distinct_colour(colour(i), prev);
            assert!(!crate::e2e::pixels::close(c, prev), "sample {i}");
            prev = c;
        }
    }
}
