//! `bench capture SCENARIO -o DIR`: records a screen sequence of one kind of screen content, the
//! way the shared corpus was made, so that anyone can remake it.
//!
//! A private 1920x1080 Xvfb with openbox runs real programs from Debian (Chromium, feh, mpv,
//! xterm with vim, Gnumeric) on pictures, pages and a video made here for the purpose
//! (ImageMagick's plasma fractals, ffmpeg's filters: nothing is fetched). Once their windows are
//! up and the screen has settled, an `xdotool` script plays the scenario's scrolling, dragging
//! and typing while this thread grabs the root window every `--interval-ms` (MIT-SHM, as the agent does) and
//! a writer thread appends each frame to `DIR/SCENARIO.scrn` (`SCRNSEQ1`, see
//! `protocol::scrnseq`). Every scenario ends with a still stretch, so that what the codec does
//! once content stops (refining to exact) is part of the recording.
//!
//! The scenarios are in [`Scenario`]; what each needs installed is said before anything starts.

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent::shm_image::ShmImage;
use anyhow::{bail, Context};
use harness::process::{Options, Process, Stderr, Stop};
use harness::xvfb::Xvfb;
use protocol::scrnseq::{Header, Writer};
use x11rb::connection::Connection;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_BYTES: usize = (WIDTH * HEIGHT * 4) as usize;
/// How long a program may take to show its window.
const WINDOW_LIMIT: Duration = Duration::from_secs(40);
/// The screen counts as settled once it has not changed for this long…
const SETTLED: Duration = Duration::from_millis(1500);
/// …or, with a video playing, after this long in all.
const SETTLE_LIMIT: Duration = Duration::from_secs(12);

/// What is on the screen while it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A page of photographs and prose in Chromium, scrolled with the wheel in bursts
    PhotoScroll,
    /// Photographs shown one after another in feh, a terminal beside them
    Slideshow,
    /// A terminal dragged across a video playing in mpv
    VideoDrag,
    /// A page in Chromium with a video playing in it, the page scrolled
    VideoScroll,
    /// Source code in vim in a dark terminal: typing, then paging
    DarkEditor,
    /// A spreadsheet in Gnumeric scrolled sideways
    SheetScroll,
    /// A large map picture in feh panned by dragging
    MapPan,
    /// Four overlapping windows (terminal, page, photograph, spreadsheet) brought to the front
    /// in turn with Alt+Tab
    WindowSwitch,
}

/// Records a screen sequence of one kind of screen content
#[derive(clap::Args, Debug)]
pub struct Args {
    scenario: Scenario,
    /// Directory to write SCENARIO.scrn into
    #[arg(short, long)]
    out: PathBuf,
    /// Frames to record
    #[arg(long, default_value_t = 120)]
    frames: u32,
    /// Capture interval in milliseconds
    #[arg(long, default_value_t = 50)]
    interval_ms: u32,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::PhotoScroll => "photo-scroll",
            Scenario::Slideshow => "slideshow",
            Scenario::VideoDrag => "video-drag",
            Scenario::VideoScroll => "video-scroll",
            Scenario::DarkEditor => "dark-editor",
            Scenario::SheetScroll => "sheet-scroll",
            Scenario::MapPan => "map-pan",
            Scenario::WindowSwitch => "window-switch",
        }
    }

    /// Programs the scenario runs, besides Xvfb, openbox and xdotool, and the Debian package of
    /// each.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        const CONVERT: (&str, &str) = ("convert", "imagemagick");
        const FFMPEG: (&str, &str) = ("ffmpeg", "ffmpeg");
        const CHROMIUM: (&str, &str) = ("chromium", "chromium");
        match self {
            Scenario::PhotoScroll => &[CONVERT, CHROMIUM],
            Scenario::Slideshow => &[CONVERT, ("feh", "feh"), ("xterm", "xterm")],
            Scenario::VideoDrag => &[CONVERT, FFMPEG, ("mpv", "mpv"), ("xterm", "xterm")],
            Scenario::VideoScroll => &[CONVERT, FFMPEG, CHROMIUM],
            Scenario::DarkEditor => &[("xterm", "xterm"), ("vim", "vim")],
            Scenario::SheetScroll => &[("gnumeric", "gnumeric")],
            Scenario::MapPan => &[CONVERT, ("feh", "feh")],
            Scenario::WindowSwitch => &[
                CONVERT,
                CHROMIUM,
                ("feh", "feh"),
                ("xterm", "xterm"),
                ("gnumeric", "gnumeric"),
            ],
        }
    }
}

/// The programs of a scenario on a running display, and the assets they show.
struct Desktop {
    display: String,
    assets: PathBuf,
    /// Stopped when the recording is done, newest first.
    programs: Vec<Process>,
}

impl Desktop {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", &self.display)
            .env("HOME", &self.assets)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.assets);
        c
    }

    /// Starts `program` with `args` and waits until a window of `class` is visible.
    fn start(&mut self, program: &str, args: &[&str], class: &str) -> anyhow::Result<()> {
        let mut c = self.command(program);
        c.args(args);
        let options = Options {
            stderr: Stderr::Discard,
            ..Options::default()
        };
        let process = Process::start(program, c, options)?;
        self.programs.push(process);
        let deadline = Instant::now() + WINDOW_LIMIT;
        loop {
            let found = self
                .command("xdotool")
                .args(["search", "--onlyvisible", "--class", class])
                .output()
                .context("cannot run xdotool")?;
            if found.status.success() && !found.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{program} showed no window of class {class} within {WINDOW_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `xdotool` with `args` to its end.
    fn xdotool(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = self
            .command("xdotool")
            .args(args)
            .status()
            .context("cannot run xdotool")?;
        if !status.success() {
            bail!("xdotool {} failed", args.join(" "));
        }
        Ok(())
    }

    fn chromium(&mut self, page: &str, geometry: (u32, u32, u32, u32)) -> anyhow::Result<()> {
        let profile = self.assets.join(format!("chromium-{page}"));
        let (x, y, w, h) = geometry;
        let args = [
            "--no-sandbox".to_string(),
            "--test-type".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-features=Translate,MediaRouter".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--password-store=basic".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-position={x},{y}"),
            format!("--window-size={w},{h}"),
            format!("file://{}", self.assets.join(page).display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.start("chromium", &args, "chromium")
    }

    /// Runs a shell command line of the asset makers (ImageMagick, ffmpeg) in the assets
    /// directory.
    fn make(&self, line: &str) -> anyhow::Result<()> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(&self.assets)
            .output()
            .context("cannot run sh")?;
        if !out.status.success() {
            bail!(
                "making an asset failed: {line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// `count` photograph-like pictures `photo-N.jpg` of `w` x `h`: plasma fractals (clouds,
/// terrain-like textures) in varied colours, a few with a vignette and fine grain, as a camera's
/// pictures have.
fn make_photos(desktop: &Desktop, count: usize, w: u32, h: u32) -> anyhow::Result<()> {
    const TINTS: [&str; 8] = [
        "plasma:fractal",
        "plasma:steelblue-wheat",
        "plasma:darkgreen-khaki",
        "plasma:orange-purple",
        "plasma:skyblue-white",
        "plasma:sienna-olive",
        "plasma:fractal",
        "plasma:navy-gold",
    ];
    for i in 0..count {
        let tint = TINTS[i % TINTS.len()];
        desktop.make(&format!(
            "convert -seed {seed} -size {w}x{h} {tint} -blur 0x{blur} \
             \\( -size {w}x{h} radial-gradient:white-gray40 \\) -compose multiply -composite \
             -attenuate 0.4 +noise Gaussian -quality 92 photo-{i}.jpg",
            seed = 11 + i * 7,
            blur = 1 + i % 3,
        ))?;
    }
    Ok(())
}

/// A looping video `video.webm` of `w` x `h`: a slow camera move over a plasma landscape, with
/// grain, at 30 frames a second.
fn make_video(desktop: &Desktop, w: u32, h: u32) -> anyhow::Result<()> {
    desktop.make(&format!(
        "convert -seed 5 -size {bw}x{bh} plasma:fractal -blur 0x2 scene.png && \
         ffmpeg -v error -y -loop 1 -i scene.png -t 12 -vf \
         \"zoompan=z='1.3+0.2*sin(on/40)':x='iw/2-(iw/zoom/2)+200*sin(on/50)':\
         y='ih/2-(ih/zoom/2)+120*cos(on/35)':d=1:s={w}x{h}:fps=30,noise=alls=12:allf=t,format=yuv420p\" \
         -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 4M -threads 2 video.webm",
        bw = w * 2,
        bh = h * 2,
    ))
}

/// Prose for the pages: sentences made from a fixed list of words, the same every time.
fn prose(seed: usize, sentences: usize) -> String {
    const WORDS: [&str; 48] = [
        "screen", "window", "the", "a", "river", "morning", "light", "over", "north", "valley",
        "slowly", "bright", "under", "stone", "bridge", "with", "and", "their", "harbour",
        "painted", "across", "quiet", "field", "station", "evening", "old", "market", "green",
        "road", "towards", "mountain", "cloud", "small", "village", "long", "summer", "was",
        "through", "garden", "winter", "coast", "along", "from", "near", "forest", "lake", "tower",
        "square",
    ];
    let mut state = seed as u64 * 2_654_435_761 + 1;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut s = String::new();
    for _ in 0..sentences {
        let len = 8 + next(12);
        for k in 0..len {
            let w = WORDS[next(WORDS.len())];
            if k == 0 {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    s.extend(f.to_uppercase());
                    s.push_str(c.as_str());
                }
            } else {
                s.push(' ');
                s.push_str(w);
            }
        }
        s.push_str(". ");
    }
    s
}

const PAGE_STYLE: &str = "body{font-family:'DejaVu Serif',serif;font-size:18px;line-height:1.5;\
    max-width:1100px;margin:24px auto;color:#222;background:#fafaf7}\
    h1,h2{font-family:'DejaVu Sans',sans-serif}\
    .row{display:flex;gap:16px;margin:16px 0}.row img{flex:1;width:0}\
    img{display:block;max-width:100%}figure{margin:16px 0}\
    figcaption{font:14px 'DejaVu Sans',sans-serif;color:#555}";

/// A page of photographs between paragraphs, some side by side.
fn photo_page(photos: usize) -> String {
    let mut body = String::from("<h1>Along the northern coast</h1>");
    for i in 0..photos {
        let _ = write!(body, "<p>{}</p>", prose(i, 4));
        if i % 3 == 2 && i + 1 < photos {
            let _ = write!(
                body,
                "<div class=row><img src=photo-{i}.jpg><img src=photo-{}.jpg></div>",
                i + 1
            );
        } else {
            let _ = write!(
                body,
                "<figure><img src=photo-{i}.jpg><figcaption>Plate {}: {}</figcaption></figure>",
                i + 1,
                prose(100 + i, 1)
            );
        }
        let _ = write!(body, "<h2>Part {}</h2><p>{}</p>", i + 2, prose(200 + i, 6));
    }
    format!("<!doctype html><meta charset=utf-8><style>{PAGE_STYLE}</style><body>{body}</body>")
}

/// A page with a video among paragraphs.
fn video_page() -> String {
    let mut body = String::from("<h1>Field recording</h1>");
    for i in 0..3 {
        let _ = write!(body, "<p>{}</p>", prose(300 + i, 5));
    }
    body.push_str("<video src=video.webm autoplay muted loop width=960 height=540></video>");
    for i in 0..8 {
        let _ = write!(body, "<h2>Notes {}</h2><p>{}</p>", i + 1, prose(400 + i, 7));
    }
    format!("<!doctype html><meta charset=utf-8><style>{PAGE_STYLE}</style><body>{body}</body>")
}

/// A spreadsheet of `rows` x `cols`: labels, figures and a few formulas.
fn sheet_csv(rows: usize, cols: usize) -> String {
    let mut s = String::from("Region");
    for c in 1..cols {
        let _ = write!(s, ",Week {c}");
    }
    s.push('\n');
    let names = prose(7, rows);
    let mut names = names.split(' ');
    let mut v = 12_345u64;
    for r in 0..rows {
        let _ = write!(s, "{} {}", names.next().unwrap_or("Item"), r + 1);
        for c in 1..cols {
            v = v
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            if c % 9 == 0 {
                let _ = write!(s, ",{:.2}", (v >> 40) as f64 / 1000.0);
            } else {
                let _ = write!(s, ",{}", (v >> 50) % 100_000);
            }
        }
        s.push('\n');
    }
    s
}

/// Sets up the scenario's programs and returns its xdotool script: what happens while the
/// screen is recorded (the recording starts with the script).
fn set_up(scenario: Scenario, d: &mut Desktop) -> anyhow::Result<String> {
    let wheel = |button: u8, clicks: usize, gap_ms: u32| -> String {
        let mut s = String::new();
        for _ in 0..clicks {
            let _ = writeln!(s, "click {button}\nsleep {}", f64::from(gap_ms) / 1000.0);
        }
        s
    };
    let pause = |ms: u32| format!("sleep {}\n", f64::from(ms) / 1000.0);
    // The pointer over the middle of a page, a wait, a burst of wheel clicks, a pause, another
    // burst and the still end.
    let two_scrolls = |lead: u32, first: String, gap: u32, second: String| {
        format!(
            "mousemove 960 600\n{}{first}{}{second}{}",
            pause(lead),
            pause(gap),
            pause(1500)
        )
    };
    // A drag from (x0, y0) by (dx, dy) in `steps` moves `gap_ms` apart, with `button` held and
    // `modifier` (e.g. "alt") down if given.
    let drag = |from: (i32, i32), by: (i32, i32), steps: i32, gap_ms: u32, modifier: &str| {
        let mut s = format!("mousemove {} {}\n", from.0, from.1);
        if !modifier.is_empty() {
            let _ = writeln!(s, "keydown {modifier}");
        }
        s.push_str("mousedown 1\n");
        for k in 1..=steps {
            let _ = writeln!(
                s,
                "sleep {}\nmousemove {} {}",
                f64::from(gap_ms) / 1000.0,
                from.0 + by.0 * k / steps,
                from.1 + by.1 * k / steps
            );
        }
        s.push_str("mouseup 1\n");
        if !modifier.is_empty() {
            let _ = writeln!(s, "keyup {modifier}");
        }
        s
    };
    let script = match scenario {
        Scenario::PhotoScroll => {
            make_photos(d, 12, 1100, 700)?;
            std::fs::write(d.assets.join("photos.html"), photo_page(12))?;
            d.chromium("photos.html", (0, 0, WIDTH, HEIGHT))?;
            two_scrolls(500, wheel(5, 24, 60), 1200, wheel(5, 18, 70))
        }
        Scenario::Slideshow => {
            make_photos(d, 8, 1600, 1067)?;
            d.start(
                "xterm",
                &[
                    "-geometry",
                    "60x60+1420+20",
                    "-e",
                    "ls -l /usr/lib | head -200; sleep 600",
                ],
                "xterm",
            )?;
            let photos: Vec<String> = (0..8).map(|i| format!("photo-{i}.jpg")).collect();
            let mut args = vec!["-g", "1380x1040+10+10", "-Z", "--image-bg", "black"];
            args.extend(photos.iter().map(String::as_str));
            d.start("feh", &args, "feh")?;
            let mut s = format!(
                "search --onlyvisible --class feh windowactivate\n{}",
                pause(300)
            );
            for gap in [900, 700, 500, 500, 1200, 400] {
                let _ = write!(s, "key Right\n{}", pause(gap));
            }
            s.push_str(&pause(1500));
            s
        }
        Scenario::VideoDrag => {
            make_video(d, 1280, 720)?;
            d.start(
                "mpv",
                &[
                    "--geometry=1280x720+320+180",
                    "--loop",
                    "--no-osc",
                    "--no-audio",
                    "--vo=x11",
                    "--hwdec=no",
                    "video.webm",
                ],
                "mpv",
            )?;
            d.start(
                "xterm",
                &[
                    "-geometry",
                    "80x24+60+80",
                    "-e",
                    "ls -l --color=always /usr/bin | head -60; sleep 600",
                ],
                "xterm",
            )?;
            format!(
                "search --onlyvisible --class xterm windowactivate\n{}{}{}{}{}",
                pause(400),
                drag((200, 200), (900, 420), 40, 30, "alt"),
                pause(1000),
                drag((1100, 620), (-700, -300), 30, 30, "alt"),
                pause(1500)
            )
        }
        Scenario::VideoScroll => {
            make_video(d, 960, 540)?;
            std::fs::write(d.assets.join("video.html"), video_page())?;
            d.chromium("video.html", (0, 0, WIDTH, HEIGHT))?;
            two_scrolls(800, wheel(5, 3, 150), 1500, wheel(5, 3, 150))
        }
        Scenario::DarkEditor => {
            let source = include_str!("e2e.rs");
            std::fs::write(d.assets.join("notes.rs"), source)?;
            std::fs::write(
                d.assets.join(".vimrc"),
                "syntax on\nset background=dark\ncolorscheme desert\nset number\nset nowrap\n",
            )?;
            d.start(
                "xterm",
                &[
                    "-maximized",
                    "-bg",
                    "#1e1e28",
                    "-fg",
                    "#d8d8e0",
                    "-fa",
                    "DejaVu Sans Mono",
                    "-fs",
                    "11",
                    "-e",
                    "vim notes.rs",
                ],
                "xterm",
            )?;
            let mut s = format!("{}key 4 0 G\n{}key o\n", pause(300), pause(300));
            s.push_str("type --delay 60 \"// The frame is sent again once it settles.\"\n");
            let _ = write!(s, "key Escape\n{}", pause(400));
            for _ in 0..4 {
                let _ = write!(s, "key ctrl+d\n{}", pause(350));
            }
            s.push_str(&pause(1200));
            s
        }
        Scenario::SheetScroll => {
            std::fs::write(d.assets.join("sheet.csv"), sheet_csv(80, 120))?;
            d.start("gnumeric", &["--no-splash", "sheet.csv"], "gnumeric")?;
            d.xdotool(&[
                "search",
                "--onlyvisible",
                "--class",
                "gnumeric",
                "windowmove",
                "0",
                "0",
                "windowsize",
                "1920",
                "1050",
            ])?;
            let mut s = String::from("search --onlyvisible --class gnumeric windowactivate\n");
            let _ = writeln!(s, "{}mousemove 900 600", pause(600));
            s.push_str(&wheel(7, 20, 60));
            s.push_str(&pause(1000));
            s.push_str(&wheel(7, 16, 60));
            s.push_str(&pause(1500));
            s
        }
        Scenario::MapPan => {
            d.make(
                "convert -seed 3 -size 4000x3000 plasma:darkolivegreen-wheat -blur 0x4 \
                 -fill none -stroke '#f4f0e0' -strokewidth 9 \
                 -draw 'line 0,700 4000,1500' -draw 'line 900,0 1500,3000' \
                 -draw 'bezier 0,2200 1500,1800 2500,2600 4000,2000' \
                 -stroke '#e8c050' -strokewidth 5 -draw 'line 2600,0 3100,3000' \
                 -stroke none -fill '#4a78b8' -draw 'ellipse 2900,900 380,220 0,360' \
                 -fill black -font DejaVu-Sans -pointsize 34 \
                 -annotate +1000+640 'Northgate' -annotate +1600+1210 'Millbrook' \
                 -annotate +2950+1500 'Eastfield' -annotate +500+2050 'Stonebridge' \
                 -annotate +2700+660 'Lake Aver' -annotate +1700+2500 'Southmoor' \
                 -quality 92 map.jpg",
            )?;
            d.start(
                "feh",
                &["-g", "1900x1040+10+10", "--force-aliasing", "map.jpg"],
                "feh",
            )?;
            format!(
                "search --onlyvisible --class feh windowactivate\n{}{}{}{}{}",
                pause(300),
                drag((1400, 800), (-700, -420), 35, 35, ""),
                pause(1200),
                drag((500, 300), (600, 150), 25, 35, ""),
                pause(1500)
            )
        }
        Scenario::WindowSwitch => {
            make_photos(d, 2, 1000, 680)?;
            std::fs::write(d.assets.join("photos.html"), photo_page(2))?;
            std::fs::write(d.assets.join("sheet.csv"), sheet_csv(60, 30))?;
            d.start("gnumeric", &["--no-splash", "sheet.csv"], "gnumeric")?;
            d.chromium("photos.html", (300, 60, 1300, 900))?;
            d.start("feh", &["-g", "1000x680+820+300", "photo-0.jpg"], "feh")?;
            d.start(
                "xterm",
                &[
                    "-geometry",
                    "100x40+120+200",
                    "-e",
                    "ls -l /usr/share | head -100; sleep 600",
                ],
                "xterm",
            )?;
            let mut s = pause(400);
            for gap in [700, 700, 600, 900, 500, 700] {
                let _ = write!(s, "key alt+Tab\n{}", pause(gap));
            }
            s.push_str(&pause(1300));
            s
        }
    };
    Ok(script)
}

/// Grabs the whole root window through shared memory (MIT-SHM), as the agent does.
struct Grabber {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    shm: ShmImage,
}

impl Grabber {
    fn connect(display: &str) -> anyhow::Result<Self> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .with_context(|| format!("cannot connect to {display}"))?;
        let root = conn.setup().roots[screen_num].root;
        let shm = ShmImage::new(&conn, FRAME_BYTES)?;
        Ok(Self { conn, root, shm })
    }

    fn grab(&mut self) -> anyhow::Result<&[u8]> {
        let whole = (0, 0, WIDTH as u16, HEIGHT as u16);
        self.shm.grab(&self.conn, self.root, whole, 0)?;
        Ok(&self.shm.bytes()[..FRAME_BYTES])
    }

    /// Waits until the screen has not changed for [`SETTLED`], or [`SETTLE_LIMIT`] has passed.
    fn settle(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = self.grab()?.to_vec();
        let mut still_since = Instant::now();
        while start.elapsed() < SETTLE_LIMIT {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.grab()?;
            if now != last {
                still_since = Instant::now();
                last.copy_from_slice(now);
            } else if still_since.elapsed() >= SETTLED {
                break;
            }
        }
        Ok(())
    }
}

pub fn main(args: &Args) -> anyhow::Result<()> {
    let scenario = args.scenario;
    let mut missing: Vec<&str> = Vec::new();
    for (program, package) in [
        ("Xvfb", "xvfb"),
        ("openbox", "openbox"),
        ("xdotool", "xdotool"),
    ]
    .iter()
    .chain(scenario.programs())
    {
        if !harness::programs::on_path(program) && !missing.contains(package) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        bail!(
            "capturing {} needs programs that are not installed; install them with \
             `apt-get install -y --no-install-recommends {}`",
            scenario.name(),
            missing.join(" ")
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(format!("{}.scrn", scenario.name()));
    let assets = tempfile::tempdir()?;
    let xvfb = Xvfb::start(WIDTH, HEIGHT, &[], Stop::Kill)?;
    let mut desktop = Desktop {
        display: xvfb.display.clone(),
        assets: assets.path().to_path_buf(),
        programs: Vec::new(),
    };
    let wm = desktop.command("openbox");
    desktop.programs.push(Process::start(
        "openbox",
        wm,
        Options {
            stderr: Stderr::Discard,
            ..Options::default()
        },
    )?);
    eprintln!("bench capture: {}: starting its programs", scenario.name());
    let script = set_up(scenario, &mut desktop)?;
    let script_path = desktop.assets.join("script.xdo");
    std::fs::write(&script_path, &script)?;
    let mut grabber = Grabber::connect(&desktop.display)?;
    grabber.settle()?;
    eprintln!(
        "bench capture: {}: recording {} frames every {} ms",
        scenario.name(),
        args.frames,
        args.interval_ms
    );
    let header = Header {
        width: WIDTH,
        height: HEIGHT,
        frame_count: args.frames,
        interval_ms: args.interval_ms,
    };
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = Writer::new(BufWriter::new(file), header)?;
    let (tx, rx) = mpsc::sync_channel::<(u32, Vec<u8>)>(64);
    let writing = std::thread::spawn(move || -> std::io::Result<()> {
        for (t_ms, frame) in rx {
            writer.push(t_ms, &frame)?;
        }
        writer.finish().map(drop)
    });
    let mut driver = desktop.command("xdotool");
    driver.arg(&script_path);
    let mut driver = Process::start(
        "xdotool",
        driver,
        Options {
            stderr: Stderr::Collect,
            ..Options::default()
        },
    )?;
    let start = Instant::now();
    let interval = Duration::from_millis(u64::from(args.interval_ms));
    for k in 0..args.frames {
        let due = start + interval * k;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t_ms = start.elapsed().as_millis() as u32;
        let frame = grabber.grab()?.to_vec();
        if tx.send((t_ms, frame)).is_err() {
            break;
        }
    }
    drop(tx);
    writing
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?
        .with_context(|| format!("cannot write {}", path.display()))?;
    if driver.wait_exit_or(Duration::ZERO)?.is_none() {
        eprintln!(
            "bench capture: {}: the scenario's script was still running when the recording \
             ended; a longer recording (--frames) shows all of it",
            scenario.name()
        );
    }
    drop(driver);
    desktop.programs.reverse();
    drop(desktop);
    drop(xvfb);
    let size = std::fs::metadata(&path)?.len();
    eprintln!(
        "bench capture: wrote {} ({:.1} MB)",
        path.display(),
        size as f64 / 1e6
    );
    Ok(())
}
