//! What an operator needs around the calls: counters and gauges for
//! `/metrics` (`metrics`, written by `exposition`; `process`, `rtp`), the admin HTTP listener with health,
//! readiness and drain (`admin`, `drain`), and one JSON record per finished
//! call (`record`); the SIP user agent's counters (`sip`); `tally` ties one
//! call's metrics and record together. The call code reports what happened
//! through these types.

mod admin;
mod drain;
mod exposition;
mod metrics;
mod process;
mod record;
mod rtp;
mod sip;
mod tally;

pub use admin::{Admin, Capacity};
pub use drain::Drain;
pub use metrics::Metrics;
pub use record::{civil_from_days, CallRecords};
pub use sip::collector as sip_collector;
pub use tally::{CallOps, CallTally};
