//! Progress bars on a terminal, nothing when piped (or inside the daemon).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress should be drawn: stderr is a terminal.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// A spinner with `message`, hidden unless `enabled`.
pub fn spinner(enabled: bool, message: &str) -> ProgressBar {
    let bar = if enabled {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A counting bar with `message`, hidden unless `enabled`.
pub fn counter(enabled: bool, message: &str) -> ProgressBar {
    let bar = spinner(enabled, message);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}: {pos} entries") {
        bar.set_style(style);
    }
    bar
}
