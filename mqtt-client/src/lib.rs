//! MQTT client built on [`mqtt_codec`]: a sans-IO protocol engine and a tokio driver.
//!
//! Not built yet: this crate is a placeholder in the workspace until the client issue
//! lands. It re-exports the codec so that dependants compile against one path.

pub use mqtt_codec as codec;
