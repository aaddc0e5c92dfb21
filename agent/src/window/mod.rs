//! The agent's window: the code (or the form to ask the desk for help instead, and the place
//! in its queue), the consent question, the bar while shared, the desk's survey, how it ended.
//!
//! Kept as rerun's viewer keeps its app state apart from its `ui/`: [`model`] is the state as
//! plain data (tested without egui), [`ui`] draws it and reports clicks, and [`AgentWindow`]
//! joins them to the agent: it takes [`Status`] from the network thread, sends the person's
//! answers and commands (and what they tell the desk) through a [`UserSide`], puts the code on
//! the clipboard, and shrinks to an always-on-top bar while the screen is shared. It runs on
//! the main thread (eframe with the glow renderer, which Mesa's software rasteriser runs
//! without a GPU) and repaints only when a status arrives, the person acts, or a countdown
//! ticks.

pub mod model;
pub mod ui;

use std::sync::mpsc;
use std::time::Instant;

use egui::{ViewportCommand, WindowLevel};
use words::{Catalogue, Lang};

use crate::consent::UserSide;
use crate::status::{Status, StatusTx};
use model::{Effect, Layout, WindowModel};

/// The window's application: model, words, and the channels to the agent.
pub struct AgentWindow {
    model: WindowModel,
    cat: Catalogue,
    status: mpsc::Receiver<Status>,
    side: UserSide,
    /// The layout the window was last given.
    layout: Layout,
}

impl AgentWindow {
    pub fn new(cat: Catalogue, status: mpsc::Receiver<Status>, side: UserSide) -> Self {
        Self {
            model: WindowModel::new(),
            cat,
            status,
            side,
            layout: Layout::Full,
        }
    }

    pub fn model(&self) -> &WindowModel {
        &self.model
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.cat
    }

    /// One frame: takes in what the agent said, draws, and carries out what the person did.
    /// Returns whether the window should close.
    pub fn frame(&mut self, ui: &mut egui::Ui) -> bool {
        while let Ok(s) = self.status.try_recv() {
            self.model.apply(s);
        }
        let now = Instant::now();
        let ctx = ui.ctx().clone();
        self.follow_layout(&ctx);
        // A technician's message while the chat is closed: the window manager marks the window
        // (a blinking task bar entry), the keyboard stays where the person has it.
        if self.model.take_attention() {
            ctx.send_viewport_cmd(ViewportCommand::RequestUserAttention(
                egui::UserAttentionType::Informational,
            ));
        }
        let mut close = self.model.interrupted();
        if let Some(action) = ui::draw(ui, &self.model, &self.cat, now) {
            for effect in self.model.act(action, now) {
                match effect {
                    Effect::Say(said) => self.side.say(said),
                    Effect::Desk(said) => self.side.tell_desk(said),
                    Effect::Copy(text) => ctx.copy_text(text),
                    Effect::CloseWindow => close = true,
                }
            }
            ctx.request_repaint();
        }
        if let Some(after) = self.model.next_tick(now) {
            ctx.request_repaint_after(after);
        }
        close
    }

    /// The bar while shared: small and above other windows (where the window manager allows);
    /// a normal window otherwise.
    fn follow_layout(&mut self, ctx: &egui::Context) {
        let layout = self.model.layout();
        if layout == self.layout {
            return;
        }
        self.layout = layout;
        match layout {
            Layout::Bar | Layout::BarWithChat => {
                let size = if layout == Layout::Bar {
                    ui::BAR_SIZE
                } else {
                    ui::BAR_CHAT_SIZE
                };
                ctx.send_viewport_cmd(ViewportCommand::MinInnerSize(ui::BAR_SIZE));
                ctx.send_viewport_cmd(ViewportCommand::InnerSize(size));
                ctx.send_viewport_cmd(ViewportCommand::WindowLevel(WindowLevel::AlwaysOnTop));
                // Top centre of the monitor, where it covers least of what is being worked on.
                if let Some(monitor) = ctx.input(|i| i.viewport().monitor_size) {
                    let x = ((monitor.x - ui::BAR_SIZE.x) / 2.0).max(0.0);
                    ctx.send_viewport_cmd(ViewportCommand::OuterPosition(egui::pos2(x, 0.0)));
                }
            }
            Layout::Full => {
                ctx.send_viewport_cmd(ViewportCommand::WindowLevel(WindowLevel::Normal));
                ctx.send_viewport_cmd(ViewportCommand::InnerSize(ui::FULL_SIZE));
            }
        }
    }
}

impl eframe::App for AgentWindow {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if self.frame(ui) {
            ui.ctx().send_viewport_cmd(ViewportCommand::Close);
        }
    }
}

/// Opens the window and runs it until it is closed. `status` is the receiving end of
/// `status_tx`, which is told how to wake the window.
pub fn run(
    lang: Lang,
    status: mpsc::Receiver<Status>,
    status_tx: StatusTx,
    side: UserSide,
) -> Result<(), eframe::Error> {
    let cat = Catalogue::new("agent", &lang);
    let title = cat.text("window-title");
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_app_id("tandem-agent")
            .with_inner_size(ui::FULL_SIZE)
            .with_min_inner_size(ui::BAR_SIZE),
        ..Default::default()
    };
    eframe::run_native(
        &title,
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            status_tx.set_waker(move || ctx.request_repaint());
            Ok(Box::new(AgentWindow::new(cat, status, side)))
        }),
    )
}
