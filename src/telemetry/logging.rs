//! `[log]` and the tracing subscriber: human-readable or JSON lines on stderr (stdout
//! belongs to the landmark JSON lines).

use serde::{Deserialize, Serialize};

/// How log lines look (config `log.format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. "info" or "spectrald=debug".
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Installs the global tracing subscriber: human-readable or JSON lines, on stderr
/// (stdout belongs to the landmark JSON lines).
pub fn init_logging(config: &LogConfig) {
    // ONNX Runtime logs every graph transformation at info, async-nats every connection
    // event and every failed reconnect attempt (spectrald logs each change once): keep
    // both to warnings, and the reconnect loop quiet, by default.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SPECTRALD_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "ort=warn,async_nats=warn,async_nats::connector=off,{}",
                config.level
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_wanted(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests building several pipelines) keeps the first subscriber.
    let _ = result;
}

/// Colour codes only for a person at a terminal: not in files or pipes (journald, `2>log`),
/// and never when `NO_COLOR` is set to anything non-empty (https://no-color.org).
fn colour_wanted(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(!colour_wanted(false, None));
        assert!(!colour_wanted(true, Some("1".as_ref())));
        // An empty NO_COLOR does not count, as the convention says.
        assert!(colour_wanted(true, Some("".as_ref())));
    }
}
