//! The variant of a response enum for a status key of the spec: `201` →
//! `Created`, `2XX` → `Status2xx` (which carries the status code),
//! `default` → `Default` (carries it too).

/// How a response key becomes a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusKey {
    /// One code: the variant sends it.
    Code(u16),
    /// A range (`4XX`) or `default`: the handler chooses the code within
    /// `min..=max`.
    Range { min: u16, max: u16 },
}

/// The variant name and kind of `key`, or why it is not a status key.
pub fn variant(key: &str) -> Result<(String, StatusKey), String> {
    let bad = || {
        format!(
            "response key '{key}': expected a status code (100-599), a range such as 2XX, or default"
        )
    };
    if key == "default" {
        return Ok(("Default".into(), StatusKey::Range { min: 100, max: 599 }));
    }
    let b = key.as_bytes();
    if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"XX") {
        let min = u16::from(b[0] - b'0') * 100;
        return Ok((
            format!("Status{}xx", b[0] as char),
            StatusKey::Range { min, max: min + 99 },
        ));
    }
    let code: u16 = key.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) {
        return Err(bad());
    }
    let name = match name_of(code) {
        Some(n) => n.to_string(),
        None => format!("Status{code}"),
    };
    Ok((name, StatusKey::Code(code)))
}

/// The reason phrase of a registered code, as an identifier.
fn name_of(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Continue",
        101 => "SwitchingProtocols",
        200 => "Ok",
        201 => "Created",
        202 => "Accepted",
        203 => "NonAuthoritativeInformation",
        204 => "NoContent",
        205 => "ResetContent",
        206 => "PartialContent",
        300 => "MultipleChoices",
        301 => "MovedPermanently",
        302 => "Found",
        303 => "SeeOther",
        304 => "NotModified",
        307 => "TemporaryRedirect",
        308 => "PermanentRedirect",
        400 => "BadRequest",
        401 => "Unauthorized",
        402 => "PaymentRequired",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        408 => "RequestTimeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "LengthRequired",
        412 => "PreconditionFailed",
        413 => "PayloadTooLarge",
        414 => "UriTooLong",
        415 => "UnsupportedMediaType",
        416 => "RangeNotSatisfiable",
        417 => "ExpectationFailed",
        418 => "ImATeapot",
        422 => "UnprocessableEntity",
        423 => "Locked",
        424 => "FailedDependency",
        428 => "PreconditionRequired",
        429 => "TooManyRequests",
        431 => "RequestHeaderFieldsTooLarge",
        451 => "UnavailableForLegalReasons",
        500 => "InternalServerError",
        501 => "NotImplemented",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        505 => "HttpVersionNotSupported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status key and its variant, or `Err(())` when it is refused.
    type Case = (&'static str, Result<(&'static str, StatusKey), ()>);

    #[test]
    fn variants() {
        let cases: &[Case] = &[
            ("200", Ok(("Ok", StatusKey::Code(200)))),
            ("201", Ok(("Created", StatusKey::Code(201)))),
            ("422", Ok(("UnprocessableEntity", StatusKey::Code(422)))),
            ("299", Ok(("Status299", StatusKey::Code(299)))),
            (
                "2XX",
                Ok(("Status2xx", StatusKey::Range { min: 200, max: 299 })),
            ),
            (
                "4xx",
                Ok(("Status4xx", StatusKey::Range { min: 400, max: 499 })),
            ),
            (
                "default",
                Ok(("Default", StatusKey::Range { min: 100, max: 599 })),
            ),
            ("600", Err(())),
            ("6XX", Err(())),
            ("20", Err(())),
            ("ok", Err(())),
        ];
        for (key, want) in cases {
            let got = variant(key);
            match (want, &got) {
                (Ok((name, kind)), Ok((n, k))) => {
                    assert_eq!((n.as_str(), k), (*name, kind), "{key}");
                }
                (Err(()), Err(e)) => {
                    assert!(e.starts_with(&format!("response key '{key}'")), "{e}")
                }
                _ => panic!("{key}: {got:?}"),
            }
        }
    }
}
