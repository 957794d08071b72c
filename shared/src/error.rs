//! The error body of the HTTP contract: `{"error": "<snake_case_code>", "message": "<text>"}`.
//!
//! Each service has its own error enum and turns it into this body in one place; this type is
//! what they all agree on (and what clients, tests and the load test parse).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `invalid_credentials`.
    pub error: String,
    /// A sentence for people; never internal details.
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
        }
    }
}
