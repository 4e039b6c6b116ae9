//! What the framework tells people while it works: progress and notices go through `tracing`,
//! so a program with its own subscriber gets them as events like any other (target `vmtest`).
//!
//! Without one, the first VM installs a small default subscriber that prints each event as one
//! human line, `vmtest: MESSAGE`, on stderr:
//!
//! - `VMTEST_LOG` chooses what is printed, in `RUST_LOG`'s syntax (`debug`, `vmtest=trace`,
//!   `off`); unset, `RUST_LOG` does; both unset, vmtest's own events at `info` and above — the
//!   accelerator chosen, leftovers swept, a kept VM's shell command, a wait for the boot
//!   budget, an interrupted run's teardown.
//! - Lines go through the test harness's output capture, as `eprintln!` would: a passing test
//!   stays quiet under `cargo test`. Events marked `loud = true` (a wait for the boot budget)
//!   bypass it, since a test that seems stuck must say why.
//!
//! Install a subscriber of your own *before* the first VM boots to take over.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::EnvFilter;

/// Installs the default subscriber, once, unless the program has one.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if tracing::dispatcher::has_been_set() {
            return;
        }
        let filter = ["VMTEST_LOG", "RUST_LOG"]
            .iter()
            .find_map(|var| {
                let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
                EnvFilter::try_new(&value)
                    .inspect_err(|e| {
                        // No subscriber exists yet to say it through.
                        eprintln!(
                            "vmtest: {var}={value:?} is not a filter ({e}); \
                             write it as RUST_LOG is written, e.g. `vmtest=debug`"
                        )
                    })
                    .ok()
            })
            .unwrap_or_else(|| EnvFilter::new("vmtest=info"));
        let subscriber = tracing_subscriber::registry().with(filter).with(Human);
        // Another thread may have installed one meanwhile: theirs wins.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Prints events as `vmtest: MESSAGE key=value ...`.
struct Human;

impl<S: Subscriber> Layer<S> for Human {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let mut text = String::new();
        if !line.message.starts_with("vmtest:") {
            text.push_str("vmtest: ");
        }
        text.push_str(&line.message);
        text.push_str(&line.fields);
        if line.loud {
            let _ = writeln!(std::io::stderr(), "{text}");
        } else {
            eprintln!("{text}");
        }
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
    loud: bool,
}

impl Visit for Line {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "loud" {
            self.loud = value;
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
