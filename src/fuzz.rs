//! The loop every fuzz test shares: proptest inputs for a wall-clock
//! budget rather than a number of cases, so that `cargo test` takes a quick
//! look and `scripts/test.sh` gives each target a minute.

use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The seconds a fuzz test runs: the environment variable `variable`, else 2.
pub fn seconds(variable: &str) -> u64 {
    std::env::var(variable).ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

/// Checks inputs from `strategy` until `seconds` have passed, at least one
/// round of `cases`, and returns how many it checked. A runner stops after
/// `cases` successes, so each round is a fresh runner whose random stream is
/// forked from one (random unless PROPTEST_RNG_SEED is set, which replays a
/// run). A failure panics with proptest's shrunk input.
pub fn run_for<S: Strategy>(
    seconds: u64,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut master = TestRunner::new(config.clone());
    let inputs = Cell::new(0u64);
    while inputs.get() == 0 || Instant::now() < deadline {
        let mut round = TestRunner::new_with_rng(config.clone(), master.new_rng());
        let result = round.run(&strategy, |value| {
            inputs.set(inputs.get() + 1);
            check(value)
        });
        if let Err(failure) = result {
            panic!("fuzz failure after {} inputs: {failure}", inputs.get());
        }
    }
    inputs.get()
}
