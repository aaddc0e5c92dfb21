//! Monitor switches, as the agent says them: a technician asked to see another monitor of this
//! machine, or all of them as one desktop (`monitor` event), or the switch could not be made
//! (`monitor_refused`). Each technician has its own capture, so a switch changes only what the
//! technician who asked sees; the others keep their view (a lead watching one monitor while
//! the one in control works on another sees what it chose), and the input of whoever holds
//! control lands on the monitor that one sees.

use link::report::Reporter;
use protocol::monitor::Monitors;
use serde_json::json;

use crate::shown;

/// Says how a switch asked by `technician` went: the monitors and what it sees now
/// (described), or why not.
pub fn report_switch(
    report: Reporter,
    technician: &str,
    switched: &Result<(Monitors, String), String>,
) {
    match switched {
        Ok((monitors, describe)) => report.event(
            "monitor",
            json!({ "technician": technician, "shown": monitors.shown.to_string(), "source": describe }),
            format!("{} now sees {describe}.", shown::name(technician)),
        ),
        Err(why) => report.event(
            "monitor_refused",
            json!({ "technician": technician, "message": why }),
            format!(
                "{} asked to see another monitor, which could not be shown: {why}.",
                shown::name(technician)
            ),
        ),
    }
}
