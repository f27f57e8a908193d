//! Configuration errors and the checks every section's `compile()` shares
//! (numeric ranges, header names). A leaf: the feature modules and the
//! configuration's composition both use it, and it uses neither.
//!
//! Must not: know any section's fields; an error names its field by the
//! JSON path the caller gives.

use std::fmt;

/// A configuration the filter refuses, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "invalid mcp_filter configuration: {}", self.message)
        } else {
            write!(
                f,
                "invalid mcp_filter configuration at `{}`: {}",
                self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A number from the configuration within its documented range (the schema
/// states the same range), or an error naming the field. No silent clamping:
/// a value the operator did not mean is refused.
pub(crate) fn in_range(
    field: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let n = value.unwrap_or(default);
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(invalid(
            field,
            format!("{n} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

pub(crate) fn header_name(
    field: &str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| default.to_string());
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(invalid(
            field,
            format!("`{name}` must be a lowercase HTTP header name ([a-z0-9_-]+)"),
        ));
    }
    Ok(name)
}
