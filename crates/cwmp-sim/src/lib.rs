//! A CPE fleet simulator: realistic CWMP Informs on a simulated clock, with planted
//! incidents, deterministic from a seed.
//!
//! A fleet of devices over several models ([`model::catalog`]), each with its
//! identity (OUI, ProductClass, serial), a data model root (TR-098 or TR-181) with
//! its forced-inform parameters, a firmware version, a periodic inform interval and
//! phase, and an ACS front-end. Each model writes its Informs the way its vendor's
//! firmware does: envelope, encoding and cwmp prefixes, header or none, `arrayType`
//! habits, white space, CRLF, attribute quotes.
//!
//! [`Simulator`] is an iterator over raw Informs in simulated-time order: periodic
//! informs with background noise (value changes, connection requests, stray boots,
//! small cells waking up by design, autonomous transfers) and the [`Scenario`]s
//! planted in it, firmware rollouts among them: a session's `TransferComplete`
//! follows its Inform under the same key, as a front-end publishes it.

pub mod model;
pub mod scenario;
mod sim;
mod wire;

pub use scenario::{parse_duration_ms, Scenario, ScenarioError, ScenarioKind};
pub use sim::{
    acs_name, format_utc, Device, Planted, SimConfig, SimMessage, SimRpc, SimStats, Simulator,
};
pub use wire::{write_inform, write_transfer_complete, AutonomousSpec, InformSpec, TransferSpec};
