//! Consumer-source API for data pipelines, built on [`mqtt_client`].
//!
//! Not built yet: this crate is a placeholder in the workspace until its issue lands.

pub use mqtt_client as client;
