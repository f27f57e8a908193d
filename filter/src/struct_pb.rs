//! Decodes a `google.protobuf.Struct` in protobuf wire format into JSON.
//!
//! Envoy hands a wasm plugin its `configuration` as the string of a
//! `StringValue`, but as the *serialized message* of any other type, so a
//! `Struct` arrives as protobuf bytes. Only the Struct/Value/ListValue shapes
//! are understood; anything else is an error, never a guess.

use serde_json::{Map, Number, Value};

/// Fields 1-6 of `google.protobuf.Value`.
const NULL: u64 = 1;
const NUMBER: u64 = 2;
const STRING: u64 = 3;
const BOOL: u64 = 4;
const STRUCT: u64 = 5;
const LIST: u64 = 6;

/// Deepest nesting accepted (a config is small and shallow).
const MAX_DEPTH: usize = 64;

pub fn decode_struct(bytes: &[u8]) -> Result<Value, String> {
    struct_fields(bytes, 0).map(Value::Object)
}

/// The `Struct` a filter wrote under `namespace` in an
/// `envoy.config.core.v3.Metadata` (field 1, `filter_metadata`, a map of
/// namespace to Struct), as JSON. What Envoy hands over for the `metadata`
/// property.
pub fn decode_metadata_namespace(bytes: &[u8], namespace: &str) -> Result<Option<Value>, String> {
    let mut reader = Reader { bytes };
    let mut found = None;
    while let Some((number, field)) = reader.next()? {
        let (1, Field::Bytes(entry)) = (number, field) else {
            // typed_filter_metadata and anything newer: not ours to read.
            continue;
        };
        let mut entry_reader = Reader { bytes: entry };
        let (mut key, mut value) = (None, None);
        while let Some((n, f)) = entry_reader.next()? {
            match (n, f) {
                (1, Field::Bytes(k)) => key = Some(k),
                (2, Field::Bytes(v)) => value = Some(v),
                _ => return Err("malformed filter_metadata entry".into()),
            }
        }
        if key == Some(namespace.as_bytes()) {
            found = Some(decode_struct(value.unwrap_or_default())?);
        }
    }
    Ok(found)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or("truncated varint")?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let (head, rest) = self.bytes.split_at_checked(8).ok_or("truncated fixed64")?;
                self.bytes = rest;
                Field::Fixed64(head.try_into().map_err(|_| "truncated fixed64")?)
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                let (head, rest) = self.bytes.split_at_checked(len).ok_or("truncated field")?;
                self.bytes = rest;
                Field::Bytes(head)
            }
            other => return Err(format!("unexpected wire type {other}")),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn struct_fields(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let mut map = Map::new();
    let mut reader = Reader { bytes };
    while let Some((number, field)) = reader.next()? {
        let (1, Field::Bytes(entry)) = (number, field) else {
            return Err("not a google.protobuf.Struct".into());
        };
        let mut key = None;
        let mut value = Value::Null;
        let mut entry_reader = Reader { bytes: entry };
        while let Some((n, f)) = entry_reader.next()? {
            match (n, f) {
                (1, Field::Bytes(k)) => {
                    key = Some(String::from_utf8(k.to_vec()).map_err(|_| "key is not UTF-8")?)
                }
                (2, Field::Bytes(v)) => value = value_of(v, depth + 1)?,
                _ => return Err("malformed Struct entry".into()),
            }
        }
        map.insert(key.ok_or("Struct entry without a key")?, value);
    }
    Ok(map)
}

fn value_of(bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let mut reader = Reader { bytes };
    let mut value = Value::Null;
    while let Some((field_number, field)) = reader.next()? {
        value = match (field_number, field) {
            (NULL, Field::Varint(_)) => Value::Null,
            (NUMBER, Field::Fixed64(b)) => number(f64::from_le_bytes(b))?,
            (STRING, Field::Bytes(s)) => {
                Value::String(String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8")?)
            }
            (BOOL, Field::Varint(b)) => Value::Bool(b != 0),
            (STRUCT, Field::Bytes(s)) => Value::Object(struct_fields(s, depth + 1)?),
            (LIST, Field::Bytes(l)) => {
                let mut items = Vec::new();
                let mut list = Reader { bytes: l };
                while let Some((n, f)) = list.next()? {
                    let (1, Field::Bytes(item)) = (n, f) else {
                        return Err("malformed ListValue".into());
                    };
                    items.push(value_of(item, depth + 1)?);
                }
                Value::Array(items)
            }
            _ => return Err("not a google.protobuf.Value".into()),
        };
    }
    Ok(value)
}

/// Struct numbers are doubles; whole ones become JSON integers so integer
/// settings (byte limits) read as integers.
fn number(n: f64) -> Result<Value, String> {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Ok(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| "number is not finite".into())
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn a_namespace_is_found_in_envoy_metadata() {
        use super::*;
        // Metadata{filter_metadata: {"other": {}, "ns": {"k": "v"}}}, hand-encoded.
        let value = [0x1a, 0x01, b'v']; // Value.string_value
        let mut field = vec![0x0a, 0x01, b'k', 0x12, value.len() as u8];
        field.extend_from_slice(&value);
        let mut strukt = vec![0x0a, field.len() as u8];
        strukt.extend_from_slice(&field);
        let mut entry = vec![0x0a, 0x02, b'n', b's', 0x12, strukt.len() as u8];
        entry.extend_from_slice(&strukt);
        let mut metadata = vec![
            0x0a, 0x09, 0x0a, 0x05, b'o', b't', b'h', b'e', b'r', 0x12, 0x00,
        ];
        metadata.push(0x0a);
        metadata.push(entry.len() as u8);
        metadata.extend_from_slice(&entry);
        assert_eq!(
            decode_metadata_namespace(&metadata, "ns").unwrap(),
            Some(serde_json::json!({"k": "v"}))
        );
        assert_eq!(decode_metadata_namespace(&metadata, "none").unwrap(), None);
        assert!(decode_metadata_namespace(&[0x0a, 0x05, 0x01], "ns").is_err());
    }

    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn len_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn encode_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => {
                varint(NULL << 3, &mut out);
                varint(0, &mut out);
            }
            Value::Bool(b) => {
                varint(BOOL << 3, &mut out);
                varint(u64::from(*b), &mut out);
            }
            Value::Number(n) => {
                varint(NUMBER << 3 | 1, &mut out);
                out.extend_from_slice(&n.as_f64().unwrap().to_le_bytes());
            }
            Value::String(s) => len_field(STRING, s.as_bytes(), &mut out),
            Value::Array(items) => {
                let mut list = Vec::new();
                for item in items {
                    len_field(1, &encode_value(item), &mut list);
                }
                len_field(LIST, &list, &mut out);
            }
            Value::Object(m) => len_field(STRUCT, &encode_struct(m), &mut out),
        }
        out
    }

    /// What Envoy sends for a `Struct` configuration.
    pub fn encode_struct(m: &Map<String, Value>) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in m {
            let mut entry = Vec::new();
            len_field(1, k.as_bytes(), &mut entry);
            len_field(2, &encode_value(v), &mut entry);
            len_field(1, &entry, &mut out);
        }
        out
    }

    #[test]
    fn round_trips_every_value_kind() {
        let v = serde_json::json!({
            "max_request_bytes": 4096, "ratio": 0.5, "allow_batches": true, "nothing": null,
            "routing_headers": {"enabled": false, "name": "x-mcp-tool"}, "list": ["a", 1, [true]]
        });
        let bytes = encode_struct(v.as_object().unwrap());
        assert_eq!(decode_struct(&bytes).unwrap(), v);
    }

    #[test]
    fn garbage_is_an_error_not_a_guess() {
        assert!(decode_struct(b"\x0a\x05ab").is_err());
        assert!(decode_struct(b"\xff\xff\xff").is_err());
        assert!(decode_struct(b"\x10\x01").is_err());
    }
}
