//! The bad-input matrix's gRPC half, generated from descriptors: for each field of a request
//! message (recursing into nested, repeated and map message fields to a fixed depth), a valid
//! base request with only that field made hostile, encoded as raw bytes; a raw-bytes codec to
//! send them with; and the tally of outcomes both halves share.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use prost::Message as _;
use prost::bytes::{Buf, BufMut, Bytes};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// How deep the generator follows message fields (the request is depth 0).
pub const MAX_DEPTH: usize = 6;
/// How many fields of one method get the 1 MiB string; the others get 64 KiB.
const MEGABYTE_FIELDS_PER_METHOD: usize = 3;
/// Stands for invalid UTF-8 while a message is built: replaced byte for byte in the encoding,
/// so that every enclosing length stays right (prost-reflect refuses invalid UTF-8 itself).
const NOT_UTF8_MARKER: &str = "\u{e000}not-utf-8\u{e000}";
/// gRPC's (and tonic's) default limit on a decoded request message.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// One request of the matrix.
pub struct Case {
    /// The field path made hostile (`credentials.authorization`); `None` for whole-message cases.
    pub field: Option<String>,
    /// The path's field names, outermost first, for telling whether an error names the field.
    pub names: Vec<String>,
    /// What was sent, in words.
    pub value: String,
    pub body: Vec<u8>,
}

/// The hostile requests for `base`: one field at a time, then the whole message.
pub fn cases(base: &DynamicMessage) -> Vec<Case> {
    let mut generator = Generator { base, cases: Vec::new(), megabytes_left: MEGABYTE_FIELDS_PER_METHOD };
    generator.message_fields(&base.descriptor(), &[], 0);
    let encoded = base.encode_to_vec();
    generator.whole_message(&encoded);
    generator.cases
}

/// A step from a message to a field's value: the field, and for a repeated or map field of
/// messages the element followed (the first, or one made up).
type Path = Vec<FieldDescriptor>;

struct Generator<'a> {
    base: &'a DynamicMessage,
    cases: Vec<Case>,
    megabytes_left: usize,
}

impl Generator<'_> {
    fn message_fields(&mut self, message: &MessageDescriptor, prefix: &[FieldDescriptor], depth: usize) {
        for field in message.fields() {
            let mut path = prefix.to_vec();
            path.push(field.clone());
            self.field(&path, depth);
        }
    }

    fn field(&mut self, path: &Path, depth: usize) {
        let Some(field) = path.last().cloned() else { return };
        if field.is_map() {
            self.map_field(path, &field, depth);
        } else if field.is_list() {
            self.list_field(path, &field, depth);
        } else {
            match field.kind() {
                Kind::Message(message) => self.message_field(path, &message, depth),
                kind => {
                    for (value, description) in self.scalars(&kind) {
                        self.push(path, Some(value), description);
                    }
                    if depth == 0 {
                        self.wrong_wire_type(&field);
                    }
                }
            }
        }
    }

    fn message_field(&mut self, path: &Path, message: &MessageDescriptor, depth: usize) {
        self.push(path, None, "unset".into());
        self.push(path, Some(Value::Message(DynamicMessage::new(message.clone()))), "an empty message".into());
        match message.full_name() {
            "google.protobuf.Timestamp" => {
                for (seconds, nanos, description) in timestamps() {
                    let mut at = DynamicMessage::new(message.clone());
                    at.set_field_by_name("seconds", Value::I64(seconds));
                    at.set_field_by_name("nanos", Value::I32(nanos));
                    self.push(path, Some(Value::Message(at)), description.into());
                }
            }
            "google.protobuf.Duration" => {
                for (seconds, nanos, description) in durations() {
                    let mut duration = DynamicMessage::new(message.clone());
                    duration.set_field_by_name("seconds", Value::I64(seconds));
                    duration.set_field_by_name("nanos", Value::I32(nanos));
                    self.push(path, Some(Value::Message(duration)), description.into());
                }
            }
            _ if depth < MAX_DEPTH => self.message_fields(message, path, depth + 1),
            _ => {}
        }
    }

    fn list_field(&mut self, path: &Path, field: &FieldDescriptor, depth: usize) {
        self.push(path, Some(Value::List(Vec::new())), "an empty list".into());
        let kind = field.kind();
        let plain = plain_value(&kind);
        self.push(path, Some(Value::List(vec![plain.clone(); 10_000])), "10000 elements".into());
        match kind {
            Kind::Message(message) => {
                if depth < MAX_DEPTH && !is_well_known(&message) {
                    self.message_fields(&message, path, depth + 1);
                }
            }
            kind => {
                for (value, description) in self.scalars(&kind) {
                    self.push(path, Some(Value::List(vec![plain.clone(), value])), format!("an element {description}"));
                }
            }
        }
    }

    fn map_field(&mut self, path: &Path, field: &FieldDescriptor, depth: usize) {
        let Kind::Message(entry) = field.kind() else { return };
        let (key_kind, value_kind) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
        let plain = plain_value(&value_kind);
        self.push(path, Some(Value::Map(HashMap::new())), "an empty map".into());
        let many: HashMap<MapKey, Value> = (0..10_000).map(|i| (map_key(&key_kind, i), plain.clone())).collect();
        self.push(path, Some(Value::Map(many)), "10000 entries".into());
        if key_kind == Kind::String {
            for (key, description) in self.strings() {
                let Value::String(key) = key else { continue };
                let map = HashMap::from([(MapKey::String(key), plain.clone())]);
                self.push(path, Some(Value::Map(map)), format!("a key {description}"));
            }
        }
        match value_kind {
            Kind::Message(message) => {
                if depth < MAX_DEPTH && !is_well_known(&message) {
                    self.message_fields(&message, path, depth + 1);
                }
            }
            kind => {
                for (value, description) in self.scalars(&kind) {
                    let map = HashMap::from([(map_key(&key_kind, 0), value)]);
                    self.push(path, Some(Value::Map(map)), format!("a value {description}"));
                }
            }
        }
    }

    /// The hostile values of a scalar kind.
    fn scalars(&mut self, kind: &Kind) -> Vec<(Value, String)> {
        let named = |values: Vec<(Value, &str)>| values.into_iter().map(|(v, d)| (v, d.to_owned())).collect();
        match kind {
            Kind::String => self.strings(),
            Kind::Bytes => named(vec![
                (Value::Bytes(Bytes::new()), "empty bytes"),
                (Value::Bytes((0..=255u8).collect::<Vec<_>>().into()), "every byte value"),
                (Value::Bytes(vec![0xa5; 1 << 20].into()), "1 MiB of bytes"),
            ]),
            Kind::Bool => named(vec![(Value::Bool(true), "true"), (Value::Bool(false), "false")]),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => named(vec![
                (Value::I32(0), "0"),
                (Value::I32(-1), "-1"),
                (Value::I32(i32::MIN), "i32::MIN"),
                (Value::I32(i32::MAX), "i32::MAX"),
            ]),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => named(vec![
                (Value::I64(0), "0"),
                (Value::I64(-1), "-1"),
                (Value::I64(i64::MIN), "i64::MIN"),
                (Value::I64(i64::MAX), "i64::MAX"),
            ]),
            Kind::Uint32 | Kind::Fixed32 => {
                named(vec![(Value::U32(0), "0"), (Value::U32(1), "1"), (Value::U32(u32::MAX), "u32::MAX")])
            }
            Kind::Uint64 | Kind::Fixed64 => {
                named(vec![(Value::U64(0), "0"), (Value::U64(1), "1"), (Value::U64(u64::MAX), "u64::MAX")])
            }
            Kind::Double => named(vec![
                (Value::F64(0.0), "0.0"),
                (Value::F64(-1.0), "-1.0"),
                (Value::F64(f64::NAN), "NaN"),
                (Value::F64(f64::INFINITY), "+inf"),
                (Value::F64(f64::NEG_INFINITY), "-inf"),
                (Value::F64(f64::MAX), "f64::MAX"),
            ]),
            Kind::Float => named(vec![
                (Value::F32(0.0), "0.0"),
                (Value::F32(f32::NAN), "NaN"),
                (Value::F32(f32::INFINITY), "+inf"),
                (Value::F32(f32::MIN), "f32::MIN"),
            ]),
            Kind::Enum(descriptor) => {
                let top = descriptor.values().map(|v| v.number()).max().unwrap_or(0);
                vec![
                    (Value::EnumNumber(0), "0 (unspecified)".to_owned()),
                    (Value::EnumNumber(-1), "unknown value -1".to_owned()),
                    (Value::EnumNumber(top + 1), format!("unknown value {}", top + 1)),
                    (Value::EnumNumber(i32::MAX), "unknown value i32::MAX".to_owned()),
                ]
            }
            Kind::Message(_) => Vec::new(),
        }
    }

    fn strings(&mut self) -> Vec<(Value, String)> {
        let long = if self.megabytes_left > 0 {
            self.megabytes_left -= 1;
            ("x".repeat(1 << 20), "a 1 MiB string")
        } else {
            ("x".repeat(64 << 10), "a 64 KiB string")
        };
        [
            (String::new(), "empty"),
            (" \t\r\n ".to_owned(), "whitespace"),
            ("a\0b".to_owned(), "with NUL"),
            ("\u{1}\u{1b}[31m\r\n\u{7f}\u{85}".to_owned(), "control characters"),
            ("\u{202e}\u{fffd}\u{10ffff}\u{1f642}\u{1c5}\u{301}".to_owned(), "odd Unicode"),
            ("../../%2e%2e/%00'\";--".to_owned(), "path and quote tricks"),
            long,
            (NOT_UTF8_MARKER.to_owned(), "not UTF-8"),
        ]
        .into_iter()
        .map(|(s, d)| (Value::String(s), d.to_owned()))
        .collect()
    }

    /// The base with the field at `path` set to `value` (cleared when `None`).
    fn push(&mut self, path: &Path, value: Option<Value>, description: String) {
        let mut message = self.base.clone();
        set_at(&mut message, path, value);
        let mut body = message.encode_to_vec();
        replace_marker(&mut body);
        let names: Vec<String> = path.iter().map(|f| f.name().to_owned()).collect();
        self.cases.push(Case { field: Some(names.join(".")), names, value: description, body });
    }

    /// The field sent again with a wire type that is not its own (the last occurrence wins, so
    /// the decoder must look at it).
    fn wrong_wire_type(&mut self, field: &FieldDescriptor) {
        let mut body = self.base.encode_to_vec();
        let number = field.number();
        let length_delimited = matches!(field.kind(), Kind::String | Kind::Bytes | Kind::Message(_));
        if length_delimited {
            put_varint(&mut body, u64::from(number) << 3);
            put_varint(&mut body, 1);
        } else {
            put_varint(&mut body, (u64::from(number) << 3) | 2);
            put_varint(&mut body, 3);
            body.extend_from_slice(b"abc");
        }
        let names = vec![field.name().to_owned()];
        self.cases.push(Case {
            field: Some(field.name().to_owned()),
            names,
            value: "the wrong wire type".into(),
            body,
        });
    }

    /// Cases about the message as a whole.
    fn whole_message(&mut self, encoded: &[u8]) {
        let mut whole = |value: &str, body: Vec<u8>| {
            self.cases.push(Case { field: None, names: Vec::new(), value: value.to_owned(), body });
        };
        whole("an empty message", Vec::new());
        let mut unknown = encoded.to_vec();
        put_varint(&mut unknown, 9999 << 3);
        put_varint(&mut unknown, 7);
        put_varint(&mut unknown, (9998 << 3) | 2);
        put_varint(&mut unknown, 1024);
        unknown.extend(std::iter::repeat_n(0u8, 1024));
        whole("unknown fields", unknown);
        whole("garbage bytes", vec![0xff; 16]);
        if !encoded.is_empty() {
            whole("truncated", encoded[..encoded.len() - 1].to_vec());
        }
        let mut nested = encoded.to_vec();
        // Unknown field 9997 as 200 nested groups: past prost's recursion limit (100).
        for _ in 0..200 {
            put_varint(&mut nested, (9997 << 3) | 3);
        }
        for _ in 0..200 {
            put_varint(&mut nested, (9997 << 3) | 4);
        }
        whole("200 nested groups", nested);
        let mut oversized = encoded.to_vec();
        put_varint(&mut oversized, (9996 << 3) | 2);
        put_varint(&mut oversized, MAX_MESSAGE as u64);
        oversized.extend(std::iter::repeat_n(0u8, MAX_MESSAGE));
        whole("over the 4 MiB limit", oversized);
    }
}

/// Timestamps far in the past and future, and out of range.
fn timestamps() -> Vec<(i64, i32, &'static str)> {
    vec![
        (0, 0, "the epoch"),
        (-62_135_596_800, 0, "0001-01-01"),
        (253_402_300_799, 999_999_999, "9999-12-31T23:59:59.999999999"),
        (-62_135_596_801, 0, "before 0001-01-01"),
        (253_402_300_800, 0, "after 9999-12-31"),
        (i64::MIN, 0, "seconds i64::MIN"),
        (i64::MAX, 0, "seconds i64::MAX"),
        (0, -1, "nanos -1"),
        (0, 1_000_000_000, "nanos 1e9"),
        (0, i32::MAX, "nanos i32::MAX"),
    ]
}

fn durations() -> Vec<(i64, i32, &'static str)> {
    vec![(0, 0, "zero"), (-1, 0, "negative"), (i64::MAX, 0, "seconds i64::MAX"), (0, -1_000_000_000, "nanos -1e9")]
}

/// Messages whose fields the generator does not open: their hostile values are generated whole.
fn is_well_known(message: &MessageDescriptor) -> bool {
    matches!(message.full_name(), "google.protobuf.Timestamp" | "google.protobuf.Duration")
}

/// An ordinary value of a kind, for filling lists and maps.
fn plain_value(kind: &Kind) -> Value {
    match kind {
        Kind::String => Value::String("x".into()),
        Kind::Message(message) => Value::Message(DynamicMessage::new(message.clone())),
        Kind::Enum(_) => Value::EnumNumber(0),
        kind => {
            let field_kind = kind.clone();
            Value::default_value(&field_kind)
        }
    }
}

fn map_key(kind: &Kind, i: u32) -> MapKey {
    match kind {
        Kind::String => MapKey::String(format!("k{i}")),
        Kind::Bool => MapKey::Bool(i % 2 == 1),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(i32::try_from(i).unwrap_or(0)),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(i64::from(i)),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(i),
        _ => MapKey::U64(u64::from(i)),
    }
}

/// Sets (or clears) the field at `path`, creating the messages on the way: in a repeated field
/// the first element, in a map the first entry (or one keyed `k0`).
fn set_at(message: &mut DynamicMessage, path: &[FieldDescriptor], value: Option<Value>) {
    let Some((field, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        match value {
            Some(value) => message.set_field(field, value),
            None => message.clear_field(field),
        }
        return;
    }
    let inner = match field.kind() {
        Kind::Message(inner) if field.is_map() => inner.map_entry_value_field().kind(),
        kind => kind,
    };
    let Kind::Message(inner) = inner else { return };
    let key_kind = if field.is_map() { Some(field.kind()) } else { None };
    let slot = message.get_field_mut(field);
    let next = match slot {
        Value::Message(next) => next,
        Value::List(list) => {
            if list.is_empty() {
                list.push(Value::Message(DynamicMessage::new(inner)));
            }
            match list.first_mut() {
                Some(Value::Message(next)) => next,
                _ => return,
            }
        }
        Value::Map(map) => {
            let key = match map.keys().next() {
                Some(key) => key.clone(),
                None => match key_kind {
                    Some(Kind::Message(entry)) => map_key(&entry.map_entry_key_field().kind(), 0),
                    _ => return,
                },
            };
            match map.entry(key).or_insert_with(|| Value::Message(DynamicMessage::new(inner))) {
                Value::Message(next) => next,
                _ => return,
            }
        }
        _ => return,
    };
    set_at(next, rest, value);
}

/// Replaces every [`NOT_UTF8_MARKER`] in an encoding with as many bytes that are not UTF-8.
fn replace_marker(body: &mut [u8]) {
    let marker = NOT_UTF8_MARKER.as_bytes();
    let mut i = 0;
    while i + marker.len() <= body.len() {
        if &body[i..i + marker.len()] == marker {
            for (j, b) in body[i..i + marker.len()].iter_mut().enumerate() {
                // 0xff never occurs in UTF-8; a lone continuation byte and an overlong `/` too.
                *b = [0xff, 0x80, 0xc0, 0xaf][j % 4];
            }
            i += marker.len();
        } else {
            i += 1;
        }
    }
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Sends and receives messages as the bytes they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The outcomes of a matrix, counted, with the failing cases kept for the report.
#[derive(Default)]
pub struct Tally {
    pub counts: BTreeMap<String, usize>,
    pub failures: Vec<String>,
    /// INVALID_ARGUMENT answers that did not name the field they were about.
    pub unnamed: Vec<String>,
}

impl Tally {
    pub fn count(&mut self, outcome: &str) {
        *self.counts.entry(outcome.to_owned()).or_default() += 1;
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// `N cases: outcome n, ...`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.counts.iter().map(|(outcome, n)| format!("{outcome} {n}")).collect();
        format!("{} cases: {}", self.total(), parts.join(", "))
    }
}

/// A per-call limit: longer is a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an answer's words name one of `names` (a field of the path), as keygate spells
/// fields: the proto name, maybe with an index or a parent (`scopes[1]`, `limits.max_quota`).
pub fn names_field(said: &[String], names: &[String]) -> bool {
    said.iter().any(|text| names.iter().any(|name| !name.is_empty() && text.contains(name.as_str())))
}
