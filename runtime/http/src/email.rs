//! `Email`: a string known to be an email address, by the same rule the
//! spec's `format: email` is validated with (the jsonschema crate's), so a
//! value the request validation accepts is always an `Email`. The type
//! `api!` generates for `{type: string, format: email}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::sync::LazyLock;

/// An email address (`format: email`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why a string is not an [`Email`]; it does not repeat the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an email address")]
pub struct NotAnEmail;

/// The `format: email` rule, compiled once.
static RULE: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&serde_json::json!({"type": "string", "format": "email"}))
        .expect("a constant schema")
});

impl Email {
    /// `s`, if it is an email address.
    pub fn parse(s: impl Into<String>) -> Result<Self, NotAnEmail> {
        let s = s.into();
        let value = Value::String(s);
        if RULE.is_valid(&value) {
            let Value::String(s) = value else {
                unreachable!("built as a string above")
            };
            Ok(Email(s))
        } else {
            Err(NotAnEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Email {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl TryFrom<String> for Email {
    type Error = NotAnEmail;
    fn try_from(s: String) -> Result<Self, NotAnEmail> {
        Email::parse(s)
    }
}

impl TryFrom<&str> for Email {
    type Error = NotAnEmail;
    fn try_from(s: &str) -> Result<Self, NotAnEmail> {
        Email::parse(s)
    }
}

impl std::str::FromStr for Email {
    type Err = NotAnEmail;
    fn from_str(s: &str) -> Result<Self, NotAnEmail> {
        Email::parse(s)
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Email::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_by_the_validation_rule() {
        let cases = [
            ("ann@example.com", true),
            ("a.b+tag@sub.example.org", true),
            ("nope", false),
            ("@example.com", false),
            ("ann@", false),
            ("", false),
        ];
        for (s, ok) in cases {
            assert_eq!(Email::parse(s).is_ok(), ok, "{s:?}");
            // the same answer as the body validation's `format: email`
            assert_eq!(RULE.is_valid(&Value::String(s.into())), ok, "{s:?}");
        }
    }

    #[test]
    fn serde_round_trip_refuses_non_emails() {
        let e: Email = serde_json::from_str("\"ann@example.com\"").unwrap();
        assert_eq!(e.as_str(), "ann@example.com");
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"ann@example.com\"");
        let err = serde_json::from_str::<Email>("\"hunter2\"").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
