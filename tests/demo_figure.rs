//! Guards the demo's headline figure (docs/measurements.md: `make demo`,
//! prequential accuracy 0.668 over the 3,823 news articles at 150 a second,
//! the caller never waiting). The stream races its updates, so a run moves:
//! runs measured 0.656–0.681 (0.674, 0.681 and 0.675 in the last three), and
//! the test fails 0.03 below the figure, more than the whole spread.

mod common;

use std::process::Command;

const MEASURED: f64 = 0.668;
const MARGIN: f64 = 0.03;

#[test]
fn the_demos_prequential_accuracy_holds() {
    let binary = common::newsroom_binary();
    let cwd = common::fresh_data_dir();
    let out = Command::new(&binary).current_dir(&cwd).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accuracy: f64 = stdout
        .lines()
        .rev()
        .find_map(|line| line.split("prequential accuracy ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no prequential accuracy in the demo's output:\n{stdout}"));
    println!("the demo's prequential accuracy: {accuracy:.3}");
    assert!(
        accuracy >= MEASURED - MARGIN,
        "{accuracy:.3}, docs/measurements.md says {MEASURED}"
    );
}
