//! Progress bars for long work (import, export, sync), drawn on standard error only when it is
//! a terminal: scripts and logs never see them.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work smaller than this finishes before a bar would be worth drawing.
pub const MIN_ITEMS: usize = 200;

/// The bar `make` draws for work on `items` items, or a hidden one for small jobs.
pub fn unless_small(items: usize, make: impl FnOnce() -> ProgressBar) -> ProgressBar {
    if items < MIN_ITEMS {
        ProgressBar::hidden()
    } else {
        make()
    }
}

fn target() -> ProgressDrawTarget {
    // indicatif hides the stderr target by itself when stderr is not a terminal.
    ProgressDrawTarget::stderr_with_hz(10)
}

/// A spinner counting bytes written, for output whose size is not known ahead.
pub fn bytes(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    if let Ok(style) =
        ProgressStyle::with_template(&format!("{{spinner}} {what} {{bytes}} ({{bytes_per_sec}})"))
    {
        bar.set_style(style);
    }
    // Drawn once now: a short job may end before the ticker thread first runs.
    bar.tick();
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A spinner with a message the caller updates.
pub fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
