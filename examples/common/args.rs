//! The examples' command-line options: `--name value` pairs and bare flags.
#![allow(dead_code)] // Each example uses some of these.

use std::str::FromStr;

/// Whether `--name` was given.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The value after `--name`, parsed.
pub fn value<T: FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// A comma-separated list of numbers after `--name`, such as `--grid 1,10,100`.
pub fn numbers(name: &str) -> Option<Vec<f64>> {
    value::<String>(name).map(|list| list.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

/// `replay` with the capacity of `--replay-capacity N` (0: no replay), when given.
pub fn replay(replay: &onthefly::replay::ReplayConfig) -> onthefly::replay::ReplayConfig {
    onthefly::replay::ReplayConfig {
        capacity: value("--replay-capacity").unwrap_or(replay.capacity),
        ..replay.clone()
    }
}

/// `ewc` with the strength of `--ewc-lambda L` (0: off), when given.
pub fn ewc(ewc: &onthefly::ewc::EwcConfig) -> onthefly::ewc::EwcConfig {
    match value::<f64>("--ewc-lambda") {
        Some(lambda) => onthefly::ewc::EwcConfig {
            enabled: lambda > 0.0,
            lambda,
            ..ewc.clone()
        },
        None => ewc.clone(),
    }
}
