//! Logs: tracing to stderr, one line per event, with level and this member's name on every line.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

struct WithMember<F> {
    name: String,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithMember<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        ev: &Event<'_>,
    ) -> fmt::Result {
        write!(w, "member={} ", self.name)?;
        self.inner.format_event(ctx, w, ev)
    }
}

/// Install the subscriber. `level` is --log-level; RUST_LOG, when set, refines it.
pub fn init(member: &str, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},openraft=error,h2=warn,hyper=warn,tower=warn"
        ))
    });
    let format = tracing_subscriber::fmt::format().with_target(false);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(WithMember {
            name: member.to_string(),
            inner: format,
        })
        .init();
}
