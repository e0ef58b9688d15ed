//! The queue-name rule, written once: the runtime checks names with
//! [`validate_queue_name`], `#[asynctask]` checks its literal at compile time
//! with [`is_valid_queue_name`], and the operator's CRD carries
//! [`QUEUE_NAME_PATTERN`]; all are built from the same two pieces.

macro_rules! queue_name_punct {
    () => {
        "_.-"
    };
}
macro_rules! queue_name_max_len {
    () => {
        64
    };
}

/// Longest queue name, in bytes (the name is part of Redis keys).
pub const QUEUE_NAME_MAX_LEN: usize = queue_name_max_len!();
/// The characters a queue name may hold besides ASCII letters and digits.
pub const QUEUE_NAME_PUNCT: &str = queue_name_punct!();
/// The queue-name rule as a regular expression (RE2 and ECMA-262 alike), for
/// schemas: the `PymService` CRD's `spec.workers.queues[*]` pattern.
pub const QUEUE_NAME_PATTERN: &str = concat!(
    "^[A-Za-z0-9",
    queue_name_punct!(),
    "]{1,",
    queue_name_max_len!(),
    "}$"
);
macro_rules! queue_name_rule {
    () => {
        concat!(
            "1 to ",
            queue_name_max_len!(),
            " characters, each an ASCII letter, a digit or one of \"",
            queue_name_punct!(),
            "\""
        )
    };
}
/// The queue-name rule in words, for error messages.
pub const QUEUE_NAME_RULE: &str = queue_name_rule!();
/// The compile error of `#[asynctask(queue = "..")]` with an invalid name.
#[doc(hidden)]
pub const QUEUE_NAME_MACRO_ERROR: &str = concat!(
    "invalid queue name in #[asynctask(queue = ..)]: expected ",
    queue_name_rule!()
);

/// Whether `name` is a valid queue name ([`QUEUE_NAME_PATTERN`]). A `const fn`,
/// so `#[asynctask(queue = "..")]` checks its literal at compile time (a bad
/// name fails const evaluation with [`QUEUE_NAME_MACRO_ERROR`]).
pub const fn is_valid_queue_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > QUEUE_NAME_MAX_LEN {
        return false;
    }
    let punct = QUEUE_NAME_PUNCT.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let mut ok = c.is_ascii_alphanumeric();
        let mut j = 0;
        while !ok && j < punct.len() {
            ok = c == punct[j];
            j += 1;
        }
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Check a queue name: [`QUEUE_NAME_RULE`].
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    if is_valid_queue_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid queue name {name:?}: expected {QUEUE_NAME_RULE}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        let long_ok = "q".repeat(QUEUE_NAME_MAX_LEN);
        let too_long = "q".repeat(QUEUE_NAME_MAX_LEN + 1);
        for ok in [
            "default",
            "emails.high-1_x",
            "_",
            "-a",
            "A9",
            long_ok.as_str(),
        ] {
            assert!(validate_queue_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "orders:v2",
            "a{b}",
            "has space",
            "tab\t",
            "é",
            "a/b",
            too_long.as_str(),
        ] {
            let e = validate_queue_name(bad).unwrap_err();
            assert!(e.contains(QUEUE_NAME_RULE), "{e}");
        }
    }

    #[test]
    fn queue_rule_text() {
        assert_eq!(QUEUE_NAME_PATTERN, "^[A-Za-z0-9_.-]{1,64}$");
        assert_eq!(
            QUEUE_NAME_RULE,
            "1 to 64 characters, each an ASCII letter, a digit or one of \"_.-\""
        );
    }
}
