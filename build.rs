//! Build script: makes binaries find libtorch at run time, and generates the C
//! header `include/onthefly.h` from the FFI module.

use std::path::Path;

fn main() {
    // torch-sys reports where it found libtorch (the `.venv` that `make venv`
    // creates). A runpath to it lets tests, examples and the cdylib run
    // without LD_LIBRARY_PATH. ONTHEFLY_RPATH replaces it where the library
    // is shipped (the Python package: `$ORIGIN/../torch/lib`, the torch
    // wheel installed beside it), so no build machine's folder is written in.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=ONTHEFLY_RPATH");
    let libtorch = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    match std::env::var("ONTHEFLY_RPATH") {
        Ok(rpath) => println!("cargo:rustc-link-arg=-Wl,-rpath,{rpath}"),
        Err(_) => {
            if let Some(lib) = &libtorch {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            }
        }
    }
    // Crates that depend on this one read it as DEP_ONTHEFLY_LIBTORCH_LIB
    // (`links` in Cargo.toml), for a runpath of their own binaries
    // (examples/downstream/build.rs).
    if let Some(lib) = libtorch {
        println!("cargo:libtorch_lib={lib}");
    }
    generate_header();
}

fn generate_header() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(&crate_dir).join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    // Only the FFI module is parsed: everything C sees is declared there.
    // cbindgen follows its `mod` declarations into the other files, so only
    // mod.rs is named (naming each file too declared every function twice).
    let ffi_dir = Path::new(&crate_dir).join("src").join("ffi");
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(ffi_dir.join("mod.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => panic!("cbindgen could not generate include/onthefly.h: {e}"),
    };
    let header = Path::new(&crate_dir).join("include").join("onthefly.h");
    // write_to_file leaves the file untouched when the content is unchanged,
    // so the header's timestamp only moves when the ABI does.
    bindings.write_to_file(header);
}
