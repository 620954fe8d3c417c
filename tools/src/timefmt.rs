//! RFC 3339 timestamps (UTC, nanosecond precision) to and from nanoseconds since the Unix
//! epoch: the record timestamps mmlog stores.
//!
//! Hand-written rather than a date crate: the tool needs exactly this conversion in both
//! directions, including offsets like `+02:00` on input, and nothing else.

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Formats `ns` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
///
/// All nine fractional digits are kept so that a printed timestamp, fed back to
/// `dump --since`, selects exactly the record it came from.
pub fn format_ns(ns: u64) -> String {
    let secs = ns / NANOS_PER_SEC;
    let frac = ns % NANOS_PER_SEC;
    // u64 nanoseconds end in the year 2554, so the casts below cannot overflow.
    let days = (secs / SECS_PER_DAY as u64) as i64;
    let rem = secs % SECS_PER_DAY as u64;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses a point in time given as nanoseconds since the Unix epoch (all digits) or as an
/// RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`; a bare date
/// means midnight UTC).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| format!("{s:?} is too large for nanoseconds since the epoch"));
    }
    parse_rfc3339(s).map_err(|why| {
        format!("{s:?} is not a time: {why} (use RFC 3339, e.g. 2024-05-01T12:00:00Z, or nanoseconds since the epoch)")
    })
}

fn parse_rfc3339(s: &str) -> Result<u64, &'static str> {
    let mut p = Cursor {
        b: s.as_bytes(),
        at: 0,
    };
    let year = p.digits(4)?;
    p.expect(b'-')?;
    let month = p.digits(2)?;
    p.expect(b'-')?;
    let day = p.digits(2)?;
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    let (mut secs, mut nanos, mut offset) = (0i64, 0u64, 0i64);
    if !p.done() {
        if !matches!(p.next(), Some(b'T' | b't' | b' ')) {
            return Err("expected 'T' between date and time");
        }
        let hour = p.digits(2)?;
        p.expect(b':')?;
        let minute = p.digits(2)?;
        p.expect(b':')?;
        let second = p.digits(2)?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err("time of day out of range");
        }
        secs = (hour * 3600 + minute * 60 + second) as i64;
        if p.peek() == Some(b'.') {
            p.at += 1;
            nanos = p.fraction()?;
        }
        offset = match p.next() {
            Some(b'Z' | b'z') => 0,
            Some(sign @ (b'+' | b'-')) => {
                let h = p.digits(2)?;
                p.expect(b':')?;
                let m = p.digits(2)?;
                if h > 23 || m > 59 {
                    return Err("UTC offset out of range");
                }
                let o = (h * 3600 + m * 60) as i64;
                if sign == b'+' { o } else { -o }
            }
            _ => return Err("expected 'Z' or a UTC offset like +02:00"),
        };
        if !p.done() {
            return Err("unexpected characters after the time");
        }
    }
    let total = days_from_civil(year as i64, month, day) * SECS_PER_DAY + secs - offset;
    let total = u64::try_from(total).map_err(|_| "before 1970-01-01T00:00:00Z")?;
    total
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(nanos))
        .ok_or("too far in the future")
}

/// A position in the bytes being parsed.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    fn expect(&mut self, c: u8) -> Result<(), &'static str> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err("malformed date or time")
        }
    }

    /// Exactly `n` decimal digits.
    fn digits(&mut self, n: usize) -> Result<u32, &'static str> {
        let mut v = 0u32;
        for _ in 0..n {
            match self.next() {
                Some(c @ b'0'..=b'9') => v = v * 10 + u32::from(c - b'0'),
                _ => return Err("malformed date or time"),
            }
        }
        Ok(v)
    }

    /// One to nine fractional digits, as nanoseconds.
    fn fraction(&mut self) -> Result<u64, &'static str> {
        let start = self.at;
        let mut v = 0u64;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.at - start == 9 {
                return Err("more than 9 fractional digits");
            }
            v = v * 10 + u64::from(c - b'0');
            self.at += 1;
        }
        let n = self.at - start;
        if n == 0 {
            return Err("expected digits after '.'");
        }
        Ok(v * 10u64.pow(9 - n as u32))
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_ns(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            format_ns(1_714_564_800_123_456_789),
            "2024-05-01T12:00:00.123456789Z"
        );
        assert_eq!(format_ns(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for ns in [
            0,
            1,
            951_782_400_000_000_001,
            1_714_564_800_123_456_789,
            u64::MAX,
        ] {
            assert_eq!(parse_time(&format_ns(ns)), Ok(ns));
        }
    }

    #[test]
    fn parses_offsets_fractions_and_plain_numbers() {
        let noon = 1_714_564_800_000_000_000;
        assert_eq!(parse_time("2024-05-01T12:00:00Z"), Ok(noon));
        assert_eq!(parse_time("2024-05-01t14:00:00+02:00"), Ok(noon));
        assert_eq!(
            parse_time("2024-05-01 11:30:00.5-00:30"),
            Ok(noon + 500_000_000)
        );
        assert_eq!(
            parse_time("2024-05-01"),
            Ok(noon - 12 * 3600 * NANOS_PER_SEC)
        );
        assert_eq!(parse_time("1714564800000000000"), Ok(noon));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567891Z",
            "2024-05-01T12:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "99999999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
