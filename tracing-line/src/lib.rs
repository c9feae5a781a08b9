//! One `tracing` event as one log line: its message, then every other field
//! as ` key=value`, whatever order the fields were recorded in. Both
//! plugins' log bridges (Kea's `isc::log`, knotd's `knotd_mod_log`) write
//! events this way, so the line format is the same in both daemons' logs.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use tracing::Event;
use tracing::field::{Field, Visit};

/// The log line of `event`.
pub fn line(event: &Event<'_>) -> String {
    let mut visitor = LineVisitor::default();
    event.record(&mut visitor);
    let mut text = visitor.message;
    text.push_str(&visitor.fields);
    text
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(super::line(event));
            }
        }
    }

    #[test]
    fn message_first_then_fields_in_order() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&lines)));
        tracing::subscriber::with_default(subscriber, || {
            let name = "laptop.lan.example.";
            tracing::warn!(fqdn = %name, attempt = 2, "DNS update failed; will retry");
            tracing::info!("plain");
        });
        let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            lines,
            vec![
                "DNS update failed; will retry fqdn=laptop.lan.example. attempt=2".to_string(),
                "plain".to_string()
            ]
        );
    }
}
