//! How an action ended, wherever it ran (the agent itself or rootd): the
//! one [`Outcome`] both sides build and the agent turns into a
//! `CommandResult`. Its fields are those of rootd's `Done` frame
//! ([`crate::rootd_proto::RootFrame::Done`]), serialized the same way.
//!
//! It knows no action, no process and no budget: fitting the data to the
//! result limit is [`crate::result_budget`]'s job.

use serde::{Deserialize, Serialize};

use crate::CommandStatus;

/// The end of one action: its final status, the exit code of the program
/// that decided it (`None` when no program decided it), a one-line summary
/// for the operator and structured data (`null` when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub summary: String,
    pub data: serde_json::Value,
}

impl Outcome {
    /// Ran and failed, without an exit code or data.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self::ended(
            CommandStatus::Failed,
            None,
            summary,
            serde_json::Value::Null,
        )
    }

    /// Not run (bad params, unavailable module, refused), no data.
    pub fn rejected(summary: impl Into<String>) -> Self {
        Self::ended(
            CommandStatus::Rejected,
            None,
            summary,
            serde_json::Value::Null,
        )
    }

    /// Succeeded with exit code 0 and `data`.
    pub fn succeeded(summary: impl Into<String>, data: serde_json::Value) -> Self {
        Self::ended(CommandStatus::Succeeded, Some(0), summary, data)
    }

    fn ended(
        status: CommandStatus,
        exit_code: Option<i32>,
        summary: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            status,
            exit_code,
            summary: summary.into(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootd_proto::RootFrame;

    /// An outcome serializes with the field names and values of rootd's
    /// `Done` frame (minus its `type` tag).
    #[test]
    fn same_shape_as_the_done_frame() {
        let o = Outcome::succeeded("ok", serde_json::json!({"n": 1}));
        let done = RootFrame::Done {
            status: o.status,
            exit_code: o.exit_code,
            summary: o.summary.clone(),
            data: o.data.clone(),
        };
        let mut frame = serde_json::to_value(&done).unwrap();
        frame.as_object_mut().unwrap().remove("type");
        assert_eq!(serde_json::to_value(&o).unwrap(), frame);
        let back: Outcome = crate::decode(&crate::encode(&o), None).unwrap();
        assert_eq!(back, o);
    }
}
