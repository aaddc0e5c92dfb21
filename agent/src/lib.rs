//! The agent: the program on the end user's machine.
//!
//! - [`source`]: where screen frames come from ([`source::ScreenSource`]): a corpus file player
//!   for tests and benchmarks; [`capture`]: the live X11 screen, driven by DAMAGE, grabbing only
//!   what changed through [`shm_image`], one monitor or all of them ([`monitors`]: switches a
//!   technician asks for); [`cursor`]: the user's own pointer, shape and position, for each
//!   technician;
//! - [`sink`]: where the technician's input goes ([`sink::InputSink`]): a recorder for tests;
//!   [`inject`]: real input through XTEST; [`injector`]: the worker thread that injects, only
//!   while the person allows control;
//! - [`consent`]: asking the person, or the answer given in advance, and the commands they give
//!   during a session, from the terminal and the window alike;
//! - [`status`]: what the agent tells the window as it goes;
//! - [`desk`]: what the person asks of the support desk from the window: a help request (with
//!   what it says of this machine) and the survey's answer;
//! - [`session`]: the peer session once paired, with one technician or several: consent, who
//!   holds control, input in; [`viewer`]: each technician's own connection, capture, encoder
//!   and screen updates under flow control ([`flow`]);
//! - [`chat`]: chat between the person and the technicians, relayed through the agent;
//!   [`clipboard`]: the clipboard shared with the technician holding control, while allowed;
//! - [`files`]: files between the person and a technician: who may move them, the offers put
//!   to the person, what is reported (the transfers themselves are `link::files`);
//! - [`shown`]: what a person is shown of the strings a peer supplied: escaped and clipped;
//! - [`share`]: one run, from the relay connection to the end of the session;
//! - [`window`]: the person's window (code or help request, consent, the bar while shared,
//!   the survey), model apart from drawing.

pub mod capture;
pub mod chat;
pub mod clipboard;
pub mod consent;
pub mod cursor;
pub mod desk;
pub mod files;
pub mod flow;
pub mod inject;
pub mod injector;
pub mod monitors;
pub mod session;
pub mod share;
pub mod shm_image;
pub mod shown;
pub mod sink;
pub mod source;
pub mod status;
pub mod viewer;
pub mod window;
