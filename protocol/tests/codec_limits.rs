//! The decoder's limits on hostile updates: an update of a few kilobytes must not make it
//! reserve more than those bytes can describe, nor ask for more pixel work than a small
//! multiple of its screen. Each is refused with an error, never an abort.
//!
//! A counting allocator records the largest single allocation, so a reservation that would
//! succeed on a machine with enough memory (or overcommit) is still seen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use protocol::codec::{CodecError, Decoder, Update, MAX_OPS, WORK_FACTOR};
use protocol::peer::{CodecOp, CodecTile, TileCoding};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests here measure the largest allocation: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tile(x: u32, y: u32, width: u32, height: u32, coding: TileCoding, len: u32) -> CodecOp {
    CodecOp::Tile(CodecTile {
        x,
        y,
        width,
        height,
        coding,
        len,
    })
}

/// The largest payload a tile of `w` x `h` may declare (4 bytes a pixel and a palette).
fn largest_len(w: u32, h: u32) -> u32 {
    (w as usize * h as usize * 4 + 1 + 128 * 4) as u32
}

fn wire_len(u: &Update) -> usize {
    protocol::wire::encode_frame(&protocol::peer::PeerMessage::ScreenUpdate(u.clone())).len()
}

#[test]
fn tiles_that_each_declare_the_largest_length_are_refused_without_reserving_it() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (w, h) = (8192, 8192);
    let update = Update {
        seq: 1,
        width: w,
        height: h,
        ops: vec![tile(0, 0, w, h, TileCoding::Predicted, largest_len(w, h)); 1000],
        tile_data: zstd::bulk::compress(&[0u8; 64], 1).unwrap(),
    };
    assert!(wire_len(&update) < 16 * 1024, "{} bytes", wire_len(&update));
    LARGEST.store(0, Ordering::Relaxed);
    let mut dec = Decoder::new();
    let err = dec.apply(&update).unwrap_err();
    assert!(matches!(err, CodecError::TooMuchWork { .. }), "{err}");
    assert!(err.to_string().contains("times its screen"), "{err}");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 1 << 20,
        "allocated {largest} bytes for a refused update"
    );
    assert_eq!((dec.width(), dec.height()), (0, 0), "nothing applied");
}

#[test]
fn declared_lengths_beyond_what_the_tile_data_can_hold_reserve_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Inside the work budget (four whole-screen tiles), declaring 4 bytes a pixel each, with
    // 60 bytes of tile data: those cannot become the 268 MB declared.
    let (w, h) = (4096, 4096);
    let update = Update {
        seq: 1,
        width: w,
        height: h,
        ops: vec![tile(0, 0, w, h, TileCoding::Predicted, w * h * 4); WORK_FACTOR as usize],
        tile_data: zstd::bulk::compress(&[7u8; 64], 1).unwrap(),
    };
    LARGEST.store(0, Ordering::Relaxed);
    let mut dec = Decoder::new();
    let err = dec.apply(&update).unwrap_err();
    assert!(matches!(err, CodecError::BadCompression(_)), "{err}");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 1 << 20,
        "allocated {largest} bytes for a refused update"
    );
}

#[test]
fn millions_of_whole_screen_copies_are_refused_before_any_is_made() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (w, h) = (1920, 1080);
    let copy = CodecOp::Copy {
        src_x: 0,
        src_y: 0,
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    let mut dec = Decoder::new();
    // Within the budget: applies.
    let fine = Update {
        seq: 1,
        width: w,
        height: h,
        ops: vec![copy.clone(); WORK_FACTOR as usize],
        tile_data: Vec::new(),
    };
    dec.apply(&fine).unwrap();
    let too_much = Update {
        ops: vec![copy.clone(); WORK_FACTOR as usize + 1],
        ..fine.clone()
    };
    let err = dec.apply(&too_much).unwrap_err();
    assert!(matches!(err, CodecError::TooMuchWork { .. }), "{err}");
    // Many small copies: the number of ops has its own cap.
    let tiny = CodecOp::Copy {
        src_x: 0,
        src_y: 0,
        x: 1,
        y: 1,
        width: 1,
        height: 1,
    };
    let many = Update {
        ops: vec![tiny; MAX_OPS + 1],
        ..fine
    };
    let err = dec.apply(&many).unwrap_err();
    assert!(matches!(err, CodecError::TooManyOps { .. }), "{err}");
}

#[test]
fn what_the_encoder_makes_of_a_scroll_over_a_big_screen_stays_within_the_budget() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Full screen of noise, then scrolled: copies plus new tiles, all applied.
    let (w, h) = (1024usize, 768usize);
    let mut s = 1u64;
    let mut noise = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
        (s >> 56) as u8
    };
    let a: Vec<u8> = (0..w * h * 4).map(|_| noise()).collect();
    let mut b = a.clone();
    b.copy_within(40 * w * 4.., 0);
    let mut enc = protocol::codec::Encoder::new(w as u32, h as u32);
    let mut dec = Decoder::new();
    for (i, f) in [&a, &b].into_iter().enumerate() {
        let u = enc
            .encode(f, w as u32, h as u32, i as u64 * 40, i as u64 + 1)
            .unwrap();
        dec.apply(&u).unwrap();
        assert!(dec.pixels() == &f[..]);
    }
}
