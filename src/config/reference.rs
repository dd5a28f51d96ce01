//! The settings table of `docs/configuration.md`, rendered from the declarations so that the
//! docs cannot name a setting, a bound or a default the loader does not have.

use super::settings::{DefaultIs, Kind, Unit};
use super::{Declared, OTEL_SETTINGS, declared};

/// The Markdown table of every setting: path, type and bounds, default, meaning (with the
/// OpenTelemetry variables that set it).
pub fn settings_table() -> String {
    let mut out = String::from("| setting | type | default | meaning |\n| --- | --- | --- | --- |\n");
    for setting in declared() {
        let otel: Vec<String> = OTEL_SETTINGS
            .iter()
            .filter(|(_, path)| *path == setting.path)
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        let meaning =
            if otel.is_empty() { setting.doc.to_owned() } else { format!("{} ({})", setting.doc, otel.join(", ")) };
        out.push_str(&format!(
            "| `{}` | {} | {} | {meaning} |\n",
            setting.path,
            kind(&setting.kind),
            default(&setting)
        ));
    }
    out
}

fn kind(kind: &Kind) -> String {
    match kind {
        Kind::Text => "string".to_owned(),
        Kind::Int { min, max, unit } => {
            let unit = match unit {
                Unit::Count => "",
                Unit::Kib => " KiB",
                Unit::Millis => " ms",
                Unit::Seconds => " seconds",
                Unit::Minutes => " minutes",
                Unit::Hours => " hours",
                Unit::Days => " days",
            };
            format!("{min} to {max}{unit}")
        }
        Kind::Number { min, max } => format!("a number, {min} to {max}"),
        Kind::Bool => "`true` or `false`".to_owned(),
        Kind::Addr => "`HOST:PORT`".to_owned(),
        Kind::Path => "a file".to_owned(),
        Kind::List => "a list".to_owned(),
        Kind::Choice(names) => one_of(names),
        Kind::Choices(names) => format!("a list of {}", one_of(names).replace(" or ", ", ")),
        Kind::Pairs => "`key=value,…`".to_owned(),
    }
}

/// `` `a`, `b` or `c` ``.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn default(setting: &Declared) -> String {
    match setting.default {
        DefaultIs::Unset(why) => why.to_owned(),
        DefaultIs::Value("") if matches!(setting.kind, Kind::List | Kind::Path | Kind::Pairs) => "none".to_owned(),
        DefaultIs::Value("") => "(empty)".to_owned(),
        DefaultIs::Value(text) if matches!(setting.kind, Kind::List | Kind::Choices(_)) => {
            text.split(',').map(|item| format!("`{item}`")).collect::<Vec<_>>().join(", ")
        }
        DefaultIs::Value(text) => format!("`{text}`"),
    }
}
