//! The only addition a crate that depends on onthefly needs: a runpath to
//! libtorch, which onthefly reports (`DEP_ONTHEFLY_LIBTORCH_LIB`, given to
//! the build scripts of the crates that depend on it directly). Without it
//! the binary fails at start with "libtorch_cpu.so: cannot open shared
//! object file" unless LD_LIBRARY_PATH names libtorch's folder.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_ONTHEFLY_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_ONTHEFLY_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
