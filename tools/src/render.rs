//! Turning numbers, durations and payloads into text for people.

use std::time::Duration;

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count with a binary unit: `4.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration with a unit that keeps three significant digits or so: `812 ns`, `3.41 µs`,
/// `27.5 ms`, `1.92 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (v, unit) = if ns < 1e3 {
        return format!("{ns:.0} ns");
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let prec = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.prec$} {unit}")
}

/// A rate per second with an SI suffix: `1.25 M`, `812 k`, `93.1`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.1}")
    }
}

/// How a payload is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Printable UTF-8 text.
    Utf8,
    /// Lowercase hex of the bytes.
    Hex,
}

impl Encoding {
    /// The name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Hex => "hex",
        }
    }
}

/// A payload prepared for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownPayload {
    /// How `text` encodes the bytes.
    pub encoding: Encoding,
    /// The (possibly truncated) payload as text or hex, without quotes or prefix.
    pub text: String,
    /// Bytes left out by truncation.
    pub omitted: usize,
}

impl ShownPayload {
    /// Text for a human: quoted string or `0x…` hex, with a note of what was left out.
    pub fn for_humans(&self) -> String {
        let body = match self.encoding {
            Encoding::Utf8 => format!("{:?}", self.text),
            Encoding::Hex => format!("0x{}", self.text),
        };
        if self.omitted > 0 {
            format!("{body}... (+{} bytes)", self.omitted)
        } else {
            body
        }
    }
}

/// Shows `payload` as UTF-8 when all of it is printable text, else as hex; at most `limit`
/// bytes of it (never splitting a character) unless `limit` is `None`.
pub fn payload(payload: &[u8], limit: Option<usize>) -> ShownPayload {
    let limit = limit.unwrap_or(usize::MAX).min(payload.len());
    if let Ok(text) = std::str::from_utf8(payload)
        && !text.chars().any(char::is_control)
    {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return ShownPayload {
            encoding: Encoding::Utf8,
            text: text[..end].to_string(),
            omitted: payload.len() - end,
        };
    }
    let hex = payload[..limit]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ShownPayload {
        encoding: Encoding::Hex,
        text: hex,
        omitted: payload.len() - limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn payloads_are_text_or_hex() {
        let p = payload(b"hello", Some(64));
        assert_eq!(
            (p.encoding, p.text.as_str(), p.omitted),
            (Encoding::Utf8, "hello", 0)
        );
        assert_eq!(p.for_humans(), "\"hello\"");
        let p = payload(&[0, 1, 0xff], Some(2));
        assert_eq!(
            (p.encoding, p.text.as_str(), p.omitted),
            (Encoding::Hex, "0001", 1)
        );
        assert_eq!(p.for_humans(), "0x0001... (+1 bytes)");
        assert_eq!(payload(b"tab\there", None).encoding, Encoding::Hex);
        // "é" is two bytes: a limit of 2 must not split it.
        let p = payload("aé".as_bytes(), Some(2));
        assert_eq!((p.text.as_str(), p.omitted), ("a", 2));
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration(Duration::from_nanos(812)), "812 ns");
        assert_eq!(duration(Duration::from_nanos(3_412)), "3.41 µs");
        assert_eq!(duration(Duration::from_micros(27_500)), "27.5 ms");
        assert_eq!(duration(Duration::from_millis(1_920)), "1.92 s");
    }
}
