//! `noisewin`: an X11 window whose every pixel changes many times a second, for the tests that
//! need a screen with a steady stream of updates that do not compress (several viewers, each at
//! its own pace).
//!
//! `noisewin X Y WIDTH HEIGHT FPS` opens a window at X,Y and paints fresh noise into it FPS
//! times a second, until it is killed. It prints `{"event":"ready"}` once the first frame is on
//! the screen.

use std::io::Write;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConfigureWindowAux, ConnectionExt, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass,
};
use x11rb::COPY_DEPTH_FROM_PARENT;

/// xorshift64: noise that no codec can shrink, made cheaply.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let bytes = self.0.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("noisewin X Y WIDTH HEIGHT FPS"))
        .collect();
    let [x, y, w, h, fps] = args[..] else {
        panic!("usage: noisewin X Y WIDTH HEIGHT FPS")
    };
    let (conn, screen_num) = x11rb::connect(None).expect("X display");
    let screen = &conn.setup().roots[screen_num];
    let (root, depth) = (screen.root, screen.root_depth);
    let win = conn.generate_id().unwrap();
    conn.create_window(
        COPY_DEPTH_FROM_PARENT,
        win,
        root,
        x as i16,
        y as i16,
        w as u16,
        h as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(screen.black_pixel)
            .override_redirect(1),
    )
    .unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new()).unwrap();
    conn.map_window(win).unwrap();
    conn.configure_window(win, &ConfigureWindowAux::new().x(x as i32).y(y as i32))
        .unwrap();
    conn.flush().unwrap();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut pixels = vec![0u8; (w * h * 4) as usize];
    // Rows per request, so that each stays well under the core protocol's request size.
    let rows = (60_000 / (w * 4)).clamp(1, h);
    let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut next = Instant::now();
    let mut ready = false;
    loop {
        noise.fill(&mut pixels);
        for top in (0..h).step_by(rows as usize) {
            let n = rows.min(h - top);
            let from = (top * w * 4) as usize;
            let to = from + (n * w * 4) as usize;
            if conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    win,
                    gc,
                    w as u16,
                    n as u16,
                    0,
                    top as i16,
                    0,
                    depth,
                    &pixels[from..to],
                )
                .is_err()
            {
                return;
            }
        }
        // Waits until the server has drawn it (and says so once).
        let drawn = conn.get_input_focus().map(|c| c.reply().is_ok());
        if !matches!(drawn, Ok(true)) {
            return;
        }
        if !ready {
            ready = true;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{{\"event\":\"ready\",\"window\":{win}}}");
            let _ = out.flush();
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
