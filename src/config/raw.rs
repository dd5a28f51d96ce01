//! A setting's value as one of the sources gave it (a TOML value, or the text of a variable or a
//! flag), and the parsing every setting shares, so that each source is read the same way.

use std::net::SocketAddr;

use keygate_core::tokens::signing::Algorithm;

/// A raw value from one of the sources.
pub(super) enum Raw<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

impl Raw<'_> {
    pub(super) fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Ok(s.clone()),
            Raw::Toml(other) => Err(format!("expected a string, got {}", other.type_str())),
            Raw::Text(s) => Ok((*s).to_owned()),
        }
    }

    fn integer(&self) -> Result<i64, String> {
        match self {
            Raw::Toml(toml::Value::Integer(i)) => Ok(*i),
            Raw::Toml(other) => Err(format!("expected an integer, got {}", other.type_str())),
            Raw::Text(s) => s.trim().parse().map_err(|_| format!("expected an integer, got {s:?}")),
        }
    }

    pub(super) fn ranged<T: TryFrom<i64>>(&self, min: i64, max: i64) -> Result<T, String> {
        let value = self.integer()?;
        if value < min || value > max {
            return Err(format!("must be between {min} and {max}, got {value}"));
        }
        T::try_from(value).map_err(|_| format!("out of range: {value}"))
    }

    /// A number, or `None` for an empty variable.
    pub(super) fn number(&self) -> Result<Option<f64>, String> {
        let text = match self {
            Raw::Toml(toml::Value::Float(f)) => return Ok(Some(*f)),
            Raw::Toml(toml::Value::Integer(i)) => return Ok(Some(*i as f64)),
            Raw::Toml(other) => return Err(format!("expected a number, got {}", other.type_str())),
            Raw::Text(s) => s,
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        text.trim().parse().map(Some).map_err(|_| format!("expected a number, got {text:?}"))
    }

    pub(super) fn boolean(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Toml(other) => Err(format!("expected true or false, got {}", other.type_str())),
            Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("expected true or false, got {s:?}")),
            },
        }
    }

    pub(super) fn addr(&self) -> Result<SocketAddr, String> {
        let text = self.string()?;
        text.parse().map_err(|_| format!("expected HOST:PORT with an IP address, got {text:?}"))
    }

    /// An address, or none for an empty string.
    pub(super) fn optional_addr(&self) -> Result<Option<SocketAddr>, String> {
        let text = self.string()?;
        if text.trim().is_empty() { Ok(None) } else { Raw::Text(text.trim()).addr().map(Some) }
    }

    pub(super) fn algorithm(&self) -> Result<Algorithm, String> {
        let name = self.string()?;
        Algorithm::parse(&name).ok_or_else(|| format!("expected RS256, ES256 or EdDSA, got {name:?}"))
    }

    pub(super) fn algorithms(&self) -> Result<Vec<Algorithm>, String> {
        self.list()?
            .iter()
            .map(|name| Algorithm::parse(name).ok_or_else(|| format!("expected RS256, ES256 or EdDSA, got {name:?}")))
            .collect()
    }

    /// A TOML array of strings, or comma-separated text.
    pub(super) fn list(&self) -> Result<Vec<String>, String> {
        match self {
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| "expected an array of strings".to_owned()))
                .collect(),
            Raw::Toml(other) => Err(format!("expected an array of strings, got {}", other.type_str())),
            Raw::Text(s) => Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
        }
    }
}
