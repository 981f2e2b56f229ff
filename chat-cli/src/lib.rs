//! `chat-cli`: a terminal client for mcp-chat.
//!
//! The pieces, each usable on its own:
//! - [`app`]: the pure state machine (keys, lines and server events in; view model and
//!   actions out), shared by both front ends;
//! - [`render`]: draws the app with ratatui;
//! - [`net`]: the rmcp client task (long poll + notifications, reconnect and resume);
//! - [`tui`] and [`plain`]: the full-screen and the line-oriented front ends;
//! - [`state`]: the resume tokens of the identities we own, kept between runs;
//! - [`cli`]: the command line.

pub mod app;
pub mod cli;
pub mod clock;
pub mod net;
pub mod plain;
pub mod render;
pub mod signals;
pub mod state;
pub mod tui;
