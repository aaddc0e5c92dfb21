//! The agent: the program on the end user's machine.
//!
//! - [`source`]: where screen frames come from ([`source::ScreenSource`]): a corpus file player
//!   for tests and benchmarks; [`capture`]: the live X11 screen, driven by DAMAGE;
//! - [`sink`]: where the technician's input goes ([`sink::InputSink`]): a recorder for tests;
//!   [`inject`]: real input through XTEST;
//! - [`consent`]: asking the user, or the answer given in advance, and the commands the user
//!   types during a session;
//! - [`session`]: the peer session once paired: consent, screen updates under flow control,
//!   input in.

pub mod capture;
pub mod consent;
pub mod inject;
pub mod session;
pub mod sink;
pub mod source;
