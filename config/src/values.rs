//! Parsers for the value forms every program accepts, and serde helpers built on them.
//!
//! Durations are `"250ms"`, `"2s"`, `"1.5s"`, `"1m"` or a bare number of milliseconds; sizes
//! `"64MiB"`, `"512 KB"` or a bare number of bytes; an optional listen address is an address or
//! `off`; a boolean from the environment is one of `true/false/1/0/yes/no/on/off`. The helpers
//! serialize back to a form they parse, so a config's defaults tree (what the loader layers the
//! file and the environment over) round-trips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"250ms"`, `"2s"`, `"1.5s"`, `"1m"` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text)
        .map_err(|_| format!("expected a duration like \"2s\" or \"500ms\", got {text:?}"))?;
    let seconds = match unit {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

/// The shortest text [`parse_duration`] reads back as exactly `duration`: `"30s"`, `"250ms"`.
pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        // Sub-millisecond parts: fractional milliseconds, which parse back through f64.
        format!("{}ms", duration.as_secs_f64() * 1000.0)
    }
}

/// Parses `"64MiB"`, `"512 KB"`, `"1GiB"` or a bare number of bytes (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text)
        .map_err(|_| format!("expected a size like \"64MiB\" or \"500000\", got {text:?}"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    Ok((value * scale) as usize)
}

/// Parses a listen address, or `off` (also `none`, `false`, empty) for none.
pub fn parse_optional_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty()
        || ["off", "none", "false"]
            .iter()
            .any(|w| text.eq_ignore_ascii_case(w))
    {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!("expected an address like \"127.0.0.1:9400\" or \"off\", got {text:?}")
    })
}

/// Parses a boolean as the environment writes it: `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("expected a boolean, got {other:?}")),
    }
}

/// Splits a comma-separated list (as a list field is written in the environment), dropping
/// blanks.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number_and_unit(text: &str) -> Result<(f64, &str), ()> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value = number.parse().map_err(|_| ())?;
    Ok((value, unit.trim()))
}

/// A number or a text, as a value with a unit may be written.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Float(f64),
    Text(String),
}

/// `#[serde(with = "switchyard_config::duration")]`: a [`Duration`] written as milliseconds
/// (a number) or text with a unit; serialized as text with a unit.
pub mod duration {
    use super::*;

    /// Writes the duration as `"30s"` / `"250ms"`.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    /// Reads milliseconds or text with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(ms) => Ok(Duration::from_millis(ms)),
            NumberOrText::Float(ms) => parse_duration(&ms.to_string()),
            NumberOrText::Text(text) => parse_duration(&text),
        }
        .map_err(serde::de::Error::custom)
    }

    /// The same for an `Option<Duration>` (absent or null: `None`).
    pub mod option {
        use super::*;

        /// Writes `None` as null.
        pub fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(d) => serializer.serialize_some(&format_duration(*d)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads null, milliseconds or text with a unit.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] Duration);
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
        }
    }
}

/// `#[serde(with = "switchyard_config::size")]`: a byte count written as a number or text with
/// a unit (`"64MiB"`); serialized as a number.
pub mod size {
    use super::*;

    /// Writes the number of bytes.
    pub fn serialize<S: Serializer>(value: &usize, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value as u64)
    }

    /// Reads a number of bytes or text with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => {
                usize::try_from(n).map_err(|_| format!("{n} bytes is too large"))
            }
            NumberOrText::Float(n) => parse_bytes(&n.to_string()),
            NumberOrText::Text(text) => parse_bytes(&text),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "switchyard_config::listen")]`: an optional listen address, written as an
/// address or `off`; `None` serializes as null.
pub mod listen {
    use super::*;

    /// Writes the address, or null.
    pub fn serialize<S: Serializer>(
        value: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => serializer.serialize_some(&addr.to_string()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an address, `off` or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => parse_optional_addr(&text),
            Some(other) => Err(format!(
                "expected an address like \"127.0.0.1:9400\" or \"off\", got {other}"
            )),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(deserialize_with = "switchyard_config::optional_text")]`: an optional text where
/// blank means none, and a number or boolean (as an environment value may look) is taken as
/// its text.
pub fn optional_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(text)) => text,
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a text, got {other}"
            )))
        }
    };
    Ok((!text.trim().is_empty()).then(|| text.trim().to_owned()))
}

/// `#[serde(deserialize_with = "switchyard_config::optional_path")]`: like [`optional_text`],
/// for a file path.
pub fn optional_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    Ok(optional_text(deserializer)?.map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn durations_parse_with_units_and_print_back() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2 s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("40"), Ok(Duration::from_millis(40)));
        assert!(parse_duration("2h")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(parse_duration("soon").is_err());
        for d in [
            Duration::ZERO,
            Duration::from_secs(600),
            Duration::from_millis(750),
            Duration::from_micros(1500),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KB"), Ok(512_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 TB")
            .unwrap_err()
            .contains("unknown size unit"));
    }

    #[test]
    fn addresses_booleans_and_lists() {
        assert_eq!(parse_optional_addr("off"), Ok(None));
        assert_eq!(parse_optional_addr(" "), Ok(None));
        assert_eq!(
            parse_optional_addr("0.0.0.0:9500"),
            Ok(Some("0.0.0.0:9500".parse().unwrap()))
        );
        assert!(parse_optional_addr("9400").is_err());
        for (text, value) in [("Yes", true), ("on", true), ("0", false), ("OFF", false)] {
            assert_eq!(parse_bool(text), Ok(value), "{text}");
        }
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_list(" a, b ,,c "), ["a", "b", "c"]);
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Settings {
        #[serde(with = "duration")]
        timeout: Duration,
        #[serde(with = "duration::option", default)]
        cool_down: Option<Duration>,
        #[serde(with = "size")]
        budget: usize,
        #[serde(with = "listen")]
        metrics: Option<SocketAddr>,
        #[serde(deserialize_with = "optional_text", default)]
        name: Option<String>,
    }

    #[test]
    fn serde_helpers_read_every_form_and_round_trip() {
        let s: Settings = toml::from_str(
            "timeout = 1500\ncool_down = \"1m\"\nbudget = \"8MiB\"\nmetrics = \"off\"\nname = \" \"",
        )
        .unwrap();
        assert_eq!(
            s,
            Settings {
                timeout: Duration::from_millis(1500),
                cool_down: Some(Duration::from_secs(60)),
                budget: 8 << 20,
                metrics: None,
                name: None,
            }
        );
        let back: Settings = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let s: Settings = serde_json::from_str(
            r#"{"timeout":"2s","budget":10,"metrics":"127.0.0.1:1","name":7}"#,
        )
        .unwrap();
        assert_eq!(s.metrics, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(s.name.as_deref(), Some("7"));
        assert!(serde_json::from_str::<Settings>(
            r#"{"timeout":"fast","budget":1,"metrics":null}"#
        )
        .is_err());
    }
}
