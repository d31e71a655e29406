//! `provision apply` and friends: reach every host (transport), learn its state (facts), decide (plan),
//! and change it in ordered phases (phase/), every change through the gate so `--dry-run` shows it.

pub mod auth;
pub mod auth_api;
pub mod backup_file;
pub mod cluster;
pub mod commands;
pub mod ctx;
pub mod desired;
pub mod facts;
pub mod fleet;
pub mod host;
pub mod phase;
pub mod plan;
pub mod service;
pub mod session;
pub mod state;
pub mod target;
pub mod transport;
pub mod ui;

pub use ctx::Options;
