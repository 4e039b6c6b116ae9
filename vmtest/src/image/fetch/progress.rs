//! Download progress on stderr: a bar redrawn in place on a terminal, a few plain lines in CI.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How a download reports progress on stderr.
///
/// Progress is written to the process's stderr directly, not through `eprintln!`: under
/// `cargo test` the harness would otherwise capture it, and a silent multi-minute download
/// looks exactly like a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A redrawn bar when stderr is a terminal, otherwise [`Progress::Lines`].
    #[default]
    Auto,
    /// A bar redrawn in place (percentage, bytes, rate), at most ten times a second.
    Bar,
    /// A line at the start, at each quarter and at the end: for CI logs.
    Lines,
    /// Nothing.
    Silent,
}

/// Draws one download's progress.
pub(super) struct Reporter {
    mode: Progress,
    label: String,
    total: Option<u64>,
    resumed_at: u64,
    last_done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    /// The next quarter (1..=4) a `Lines` report announces.
    next_quarter: u64,
    finished: bool,
}

impl Reporter {
    pub(super) fn new(mode: Progress, url: &str, resumed_at: u64, total: Option<u64>) -> Reporter {
        let mode = match mode {
            Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
            Progress::Auto => Progress::Lines,
            m => m,
        };
        let label = url.rsplit('/').find(|s| !s.is_empty()).unwrap_or(url);
        let mut r = Reporter {
            mode,
            label: label.to_owned(),
            total,
            resumed_at,
            last_done: resumed_at,
            started: Instant::now(),
            last_draw: None,
            next_quarter: 1,
            finished: false,
        };
        let size = total.map_or(String::new(), |t| format!(" ({})", human_bytes(t)));
        // The bar shows only the file name, so both modes first name the whole URL.
        if matches!(mode, Progress::Bar | Progress::Lines) {
            r.emit(&match resumed_at {
                0 => format!("vmtest: downloading {url}{size}\n"),
                at => format!("vmtest: resuming {url}{size} at {}\n", human_bytes(at)),
            });
        }
        if let Some(t) = total.filter(|&t| t > 0) {
            while r.next_quarter < 4 && resumed_at * 4 >= t * r.next_quarter {
                r.next_quarter += 1;
            }
        }
        r
    }

    pub(super) fn advance(&mut self, done: u64) {
        match self.mode {
            Progress::Bar => {
                let due = self
                    .last_draw
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
                if due {
                    self.last_draw = Some(Instant::now());
                    let line = self.bar(done);
                    self.emit(&format!("\r{line}"));
                }
            }
            Progress::Lines => {
                let Some(total) = self.total.filter(|&t| t > 0) else {
                    return;
                };
                // The last quarter is announced by `finish`.
                if self.next_quarter < 4 && done * 4 >= total * self.next_quarter {
                    let line = format!(
                        "vmtest: {}: {}% ({} of {}, {})\n",
                        self.label,
                        self.next_quarter * 25,
                        human_bytes(done),
                        human_bytes(total),
                        self.rate(done)
                    );
                    self.emit(&line);
                    while self.next_quarter < 4 && done * 4 >= total * self.next_quarter {
                        self.next_quarter += 1;
                    }
                }
            }
            Progress::Auto | Progress::Silent => {}
        }
        self.last_done = done;
    }

    pub(super) fn finish(&mut self) {
        self.finished = true;
        let done = self.last_done;
        let line = format!(
            "downloaded {}: {} in {:.1?} ({})",
            self.label,
            human_bytes(done),
            self.started.elapsed(),
            self.rate(done)
        );
        match self.mode {
            Progress::Bar => {
                let bar = self.bar(done);
                self.emit(&format!("\r{bar}\n"));
            }
            Progress::Lines => self.emit(&format!("vmtest: {line}\n")),
            Progress::Auto | Progress::Silent => {}
        }
    }

    fn bar(&self, done: u64) -> String {
        const WIDTH: u64 = 24;
        let (pct, filled, of) = match self.total.filter(|&t| t > 0) {
            Some(t) => (
                format!("{:3}%", done * 100 / t),
                (done * WIDTH / t).min(WIDTH),
                format!(" / {}", human_bytes(t)),
            ),
            None => (String::from("   ?"), 0, String::new()),
        };
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '-' })
            .collect();
        // Trailing spaces wipe a longer previous line.
        format!(
            "{} [{bar}] {pct} {}{of} {}   ",
            self.label,
            human_bytes(done),
            self.rate(done)
        )
    }

    fn rate(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let per_sec = (done.saturating_sub(self.resumed_at)) as f64 / secs;
        format!("{}/s", human_bytes(per_sec as u64))
    }

    fn emit(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        // A failed download must not leave the cursor after a half-drawn bar.
        if self.mode == Progress::Bar && self.last_draw.is_some() && !self.finished {
            self.emit("\n");
        }
    }
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn bars_show_percentage_and_size() {
        let r = Reporter::new(Progress::Silent, "http://h/x/disk.img", 0, Some(4 << 20));
        let bar = r.bar(1 << 20);
        let want = "disk.img [######------------------]  25% 1.0 MiB / 4.0 MiB ";
        assert!(bar.starts_with(want), "{bar}");
    }

    #[test]
    fn resumed_downloads_skip_the_quarters_already_passed() {
        let r = Reporter::new(Progress::Silent, "u", 3 << 20, Some(4 << 20));
        assert_eq!(r.next_quarter, 4);
        let r = Reporter::new(Progress::Silent, "u", 1 << 20, Some(4 << 20));
        assert_eq!(r.next_quarter, 2);
    }
}
