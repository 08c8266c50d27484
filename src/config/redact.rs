//! Secrets stay out of what the config reader prints: parse errors (the TOML library quotes
//! the offending line and often the value itself) and `check-config`'s echo of the file.
//!
//! A parse error names the line, column and key but never quotes the line's value (a
//! misspelt `passwrod` is not recognisable as a secret). A line is secret when its text
//! names one (password, token, secret, credentials, nkey, private key …): then the
//! values the TOML library quotes in its message are hidden too. Paths (`*_file`, `*_path`, `*_dir`) are not secrets; the files they
//! name are never read into a message.

/// Words that mark a key (or an inline table on the line) as holding a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "credential",
    "nkey",
    "private",
    "apikey",
    "api_key",
];
pub const HIDDEN: &str = "<hidden>";

/// Whether a key name holds a secret value.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let is_path = ["_file", "_path", "_dir"].iter().any(|s| key.ends_with(s));
    !is_path && SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Whether a line of TOML text mentions a secret key anywhere (inline tables included).
fn is_secret_line(line: &str) -> bool {
    line.split(['=', ',', '{', '}', '[', ']', '.'])
        .map(|part| part.trim().trim_matches('"'))
        .any(|word| !word.contains(' ') && is_secret_key(word))
}

/// One line for a TOML parse error of `text`: where it is, what is wrong, and the line
/// itself — with the value hidden when the line holds a secret.
pub fn parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let Some(span) = error.span() else {
        return format!("TOML parse error: {message}");
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let line_no = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    // The value on the line is never quoted: a misspelt secret key would not be recognised
    // as one. The key says where; the message says what (with the value, unless secret).
    let shown = match line.split_once('=') {
        Some((key, _)) => format!("{} = …", key.trim()),
        None => line.trim().to_owned(),
    };
    if is_secret_line(line) {
        format!(
            "TOML parse error at line {line_no}, column {column}: {} (the line sets a secret: `{}`)",
            without_quoted(&message),
            shown.replace('…', HIDDEN)
        )
    } else {
        format!("TOML parse error at line {line_no}, column {column}: {message}: `{shown}`")
    }
}

/// `message` with every `…`-quoted part (where the TOML library puts values) hidden.
fn without_quoted(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        // Odd parts were between backticks: values, except the syntax the parser expected
        // (`"`, `]`), which says what to fix and cannot be a secret.
        let syntax = part.len() <= 2 && part.chars().all(|c| c.is_ascii_punctuation());
        if i % 2 == 1 && !syntax {
            out.push_str(HIDDEN);
        } else if i % 2 == 1 {
            out.push('`');
            out.push_str(part);
            out.push('`');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Replaces the value of every secret key in a serialized config with `<hidden>`, and the
/// `user:password@` of any URL.
pub fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::String(text) if text.contains("://") && text.contains('@') => {
            *text = crate::nats::shown_url(text);
        }
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                if is_secret_key(key) && !matches!(v, toml::Value::Table(_)) {
                    *v = toml::Value::String(HIDDEN.into());
                } else {
                    redact(v);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        parse_error(text, &e)
    }

    #[test]
    fn a_broken_secret_line_is_never_echoed() {
        for text in [
            "[mqtt]\nhost = \"x\"\npassword = \"hunter2 oops\nusername = \"u\"\n",
            "[http]\ntoken = hunter2\n",
            "mqtt = { host = \"x\", password = \"hunter2 }\n",
        ] {
            let e = error_of(text);
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("line") && e.contains(HIDDEN), "{e}");
        }
    }

    #[test]
    fn other_lines_are_quoted_to_help() {
        let e = error_of("[queues]\ncapacity = \"eight\n");
        assert!(e.contains("line 2") && e.contains("`capacity = …`"), "{e}");
        let e = error_of("[queues\ncapacity = 1\n");
        assert!(e.contains("line 1") && e.contains("[queues"), "{e}");
    }

    #[test]
    fn values_quoted_in_messages_are_hidden() {
        assert_eq!(
            without_quoted("invalid type: integer `12345678`, expected a string"),
            "invalid type: integer <hidden>, expected a string"
        );
    }

    #[test]
    fn paths_are_not_secrets_but_passwords_are() {
        assert!(is_secret_key("password"));
        assert!(is_secret_key("token"));
        assert!(is_secret_key("nkey_seed"));
        assert!(
            !is_secret_key("kmeans_seed"),
            "a random seed is not a secret"
        );
        assert!(!is_secret_key("client_key_file"));
        assert!(!is_secret_key("keep_alive_s"));
        assert!(!is_secret_key("username"));
        let mut v: toml::Value = toml::from_str(
            "[mqtt]\npassword = \"p\"\nusername = \"u\"\n[http]\ntoken = \"t\"\nlisten = \"x\"\n\
             [nats]\nurl = \"nats://u:pw-in-url@a:4222\"\n",
        )
        .expect("toml");
        redact(&mut v);
        let text = toml::to_string(&v).expect("print");
        assert!(!text.contains("\"p\"") && !text.contains("\"t\""), "{text}");
        assert!(text.contains("username = \"u\""), "{text}");
        assert!(
            !text.contains("pw-in-url") && text.contains("nats://<hidden>@a:4222"),
            "{text}"
        );
    }
}
