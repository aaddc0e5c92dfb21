//! An X server for the tests: `Xvfb` on a free display (it picks one and reports it through
//! `-displayfd`), plus what the tests ask the X server directly: the root window's image, which
//! keys and buttons it believes are held, the pointer (where it is, its shape), and the
//! clipboard (through `xclip`, as a person's programs copy and paste).

use std::process::Command;
use std::time::Duration;

use harness::process::Stop;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
use x11rb::rust_connection::RustConnection;

use crate::{must, Proc, Relay, PROMPT};

/// Starts an agent sharing `x` (`--source x11`, `--json`, then `args`), its standard input open
/// for the test to type into where `stdin`, and waits for its code.
pub fn x11_agent(relay: &Relay, x: &Xvfb, args: &[&str], stdin: bool) -> (Proc, String) {
    let mut all: Vec<String> = relay.peer_args();
    all.extend(["--json".into(), "--source".into(), "x11".into()]);
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_env("agent", &refs, &[("DISPLAY", &x.display)], stdin);
    let code = agent.wait_event("code", PROMPT)["code"]
        .as_str()
        .unwrap()
        .to_string();
    (agent, code)
}

/// A private X server ([`harness::xvfb::Xvfb`]). Dropping it kills it.
pub struct Xvfb {
    _server: harness::xvfb::Xvfb,
    /// `:N`, for `DISPLAY`.
    pub display: String,
    pub width: u32,
    pub height: u32,
}

impl Xvfb {
    /// Starts Xvfb with one screen of `width` x `height` at 24 bits. Fails the test with
    /// instructions when Xvfb is not installed.
    pub fn start(width: u32, height: u32) -> Xvfb {
        Self::start_with(width, height, &[])
    }

    /// As [`Xvfb::start`], with `extra` arguments for the server (`+extension GLX`).
    pub fn start_with(width: u32, height: u32, extra: &[&str]) -> Xvfb {
        let server = must(harness::xvfb::Xvfb::start(width, height, extra, Stop::Kill));
        Xvfb {
            display: server.display.clone(),
            width,
            height,
            _server: server,
        }
    }

    pub fn connect(&self) -> RustConnection {
        x11rb::connect(Some(&self.display))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.display))
            .0
    }

    /// Runs `xdotool ARGS` on this display: whether it succeeded, and its output. Fails the
    /// test with the install line when xdotool is missing.
    pub fn xdotool(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run xdotool ({e}); install it with `apt-get install -y xdotool`")
            });
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The root window's pixels as the X server holds them, as RGB rows, at its current size.
    pub fn root_rgb(&self) -> Vec<u8> {
        let conn = self.connect();
        let root = conn.setup().roots[0].root;
        let geo = conn
            .get_geometry(root)
            .expect("request")
            .reply()
            .expect("root geometry");
        let img = conn
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, geo.width, geo.height, !0)
            .expect("request")
            .reply()
            .expect("GetImage of the root window");
        assert_eq!(img.depth, 24);
        img.data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect()
    }

    /// The buttons (bits 8..12 of the pointer state) and keys the server believes are down.
    pub fn held(&self) -> (u16, Vec<u8>) {
        let conn = self.connect();
        let root = conn.setup().roots[0].root;
        let p = conn
            .query_pointer(root)
            .expect("request")
            .reply()
            .expect("QueryPointer");
        let k = conn
            .query_keymap()
            .expect("request")
            .reply()
            .expect("QueryKeymap");
        let buttons = u16::from(p.mask) & 0x1f00;
        let keys = (0..256u16)
            .filter(|code| k.keys[(code / 8) as usize] & (1 << (code % 8)) != 0)
            .map(|c| c as u8)
            .collect();
        (buttons, keys)
    }

    /// Switches the screen to `width` x `height` the way a user's `xrandr` does: a new mode on
    /// Xvfb's output, then that mode. Fails the test when `xrandr` is missing.
    pub fn resize(&self, width: u32, height: u32) {
        let name = format!("{width}x{height}test");
        let (w, h) = (width.to_string(), height.to_string());
        self.xrandr(&[
            vec!["--newmode", &name, "40", &w, &w, &w, &w, &h, &h, &h, &h],
            vec!["--addmode", "screen", &name],
            vec!["--output", "screen", "--mode", &name],
        ]);
    }

    /// Makes the screen two monitors side by side, each half its width (`xrandr
    /// --setmonitor`), as a desk with two displays has.
    pub fn split_in_two_monitors(&self) {
        let (half, h) = (self.width / 2, self.height);
        let left = format!("{half}/260x{h}/200+0+0");
        let right = format!("{half}/260x{h}/200+{half}+0");
        self.xrandr(&[
            vec!["--setmonitor", "left", &left, "screen"],
            vec!["--setmonitor", "right", &right, "none"],
        ]);
    }

    /// Runs `xrandr` once per argument list. Fails the test when `xrandr` is missing.
    fn xrandr(&self, steps: &[Vec<&str>]) {
        for args in steps {
            let out = Command::new("xrandr")
                .args(args)
                .env("DISPLAY", &self.display)
                .output()
                .unwrap_or_else(|e| panic!("cannot run xrandr ({e}); install it with `apt-get install -y x11-xserver-utils`"));
            assert!(
                out.status.success(),
                "xrandr {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts `testwin` on this display.
    pub fn test_window(&self, x: i32, y: i32, w: u32, h: u32) -> Proc {
        let args = [x.to_string(), y.to_string(), w.to_string(), h.to_string()];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut win = Proc::spawn_env("testwin", &refs, &[("DISPLAY", &self.display)], false);
        win.wait_event("ready", PROMPT);
        win
    }
}

impl Xvfb {
    /// Starts `noisewin` on this display: a window of fresh noise `fps` times a second.
    pub fn noise_window(&self, x: i32, y: i32, w: u32, h: u32, fps: u32) -> Proc {
        let args = [
            x.to_string(),
            y.to_string(),
            w.to_string(),
            h.to_string(),
            fps.to_string(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut win = Proc::spawn_env("noisewin", &refs, &[("DISPLAY", &self.display)], false);
        win.wait_event("ready", PROMPT);
        win
    }
}

impl Xvfb {
    /// Copies `bytes` to `selection` (`clipboard` or `primary`) as `target` (`UTF8_STRING`,
    /// `image/png`) with `xclip`, which then serves it until another program takes the
    /// selection. Fails the test with the install line when xclip is missing.
    pub fn copy(&self, selection: &str, target: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut child = Command::new("xclip")
            .args(["-selection", selection, "-target", target, "-in"])
            .env("DISPLAY", &self.display)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run xclip ({e}); install it with `apt-get install -y xclip`")
            });
        child
            .stdin
            .take()
            .expect("xclip's input")
            .write_all(bytes)
            .expect("write to xclip");
        // xclip reads its input, takes the selection, and goes on serving it in the background.
        assert!(child.wait().expect("xclip").success(), "xclip -in failed");
    }

    /// What a program pasting `selection` as `target` gets now (`None`: nothing, or refused).
    pub fn paste(&self, selection: &str, target: &str) -> Option<Vec<u8>> {
        let out = Command::new("xclip")
            .args(["-selection", selection, "-target", target, "-out"])
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run xclip ({e}); install it with `apt-get install -y xclip`")
            });
        out.status.success().then_some(out.stdout)
    }

    /// Gives the root window the X cursor font's glyph `glyph` (152: the I-beam of `xterm`),
    /// the pointer's shape wherever no window sets its own. The connection returned owns the
    /// cursor, as a program owns the cursors it sets: once it is closed the window keeps the
    /// shape, but the server no longer lets other programs read its image.
    #[must_use = "the cursor's image can be read only while its owner is connected"]
    pub fn set_root_cursor(&self, glyph: u16) -> RustConnection {
        use x11rb::protocol::xproto::ChangeWindowAttributesAux;
        let conn = self.connect();
        let root = conn.setup().roots[0].root;
        let font = conn.generate_id().unwrap();
        conn.open_font(font, b"cursor").unwrap();
        let cursor = conn.generate_id().unwrap();
        conn.create_glyph_cursor(
            cursor,
            font,
            font,
            glyph,
            glyph + 1,
            0,
            0,
            0,
            0xffff,
            0xffff,
            0xffff,
        )
        .unwrap();
        conn.change_window_attributes(root, &ChangeWindowAttributesAux::new().cursor(cursor))
            .unwrap();
        conn.get_input_focus()
            .unwrap()
            .reply()
            .expect("X round trip");
        conn
    }

    /// The pointer's image as XFIXES gives it: its number and the SHA-256 (hex) of its pixels
    /// as premultiplied BGRA bytes.
    pub fn cursor_image(&self) -> (u32, String) {
        use sha2::{Digest, Sha256};
        use x11rb::protocol::xfixes::ConnectionExt as _;
        let conn = self.connect();
        conn.xfixes_query_version(5, 0)
            .unwrap()
            .reply()
            .expect("XFIXES");
        let img = conn
            .xfixes_get_cursor_image()
            .unwrap()
            .reply()
            .expect("GetCursorImage");
        let bytes: Vec<u8> = img
            .cursor_image
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        (img.cursor_serial, hex::encode(Sha256::digest(bytes)))
    }

    /// Moves the pointer to (`x`, `y`) of the screen, as the user's mouse would.
    pub fn move_pointer(&self, x: i16, y: i16) {
        let conn = self.connect();
        let root = conn.setup().roots[0].root;
        conn.warp_pointer(x11rb::NONE, root, 0, 0, 0, 0, x, y)
            .unwrap();
        conn.get_input_focus()
            .unwrap()
            .reply()
            .expect("X round trip");
    }
}

/// Reads a PNG written by the technician as RGB rows.
pub fn png_rgb(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("snapshot file"),
    ));
    let mut r = dec.read_info().expect("a PNG");
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
