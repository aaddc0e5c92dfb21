//! The agent: the program on the end user's machine.
//!
//! - [`source`]: where screen frames come from ([`source::ScreenSource`]): a corpus file player
//!   for tests and benchmarks;
//! - [`sink`]: where the technician's input goes ([`sink::InputSink`]): a recorder for tests;
//! - [`session`]: the peer session once paired: screen updates under flow control, input in.

pub mod session;
pub mod sink;
pub mod source;
