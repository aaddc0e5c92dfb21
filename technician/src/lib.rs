//! The technician's client.
//!
//! - [`archive`]: session logs encrypted to the audit key, and the spool they wait in for upload;
//! - [`logtool`]: `technician log …`: verify, show, frame, export, decrypt session logs;
//! - [`script`]: the input-script language (`move`, `click`, `type`, `key`, `wait`, …): parsing
//!   and turning actions into input events;
//! - [`viewer`]: the remote screen as the technician holds it: updates applied in sequence,
//!   snapshots as PNG;
//! - [`session`]: the technician's side of a paired session; its tools: [`chat`], the shared
//!   [`clipboard`], and the user's own pointer ([`cursor`]);
//! - [`files`]: files sent to the user and fetched from them, as a session's steps, logged and
//!   reported;
//! - [`tokens`]: the logins (`technician login`) kept per relay.

pub mod archive;
pub mod chat;
pub mod clipboard;
pub mod console;
pub mod cursor;
pub mod desk;
pub mod files;
pub mod join;
pub mod logtool;
pub mod record;
pub mod script;
pub mod session;
pub mod tokens;
pub mod viewer;
