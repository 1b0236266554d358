//! Progress bars on a terminal (indicatif), silent otherwise so logs and
//! pipes get only the lines that matter.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: ProgressBar,
    visible: bool,
}

impl Progress {
    pub fn new(total: u64, prefix: &str) -> Self {
        let visible = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(Some(total), if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        Self { bar, visible }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Where the work stands when the total is known only as it goes.
    pub fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    pub fn message(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }

    /// A line that stays (above the bar on a terminal, on stderr otherwise).
    pub fn println(&self, text: &str) {
        if self.visible {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
