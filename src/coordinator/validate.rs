//! Input validation of what callers hand in: names, texts and targets
//! within the configured limits.

use crate::base::Target;
use crate::base::ValidationError;

pub(super) fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::EmptyName { field });
    }
    if value.len() > max {
        return Err(ValidationError::NameTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    // Names become folder names: no path separators, and no leading dot ("..").
    if value.starts_with('.')
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(ValidationError::InvalidName {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// A target no longer than `max` bytes (the inputs' limit: a target is
/// stored and sent as often as its input).
pub(super) fn check_target(field: &'static str, target: &Target, max: usize) -> Result<(), ValidationError> {
    let len = match target {
        Target::Label(label) => label.len(),
        Target::Score(_) => 0,
        Target::Tags(tags) => tags.iter().map(|t| t.len() + 1).sum(),
        Target::Json(value) => serde_json::to_vec(value).map_or(usize::MAX, |v| v.len()),
    };
    match len > max {
        true => Err(ValidationError::TargetTooLong { field, len, max }),
        false => Ok(()),
    }
}

pub(super) fn check_input(value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::EmptyInput);
    }
    check_text("input_text", value, max)
}

pub(super) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::NulCharacter { field });
    }
    if value.len() > max {
        return Err(match field {
            "input_text" => ValidationError::InputTooLong { len: value.len(), max },
            _ => ValidationError::NameTooLong {
                field,
                len: value.len(),
                max,
            },
        });
    }
    Ok(())
}
