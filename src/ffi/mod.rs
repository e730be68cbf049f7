//! The C ABI. The only module with `unsafe` code: every exported function
//! checks its pointers, runs its body inside `catch_unwind`, and never lets a
//! panic cross into C. The header `include/onthefly.h` is generated from this
//! module by `build.rs` (cbindgen).

use std::ffi::c_char;

/// The library's version as a NUL-terminated string, such as `"0.1.0"`.
///
/// The string is static: the caller must not free it.
#[no_mangle]
pub extern "C" fn otf_version() -> *const c_char {
    // A constant, so nothing here can panic.
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
