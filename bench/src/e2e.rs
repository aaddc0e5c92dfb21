//! `bench e2e`: what a person at each end feels, on a 1920x1080 Xvfb, for Tandem (the real
//! `agent` binary, through a real `relay` process on loopback, to a technician in this process)
//! and, in the same run on the same display, for two VNC servers read by a minimal RFB client
//! of this process: TigerVNC's `x0vncserver` and `x11vnc`.
//!
//! - screen latency: the bench fills its own 200x200 window with a new colour; T0 is when the X
//!   server has executed the fill (a round trip after it), T1 when the viewer's framebuffer first
//!   holds that colour over the whole square;
//! - input latency: the viewer sends a pointer move into the window (T0); T1 is when the window
//!   receives the motion event;
//! - server CPU: `/proc/PID/stat` of the agent (or VNC server, with its children) over N
//!   seconds of an idle screen, then N seconds while the window repaints 30 times a second, with
//!   the viewer following.
//!
//! Two more systems put a real viewer window on a second Xvfb and read that X server's pixels
//! ([`windowed`]): `console` (the real `technician console`, full screen at 1:1, joined to the
//! real agent through the relay) and `vncviewer` (TigerVNC's viewer, full screen, showing
//! `X0tigervnc`'s screen); beside latency they report the viewer process's CPU, also while a
//! full 1920x1080 screen repaints 30 times a second. For the console, the user's own pointer
//! too: moved over the square by a device (XTest) on the agent's display (T0) until the
//! console's display shows it drawn at its new place (T1), printed beside the screen path of
//! the same run.
//!
//! Systems are measured one after the other, each with warm-up samples first; samples are
//! spaced by an irregular 15 to 50 ms so they do not lock onto a capture period. Every process
//! started here is killed when its guard drops, also on error.
//!
//! Modules: [`procs`] (the child processes), [`window`] (the bench's X window), [`probe`] (what
//! the viewer's framebuffer holds), [`ours`] (the in-process technician), [`rfb`] (the VNC
//! client), [`windowed`] (viewer windows on their own display) and [`pixels`] (what that
//! display shows).

pub(crate) mod ours;
pub(crate) mod pixels;
pub(crate) mod probe;
pub(crate) mod procs;
mod rfb;
pub(crate) mod window;
pub(crate) mod windowed;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use link::{Fingerprint, RelayConnection};
use protocol::control::Role;
use protocol::e2e::UserCode;
use protocol::input::InputEvent;

use crate::report::{progress, Report};
use harness::process::Process;
use probe::{Rect, ScreenProbe};
use window::TestWindow;

const BENCH: &str = "e2e";
pub(crate) const SCREEN: (u32, u32) = (1920, 1080);
/// The window whose colour changes. Away from the screen's centre, where the pointer starts.
pub(crate) const WINDOW: Rect = Rect {
    x: 160,
    y: 120,
    width: 200,
    height: 200,
};
/// Where the pointer is parked while the screen is measured: a software cursor over the window
/// would keep it from being one colour.
pub(crate) const POINTER_PARK: (i16, i16) = (1800, 1000);
/// A sample that has not arrived by then is counted as lost.
pub(crate) const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Repaints a second during the active CPU phase.
const ACTIVE_HZ: u32 = 30;

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// Tandem: agent -> relay -> technician
    Ours,
    /// TigerVNC `x0vncserver`
    Tigervnc,
    /// `x11vnc`
    X11vnc,
    /// The Tandem console window (`technician console --fullscreen --one-to-one`) on its own
    /// Xvfb: agent -> relay -> console, read from that display's pixels
    Console,
    /// TigerVNC's `vncviewer` full screen on its own Xvfb, showing `x0vncserver`, read from
    /// that display's pixels
    Vncviewer,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::Tigervnc => "tigervnc",
            System::X11vnc => "x11vnc",
            System::Console => "console",
            System::Vncviewer => "vncviewer",
        }
    }
}

/// End-to-end bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Latency samples per system, for the screen and for input each, after warm-up
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub samples: u32,
    /// Warm-up samples before each latency measurement, not counted
    #[arg(long, default_value_t = 20)]
    pub warmup: u32,
    /// Seconds of each CPU phase (idle, then repainting 30 times a second)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Systems to measure, in this order. ours, tigervnc and x11vnc are read from the viewer's
    /// framebuffer in this process; console and vncviewer are real windows full screen on a
    /// second Xvfb, read from its pixels (`--systems console,vncviewer` for the window
    /// comparison alone)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ours,tigervnc,x11vnc,console,vncviewer"
    )]
    pub systems: Vec<System>,
}

/// What one system measured.
struct Measured {
    screen: Vec<Duration>,
    screen_lost: u32,
    input: Vec<Duration>,
    input_lost: u32,
    cpu_idle_pct: f64,
    cpu_active_pct: f64,
    /// For the systems whose viewer is a window on its own display.
    window: Option<WindowFigures>,
}

/// What only a viewer window has.
struct WindowFigures {
    /// Round trips of the pixel probe's looks, sorted.
    look_costs: Vec<Duration>,
    /// Whether pointer moves on the viewer display reached the agent's window.
    input_measured: bool,
    viewer_cpu: windowed::Phases,
    agent_cpu_full_pct: f64,
    /// Where the remote screen was on the viewer display.
    area: Option<windowed::ViewerArea>,
    /// The user's pointer until the viewer drew it (sorted) and the samples lost, where
    /// measured.
    cursor: Option<(Vec<Duration>, u32)>,
}

/// The viewer side of a system, as the measurement drives it.
trait Viewer {
    /// Sends a pointer move to screen position (`x`, `y`).
    fn pointer(&mut self, x: u16, y: u16) -> anyhow::Result<()>;
    /// Fails if the viewer has stopped.
    fn check(&mut self) -> anyhow::Result<()>;
}

/// Runs the bench (async: call it on a tokio runtime) and returns its figures.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let mut notes = Vec::new();
    // Fail before starting anything when our own binaries are missing.
    let binaries =
        if args.systems.contains(&System::Ours) || args.systems.contains(&System::Console) {
            Some((
                procs::sibling_binary("relay")?,
                procs::sibling_binary("agent")?,
            ))
        } else {
            None
        };
    let xvfb = procs::xvfb(SCREEN.0, SCREEN.1, &[])?;
    progress(
        BENCH,
        format!(
            "Xvfb {} ({}x{}x24) pid {}",
            xvfb.display,
            SCREEN.0,
            SCREEN.1,
            xvfb.pid()
        ),
    );
    let win = Arc::new(TestWindow::open(&xvfb.display, WINDOW, 0x202020)?);
    let mut results: Vec<(System, Measured)> = Vec::new();
    for &system in &args.systems {
        progress(BENCH, format!("measuring {}", system.name()));
        let measured = match system {
            System::Ours => {
                let (relay, agent) = binaries.as_ref().expect("looked up above");
                measure_ours(relay, agent, &xvfb.display, win.clone(), &args).await
            }
            System::Tigervnc | System::X11vnc => {
                let (display, win) = (xvfb.display.clone(), win.clone());
                let (samples, warmup, seconds) = (args.samples, args.warmup, args.seconds);
                tokio::task::spawn_blocking(move || {
                    measure_vnc(system, &display, &win, samples, warmup, seconds)
                })
                .await
                .context("the VNC measurement thread panicked")?
            }
            System::Console | System::Vncviewer => {
                let (display, win) = (xvfb.display.clone(), win.clone());
                let run = WindowRun {
                    binaries: binaries.clone(),
                    samples: args.samples,
                    warmup: args.warmup,
                    seconds: args.seconds,
                };
                tokio::task::spawn_blocking(move || measure_window(system, &display, &win, &run))
                    .await
                    .context("the window measurement thread panicked")?
            }
        };
        match measured {
            Ok(Some(m)) => results.push((system, m)),
            Ok(None) => notes.push(format!(
                "{}: not measured: {}",
                system.name(),
                missing_words(system)
            )),
            Err(e) if system == System::Ours => return Err(e),
            Err(e) => {
                progress(BENCH, format!("{} failed: {e:#}", system.name()));
                notes.push(format!("{}: not measured: {e:#}", system.name()));
            }
        }
    }
    drop(win);
    drop(xvfb);
    Ok(report(&args, &results, &notes))
}

fn missing_words(system: System) -> &'static str {
    match system {
        System::Tigervnc => {
            "x0vncserver is not installed (apt-get install -y tigervnc-scraping-server)"
        }
        System::X11vnc => "x11vnc is not installed (apt-get install -y x11vnc)",
        System::Vncviewer => "install tigervnc-viewer (apt-get install -y tigervnc-viewer)",
        System::Console => {
            "the technician binary next to the bench has no `console` subcommand \
             (`technician console --help` fails); build it with \
             `cargo build --release -p technician`"
        }
        System::Ours => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The relay and the agent, as a user runs them

/// A relay process on loopback (or in a network's relay namespace) and the real `agent` on
/// `display` registered with it. Fields drop in order: the agent, then the relay, then its
/// directory.
pub(crate) struct TandemPeers {
    pub agent: Process,
    /// Kept running as long as the agent is.
    _relay: harness::relay::Relay,
    /// Where the technician reaches the relay.
    pub addr: String,
    pub fingerprint: Fingerprint,
    /// The session code the agent printed, whole.
    pub code: String,
    data_dir: tempfile::TempDir,
}

impl TandemPeers {
    fn known_relays(&self) -> std::path::PathBuf {
        self.data_dir.path().join("known-relays.json")
    }
}

/// Starts the relay (with a fresh data directory, the bench's account and `relay_args`) and the
/// agent (`--source x11 --consent control`), and reads the agent's session code. In a `net`,
/// each in its own namespace, the agent reaching the relay over its link. The agent's
/// diagnostics go to this process's stderr with `agent_stderr`, else nowhere.
pub(crate) fn start_tandem(
    relay_bin: &std::path::Path,
    agent_bin: &std::path::Path,
    display: &str,
    net: Option<&harness::Network>,
    relay_args: &[&str],
    agent_stderr: bool,
) -> anyhow::Result<TandemPeers> {
    use harness::{Host, Network, Side};
    let data_dir = tempfile::Builder::new()
        .prefix("tandem-bench-e2e-")
        .tempdir()
        .context("cannot create a data directory for the relay")?;
    let listen = if net.is_some() {
        harness::network::RELAY_LISTEN
    } else {
        "127.0.0.1:0"
    };
    let netns = |host| net.map(|n| n.netns(host));
    let mut command =
        harness::relay::command(relay_bin, listen, data_dir.path(), netns(Host::Relay));
    command.args(relay_args);
    let relay = harness::relay::Relay::start(
        "relay",
        command,
        procs::options(true),
        Duration::from_secs(15),
    )?;
    let fingerprint = crate::relay::parse_fingerprint(&relay.fingerprint)?;
    progress(
        BENCH,
        format!("relay pid {} on {}", relay.process.pid(), relay.addr),
    );
    crate::relay::add_bench_account(relay_bin, data_dir.path())?;

    let (agent_addr, addr) = match net {
        Some(_) => (
            Network::relay_addr(Side::Agent).to_string(),
            Network::relay_addr(Side::Technician).to_string(),
        ),
        None => (relay.addr.to_string(), relay.addr.to_string()),
    };
    let mut command = harness::process::command(netns(Host::Agent), agent_bin);
    command
        .args(["--relay", &agent_addr, "--fingerprint"])
        .arg(fingerprint.to_string())
        .arg("--known-relays")
        .arg(data_dir.path().join("known-relays.json"))
        .args(["--source", "x11", "--consent", "control", "--json"])
        .env("DISPLAY", display);
    let mut agent = procs::start("agent", command, agent_stderr)?;
    let code = procs::wait_code(&mut agent)?;
    progress(
        BENCH,
        format!("agent pid {} registered code {code}", agent.pid()),
    );
    Ok(TandemPeers {
        agent,
        _relay: relay,
        addr,
        fingerprint,
        code,
        data_dir,
    })
}

// ---------------------------------------------------------------------------------------------
// Tandem

struct OursViewer {
    input: tokio::sync::mpsc::UnboundedSender<InputEvent>,
}

impl Viewer for OursViewer {
    fn pointer(&mut self, x: u16, y: u16) -> anyhow::Result<()> {
        self.input
            .send(InputEvent::PointerMove {
                x: u32::from(x),
                y: u32::from(y),
            })
            .map_err(|_| anyhow::anyhow!("the technician session has ended"))
    }

    fn check(&mut self) -> anyhow::Result<()> {
        if self.input.is_closed() {
            bail!("the technician session has ended");
        }
        Ok(())
    }
}

async fn measure_ours(
    relay_bin: &std::path::Path,
    agent_bin: &std::path::Path,
    display: &str,
    win: Arc<TestWindow>,
    args: &Args,
) -> anyhow::Result<Option<Measured>> {
    let peers = start_tandem(relay_bin, agent_bin, display, None, &[], true)?;
    let (addr, fingerprint) = (peers.addr.clone(), peers.fingerprint);
    let (user, password) = crate::relay::bench_account();
    let mut conn = RelayConnection::connect(&addr, fingerprint, Role::Technician)
        .await
        .context("the technician side cannot reach the relay")?;
    conn.login(user, password)
        .await
        .context("the technician side cannot log in")?;
    let code = &peers.code;
    let code = UserCode::parse(code)
        .with_context(|| format!("the agent printed an unreadable code `{code}`"))?;
    conn.join(code.rendezvous().clone())
        .await
        .context("the technician side cannot join the agent's session")?;

    let probe = Arc::new(ScreenProbe::new(WINDOW));
    let (input_tx, input_rx) = tokio::sync::mpsc::unbounded_channel();
    let received = Arc::new(ours::Received::default());
    let session = tokio::spawn(ours::technician(
        conn,
        code,
        probe.clone(),
        input_rx,
        received,
    ));
    let agent_pid = peers.agent.pid();
    let (samples, warmup, seconds) = (args.samples, args.warmup, args.seconds);
    let measured = tokio::task::spawn_blocking(move || {
        let mut viewer = OursViewer { input: input_tx };
        measure(
            &win,
            &probe,
            &mut viewer,
            agent_pid,
            samples,
            warmup,
            seconds,
        )
    })
    .await
    .context("the measurement thread panicked")?;
    // The input channel is closed now: the technician side ends the session.
    let ended = tokio::time::timeout(Duration::from_secs(5), session).await;
    let measured = match (measured, ended) {
        (Ok(m), _) => m,
        (Err(e), Ok(Ok(Err(session_error)))) => {
            return Err(e.context(format!("the technician side: {session_error:#}")))
        }
        (Err(e), _) => return Err(e),
    };
    drop(peers);
    Ok(Some(measured))
}

// ---------------------------------------------------------------------------------------------
// VNC

struct VncViewer(rfb::RfbClient);

impl Viewer for VncViewer {
    fn pointer(&mut self, x: u16, y: u16) -> anyhow::Result<()> {
        self.0.pointer(x, y)
    }

    fn check(&mut self) -> anyhow::Result<()> {
        self.0.check()
    }
}

/// Starts the VNC server of `system` (`Tigervnc` or `X11vnc`) on `display`: the guard and
/// its loopback port, or `None` if it is not installed.
fn start_vnc_server(system: System, display: &str) -> anyhow::Result<Option<(Process, u16)>> {
    let port = procs::free_tcp_port()?;
    let port_s = port.to_string();
    let (program, args): (&str, Vec<&str>) = match system {
        // Debian's `x0vncserver` is a Perl wrapper that daemonizes and runs `X0tigervnc`; run
        // the server itself, so that its CPU time can be read and it ends with its guard.
        System::Tigervnc => (
            if harness::programs::on_path("X0tigervnc") {
                "X0tigervnc"
            } else {
                "x0vncserver"
            },
            vec![
                "-display",
                display,
                "-rfbport",
                &port_s,
                "-SecurityTypes",
                "None",
                "-localhost",
            ],
        ),
        System::X11vnc => (
            "x11vnc",
            vec![
                "-display",
                display,
                "-rfbport",
                &port_s,
                "-nopw",
                "-shared",
                "-forever",
                "-localhost",
            ],
        ),
        other => unreachable!("{} is not a VNC server", other.name()),
    };
    if !harness::programs::on_path(program) {
        progress(
            BENCH,
            format!("{}: {}", system.name(), missing_words(system)),
        );
        return Ok(None);
    }
    let mut command = Command::new(program);
    command.args(&args).env("DISPLAY", display);
    let mut server = procs::start(program, command, false)?;
    procs::wait_listening(&mut server, port, Duration::from_secs(20))?;
    progress(
        BENCH,
        format!("{program} pid {} on port {port}", server.pid()),
    );
    Ok(Some((server, port)))
}

/// Starts the VNC server of `system` on `display` and measures it; `None` if it is not
/// installed.
fn measure_vnc(
    system: System,
    display: &str,
    win: &TestWindow,
    samples: u32,
    warmup: u32,
    seconds: u64,
) -> anyhow::Result<Option<Measured>> {
    let Some((server, port)) = start_vnc_server(system, display)? else {
        return Ok(None);
    };
    let program = server.name().to_string();
    let probe = Arc::new(ScreenProbe::new(WINDOW));
    let client = rfb::RfbClient::connect(port, probe.clone())?;
    progress(BENCH, format!("connected to \"{}\"", client.server_name));
    if (u32::from(client.width), u32::from(client.height)) != SCREEN {
        bail!(
            "{program} serves a {}x{} screen, not the {}x{} display",
            client.width,
            client.height,
            SCREEN.0,
            SCREEN.1
        );
    }
    let mut viewer = VncViewer(client);
    let m = measure(
        win,
        &probe,
        &mut viewer,
        server.pid(),
        samples,
        warmup,
        seconds,
    )?;
    drop(viewer);
    drop(server);
    Ok(Some(m))
}

// ---------------------------------------------------------------------------------------------
// Viewer windows on their own display

/// What a window measurement needs besides the agent's display.
struct WindowRun {
    /// relay and agent, for the console.
    binaries: Option<(std::path::PathBuf, std::path::PathBuf)>,
    samples: u32,
    warmup: u32,
    seconds: u64,
}

/// Starts `system`'s viewer window full screen on a display of its own, with what it shows
/// (`X0tigervnc`, or relay and agent), and measures it; `None` if something it needs is not
/// installed or built.
fn measure_window(
    system: System,
    display: &str,
    win: &TestWindow,
    run: &WindowRun,
) -> anyhow::Result<Option<Measured>> {
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-viewer-")
        .tempdir()
        .context("cannot create a directory for the viewer")?;
    match system {
        System::Vncviewer => {
            if !harness::programs::on_path("vncviewer") {
                progress(BENCH, format!("vncviewer: {}", missing_words(system)));
                return Ok(None);
            }
            let Some((server, port)) = start_vnc_server(System::Tigervnc, display)? else {
                bail!("{}", missing_words(System::Tigervnc));
            };
            let screen = windowed::viewer_display()?;
            let mut probe = pixels::PixelProbe::open(&screen.display)?;
            let mut viewer = windowed::start_vncviewer(&screen.display, port, dir.path())?;
            progress(BENCH, format!("vncviewer pid {}", viewer.pid()));
            let m = windowed::measure(
                display,
                win,
                &mut viewer,
                &mut probe,
                server.pid(),
                run.samples,
                run.warmup,
                run.seconds,
                false,
            )?;
            drop(viewer);
            drop(probe);
            drop(screen);
            drop(server);
            Ok(Some(from_window(m)))
        }
        System::Console => {
            let (relay_bin, agent_bin) = run.binaries.as_ref().expect("looked up in run");
            let technician = procs::sibling_binary("technician")?;
            let Some(help) = windowed::console_help(&technician) else {
                progress(BENCH, format!("console: {}", missing_words(system)));
                return Ok(None);
            };
            let screen = windowed::viewer_display()?;
            let mut probe = pixels::PixelProbe::open(&screen.display)?;
            let peers = start_tandem(relay_bin, agent_bin, display, None, &[], true)?;
            let launch = windowed::ConsoleLaunch {
                technician: &technician,
                relay_addr: &peers.addr,
                fingerprint: peers.fingerprint.to_string(),
                known_relays: peers.known_relays(),
                tokens: dir.path().join("tokens.json"),
                dir: dir.path(),
                code: &peers.code,
            };
            let (user, password) = crate::relay::bench_account();
            windowed::login(&launch, user, password)?;
            let mut viewer = windowed::start_console(&launch, &help, &screen.display)?;
            progress(BENCH, format!("technician console pid {}", viewer.pid()));
            let m = windowed::measure(
                display,
                win,
                &mut viewer,
                &mut probe,
                peers.agent.pid(),
                run.samples,
                run.warmup,
                run.seconds,
                true,
            );
            drop(viewer);
            drop(peers);
            drop(probe);
            drop(screen);
            Ok(Some(from_window(m?)))
        }
        other => unreachable!("{} has no viewer window", other.name()),
    }
}

fn from_window(m: windowed::WindowMeasured) -> Measured {
    let input_measured = m.input.is_some();
    let (input, input_lost) = m.input.unwrap_or_default();
    Measured {
        screen: m.screen,
        screen_lost: m.screen_lost,
        input,
        input_lost,
        cpu_idle_pct: m.server_cpu.idle,
        cpu_active_pct: m.server_cpu.small,
        window: Some(WindowFigures {
            look_costs: m.look_costs,
            input_measured,
            viewer_cpu: m.viewer_cpu,
            agent_cpu_full_pct: m.server_cpu.full,
            area: m.area,
            cursor: m.cursor,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The measurement, the same for every system

/// The colour of sample `i` (0xRRGGBB), scattered over the colour cube.
pub(crate) fn colour(i: u32) -> u32 {
    (i.wrapping_add(1).wrapping_mul(0x9E37_79B1) >> 8) & 0x00ff_ffff
}

/// An irregular pause of 15 to 50 ms between samples.
pub(crate) fn gap(i: u32) -> Duration {
    Duration::from_millis(15 + u64::from(i.wrapping_mul(2_654_435_761) >> 16) % 36)
}

fn measure(
    win: &TestWindow,
    probe: &ScreenProbe,
    viewer: &mut dyn Viewer,
    server_pid: u32,
    samples: u32,
    warmup: u32,
    seconds: u64,
) -> anyhow::Result<Measured> {
    // The first full screen: the viewer is up and showing the window.
    win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
    let first = 0x00c0_c0c0;
    win.fill(first)?;
    if probe
        .wait_for(first, Instant::now() + Duration::from_secs(20))
        .is_none()
    {
        viewer.check()?;
        bail!("the viewer did not show the test window within 20 s");
    }

    let mut screen = Vec::new();
    let mut screen_lost = 0;
    let mut prev = first;
    for i in 0..warmup + samples {
        let mut c = colour(i);
        if c == prev {
            c ^= 0x0040_4040;
        }
        prev = c;
        let t0 = win.fill(c)?;
        match probe.wait_for(c, t0 + SAMPLE_TIMEOUT) {
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

    let mut input = Vec::new();
    let mut input_lost = 0;
    for i in 0..warmup + samples {
        // Alternate sides of the window, wandering down, so every move goes somewhere new.
        let wx = [40, 160][(i % 2) as usize];
        let wy = 20 + (i % 16) as i16 * 10;
        let (sx, sy) = (WINDOW.x as u16 + wx as u16, WINDOW.y as u16 + wy as u16);
        let t0 = Instant::now();
        viewer.pointer(sx, sy)?;
        match win.wait_motion(wx, wy, t0 + SAMPLE_TIMEOUT) {
            Some(t1) if i >= warmup => input.push(t1.saturating_duration_since(t0)),
            Some(_) => {}
            None => {
                viewer.check()?;
                if i >= warmup {
                    input_lost += 1;
                }
            }
        }
        std::thread::sleep(gap(i));
    }

    // CPU: an idle screen (pointer parked, nothing repainting), then 30 repaints a second.
    win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
    std::thread::sleep(Duration::from_millis(500));
    let phase = Duration::from_secs(seconds);
    let before = procs::tree_cpu_time(server_pid)?;
    let start = Instant::now();
    std::thread::sleep(phase);
    let cpu_idle_pct = pct(procs::tree_cpu_time(server_pid)? - before, start.elapsed());
    viewer.check()?;

    let before = procs::tree_cpu_time(server_pid)?;
    let start = Instant::now();
    let period = Duration::from_secs(1) / ACTIVE_HZ;
    let mut n = 0u32;
    while start.elapsed() < phase {
        win.fill([0x00d0_4020, 0x0020_40d0][(n % 2) as usize])?;
        n += 1;
        let next = start + period * n;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let cpu_active_pct = pct(procs::tree_cpu_time(server_pid)? - before, start.elapsed());
    viewer.check()?;

    screen.sort();
    input.sort();
    Ok(Measured {
        screen,
        screen_lost,
        input,
        input_lost,
        cpu_idle_pct,
        cpu_active_pct,
        window: None,
    })
}

fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The report

fn report(args: &Args, results: &[(System, Measured)], notes: &[String]) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut r = Report::new(BENCH);
    r.note(format!(
        "Xvfb {}x{}x24, loopback, {cpus} CPU(s) shared by everything; ours = agent binary -> relay \
         process -> technician in this process (QUIC); tigervnc = X0tigervnc (the server Debian's \
         x0vncserver script starts), x11vnc = x11vnc, each read by this process's RFB 3.8 client \
         (Raw + CopyRect, one incremental request outstanding)",
        SCREEN.0, SCREEN.1
    ));
    r.note(format!(
        "screen latency: a {}x{} window at {},{} filled with a new colour; from the X server having done it \
         to the viewer's framebuffer holding it over the whole square. input latency: from the viewer \
         sending a pointer move into the window to the window receiving the motion event. {} samples each \
         after {} warm-up, 15-50 ms apart",
        WINDOW.width, WINDOW.height, WINDOW.x, WINDOW.y, args.samples, args.warmup
    ));
    r.note(format!(
        "CPU: % of one core used by the agent (or VNC server) process and its children over {} s with nothing changing, then {} s \
         with the window repainting {ACTIVE_HZ} times a second, a viewer connected throughout",
        args.seconds, args.seconds
    ));
    if results.iter().any(|(_, m)| m.window.is_some()) {
        r.note(format!(
            "console, vncviewer: a real viewer window full screen at 1:1 on a second Xvfb {}x{}x24 \
             (+extension GLX, Mesa software GL, WINIT_X11_SCALE_FACTOR=1); console = technician \
             console --fullscreen --one-to-one joined through the relay process to the agent binary, \
             recording its session log as it does by default; vncviewer = TigerVNC's viewer (its \
             defaults) on X0tigervnc. Screen latency ends when the viewer display's own pixels \
             (GetImage on its root, 5 rows across the square, a look every {} µs) hold the colour: \
             T1 is the middle of the first look that saw it, so it is known to within the probe's \
             round trip (its p50 below). Input: after one click where the remote screen has nothing, \
             the viewer display's pointer warped over the square until the agent's window \
             receives the motion",
            SCREEN.0,
            SCREEN.1,
            windowed::LOOK_PERIOD.as_micros()
        ));
        r.note(format!(
            "viewer CPU: % of one core used by the viewer process (technician console, or vncviewer) \
             over {} s idle, {} s with the square repainting {ACTIVE_HZ} times a second, and {} s with \
             a full-screen 1920x1080 checkerboard (40 px squares) swapping its two colours \
             {ACTIVE_HZ} times a second, so every pixel changes every time",
            args.seconds, args.seconds, args.seconds
        ));
    }
    for n in notes {
        r.note(n.clone());
    }
    r.label("screen_latency_p50_ms", "screen -> viewer p50");
    r.label("screen_latency_p90_ms", "screen -> viewer p90");
    r.label("screen_latency_p99_ms", "screen -> viewer p99");
    r.label("screen_samples_lost", "screen samples lost (> 2 s)");
    r.label("input_latency_p50_ms", "viewer input -> window p50");
    r.label("input_latency_p90_ms", "viewer input -> window p90");
    r.label("input_latency_p99_ms", "viewer input -> window p99");
    r.label("input_samples_lost", "input samples lost (> 2 s)");
    r.label("agent_cpu_idle_pct", "agent/server CPU, idle");
    r.label("agent_cpu_active_pct", "agent/server CPU, 30 repaints/s");
    r.label(
        "agent_cpu_full_pct",
        "agent/server CPU, 1080p 30 repaints/s",
    );
    r.label("viewer_cpu_idle_pct", "viewer window CPU, idle");
    r.label("viewer_cpu_active_pct", "viewer window CPU, 30 repaints/s");
    r.label(
        "viewer_cpu_full_pct",
        "viewer window CPU, 1080p 30 repaints/s",
    );
    r.label("cursor_latency_p50_ms", "user's pointer -> viewer p50");
    r.label("cursor_latency_p90_ms", "user's pointer -> viewer p90");
    r.label("cursor_samples_lost", "pointer samples lost (> 2 s)");
    r.label("probe_look_p50_ms", "pixel probe's own look p50");
    r.label("probe_look_p99_ms", "pixel probe's own look p99");
    for (system, m) in results {
        let s = system.name();
        let input_measured = m.window.as_ref().is_none_or(|w| w.input_measured);
        if let Some(a) = m.window.as_ref().and_then(|w| w.area) {
            let whole = (a.x, a.y, a.width, a.height) == (0, 0, SCREEN.0, SCREEN.1);
            r.note(format!(
                "{s}: the remote screen showed at 1:1 in a {}x{} area at {},{} of the {}x{} viewer \
                 display{}",
                a.width,
                a.height,
                a.x,
                a.y,
                SCREEN.0,
                SCREEN.1,
                if whole {
                    ""
                } else {
                    ": not all of it, so the 1080p phase put only that part of each change on the \
                     viewer's screen"
                }
            ));
        }
        if !input_measured {
            r.note(format!(
                "{s}: input not measured: no pointer move on the viewer display reached the \
                 agent's window during the warm-up"
            ));
        }
        r.add(
            s,
            "screen_latency_p50_ms",
            percentile_ms(&m.screen, 50.0),
            "ms",
            2,
        );
        r.add(
            s,
            "screen_latency_p90_ms",
            percentile_ms(&m.screen, 90.0),
            "ms",
            2,
        );
        r.add(
            s,
            "screen_latency_p99_ms",
            percentile_ms(&m.screen, 99.0),
            "ms",
            2,
        );
        r.add(
            s,
            "screen_samples_lost",
            f64::from(m.screen_lost),
            "count",
            0,
        );
        if input_measured {
            for (metric, p) in [
                ("input_latency_p50_ms", 50.0),
                ("input_latency_p90_ms", 90.0),
                ("input_latency_p99_ms", 99.0),
            ] {
                r.add(s, metric, percentile_ms(&m.input, p), "ms", 2);
            }
            r.add(s, "input_samples_lost", f64::from(m.input_lost), "count", 0);
        }
        r.add(s, "agent_cpu_idle_pct", m.cpu_idle_pct, "%", 2);
        r.add(s, "agent_cpu_active_pct", m.cpu_active_pct, "%", 1);
        if let Some(w) = &m.window {
            r.add(s, "agent_cpu_full_pct", w.agent_cpu_full_pct, "%", 1);
            r.add(s, "viewer_cpu_idle_pct", w.viewer_cpu.idle, "%", 2);
            r.add(s, "viewer_cpu_active_pct", w.viewer_cpu.small, "%", 1);
            r.add(s, "viewer_cpu_full_pct", w.viewer_cpu.full, "%", 1);
            if let Some((cursor, lost)) = &w.cursor {
                let (c50, s50) = (percentile_ms(cursor, 50.0), percentile_ms(&m.screen, 50.0));
                r.add(s, "cursor_latency_p50_ms", c50, "ms", 2);
                r.add(
                    s,
                    "cursor_latency_p90_ms",
                    percentile_ms(cursor, 90.0),
                    "ms",
                    2,
                );
                r.add(s, "cursor_samples_lost", f64::from(*lost), "count", 0);
                r.note(format!(
                    "{s}: the user's pointer moved on the agent's display (an XTest motion over the \
                     square, {}x{} px around its place watched on the viewer display) until the \
                     viewer drew it there: p50 {c50:.2} ms, against {s50:.2} ms for the screen path \
                     in the same run ({:.2}x)",
                    2 * windowed::POINTER_REACH,
                    2 * windowed::POINTER_REACH,
                    c50 / s50
                ));
            }
            r.add(
                s,
                "probe_look_p50_ms",
                percentile_ms(&w.look_costs, 50.0),
                "ms",
                3,
            );
            r.add(
                s,
                "probe_look_p99_ms",
                percentile_ms(&w.look_costs, 99.0),
                "ms",
                3,
            );
        }
    }
    let find = |system: System| results.iter().find(|(s, _)| *s == system).map(|(_, m)| m);
    if let Some(ours) = find(System::Ours) {
        let fixed = [
            (
                "screen_latency_p50_ms",
                percentile_ms(&ours.screen, 50.0),
                5.0,
            ),
            (
                "screen_latency_p99_ms",
                percentile_ms(&ours.screen, 99.0),
                15.0,
            ),
            (
                "input_latency_p50_ms",
                percentile_ms(&ours.input, 50.0),
                3.0,
            ),
        ];
        for (metric, value, limit) in fixed {
            r.target("ours", metric, format!("≤ {limit} ms"), value <= limit);
        }
        r.target(
            "ours",
            "agent_cpu_idle_pct",
            "< 5 %",
            ours.cpu_idle_pct < 5.0,
        );
        if let Some(tiger) = find(System::Tigervnc) {
            let pairs = [
                ("screen_latency_p50_ms", &ours.screen, &tiger.screen, 50.0),
                ("screen_latency_p99_ms", &ours.screen, &tiger.screen, 99.0),
                ("input_latency_p50_ms", &ours.input, &tiger.input, 50.0),
                ("input_latency_p99_ms", &ours.input, &tiger.input, 99.0),
            ];
            for (metric, o, t, p) in pairs {
                let (o, t) = (percentile_ms(o, p), percentile_ms(t, p));
                r.target("ours", metric, format!("< tigervnc ({t:.2} ms)"), o < t);
            }
        }
    }
    window_targets(&mut r, find(System::Console), find(System::Vncviewer));
    r
}

/// The targets for the console, against vncviewer in the same run.
fn window_targets(r: &mut Report, console: Option<&Measured>, vnc: Option<&Measured>) {
    let (Some(c), Some(v)) = (console, vnc) else {
        if console.is_some() {
            r.note("console: no targets judged: they are relative to vncviewer in the same run");
        }
        return;
    };
    let (c50, c99) = (
        percentile_ms(&c.screen, 50.0),
        percentile_ms(&c.screen, 99.0),
    );
    let v50 = percentile_ms(&v.screen, 50.0);
    r.target(
        "console",
        "screen_latency_p50_ms",
        format!("≤ ½ vncviewer p50 ({:.2} ms)", v50 / 2.0),
        c50 <= v50 / 2.0,
    );
    r.target(
        "console",
        "screen_latency_p99_ms",
        format!("< vncviewer p50 ({v50:.2} ms)"),
        c99 < v50,
    );
    if let (Some(cw), Some(vw)) = (&c.window, &v.window) {
        let pairs = [
            (
                "viewer_cpu_active_pct",
                cw.viewer_cpu.small,
                vw.viewer_cpu.small,
            ),
            (
                "viewer_cpu_full_pct",
                cw.viewer_cpu.full,
                vw.viewer_cpu.full,
            ),
        ];
        for (metric, cv, vv) in pairs {
            r.target(
                "console",
                metric,
                format!("≤ vncviewer ({vv:.1} %)"),
                cv <= vv,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_colours_differ() {
        for i in 1..10_000 {
            assert_ne!(colour(i), colour(i - 1), "sample {i}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v[..1], 99.0), 1.0);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }
}
