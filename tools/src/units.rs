//! Parsing the durations and byte counts of the retention flags (`--keep-age 7d`,
//! `--keep-bytes 512MiB`).

use std::time::Duration;

/// Parses a duration: one or more numbers, each with a unit, added up: `90s`, `15m`, `12h`,
/// `7d`, `2w`, `1h30m`, `500ms`. Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`, `w`.
/// A bare `0` is accepted too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let bad = |why: &str| {
        format!(
            "{text:?} is not a duration: {why} (use a number and a unit, e.g. 90s, 15m, 12h, 7d, \
             1h30m; units: ns, us, ms, s, m, h, d, w)"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let nanos_per: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "w" => 7 * 86_400 * 1_000_000_000,
            "" => return Err(bad("a number without a unit")),
            _ => return Err(bad("unknown unit")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(nanos_per)
            .and_then(|x| x.checked_add(total))
            .ok_or_else(|| bad("too long"))?;
    }
    let nanos = u64::try_from(total).map_err(|_| bad("too long"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Parses a byte count with an optional unit: `65536`, `64K`, `512MiB`, `2G`, `1TB`. `K`,
/// `M`, `G`, `T` and `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024; `KB`, `MB`, `GB`, `TB`
/// powers of 1000; `B` is bytes. Units are case-insensitive.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let bad = |why: &str| {
        format!(
            "{text:?} is not a byte count: {why} (use a number with an optional unit, e.g. \
             65536, 64K, 512MiB, 2G)"
        )
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad("expected a number"));
    }
    let n: u64 = text[..digits]
        .parse()
        .map_err(|_| bad("the number is too large"))?;
    let unit = text[digits..].trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad("unknown unit")),
    };
    n.checked_mul(factor).ok_or_else(|| bad("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("90s"), Ok(s(90)));
        assert_eq!(parse_duration("15m"), Ok(s(900)));
        assert_eq!(parse_duration("1h30m"), Ok(s(5400)));
        assert_eq!(parse_duration("7d"), Ok(s(7 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(s(14 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "h1",
            "1.5h",
            "-1s",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_duration("soon");
        assert!(
            e.as_ref().is_err_and(|e| e.contains("not a duration")),
            "{e:?}"
        );
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("65536"), Ok(65_536));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("1 TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_bytes("10b"), Ok(10));
        for bad in ["", "K", "12 parsecs", "-5", "1.5G", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
