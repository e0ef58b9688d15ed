//! Reading a key's value from a Secret.

use k8s_openapi::api::core::v1::Secret;

/// The raw value of `key` in a Secret as read from the API (`stringData`
/// is write-only, so only `data` is consulted).
pub(super) fn secret_bytes<'a>(s: &'a Secret, key: &str) -> Option<&'a [u8]> {
    s.data.as_ref()?.get(key).map(|b| b.0.as_slice())
}

/// The value of `key` as UTF-8 text.
pub(super) fn secret_value(s: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret_bytes(s, key)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_come_from_data_only() {
        use k8s_openapi::ByteString;
        let s = Secret {
            data: Some(
                [
                    ("url".to_string(), ByteString(b"redis://r".to_vec())),
                    ("bin".to_string(), ByteString(vec![0xff, 0xfe])),
                ]
                .into(),
            ),
            string_data: Some([("plain".to_string(), "x".to_string())].into()),
            ..Secret::default()
        };
        // (key, raw bytes, UTF-8 text)
        type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);
        let cases: &[Case] = &[
            ("url", Some(b"redis://r"), Some("redis://r")),
            ("bin", Some(&[0xff, 0xfe]), None),
            ("plain", None, None),
            ("missing", None, None),
        ];
        for (key, bytes, text) in cases {
            assert_eq!(secret_bytes(&s, key), *bytes, "{key}");
            assert_eq!(secret_value(&s, key).as_deref(), *text, "{key}");
        }
        assert_eq!(secret_bytes(&Secret::default(), "url"), None);
    }
}
