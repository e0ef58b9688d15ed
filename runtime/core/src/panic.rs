//! A panic payload as text: what the HTTP layer, the worker and the panic
//! hook log when user code panics.

use std::any::Any;

/// The message of a panic payload (`panic!("...")` gives a `&str` or a
/// `String`; anything else is named as such).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let cases: [(Box<dyn Any + Send>, &str); 3] = [
            (Box::new("static"), "static"),
            (Box::new(String::from("owned 7")), "owned 7"),
            (Box::new(42_u32), "panic with a non-string payload"),
        ];
        for (payload, want) in cases {
            assert_eq!(panic_message(payload.as_ref()), want);
        }
    }
}
