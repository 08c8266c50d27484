//! The error a config section's `validate` returns: which field is wrong and why, with
//! the fix. Each component validates its own section; `config` prefixes the section's
//! path (`cameras[0].`) and adds the file name.

/// One invalid setting: its dotted path relative to the section, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from the enclosing section: `within("mqtt")` turns
    /// `buffer` into `mqtt.buffer`; an empty field names the section itself.
    pub fn within(self, section: &str) -> Invalid {
        let field = match (section.is_empty(), self.field.is_empty()) {
            (true, _) => self.field,
            (false, true) => section.to_owned(),
            (false, false) if self.field.starts_with('[') => format!("{section}{}", self.field),
            (false, false) => format!("{section}.{}", self.field),
        };
        Invalid { field, ..self }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::Invalid;

    #[test]
    fn within_prefixes_the_section_path() {
        let e = Invalid::new("buffer", "must be at least 1");
        assert_eq!(e.clone().within("mqtt").field, "mqtt.buffer");
        assert_eq!(e.within("").field, "buffer");
        assert_eq!(
            Invalid::new("", "x").within("cameras[0]").field,
            "cameras[0]"
        );
        assert_eq!(
            Invalid::new("[2].id", "x").within("cameras").field,
            "cameras[2].id"
        );
    }
}
