//! Grabbing parts of the X screen through memory shared with the X server (MIT-SHM).
//!
//! A [`ShmImage`] is a memfd mapped here and attached to the server (`ShmAttachFd`), large
//! enough for one whole screen of 32-bit pixels. `ShmGetImage` has the server write a rectangle
//! of a window into it, packed (its rows `width * 4` bytes apart), without the pixels crossing
//! the socket; [`ShmImage::grab`] waits for the reply and returns those bytes. The caller copies
//! them where they belong (see [`crate::capture`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use x11rb::connection::Connection;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ImageFormat};

use crate::source::SourceError;

fn x11_err(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::X11(format!("{what}: {e}"))
}

/// Memory shared with the X server that grabs land in.
pub struct ShmImage {
    seg: shm::Seg,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; it is plain memory.
unsafe impl Send for ShmImage {}

impl ShmImage {
    /// Shared memory of `len` bytes, attached to the server of `conn`. Fails when the server
    /// has no MIT-SHM or cannot take the memory (a remote server).
    pub fn new(conn: &impl Connection, len: usize) -> Result<Self, SourceError> {
        conn.shm_query_version()
            .map_err(|e| x11_err("X connection", e))?
            .reply()
            .map_err(|e| x11_err("the X server has no MIT-SHM extension", e))?;
        let len = len.max(4);
        // SAFETY: memfd_create takes a NUL-terminated name and flags; the descriptor it returns
        // is owned from here on.
        let fd = unsafe { libc::memfd_create(c"tandem-capture".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(x11_err(
                "cannot make shared memory",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain calls on a descriptor we own; mmap's result is checked.
        let ptr = unsafe {
            if libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) != 0 {
                return Err(x11_err(
                    "cannot size shared memory",
                    std::io::Error::last_os_error(),
                ));
            }
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(x11_err(
                "cannot map shared memory",
                std::io::Error::last_os_error(),
            ));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap succeeded");
        let mut image = Self { seg: 0, ptr, len };
        let seg = conn.generate_id().map_err(|e| x11_err("X connection", e))?;
        conn.shm_attach_fd(seg, fd, false)
            .map_err(|e| x11_err("X connection", e))?
            .check()
            .map_err(|e| x11_err("the X server cannot share memory with the agent", e))?;
        image.seg = seg;
        Ok(image)
    }

    /// Bytes the image holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Has the server write the rectangle (`x`, `y`, `w`, `h`) of `drawable` (a depth-24 or
    /// -32 window such as the root) into the shared memory at `offset`, packed (`w * 4` bytes
    /// a row).
    pub fn grab(
        &mut self,
        conn: &impl Connection,
        drawable: xproto::Drawable,
        (x, y, w, h): (i16, i16, u16, u16),
        offset: usize,
    ) -> Result<(), SourceError> {
        let bytes = usize::from(w) * usize::from(h) * 4;
        if offset + bytes > self.len {
            return Err(SourceError::X11(format!(
                "a {w}x{h} grab does not fit the shared memory"
            )));
        }
        let reply = conn
            .shm_get_image(
                drawable,
                x,
                y,
                w,
                h,
                !0,
                u8::from(ImageFormat::Z_PIXMAP),
                self.seg,
                offset as u32,
            )
            .map_err(|e| x11_err("X connection lost", e))?
            .reply()
            .map_err(|e| x11_err("capture failed", e))?;
        if reply.size as usize != bytes {
            return Err(SourceError::X11(format!(
                "the X server wrote {} bytes for a {w}x{h} grab at depth {}; only 32-bit \
                 pixels are supported",
                reply.size, reply.depth
            )));
        }
        Ok(())
    }

    /// The shared memory, as the last grabs left it.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as `self`; the server writes it
        // only during a grab, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The shared memory, to write into (the server writes it only during a grab).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Detaches the memory from the server (the mapping goes when the value drops).
    pub fn detach(&self, conn: &impl Connection) {
        let _ = conn.shm_detach(self.seg);
    }
}

impl Drop for ShmImage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
