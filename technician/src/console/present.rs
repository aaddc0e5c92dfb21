//! The viewer's own presenting path: the remote screen in a child X window of the console,
//! updated by putting only the rectangles that changed.
//!
//! egui repaints and swaps its whole window every frame, which on a machine without a GPU (a
//! virtual desktop, a laptop on software GL) costs about 10 ms for a 1920x1080 window however
//! little changed. So the remote screen does not go through egui: the console lays out a viewer
//! area, and this module keeps a child window of the console's window over it. The child holds
//! an image of exactly its own size (in a MIT-SHM segment when the X server shares memory with
//! us, otherwise in a buffer sent with PutImage): at 1:1 a window onto the remote framebuffer at
//! the scroll offset, in fit mode the framebuffer scaled (bilinear) to fit. For each applied
//! update only its changed rectangles are copied (or scaled) into that image and put, then one
//! round trip makes sure the X server has drawn them before the update is acknowledged. A whole
//! repaint happens only when the layout changes or the window is exposed.
//!
//! Pointer and keyboard events are not selected on the child, so the X server passes them to the
//! console's window, where egui sees them.
//!
//! The user's own pointer is drawn here too, over the remote screen and not in it: the image's
//! pixels under it are kept aside, the shape is blended in, and that small rectangle is put.
//! When it moves (a datagram from the agent, [`Presenter::cursor`]) the kept pixels go back and
//! it is drawn at its new place: two small puts, without waiting for a screen update. An update
//! lifts it first and draws it again after, so the image never keeps a pointer in it.

use std::sync::Arc;

use protocol::codec::Decoder;
use thiserror::Error;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{
    ConfigureWindowAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, ImageFormat,
    ImageOrder, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use super::pointer::{ChildMap, PointerRoute};
use crate::cursor::{CursorState, CursorUpdate};
use crate::viewer::Damage;

#[derive(Debug, Error)]
pub enum PresentError {
    #[error("cannot open the X display for the viewer: {0}")]
    Connect(String),
    #[error("the X server does not offer a 24-bit true-colour format of 32 bits a pixel")]
    Format,
    #[error("X request failed: {0}")]
    X(String),
}

fn x(e: impl std::fmt::Display) -> PresentError {
    PresentError::X(e.to_string())
}

/// How the remote screen is fitted into the viewer area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Scaled to fit the area, aspect kept, smooth (bilinear).
    Fit,
    /// One remote pixel a screen pixel, from this offset of the remote screen (scrolling).
    OneToOne { offset_x: u32, offset_y: u32 },
}

/// Where the child window is and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The child window's rectangle in the console window's pixels.
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub scale: Scale,
}

/// Geometry of the image against the framebuffer, computed when the placement or the
/// framebuffer size changes, so that presenting a rectangle allocates nothing.
#[derive(Default)]
struct Mapping {
    src_w: u32,
    src_h: u32,
    /// For fit mode, for each image column: the left source column and the weight of the
    /// right one (0..=256); likewise for rows.
    cols: Vec<(u32, u32)>,
    rows: Vec<(u32, u32)>,
}

/// The image the child window shows.
enum Image {
    Shm {
        seg: u32,
        ptr: *mut u8,
        len: usize,
    },
    Plain {
        buf: Vec<u8>,
        /// Rows of one rectangle, for PutImage.
        scratch: Vec<u8>,
    },
}

// The segment is ours alone; the pointer is only used under the presenter's lock.
unsafe impl Send for Image {}

impl Image {
    fn bytes(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: `ptr` is a live attachment of `len` bytes until `drop`.
            Image::Shm { ptr, len, .. } => unsafe { std::slice::from_raw_parts_mut(*ptr, *len) },
            Image::Plain { buf, .. } => buf,
        }
    }
}

/// The viewer's child window. Lock order, where both are locked: the session's viewer first,
/// then the presenter.
pub struct Presenter {
    conn: Arc<RustConnection>,
    window: u32,
    gc: u32,
    depth: u8,
    shm: bool,
    image: Option<Image>,
    /// Size of `image` (the child window's size).
    img_w: u32,
    img_h: u32,
    placement: Option<Placement>,
    mapping: Mapping,
    mapped: bool,
    /// Puts since the last round trip.
    pending: bool,
    route: Arc<PointerRoute>,
    /// The user's pointer as last told.
    cursor: CursorState,
    /// Where it is drawn in the image, and the image's pixels under it.
    drawn: Option<Overlay>,
    /// The buffer of the last overlay lifted, for the next (no allocation as it moves).
    spare: Vec<u8>,
}

/// The user's pointer drawn into the image: the rectangle it covers and what was there.
struct Overlay {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    under: Vec<u8>,
}

impl Presenter {
    /// Opens a connection to `display` (None: `$DISPLAY`) and creates an unmapped child window
    /// of `parent` (the console's window).
    pub fn new(display: Option<&str>, parent: u32) -> Result<Self, PresentError> {
        let (conn, screen_num) =
            RustConnection::connect(display).map_err(|e| PresentError::Connect(e.to_string()))?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_num];
        let depth = screen.root_depth;
        let bpp32 = setup
            .pixmap_formats
            .iter()
            .any(|f| f.depth == depth && f.bits_per_pixel == 32);
        if depth != 24 || !bpp32 || setup.image_byte_order != ImageOrder::LSB_FIRST {
            return Err(PresentError::Format);
        }
        let window = conn.generate_id().map_err(x)?;
        conn.create_window(
            depth,
            window,
            parent,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            screen.root_visual,
            &CreateWindowAux::new()
                .background_pixmap(x11rb::NONE)
                .border_pixel(0)
                .colormap(screen.default_colormap)
                .event_mask(
                    EventMask::EXPOSURE
                        | EventMask::POINTER_MOTION
                        | EventMask::BUTTON_PRESS
                        | EventMask::BUTTON_RELEASE,
                ),
        )
        .map_err(x)?;
        let gc = conn.generate_id().map_err(x)?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0))
            .map_err(x)?;
        let shm = conn
            .shm_query_version()
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some()
            && local_display(display);
        conn.flush().map_err(x)?;
        Ok(Self {
            conn: Arc::new(conn),
            window,
            gc,
            depth,
            shm,
            image: None,
            img_w: 0,
            img_h: 0,
            placement: None,
            mapping: Mapping::default(),
            mapped: false,
            pending: false,
            route: Arc::new(PointerRoute::default()),
            cursor: CursorState::default(),
            drawn: None,
            spare: Vec::new(),
        })
    }

    /// The child window's id.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The connection the child window's events arrive on (for [`super::pointer::spawn`]).
    pub fn connection(&self) -> Arc<RustConnection> {
        self.conn.clone()
    }

    /// Where the child window's pointer events go.
    pub fn route(&self) -> Arc<PointerRoute> {
        self.route.clone()
    }

    /// Whether the image travels through shared memory.
    pub fn uses_shm(&self) -> bool {
        self.shm
    }

    pub fn placement(&self) -> Option<Placement> {
        self.placement
    }

    /// Where the child window's top-left corner is on the root window (screen coordinates).
    pub fn root_position(&self) -> Result<(i32, i32), PresentError> {
        let root = self.conn.setup().roots[0].root;
        let r = self
            .conn
            .translate_coordinates(self.window, root, 0, 0)
            .map_err(x)?
            .reply()
            .map_err(x)?;
        Ok((i32::from(r.dst_x), i32::from(r.dst_y)))
    }

    /// Places the child window (or hides it with `None`) and draws the whole of it from `fb`.
    /// Does nothing when neither the placement nor the framebuffer's size changed.
    pub fn place(
        &mut self,
        placement: Option<Placement>,
        fb: &Decoder,
    ) -> Result<(), PresentError> {
        let size_same = self.mapping.src_w == fb.width() && self.mapping.src_h == fb.height();
        if placement == self.placement && size_same {
            return Ok(());
        }
        self.placement = placement;
        let Some(p) = placement.filter(|p| p.width > 0 && p.height > 0 && fb.width() > 0) else {
            if self.mapped {
                self.conn.unmap_window(self.window).map_err(x)?;
                self.conn.flush().map_err(x)?;
                self.mapped = false;
            }
            self.mapping.src_w = fb.width();
            self.mapping.src_h = fb.height();
            self.route.set_map(None);
            return Ok(());
        };
        // In fit mode the window is the scaled picture, centred in the area.
        let (wx, wy, ww, wh) = match p.scale {
            Scale::OneToOne { .. } => {
                (p.x, p.y, p.width.min(fb.width()), p.height.min(fb.height()))
            }
            Scale::Fit => {
                let s = f64::min(
                    f64::from(p.width) / f64::from(fb.width()),
                    f64::from(p.height) / f64::from(fb.height()),
                );
                let w = ((f64::from(fb.width()) * s).round() as u32).clamp(1, p.width);
                let h = ((f64::from(fb.height()) * s).round() as u32).clamp(1, p.height);
                (
                    p.x + ((p.width - w) / 2) as i32,
                    p.y + ((p.height - h) / 2) as i32,
                    w,
                    h,
                )
            }
        };
        self.conn
            .configure_window(
                self.window,
                &ConfigureWindowAux::new().x(wx).y(wy).width(ww).height(wh),
            )
            .map_err(x)?;
        if !self.mapped {
            self.conn.map_window(self.window).map_err(x)?;
            self.mapped = true;
        }
        self.resize_image(ww, wh)?;
        self.mapping.src_w = fb.width();
        self.mapping.src_h = fb.height();
        if p.scale == Scale::Fit {
            self.mapping.cols = axis(fb.width(), ww);
            self.mapping.rows = axis(fb.height(), wh);
        }
        self.route.set_map(Some(ChildMap {
            scale: p.scale,
            child: (ww, wh),
            remote: (fb.width(), fb.height()),
        }));
        self.redraw(fb)
    }

    /// Draws the whole window from `fb` (after an exposure, or a new placement).
    pub fn redraw(&mut self, fb: &Decoder) -> Result<(), PresentError> {
        if !self.mapped {
            return Ok(());
        }
        let all = Damage {
            x: 0,
            y: 0,
            width: fb.width(),
            height: fb.height(),
        };
        self.present(fb, &[all])
    }

    /// Shows what the rectangles of `damage` (framebuffer pixels) now hold, and waits until the
    /// X server has drawn it.
    pub fn present(&mut self, fb: &Decoder, damage: &[Damage]) -> Result<(), PresentError> {
        let Some(p) = self.placement else {
            return Ok(());
        };
        if !self.mapped || fb.width() != self.mapping.src_w || fb.height() != self.mapping.src_h {
            // The layout follows on the console's next frame.
            return Ok(());
        }
        let lifted = self.lift_cursor();
        for d in damage {
            let Some((dx, dy, dw, dh)) = self.image_rect(p.scale, d) else {
                continue;
            };
            self.fill(p.scale, fb, dx, dy, dw, dh);
            self.put(dx, dy, dw, dh)?;
        }
        let dropped = self.drop_cursor(p.scale);
        for (dx, dy, dw, dh) in lifted.into_iter().chain(dropped) {
            self.put(dx, dy, dw, dh)?;
        }
        self.sync()
    }

    /// Takes in the user's pointer (a shape, or where it is) and draws it where it changed.
    pub fn cursor(&mut self, update: CursorUpdate) -> Result<(), PresentError> {
        if !self.cursor.apply(update) {
            return Ok(());
        }
        let Some(p) = self.placement else {
            return Ok(());
        };
        if !self.mapped || self.image.is_none() {
            return Ok(());
        }
        let lifted = self.lift_cursor();
        let dropped = self.drop_cursor(p.scale);
        for (dx, dy, dw, dh) in lifted.into_iter().chain(dropped) {
            self.put(dx, dy, dw, dh)?;
        }
        self.conn.flush().map_err(x)
    }

    /// Puts back the pixels under the pointer; the rectangle to put, if it was drawn.
    fn lift_cursor(&mut self) -> Option<(u32, u32, u32, u32)> {
        let o = self.drawn.take()?;
        let img_w = self.img_w as usize;
        let img = self.image.as_mut()?.bytes();
        for row in 0..o.h as usize {
            let d = ((o.y as usize + row) * img_w + o.x as usize) * 4;
            let s = row * o.w as usize * 4;
            img[d..d + o.w as usize * 4].copy_from_slice(&o.under[s..s + o.w as usize * 4]);
        }
        self.spare = o.under;
        Some((o.x, o.y, o.w, o.h))
    }

    /// Draws the pointer where it is now (keeping what it covers); the rectangle to put.
    fn drop_cursor(&mut self, scale: Scale) -> Option<(u32, u32, u32, u32)> {
        let (shape, fx, fy) = self.cursor.drawn()?;
        // Where its hotspot falls in the image.
        let (ix, iy) = match scale {
            Scale::OneToOne { offset_x, offset_y } => (fx - offset_x as i32, fy - offset_y as i32),
            Scale::Fit => {
                let sx = f64::from(self.img_w) / f64::from(self.mapping.src_w.max(1));
                let sy = f64::from(self.img_h) / f64::from(self.mapping.src_h.max(1));
                ((f64::from(fx) * sx) as i32, (f64::from(fy) * sy) as i32)
            }
        };
        let (left, top, w, h) = shape.area_at(ix, iy);
        let x0 = left.max(0) as u32;
        let y0 = top.max(0) as u32;
        let x1 = (i64::from(left) + i64::from(w)).clamp(0, i64::from(self.img_w)) as u32;
        let y1 = (i64::from(top) + i64::from(h)).clamp(0, i64::from(self.img_h)) as u32;
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        let (img_w, img_h) = (self.img_w, self.img_h);
        let img = self.image.as_mut()?.bytes();
        let (w, h) = (x1 - x0, y1 - y0);
        let mut under = std::mem::take(&mut self.spare);
        under.clear();
        for row in y0..y1 {
            let s = ((row * img_w + x0) * 4) as usize;
            under.extend_from_slice(&img[s..s + w as usize * 4]);
        }
        shape.draw(img, img_w as usize * 4, img_w, img_h, ix, iy);
        self.drawn = Some(Overlay {
            x: x0,
            y: y0,
            w,
            h,
            under,
        });
        Some((x0, y0, w, h))
    }

    fn resize_image(&mut self, w: u32, h: u32) -> Result<(), PresentError> {
        if self.image.is_some() && (w, h) == (self.img_w, self.img_h) {
            return Ok(());
        }
        self.drop_image();
        let len = (w as usize) * (h as usize) * 4;
        let image = if self.shm {
            match self.attach_segment(len) {
                Ok(img) => img,
                Err(e) => {
                    tracing::info!(error = %e, "shared memory not usable; the viewer uses PutImage");
                    self.shm = false;
                    plain(len)
                }
            }
        } else {
            plain(len)
        };
        self.image = Some(image);
        self.img_w = w;
        self.img_h = h;
        Ok(())
    }

    fn attach_segment(&mut self, len: usize) -> Result<Image, PresentError> {
        // SAFETY: plain SysV shared memory calls; the segment is marked for removal as soon as
        // the X server has attached it, so it cannot outlive both of us.
        unsafe {
            let id = libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600);
            if id < 0 {
                return Err(x(std::io::Error::last_os_error()));
            }
            let ptr = libc::shmat(id, std::ptr::null(), 0);
            if ptr as isize == -1 {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                return Err(x(std::io::Error::last_os_error()));
            }
            let seg = self.conn.generate_id().map_err(x)?;
            let attached = self
                .conn
                .shm_attach(seg, id as u32, true)
                .map_err(x)
                .and_then(|c| c.check().map_err(x));
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            if let Err(e) = attached {
                libc::shmdt(ptr);
                return Err(e);
            }
            Ok(Image::Shm {
                seg,
                ptr: ptr.cast(),
                len,
            })
        }
    }

    fn drop_image(&mut self) {
        // What the pointer covered belongs to the image that goes.
        self.drawn = None;
        if let Some(Image::Shm { seg, ptr, .. }) = self.image.take() {
            let _ = self.conn.shm_detach(seg);
            self.pending = true;
            let _ = self.sync();
            // SAFETY: detached by the server above; ours to release.
            unsafe {
                libc::shmdt(ptr.cast());
            }
        }
    }

    /// The image rectangle that framebuffer rectangle `d` covers, clipped to the image.
    fn image_rect(&self, scale: Scale, d: &Damage) -> Option<(u32, u32, u32, u32)> {
        let (x0, y0, x1, y1) = match scale {
            Scale::OneToOne { offset_x, offset_y } => (
                i64::from(d.x) - i64::from(offset_x),
                i64::from(d.y) - i64::from(offset_y),
                i64::from(d.x + d.width) - i64::from(offset_x),
                i64::from(d.y + d.height) - i64::from(offset_y),
            ),
            Scale::Fit => {
                let sx = f64::from(self.img_w) / f64::from(self.mapping.src_w.max(1));
                let sy = f64::from(self.img_h) / f64::from(self.mapping.src_h.max(1));
                // One pixel more each side: bilinear samples reach into the neighbours.
                (
                    (f64::from(d.x) * sx).floor() as i64 - 1,
                    (f64::from(d.y) * sy).floor() as i64 - 1,
                    (f64::from(d.x + d.width) * sx).ceil() as i64 + 1,
                    (f64::from(d.y + d.height) * sy).ceil() as i64 + 1,
                )
            }
        };
        let (x0, y0) = (x0.max(0) as u32, y0.max(0) as u32);
        let x1 = x1.clamp(0, i64::from(self.img_w)) as u32;
        let y1 = y1.clamp(0, i64::from(self.img_h)) as u32;
        (x1 > x0 && y1 > y0).then(|| (x0, y0, x1 - x0, y1 - y0))
    }

    /// Fills an image rectangle from the framebuffer.
    fn fill(&mut self, scale: Scale, fb: &Decoder, dx: u32, dy: u32, dw: u32, dh: u32) {
        let img_w = self.img_w as usize;
        let src_w = fb.width() as usize;
        let src = fb.pixels();
        let Some(image) = self.image.as_mut() else {
            return;
        };
        let img = image.bytes();
        match scale {
            Scale::OneToOne { offset_x, offset_y } => {
                for row in dy..dy + dh {
                    let sy = (row + offset_y) as usize;
                    let sx = (dx + offset_x) as usize;
                    let s = (sy * src_w + sx) * 4;
                    let d = (row as usize * img_w + dx as usize) * 4;
                    let n = dw as usize * 4;
                    img[d..d + n].copy_from_slice(&src[s..s + n]);
                }
            }
            Scale::Fit => {
                let (cols, rows) = (&self.mapping.cols, &self.mapping.rows);
                let last_col = src_w.saturating_sub(1);
                let last_row = (fb.height() as usize).saturating_sub(1);
                for row in dy..dy + dh {
                    let (sy, wy) = rows[row as usize];
                    let r0 = sy as usize;
                    let r1 = (r0 + 1).min(last_row);
                    let d_row = row as usize * img_w;
                    for col in dx..dx + dw {
                        let (sx, wx) = cols[col as usize];
                        let c0 = sx as usize;
                        let c1 = (c0 + 1).min(last_col);
                        let p00 = (r0 * src_w + c0) * 4;
                        let p01 = (r0 * src_w + c1) * 4;
                        let p10 = (r1 * src_w + c0) * 4;
                        let p11 = (r1 * src_w + c1) * 4;
                        let d = (d_row + col as usize) * 4;
                        for ch in 0..3 {
                            let top = u32::from(src[p00 + ch]) * (256 - wx)
                                + u32::from(src[p01 + ch]) * wx;
                            let bottom = u32::from(src[p10 + ch]) * (256 - wx)
                                + u32::from(src[p11 + ch]) * wx;
                            img[d + ch] =
                                ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
                        }
                        img[d + 3] = 0;
                    }
                }
            }
        }
    }

    fn put(&mut self, dx: u32, dy: u32, dw: u32, dh: u32) -> Result<(), PresentError> {
        let (img_w, img_h) = (self.img_w, self.img_h);
        let Some(image) = self.image.as_mut() else {
            return Ok(());
        };
        match image {
            Image::Shm { seg, .. } => {
                self.conn
                    .shm_put_image(
                        self.window,
                        self.gc,
                        img_w as u16,
                        img_h as u16,
                        dx as u16,
                        dy as u16,
                        dw as u16,
                        dh as u16,
                        dx as i16,
                        dy as i16,
                        self.depth,
                        ImageFormat::Z_PIXMAP.into(),
                        false,
                        *seg,
                        0,
                    )
                    .map_err(x)?;
            }
            Image::Plain { buf, scratch } => {
                // Bands of rows that fit a request comfortably.
                let max_rows = ((self.conn.maximum_request_bytes().saturating_sub(64))
                    / (dw as usize * 4))
                    .clamp(1, dh as usize) as u32;
                let mut row = dy;
                while row < dy + dh {
                    let rows = max_rows.min(dy + dh - row);
                    scratch.clear();
                    for r in row..row + rows {
                        let s = ((r * img_w + dx) * 4) as usize;
                        scratch.extend_from_slice(&buf[s..s + dw as usize * 4]);
                    }
                    self.conn
                        .put_image(
                            ImageFormat::Z_PIXMAP,
                            self.window,
                            self.gc,
                            dw as u16,
                            rows as u16,
                            dx as i16,
                            row as i16,
                            0,
                            self.depth,
                            scratch,
                        )
                        .map_err(x)?;
                    row += rows;
                }
            }
        }
        self.pending = true;
        Ok(())
    }

    /// One round trip: everything put so far is drawn when it returns.
    fn sync(&mut self) -> Result<(), PresentError> {
        if self.pending {
            self.conn.get_input_focus().map_err(x)?.reply().map_err(x)?;
            self.pending = false;
        }
        Ok(())
    }
}

impl Drop for Presenter {
    fn drop(&mut self) {
        self.drop_image();
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.free_gc(self.gc);
        let _ = self.conn.flush();
    }
}

fn plain(len: usize) -> Image {
    Image::Plain {
        buf: vec![0; len],
        scratch: Vec::new(),
    }
}

/// For each of `dst` output positions, the source position left of its centre and the weight
/// (of 256) of the one after it.
fn axis(src: u32, dst: u32) -> Vec<(u32, u32)> {
    let scale = f64::from(src) / f64::from(dst.max(1));
    (0..dst)
        .map(|i| {
            let pos = ((f64::from(i) + 0.5) * scale - 0.5).max(0.0);
            let left = (pos.floor() as u32).min(src.saturating_sub(1));
            let weight = ((pos - f64::from(left)) * 256.0).round().clamp(0.0, 256.0) as u32;
            (left, weight)
        })
        .collect()
}

/// Shared memory works only with an X server on this machine.
fn local_display(display: Option<&str>) -> bool {
    let name = display
        .map(str::to_string)
        .or_else(|| std::env::var("DISPLAY").ok())
        .unwrap_or_default();
    // ":0", "unix:0" and "/tmp/.X11-unix/X0" are local; "host:0" is not.
    name.starts_with(':') || name.starts_with("unix:") || name.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maps_the_ends_to_the_ends_and_halves_exactly() {
        let a = axis(4, 2);
        assert_eq!(a, vec![(0, 128), (2, 128)]);
        let same = axis(5, 5);
        assert!(same
            .iter()
            .enumerate()
            .all(|(i, &(l, w))| l == i as u32 && w == 0));
        assert_eq!(axis(1920, 960).last().unwrap().0, 1918);
    }

    #[test]
    fn only_local_displays_share_memory() {
        assert!(local_display(Some(":7")));
        assert!(local_display(Some("unix:0")));
        assert!(!local_display(Some("10.0.0.5:0")));
    }
}
