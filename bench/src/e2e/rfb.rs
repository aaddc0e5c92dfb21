//! A minimal RFB 3.8 (VNC) client, enough to watch a VNC server the way the technician watches
//! the agent: security type None, 32-bit little-endian BGRX true colour, Raw and CopyRect
//! encodings, one incremental update request outstanding at a time (the next one goes out as
//! soon as an update has been read), and pointer events for input.
//!
//! A reader thread applies every update to a framebuffer and shows it to a [`ScreenProbe`].
//! Sizes from the server are checked before anything is allocated or written.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context};

use super::probe::ScreenProbe;

const RAW: i32 = 0;
const COPY_RECT: i32 = 1;
/// Largest screen edge accepted from the server.
const MAX_EDGE: u16 = 8192;

/// A connected client; dropping it closes the connection and its reader thread ends.
pub struct RfbClient {
    writer: Arc<Mutex<TcpStream>>,
    pub width: u16,
    pub height: u16,
    pub server_name: String,
    reader: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// Pixel format: 32 bpp, depth 24, little-endian, true colour, 8 bits a channel with red at
/// bit 16, green at 8, blue at 0 (so bytes are B, G, R, X as in the agent's framebuffer).
const PIXEL_FORMAT: [u8; 16] = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];

fn read_u16(r: &mut impl Read) -> std::io::Result<u16> {
    let mut b = [0; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn update_request(incremental: bool, width: u16, height: u16) -> [u8; 10] {
    let mut m = [0u8; 10];
    m[0] = 3;
    m[1] = u8::from(incremental);
    m[6..8].copy_from_slice(&width.to_be_bytes());
    m[8..10].copy_from_slice(&height.to_be_bytes());
    m
}

impl RfbClient {
    /// Connects to `127.0.0.1:port`, shakes hands, asks for the whole screen and starts
    /// applying updates.
    pub fn connect(port: u16, probe: Arc<ScreenProbe>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("cannot connect to the VNC server on port {port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = stream.try_clone()?;
        let mut r = BufReader::with_capacity(1 << 20, stream.try_clone()?);

        let mut version = [0u8; 12];
        r.read_exact(&mut version)
            .context("the VNC server sent no version")?;
        ensure!(
            version.starts_with(b"RFB 003.") && version[8..11] >= b"008"[..],
            "the VNC server speaks {:?}; this client needs RFB 3.8",
            String::from_utf8_lossy(&version).trim()
        );
        w.write_all(b"RFB 003.008\n")?;
        let mut n = [0u8; 1];
        r.read_exact(&mut n)?;
        if n[0] == 0 {
            let len = read_u32(&mut r)?.min(4096) as usize;
            let mut reason = vec![0; len];
            r.read_exact(&mut reason)?;
            bail!(
                "the VNC server refused: {}",
                String::from_utf8_lossy(&reason)
            );
        }
        let mut types = vec![0u8; n[0] as usize];
        r.read_exact(&mut types)?;
        ensure!(
            types.contains(&1),
            "the VNC server does not offer security type None (it offers {types:?}); start it without a password"
        );
        w.write_all(&[1])?;
        let result = read_u32(&mut r)?;
        ensure!(result == 0, "the VNC server failed the security handshake");
        w.write_all(&[1])?; // ClientInit: shared
        let width = read_u16(&mut r)?;
        let height = read_u16(&mut r)?;
        ensure!(
            (1..=MAX_EDGE).contains(&width) && (1..=MAX_EDGE).contains(&height),
            "the VNC server announced a {width}x{height} screen"
        );
        let mut format = [0u8; 16];
        r.read_exact(&mut format)?;
        let name_len = read_u32(&mut r)?.min(4096) as usize;
        let mut name = vec![0; name_len];
        r.read_exact(&mut name)?;

        let mut set_format = vec![0u8, 0, 0, 0];
        set_format.extend_from_slice(&PIXEL_FORMAT);
        w.write_all(&set_format)?;
        let mut encodings = vec![2u8, 0, 0, 2];
        encodings.extend_from_slice(&COPY_RECT.to_be_bytes());
        encodings.extend_from_slice(&RAW.to_be_bytes());
        w.write_all(&encodings)?;
        w.write_all(&update_request(false, width, height))?;

        let writer = Arc::new(Mutex::new(w));
        let thread_writer = writer.clone();
        stream.set_read_timeout(None)?;
        let reader = std::thread::Builder::new()
            .name("rfb-reader".into())
            .spawn(move || read_updates(r, thread_writer, width, height, probe))
            .context("cannot start the RFB reader thread")?;
        Ok(Self {
            writer,
            width,
            height,
            server_name: String::from_utf8_lossy(&name).into_owned(),
            reader: Some(reader),
        })
    }

    /// Sends a pointer event: position and no button held.
    pub fn pointer(&self, x: u16, y: u16) -> anyhow::Result<()> {
        let mut m = [5u8, 0, 0, 0, 0, 0];
        m[2..4].copy_from_slice(&x.to_be_bytes());
        m[4..6].copy_from_slice(&y.to_be_bytes());
        self.writer
            .lock()
            .expect("writer lock")
            .write_all(&m)
            .context("cannot send a pointer event to the VNC server")
    }

    /// Fails with the reader's error if it has stopped.
    pub fn check(&mut self) -> anyhow::Result<()> {
        if self.reader.as_ref().is_some_and(|r| r.is_finished()) {
            let r = self.reader.take().expect("checked");
            return match r.join() {
                Ok(Ok(())) => bail!("the VNC server closed the connection"),
                Ok(Err(e)) => Err(e.context("reading from the VNC server failed")),
                Err(_) => bail!("the RFB reader thread panicked"),
            };
        }
        Ok(())
    }
}

impl Drop for RfbClient {
    fn drop(&mut self) {
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(Shutdown::Both);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Reads server messages until the connection ends, applying updates and requesting the next.
fn read_updates(
    mut r: BufReader<TcpStream>,
    writer: Arc<Mutex<TcpStream>>,
    width: u16,
    height: u16,
    probe: Arc<ScreenProbe>,
) -> anyhow::Result<()> {
    let (w, h) = (usize::from(width), usize::from(height));
    let stride = w * 4;
    let mut fb = vec![0u8; stride * h];
    let mut scratch = Vec::new();
    let next = update_request(true, width, height);
    loop {
        let mut kind = [0u8; 1];
        if r.read_exact(&mut kind).is_err() {
            return Ok(());
        }
        match kind[0] {
            0 => {
                let mut head = [0u8; 3];
                r.read_exact(&mut head)?;
                let rects = u16::from_be_bytes([head[1], head[2]]);
                for _ in 0..rects {
                    let x = usize::from(read_u16(&mut r)?);
                    let y = usize::from(read_u16(&mut r)?);
                    let rw = usize::from(read_u16(&mut r)?);
                    let rh = usize::from(read_u16(&mut r)?);
                    let enc = read_u32(&mut r)? as i32;
                    ensure!(
                        x + rw <= w && y + rh <= h,
                        "a rectangle {rw}x{rh} at {x},{y} lies outside the {w}x{h} screen"
                    );
                    match enc {
                        RAW => {
                            for row in 0..rh {
                                let at = (y + row) * stride + x * 4;
                                r.read_exact(&mut fb[at..at + rw * 4])?;
                            }
                        }
                        COPY_RECT => {
                            let sx = usize::from(read_u16(&mut r)?);
                            let sy = usize::from(read_u16(&mut r)?);
                            ensure!(
                                sx + rw <= w && sy + rh <= h,
                                "a CopyRect source lies outside the screen"
                            );
                            scratch.clear();
                            for row in 0..rh {
                                let at = (sy + row) * stride + sx * 4;
                                scratch.extend_from_slice(&fb[at..at + rw * 4]);
                            }
                            for (row, src) in scratch.chunks_exact(rw * 4).enumerate() {
                                let at = (y + row) * stride + x * 4;
                                fb[at..at + rw * 4].copy_from_slice(src);
                            }
                        }
                        other => {
                            bail!("the VNC server sent encoding {other}, which was not asked for")
                        }
                    }
                }
                // Ask for the next update first, then look at this one.
                writer.lock().expect("writer lock").write_all(&next)?;
                probe.observe(&fb, u32::from(width));
            }
            1 => {
                let mut head = [0u8; 5];
                r.read_exact(&mut head)?;
                let n = usize::from(u16::from_be_bytes([head[3], head[4]]));
                std::io::copy(&mut (&mut r).take(6 * n as u64), &mut std::io::sink())?;
            }
            2 => {}
            3 => {
                let mut pad = [0u8; 3];
                r.read_exact(&mut pad)?;
                let len = read_u32(&mut r)?;
                std::io::copy(&mut (&mut r).take(u64::from(len)), &mut std::io::sink())?;
            }
            other => bail!("the VNC server sent message type {other}, which RFB 3.8 does not have"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;
    use crate::e2e::probe::Rect;

    /// A scripted server: handshake for a 4x2 screen, then `updates`; returns what the client
    /// sent after the handshake.
    fn fake_server(updates: Vec<u8>) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            s.write_all(b"RFB 003.008\n").unwrap();
            s.read_exact(&mut buf[..12]).unwrap();
            assert_eq!(&buf[..12], b"RFB 003.008\n");
            s.write_all(&[1, 1]).unwrap();
            s.read_exact(&mut buf[..1]).unwrap();
            assert_eq!(buf[0], 1, "security None");
            s.write_all(&0u32.to_be_bytes()).unwrap();
            s.read_exact(&mut buf[..1]).unwrap();
            let mut init = vec![0, 4, 0, 2];
            init.extend_from_slice(&PIXEL_FORMAT);
            init.extend_from_slice(&4u32.to_be_bytes());
            init.extend_from_slice(b"fake");
            s.write_all(&init).unwrap();
            // SetPixelFormat (20), SetEncodings (4 + 2 * 4), full update request (10).
            s.read_exact(&mut buf[..42]).unwrap();
            assert_eq!((buf[0], buf[20], buf[32], buf[33]), (0, 2, 3, 0));
            s.write_all(&updates).unwrap();
            let mut rest = Vec::new();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.read_to_end(&mut rest);
            rest
        });
        (port, server)
    }

    fn rect_header(x: u16, y: u16, w: u16, h: u16, enc: i32) -> Vec<u8> {
        [x, y, w, h]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .chain(enc.to_be_bytes())
            .collect()
    }

    #[test]
    fn raw_and_copy_rect_reach_the_probe_and_input_goes_out() {
        let mut update = vec![0u8, 0, 0, 2];
        update.extend(rect_header(0, 0, 2, 1, RAW));
        update.extend([0x33, 0x22, 0x11, 0, 0x33, 0x22, 0x11, 0]);
        update.extend(rect_header(0, 1, 2, 1, COPY_RECT));
        update.extend([0, 0, 0, 0]);
        let (port, server) = fake_server(update);
        let probe = Arc::new(ScreenProbe::new(Rect {
            x: 0,
            y: 0,
            width: 2,
            height: 2,
        }));
        let client = RfbClient::connect(port, probe.clone()).unwrap();
        assert_eq!(
            (client.width, client.height, client.server_name.as_str()),
            (4, 2, "fake")
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(probe.wait_for(0x112233, deadline).is_some());
        client.pointer(3, 1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(client);
        let sent = server.join().unwrap();
        // The next incremental request, then the pointer event.
        assert_eq!(&sent[..10], &update_request(true, 4, 2));
        assert_eq!(&sent[10..16], &[5, 0, 0, 3, 0, 1]);
    }

    #[test]
    fn a_rectangle_outside_the_screen_stops_the_reader() {
        let mut update = vec![0u8, 0, 0, 1];
        update.extend(rect_header(3, 0, 2, 1, RAW));
        update.extend([0; 8]);
        let (port, _server) = fake_server(update);
        let probe = Arc::new(ScreenProbe::new(Rect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        }));
        let mut client = RfbClient::connect(port, probe).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            if let Err(e) = client.check() {
                break e;
            }
            assert!(Instant::now() < deadline, "the reader did not stop");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(format!("{err:#}").contains("outside"), "{err:#}");
    }
}
