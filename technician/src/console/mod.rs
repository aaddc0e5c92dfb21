//! The technician console: the window a technician works in (`technician console`, or
//! `technician` alone).
//!
//! - [`model`]: everything the console shows, as plain data, and how events change it (tested
//!   without egui); [`desk`]: its support-desk parts (offers, the leads' dashboard, the steps
//!   of a session's help request); [`chat`]: the session's chat;
//! - [`ui`]: the egui code that draws the model and turns clicks into events; [`desk_ui`]: its
//!   support-desk parts; [`tools_ui`]: the chat panel and the list of the user's monitors;
//! - [`net`]: the network worker (login, the session through [`crate::join`], as `technician
//!   connect` runs it);
//! - [`present`]: the remote screen in a child X window, updated with only the rectangles that
//!   changed (egui's whole-window repaints are too slow without a GPU), with the user's own
//!   pointer drawn over it;
//! - [`pointer`]: the pointer over the remote screen, read from the child window itself;
//!   [`keys`]: egui's key events turned into the remote machine's input; [`grab`]: the keyboard
//!   grab while the viewer has the keyboard;
//! - [`player`]: the session-log player's state; [`player_ui`] draws it.

pub mod chat;
pub mod desk;
pub mod desk_ui;
pub mod grab;
pub mod keys;
pub mod model;
pub mod net;
pub mod player;
pub mod player_ui;
pub mod pointer;
pub mod present;
pub mod tools_ui;
pub mod ui;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use link::report::Reporter;
use link::Fingerprint;

use crate::tokens::Tokens;
use crate::viewer::Viewer;
use model::{Event, LoggedIn, Model, ViewScale};

/// The time now (Unix milliseconds): the shell reads the clock and hands it to the model.
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How the console starts.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// The relay to log in to [default: the one of the last login kept].
    pub relay: Option<String>,
    pub user: Option<String>,
    /// The fingerprint of `relay`'s certificate, given explicitly.
    pub fingerprint: Option<Fingerprint>,
    pub known_relays: PathBuf,
    pub tokens: PathBuf,
    pub log_dir: Option<PathBuf>,
    /// Join this session at once.
    pub connect: Option<String>,
    pub fullscreen: bool,
    pub one_to_one: bool,
    /// Open this session log in the player.
    pub play: Option<PathBuf>,
    /// Status as JSON lines on stdout (`viewer_area`, the session's events).
    pub json: bool,
}

/// The relay and user to start with, and whether the kept login for them is still good.
fn start_login(opts: &ConsoleOptions) -> (String, String, Option<LoggedIn>) {
    let tokens = Tokens::load(&opts.tokens).ok();
    let now = SystemTime::now();
    let kept = |relay: &str| {
        tokens
            .as_ref()
            .and_then(|t| t.get(relay))
            .filter(|l| !l.expired(now))
            .cloned()
    };
    let relay = opts.relay.clone().or_else(|| {
        tokens.as_ref().and_then(|t| {
            t.entries()
                .filter(|(_, l)| !l.expired(now))
                .max_by_key(|(_, l)| l.expires_at_unix)
                .map(|(r, _)| r.to_string())
        })
    });
    let relay = relay.unwrap_or_default();
    let login = kept(&relay);
    let user = opts
        .user
        .clone()
        .or_else(|| login.as_ref().map(|l| l.user.clone()))
        .unwrap_or_default();
    let me = login
        .filter(|l| opts.user.as_ref().is_none_or(|u| *u == l.user))
        .map(|l| LoggedIn {
            relay: relay.clone(),
            user: l.user,
            account: None,
        });
    (relay, user, me)
}

/// Opens the console window and runs it until it is closed.
pub fn run(opts: ConsoleOptions) -> anyhow::Result<()> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        anyhow::bail!(
            "the console needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set; \
             without one, join with `technician connect CODE --relay HOST:PORT`"
        );
    }
    let words = words::Catalogue::new("console", &words::Lang::from_env());
    let (relay, user, me) = start_login(&opts);
    let mut model = Model::new(relay.clone(), user, me);
    model.default_scale = if opts.one_to_one {
        ViewScale::OneToOne
    } else {
        ViewScale::Fit
    };
    model.start_fullscreen = opts.fullscreen;
    let report = Reporter::new(opts.json);
    let config = net::NetConfig {
        pinned: opts.fingerprint.map(|f| (relay.clone(), f)),
        known_relays: opts.known_relays.clone(),
        tokens: opts.tokens.clone(),
        log_dir: opts.log_dir.clone(),
        report,
    };
    let viewer = Arc::new(Mutex::new(Viewer::new()));
    let presenter: net::SharedPresenter = Arc::new(Mutex::new(None));
    let title = words.text("console-title");
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_app_id("tandem-console")
            .with_inner_size([1280.0, 860.0])
            .with_fullscreen(opts.fullscreen),
        ..Default::default()
    };
    let first = opts.connect.clone();
    let play = opts.play.clone();
    eframe::run_native(
        &title,
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx.request_repaint());
            let net = net::Net::start(config, viewer.clone(), presenter.clone(), wake)?;
            let mut app = ui::ConsoleApp::new(model, words, Some(net), viewer, presenter, report);
            app.watch_queue_if_logged_in(&cc.egui_ctx);
            if let Some(code) = first {
                app.model.home.code = code;
                app.join_when_logged_in = true;
            }
            if let Some(path) = play {
                app.dispatch(&cc.egui_ctx, Event::OpenLog(path));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the console window could not be opened: {e}"))
}
