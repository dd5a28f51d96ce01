//! The bad-input matrix's HTTP half, generated from the OpenAPI document the server serves (every
//! operation's path and query parameters and JSON body properties, recursing into nested
//! objects) and from the console's own forms: one hostile value at a time on a valid base request.

use serde_json::{Map, Value, json};

/// How deep the generator follows nested body objects (the body is depth 0).
const MAX_DEPTH: usize = 2;
/// The REST admin API's body limit (`MAX_BODY`).
pub const MAX_BODY: usize = 64 * 1024;

/// One request of the matrix.
#[derive(Clone, Debug)]
pub struct HttpCase {
    /// The operation, e.g. `POST /api/admin/api-keys`.
    pub operation: String,
    pub method: reqwest::Method,
    /// Path and query, percent-encoded as sent.
    pub target: String,
    pub content_type: Option<&'static str>,
    pub body: Option<Vec<u8>>,
    /// The field made hostile, as errors should name it; `None` when no field is to blame.
    pub field: Option<String>,
    pub names: Vec<String>,
    pub value: String,
}

/// An operation of the document, with what makes a valid request of it.
pub struct Operation<'a> {
    pub method: &'a str,
    /// The path template, e.g. `/api/admin/api-keys/{key_id}`.
    pub template: &'a str,
    pub spec: &'a Value,
    /// Valid values of the path parameters.
    pub path_values: &'a dyn Fn(&str) -> String,
    /// A valid body, when the operation takes one.
    pub base_body: Option<Value>,
}

/// Hostile strings: what a JSON string, a query value or a path segment can carry.
pub fn hostile_strings(long: usize) -> Vec<(String, String)> {
    vec![
        (String::new(), "empty".into()),
        (" \t\r\n ".into(), "whitespace".into()),
        ("a\0b".into(), "with NUL".into()),
        ("\u{1}\u{1b}[31m\r\n\u{7f}\u{85}".into(), "control characters".into()),
        ("\u{202e}\u{fffd}\u{10ffff}\u{1f642}\u{1c5}\u{301}".into(), "odd Unicode".into()),
        ("../../%2e%2e/'\";--<script>".into(), "path and quote tricks".into()),
        ("x".repeat(long), format!("a {} KiB string", long >> 10)),
    ]
}

/// Percent-encodes every byte that is not unreserved.
pub fn encode(text: &[u8]) -> String {
    let mut out = String::new();
    for &b in text {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Hostile query or path values, percent-encoded: strings, numbers out of range, odd times, and
/// bytes that are not UTF-8.
fn hostile_params() -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> =
        hostile_strings(16 << 10).into_iter().map(|(s, d)| (encode(s.as_bytes()), d)).collect();
    for (raw, description) in [
        ("-1", "-1"),
        ("0", "0"),
        ("2147483648", "2^31"),
        ("99999999999999999999", "past u64"),
        ("-9223372036854775809", "before i64"),
        ("1.5", "a fraction"),
        ("1e3", "an exponent"),
        ("abc", "letters"),
        ("true", "true"),
        ("0001-01-01T00:00:00Z", "year 1"),
        ("9999-12-31T23:59:59Z", "year 9999"),
        ("2026-13-45T99:99:99Z", "an impossible time"),
        ("+275760-09-13T00:00:00Z", "past chrono's range"),
    ] {
        values.push((encode(raw.as_bytes()), description.into()));
    }
    values.push(("%FF%FE%C0%AF".into(), "not UTF-8".into()));
    values.push(("%".into(), "a bare percent".into()));
    values
}

/// Hostile JSON values for a schema (after `$ref`s and nullable unions are resolved).
fn hostile_json(schema: &Value) -> Vec<(Value, String)> {
    let mut values: Vec<(Value, String)> = Vec::new();
    let kind = schema_type(schema);
    match kind.as_str() {
        "string" => {
            values.extend(hostile_strings(60 << 10).into_iter().map(|(s, d)| (Value::String(s), d)));
        }
        "integer" | "number" => {
            for (number, description) in [
                ("0", "0"),
                ("-1", "-1"),
                ("2147483648", "2^31"),
                ("4294967296", "2^32"),
                ("9223372036854775807", "i64::MAX"),
                ("18446744073709551616", "2^64"),
                ("-9223372036854775809", "before i64"),
                ("1.5", "a fraction"),
                ("1e308", "1e308"),
                ("-0", "-0"),
            ] {
                values.push((serde_json::from_str(number).unwrap_or(Value::Null), description.into()));
            }
            values.push((json!("1"), "a numeric string".into()));
        }
        "boolean" => {
            values.push((json!("true"), "the string true".into()));
            values.push((json!(1), "1".into()));
        }
        "array" => {
            values.push((json!([]), "an empty list".into()));
            values.push((Value::Array(vec![json!("x"); 10_000]), "10000 elements".into()));
            values.push((json!([null]), "a null element".into()));
            values.push((json!([1]), "a number element".into()));
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            if schema_type(&items) == "string" {
                for (s, d) in hostile_strings(60 << 10) {
                    values.push((json!([s]), format!("an element {d}")));
                }
            }
        }
        "object" => {
            values.push((json!({}), "an empty object".into()));
            values.push((json!({"zz_unknown": 1}), "an unknown member".into()));
            if schema.get("additionalProperties").is_some_and(|a| a.is_object() || a == &Value::Bool(true)) {
                for (s, d) in hostile_strings(60 << 10) {
                    values.push((json!({ s.clone(): "v" }), format!("a key {d}")));
                    values.push((json!({ "k": s }), format!("a value {d}")));
                }
                let many: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), json!("v"))).collect();
                values.push((Value::Object(many), "1000 entries".into()));
                values.push((json!({"k": 1}), "a number value".into()));
            }
        }
        _ => {}
    }
    // The wrong JSON types, each of them.
    for (value, description) in [
        (Value::Null, "null"),
        (json!(true), "a boolean"),
        (json!(12), "a number"),
        (json!("text"), "a string"),
        (json!(["x"]), "a list"),
        (json!({"a": 1}), "an object"),
    ] {
        let same = match &value {
            Value::Null => false,
            Value::Bool(_) => kind == "boolean",
            Value::Number(_) => kind == "integer" || kind == "number",
            Value::String(_) => kind == "string",
            Value::Array(_) => kind == "array",
            Value::Object(_) => kind == "object",
        };
        if !same {
            values.push((value, format!("the wrong type: {description}")));
        }
    }
    values
}

/// The schema's type, leaving out `null` ("string", "integer", ..., or "" when not known).
fn schema_type(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => {
            kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or_default().to_owned()
        }
        _ if schema.get("properties").is_some() => "object".into(),
        _ => String::new(),
    }
}

/// `schema` with its `$ref` and nullable `oneOf`/`anyOf` resolved against `document`.
pub fn resolve(document: &Value, schema: &Value) -> Value {
    if let Some(Value::String(reference)) = schema.get("$ref") {
        let pointer = reference.trim_start_matches('#');
        return resolve(document, document.pointer(pointer).unwrap_or(&Value::Null));
    }
    for union in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(choices)) = schema.get(union) {
            let choice = choices.iter().map(|c| resolve(document, c)).find(|c| schema_type(c) != "null");
            if let Some(choice) = choice {
                return choice;
            }
        }
    }
    schema.clone()
}

/// Every hostile request of one operation.
pub fn cases(document: &Value, operation: &Operation<'_>) -> Vec<HttpCase> {
    let method = reqwest::Method::from_bytes(operation.method.to_ascii_uppercase().as_bytes()).expect("method");
    let label = format!("{} {}", method, operation.template);
    let parameters: Vec<Value> = operation
        .spec
        .get("parameters")
        .and_then(Value::as_array)
        .map(|p| p.iter().map(|p| resolve(document, p)).collect())
        .unwrap_or_default();
    let path_of = |hostile: Option<(&str, &str)>| {
        let mut path = operation.template.to_owned();
        for parameter in parameters.iter().filter(|p| p["in"] == "path") {
            let name = parameter["name"].as_str().unwrap_or_default();
            let value = match hostile {
                Some((hostile_name, value)) if hostile_name == name => value.to_owned(),
                _ => encode((operation.path_values)(name).as_bytes()),
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        path
    };
    let body_bytes = operation.base_body.as_ref().map(|b| b.to_string().into_bytes());
    let content_type = operation.base_body.as_ref().map(|_| "application/json");
    let case = |target: String, body: Option<Vec<u8>>, field: Option<&str>, value: String| HttpCase {
        operation: label.clone(),
        method: method.clone(),
        target,
        content_type,
        body,
        field: field.map(str::to_owned),
        names: field.map(|f| f.split('.').map(str::to_owned).collect()).unwrap_or_default(),
        value,
    };
    let mut cases = Vec::new();
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap_or_default();
        let location = parameter["in"].as_str().unwrap_or_default();
        for (value, description) in hostile_params() {
            let target = match location {
                "path" => path_of(Some((name, &value))),
                "query" => format!("{}?{name}={value}", path_of(None)),
                _ => continue,
            };
            cases.push(case(target, body_bytes.clone(), Some(name), format!("{location} {description}")));
        }
        if location == "query" {
            let target = format!("{}?{name}=1&{name}=2", path_of(None));
            cases.push(case(target, body_bytes.clone(), Some(name), "query repeated".into()));
        }
    }
    let path = path_of(None);
    if let (Some(body), Some(spec)) =
        (&operation.base_body, operation.spec.pointer("/requestBody/content/application~1json/schema"))
    {
        let schema = resolve(document, spec);
        let mut fields = Vec::new();
        body_fields(document, &schema, &[], 0, &mut fields);
        for (field_path, field_schema) in fields {
            for (value, description) in hostile_json(&field_schema) {
                let mut hostile = body.clone();
                set_path(&mut hostile, &field_path, value);
                let field = field_path.join(".");
                cases.push(case(path.clone(), Some(hostile.to_string().into_bytes()), Some(&field), description));
            }
        }
        let mut unknown = body.clone();
        if let Value::Object(members) = &mut unknown {
            members.insert("zz_unknown".into(), json!(1));
        }
        cases.push(case(
            path.clone(),
            Some(unknown.to_string().into_bytes()),
            Some("zz_unknown"),
            "an unknown member".into(),
        ));
        let whole: Vec<(Vec<u8>, &str)> = vec![
            (b"{".to_vec(), "JSON cut short"),
            (b"{\"name\": \"a\",}".to_vec(), "a trailing comma"),
            (vec![0xff, 0xfe, b'{', b'}', 0xc0, 0xaf], "bytes that are not UTF-8"),
            (format!("{{\"name\": \"{}\"}}", "\u{0}").into_bytes(), "a raw NUL"),
            (b"[]".to_vec(), "a list"),
            (b"\"text\"".to_vec(), "a string"),
            (b"12".to_vec(), "a number"),
            (format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(), "200 nested lists"),
            (format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes(), "200 nested objects"),
            (vec![b' '; MAX_BODY + 1], "whitespace over the limit"),
            (format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_BODY)).into_bytes(), "a body over the limit"),
        ];
        for (bytes, description) in whole {
            cases.push(case(path.clone(), Some(bytes), Some("body"), format!("a body of {description}")));
        }
        let mut plain = case(path.clone(), body_bytes.clone(), None, "content type text/plain".into());
        plain.content_type = Some("text/plain");
        cases.push(plain);
        let mut form = case(path.clone(), body_bytes.clone(), None, "content type form".into());
        form.content_type = Some("application/x-www-form-urlencoded");
        cases.push(form);
    }
    cases
}

/// The body's fields, with their schemas: each property, and inside object properties theirs.
fn body_fields(document: &Value, schema: &Value, prefix: &[String], depth: usize, out: &mut Vec<(Vec<String>, Value)>) {
    let Some(Value::Object(properties)) = schema.get("properties") else { return };
    for (name, property) in properties {
        let property = resolve(document, property);
        let mut path = prefix.to_vec();
        path.push(name.clone());
        out.push((path.clone(), property.clone()));
        if depth < MAX_DEPTH && property.get("properties").is_some() {
            body_fields(document, &property, &path, depth + 1, out);
        }
    }
}

/// Sets the member at `path` in `body`, creating objects on the way.
fn set_path(body: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if !body.is_object() {
        *body = json!({});
    }
    let Value::Object(members) = body else { return };
    if rest.is_empty() {
        members.insert(first.clone(), value);
    } else {
        let inner = members.entry(first.clone()).or_insert_with(|| json!({}));
        set_path(inner, rest, value);
    }
}

/// A form's fields, in order; values stay as the caller gives them (unencoded).
pub type FormFields = Vec<(String, String)>;

/// Form fields with values as raw bytes (so that bytes that are not UTF-8 can be sent).
pub type RawForm = Vec<(String, Vec<u8>)>;

/// Encodes form fields.
pub fn encode_form(fields: &[(String, Vec<u8>)]) -> Vec<u8> {
    let parts: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}={}", encode(name.as_bytes()), encode(value))).collect();
    parts.join("&").into_bytes()
}

/// The hostile variants of a form: each field empty, odd, huge, not UTF-8, left out and repeated.
pub fn form_variants(base: &FormFields, megabyte: bool) -> Vec<(String, String, RawForm)> {
    let base: RawForm = base.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect();
    let mut variants = Vec::new();
    for (i, (name, value)) in base.iter().enumerate() {
        let mut values: Vec<(Vec<u8>, String)> =
            hostile_strings(16 << 10).into_iter().map(|(s, d)| (s.into_bytes(), d)).collect();
        values.push((vec![0xff, 0xfe, 0xc0, 0xaf], "not UTF-8".into()));
        if megabyte && i == 0 {
            values.push((vec![b'x'; 1 << 20], "a 1 MiB value".into()));
        }
        for (hostile, description) in values {
            let mut fields = base.clone();
            fields[i].1 = hostile;
            variants.push((name.clone(), description, fields));
        }
        let mut left_out = base.clone();
        left_out.remove(i);
        variants.push((name.clone(), "left out".into(), left_out));
        let mut repeated = base.clone();
        repeated.push((name.clone(), value.clone()));
        variants.push((name.clone(), "repeated".into(), repeated));
    }
    variants
}

/// The post forms of a console page: (action, fields with their values), read from its HTML.
pub fn page_forms(html: &str) -> Vec<(String, FormFields)> {
    let mut forms = Vec::new();
    for chunk in html.split("<form").skip(1) {
        let Some(end) = chunk.find("</form>") else { continue };
        let form = &chunk[..end];
        let head = &form[..form.find('>').unwrap_or(0)];
        if !attribute(head, "method").eq_ignore_ascii_case("post") {
            continue;
        }
        let action = attribute(head, "action");
        let mut fields = FormFields::new();
        for tag in ["<input", "<textarea", "<select"] {
            for element in form.split(tag).skip(1) {
                let element_head = &element[..element.find('>').unwrap_or(element.len())];
                let name = attribute(element_head, "name");
                if name.is_empty() || fields.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                let kind = attribute(element_head, "type");
                if (kind == "checkbox" || kind == "radio") && !element_head.contains(" checked") {
                    continue;
                }
                let value = match tag {
                    "<textarea" => element[element.find('>').map_or(0, |i| i + 1)..]
                        .split("</textarea>")
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    "<select" => element
                        .split("<option")
                        .skip(1)
                        .find(|o| o.contains(" selected"))
                        .map(|o| attribute(&o[..o.find('>').unwrap_or(o.len())], "value"))
                        .unwrap_or_default(),
                    _ => attribute(element_head, "value"),
                };
                fields.push((name, unescape(&value)));
            }
        }
        forms.push((unescape(&action), fields));
    }
    forms
}

/// An attribute's value in a tag head (`name="value"`), or "".
fn attribute(head: &str, name: &str) -> String {
    let needle = format!(" {name}=\"");
    head.find(&needle)
        .map(|start| {
            let rest = &head[start + needle.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .unwrap_or_default()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}
