//! Reading single SQLite values exactly: decimal literals and rescaling, integers and
//! floats without silent rounding, date and time text, and how a value is shown in errors.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::datatypes::TimeUnit;
use rusqlite::types::ValueRef;

/// Shortens a stored value for an error message.
pub(super) fn shown(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        format!("'{}…'", text.chars().take(MAX).collect::<String>())
    } else {
        format!("'{text}'")
    }
}

/// A stored value as the error message shows it.
pub(super) fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(f) => format!("the real {f}"),
        ValueRef::Text(t) => format!("the text {}", shown(&String::from_utf8_lossy(t))),
        ValueRef::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// SQLite-like text of a REAL.
pub(super) fn real_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f != 0.0 && (f.abs() >= 1e16 || f.abs() < 1e-4) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// An INTEGER as a float, if exact.
pub(super) fn exact_float(i: i64) -> Option<f64> {
    const LIMIT: u64 = 1 << 53;
    (i.unsigned_abs() <= LIMIT).then_some(i as f64)
}

/// A REAL as an integer, if it has no fractional part and fits an i64.
pub(super) fn integral(f: f64) -> Option<i64> {
    const LOWER: f64 = -9_223_372_036_854_775_808.0;
    const UPPER: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (LOWER..UPPER).contains(&f)).then_some(f as i64)
}

/// `10^exp`, if it fits an i128.
pub(super) fn pow10(exp: u32) -> Option<i128> {
    10_i128.checked_pow(exp)
}

/// Parses a decimal literal (`-12.50`, `1e3`, `+.5`) exactly as (unscaled digits, scale).
pub(super) fn parse_decimal_literal(text: &str) -> Option<(i128, i64)> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // More than 38 significant digits cannot be a Decimal128 anyway.
    let trimmed = digits.trim_end_matches('0');
    let trailing_zeros = (digits.len() - trimmed.len()) as i64;
    if trimmed.len() > 38 {
        return None;
    }
    let unscaled: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    let scale = frac_part.len() as i64 - exponent - trailing_zeros;
    Some((if negative { -unscaled } else { unscaled }, scale))
}

/// `unscaled × 10^-scale` rescaled to `target` decimal places, if that loses no digit.
pub(super) fn rescale_exact(unscaled: i128, scale: i64, target: i8) -> Option<i128> {
    let shift = i64::from(target) - scale;
    if shift >= 0 {
        unscaled.checked_mul(pow10(u32::try_from(shift).ok()?)?)
    } else {
        let divisor = pow10(u32::try_from(-shift).ok()?)?;
        (unscaled % divisor == 0).then_some(unscaled / divisor)
    }
}

/// `unscaled × 10^-scale` rounded (half away from zero) to `target` decimal places.
pub(super) fn rescale_rounded(unscaled: i128, scale: i64, target: i8) -> Option<i128> {
    let shift = i64::from(target) - scale;
    if shift >= 0 {
        return unscaled.checked_mul(pow10(u32::try_from(shift).ok()?)?);
    }
    let Some(divisor) = u32::try_from(-shift).ok().and_then(pow10) else {
        return Some(0);
    };
    let quotient = unscaled / divisor;
    let remainder = unscaled % divisor;
    Some(if remainder.abs() * 2 >= divisor {
        quotient + unscaled.signum()
    } else {
        quotient
    })
}

/// Whether an unscaled decimal has at most `precision` digits.
pub(super) fn fits_precision(unscaled: i128, precision: u8) -> bool {
    pow10(u32::from(precision)).is_some_and(|limit| unscaled.abs() < limit)
}

/// Splits a trailing `Z` / `±HH:MM` / `±HHMM` offset off a timestamp text; the offset in
/// seconds east of UTC.
pub(super) fn split_offset(text: &str) -> Option<(&str, Option<i64>)> {
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return Some((rest, Some(0)));
    }
    // Only look after the date (`YYYY-MM-DD`), where `-` is no longer a date separator.
    if text.len() > 10 {
        let tail_start = text.len().saturating_sub(6);
        for start in [tail_start, text.len().saturating_sub(5)] {
            if start <= 10 || !text.is_char_boundary(start) {
                continue;
            }
            let tail = &text[start..];
            let sign = match tail.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => continue,
            };
            let digits: String = tail[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            return Some((&text[..start], Some(sign * (hours * 3600 + minutes * 60))));
        }
    }
    Some((text, None))
}

/// Parses SQLite's date-time text forms; a value with an offset is converted to UTC.
pub(super) fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    let (local, offset) = split_offset(text)?;
    let local = local.trim_end();
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(local, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(local, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    match offset {
        Some(seconds) => naive.checked_sub_signed(chrono::TimeDelta::seconds(seconds)),
        None => Some(naive),
    }
}

/// Parses `HH:MM:SS[.fff]` or `HH:MM`.
pub(super) fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

/// Days since 1970-01-01.
pub(super) fn epoch_days(date: NaiveDate) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// A timestamp in `unit` since 1970-01-01 00:00 (UTC when zoned).
pub(super) fn epoch_value(datetime: NaiveDateTime, unit: TimeUnit) -> Option<i64> {
    let utc = datetime.and_utc();
    match unit {
        TimeUnit::Second => Some(utc.timestamp()),
        TimeUnit::Millisecond => Some(utc.timestamp_millis()),
        TimeUnit::Microsecond => Some(utc.timestamp_micros()),
        TimeUnit::Nanosecond => utc.timestamp_nanos_opt(),
    }
}

/// Noise allowed when a REAL is read into a decimal of scale `scale`.
pub(super) fn decimal_noise(value: f64, scale: i8) -> f64 {
    (value.abs() * 1e-13).max(10_f64.powi(-i32::from(scale)) * 1e-9)
}
