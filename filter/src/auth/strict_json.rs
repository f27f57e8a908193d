//! A JSON object read into a `serde_json` map, refusing a key that appears
//! twice at any depth. Claims decide who the caller is: a token whose payload
//! says `"sub"` twice means two things to two parsers, so it means nothing.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON object without duplicate keys at any depth.
pub struct StrictObject(pub Map<String, Value>);

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrictValue::deserialize(d)?.0 {
            Value::Object(map) => Ok(StrictObject(map)),
            _ => Err(de::Error::custom("expected a JSON object")),
        }
    }
}

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_bool<E>(self, b: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Number(n.into())))
            }
            fn visit_u64<E>(self, n: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Number(n.into())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<StrictValue, E> {
                Number::from_f64(n)
                    .map(|n| StrictValue(Value::Number(n)))
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
                let mut items = Vec::new();
                while let Some(StrictValue(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(StrictValue(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let StrictValue(value) = map.next_value()?;
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    out.insert(key, value);
                }
                Ok(StrictValue(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_even_when_escaped() {
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"b":{"c":[1,{"d":2}]}}"#).is_ok());
        assert!(serde_json::from_str::<StrictObject>(r#"{"sub":"a","sub":"b"}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"{"sub":"a","s\u0075b":"b"}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"{"x":{"r":1,"r":2}}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"[1]"#).is_err());
    }
}
