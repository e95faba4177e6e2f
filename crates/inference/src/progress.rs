//! The one progress interface: library loops (stages, training, checker
//! training, evaluation) report through it; only the command line draws
//! bars or writes log lines from it.

/// Progress of a long loop.
pub trait Progress {
    /// `done` of `total` items; `message`: rates, loss, anything short for the display.
    fn update(&mut self, done: u64, total: u64, message: &str);
    /// The loop ended (the display may clear itself).
    fn finish(&mut self) {}
}

/// Progress that goes nowhere (tests, quiet library callers).
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _: u64, _: u64, _: &str) {}
}
