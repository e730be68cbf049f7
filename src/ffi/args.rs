//! Reading C arguments: strings, JSON targets, out-parameters. Every check
//! that can fail returns an [`FfiError`] naming the argument.

use std::ffi::{c_char, CStr, CString};

use super::result::{FfiError, OtfResult};
use crate::base::Priority;

/// A required, NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged during the call.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: not NULL, and the caller guarantees a NUL-terminated string valid for the call.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes)
        .map_err(|e| FfiError::new(OtfResult::InvalidUtf8, format!("{name} is not valid UTF-8 ({e})")))
}

/// An optional string: NULL means absent.
///
/// # Safety
/// As for [`required_str`].
pub(crate) unsafe fn optional_str<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's guarantee is passed on unchanged.
    unsafe { required_str(ptr, name) }.map(Some)
}

/// A target given as JSON text, as its JSON value: the coordinator reads it
/// by what its task learns ([`crate::Coordinator::read_json_target`]).
///
/// # Safety
/// As for [`required_str`].
pub(crate) unsafe fn required_json(ptr: *const c_char, name: &str) -> Result<serde_json::Value, FfiError> {
    // SAFETY: the caller's guarantee is passed on unchanged.
    let text = unsafe { required_str(ptr, name) }?;
    parse_json(text, name)
}

/// An optional JSON target (NULL means absent).
///
/// # Safety
/// As for [`required_str`].
pub(crate) unsafe fn optional_json(ptr: *const c_char, name: &str) -> Result<Option<serde_json::Value>, FfiError> {
    // SAFETY: the caller's guarantee is passed on unchanged.
    let text = unsafe { optional_str(ptr, name) }?;
    text.map(|t| parse_json(t, name)).transpose()
}

fn parse_json(text: &str, name: &str) -> Result<serde_json::Value, FfiError> {
    serde_json::from_str(text).map_err(|e| {
        FfiError::new(
            OtfResult::InvalidArgument,
            format!("{name} must be a JSON value (a label is a JSON string such as \"bbc\"): {e}"),
        )
    })
}

/// A priority from 0 to 3.
pub(crate) fn priority(value: i32) -> Result<Priority, FfiError> {
    Priority::try_from(i64::from(value)).map_err(|e| FfiError::new(OtfResult::InvalidArgument, e.to_string()))
}

/// Writes `value` to an optional out-parameter.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_optional<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: not NULL, and the caller guarantees it is valid for a write.
        unsafe { out.write(value) };
    }
}

/// Checks a required out-parameter before any work is done.
pub(crate) fn required_out<T>(out: *mut T, name: &str) -> Result<(), FfiError> {
    if out.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(())
    }
}

/// Gives a string to C; it must come back through `otf_string_free`.
pub(crate) fn into_c_string(text: String) -> *mut c_char {
    // JSON from serde never holds a raw NUL (it escapes it), but a NUL must
    // not become a panic.
    CString::new(text)
        .unwrap_or_else(|e| {
            let bytes: Vec<u8> = e.into_vec().into_iter().filter(|&b| b != 0).collect();
            CString::new(bytes).unwrap_or_default()
        })
        .into_raw()
}
