//! `testwin`: a small X11 window for the end-to-end tests.
//!
//! `testwin X Y WIDTH HEIGHT` opens a window at X,Y, paints a known pattern, and logs what it
//! receives as JSON lines on stdout: `{"event":"ready"}` once painted, `{"event":"button",
//! "button":1,"x":10,"y":20,"state":0,"press":true}`, `{"event":"key","keysym":116,"text":"t",
//! "state":12,"press":true}`. A left click switches the pattern (so a test can cause a change it
//! knows) and logs `{"event":"repainted","pattern":N}`.

use std::io::Write;

use serde_json::json;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConfigureWindowAux, ConnectionExt, CreateGCAux, CreateWindowAux, EventMask,
    Keycode, Keysym, Rectangle, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::COPY_DEPTH_FROM_PARENT;

struct Keymap {
    min: Keycode,
    per: u8,
    syms: Vec<Keysym>,
}

fn keymap(conn: &impl Connection) -> Keymap {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let r = conn
        .get_keyboard_mapping(min, max - min + 1)
        .expect("request")
        .reply()
        .expect("keyboard mapping");
    Keymap {
        min,
        per: r.keysyms_per_keycode,
        syms: r.keysyms,
    }
}

impl Keymap {
    /// The keysym of `code` with the core protocol's rule: shift picks the second column.
    fn lookup(&self, code: Keycode, state: u16) -> Keysym {
        let base = (code - self.min) as usize * self.per as usize;
        let col = usize::from(state & 1 != 0);
        let s = self.syms.get(base + col).copied().unwrap_or(0);
        if s == 0 {
            self.syms.get(base).copied().unwrap_or(0)
        } else {
            s
        }
    }
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Pattern `n`: vertical bars of eight colours, shifted by `n`, with a one-pixel grid.
fn paint(conn: &impl Connection, win: u32, gc: u32, w: u16, h: u16, n: u32) {
    const COLOURS: [u32; 8] = [
        0x00c0_3030,
        0x0030_c030,
        0x0030_30c0,
        0x00c0_c030,
        0x00c0_30c0,
        0x0030_c0c0,
        0x00f0_f0f0,
        0x0010_1010,
    ];
    let bar = (w / 8).max(1);
    for i in 0..8u16 {
        let colour = COLOURS[((u32::from(i) + n) % 8) as usize];
        conn.change_gc(gc, &ChangeGCAux::new().foreground(colour))
            .unwrap();
        let rect = Rectangle {
            x: (i * bar) as i16,
            y: 0,
            width: bar,
            height: h,
        };
        conn.poly_fill_rectangle(win, gc, &[rect]).unwrap();
    }
    conn.change_gc(gc, &ChangeGCAux::new().foreground(0x0000_0000))
        .unwrap();
    let lines: Vec<Rectangle> = (0..h)
        .step_by(16)
        .map(|y| Rectangle {
            x: 0,
            y: y as i16,
            width: w,
            height: 1,
        })
        .collect();
    conn.poly_fill_rectangle(win, gc, &lines).unwrap();
    conn.flush().unwrap();
}

fn main() {
    let args: Vec<i32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("testwin X Y WIDTH HEIGHT"))
        .collect();
    let [x, y, w, h] = args[..] else {
        panic!("usage: testwin X Y WIDTH HEIGHT")
    };
    let (conn, screen_num) = x11rb::connect(None).expect("X display");
    let screen = &conn.setup().roots[screen_num];
    let win = conn.generate_id().unwrap();
    conn.create_window(
        COPY_DEPTH_FROM_PARENT,
        win,
        screen.root,
        x as i16,
        y as i16,
        w as u16,
        h as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(screen.black_pixel)
            .override_redirect(1)
            .event_mask(
                EventMask::EXPOSURE
                    | EventMask::KEY_PRESS
                    | EventMask::KEY_RELEASE
                    | EventMask::BUTTON_PRESS
                    | EventMask::BUTTON_RELEASE,
            ),
    )
    .unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new()).unwrap();
    conn.map_window(win).unwrap();
    conn.configure_window(win, &ConfigureWindowAux::new().x(x).y(y))
        .unwrap();
    conn.flush().unwrap();
    let mut map = keymap(&conn);
    let mut pattern = 0u32;
    let mut ready = false;
    loop {
        let ev = match conn.wait_for_event() {
            Ok(ev) => ev,
            Err(_) => return,
        };
        match ev {
            Event::Expose(e) if e.count == 0 => {
                {
                    paint(&conn, win, gc, w as u16, h as u16, pattern);
                    // Keyboard focus follows the pointer on a bare X server; take it
                    // explicitly so key events come here wherever the pointer is.
                    conn.set_input_focus(
                        x11rb::protocol::xproto::InputFocus::POINTER_ROOT,
                        win,
                        0u32,
                    )
                    .unwrap();
                    conn.get_input_focus().unwrap().reply().unwrap();
                    if !ready {
                        ready = true;
                        emit(json!({ "event": "ready", "window": win }));
                    }
                }
            }
            Event::ButtonPress(b) | Event::ButtonRelease(b) => {
                let press = b.response_type & 0x7f == x11rb::protocol::xproto::BUTTON_PRESS_EVENT;
                emit(json!({
                    "event": "button", "button": b.detail, "x": b.event_x, "y": b.event_y,
                    "state": u16::from(b.state), "press": press,
                }));
                if press && b.detail == 1 {
                    pattern += 1;
                    paint(&conn, win, gc, w as u16, h as u16, pattern);
                    conn.get_input_focus().unwrap().reply().unwrap();
                    emit(json!({ "event": "repainted", "pattern": pattern }));
                }
            }
            Event::KeyPress(k) | Event::KeyRelease(k) => {
                let press = k.response_type & 0x7f == x11rb::protocol::xproto::KEY_PRESS_EVENT;
                let state = u16::from(k.state);
                let sym = map.lookup(k.detail, state);
                let text = xkeysym::Keysym::new(sym)
                    .key_char()
                    .filter(|c| !c.is_control())
                    .map(String::from);
                emit(json!({
                    "event": "key", "keycode": k.detail, "keysym": sym, "text": text,
                    "state": state, "press": press,
                }));
            }
            Event::MappingNotify(_) => map = keymap(&conn),
            _ => {}
        }
    }
}
