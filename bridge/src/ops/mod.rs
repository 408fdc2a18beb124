//! What an operator needs around the calls: counters and gauges for
//! `/metrics` (`metrics`, `process`), the admin HTTP listener with health,
//! readiness and drain (`admin`, `drain`), and one JSON record per finished
//! call (`record`). Nothing here knows SIP or media; the call code reports
//! what happened through these types.

mod admin;
mod drain;
mod metrics;
mod process;
mod record;

pub use admin::Admin;
pub use drain::Drain;
pub use metrics::{ActiveCall, ActiveLeg, Exposition, Metrics};
pub use record::{CallClock, CallRecord, CallRecords, LegRecord};
