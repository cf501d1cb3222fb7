//! Units on the command line and in tables: byte rates (`20MiB/s`), durations (`50ms`),
//! percentages (`99%`), token amounts (`1.5`), sizes (`64MiB`).

use std::time::Duration;

use datdot_chain_client::{Balance, UNIT};

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let v: f64 = s[..end].parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some((v, s[end..].trim()))
}

fn bytes_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// `20MiB/s`, `1.5MB/s`, `800KiB/s`, `1000000` (bytes per second).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (v, unit) = split_number(s).ok_or_else(|| format!("{s:?} is not a rate like 20MiB/s"))?;
    let unit = unit.strip_suffix("/s").unwrap_or(unit);
    let f = bytes_factor(unit)
        .ok_or_else(|| format!("unknown rate unit in {s:?} (B/s, KiB/s, MiB/s, MB/s, …)"))?;
    Ok((v * f).round() as u64)
}

/// `64MiB`, `1GB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (v, unit) = split_number(s).ok_or_else(|| format!("{s:?} is not a size like 64MiB"))?;
    let f = bytes_factor(unit)
        .ok_or_else(|| format!("unknown size unit in {s:?} (B, KiB, MiB, GiB, MB, …)"))?;
    Ok((v * f).round() as u64)
}

/// `50ms`, `1.5s`, `200us`, `2m` — as a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (v, unit) = split_number(s).ok_or_else(|| format!("{s:?} is not a duration like 50ms"))?;
    let secs = match unit {
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" | "" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown duration unit in {s:?} (us, ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `99%`, `99.9%`, `0.99` — as parts per million.
pub fn parse_ppm(s: &str) -> Result<u32, String> {
    let (v, unit) = split_number(s).ok_or_else(|| format!("{s:?} is not a share like 99%"))?;
    let share = match unit {
        "%" => v / 100.0,
        "" if v <= 1.0 => v,
        _ => {
            return Err(format!(
                "{s:?}: give a percentage like 99% or a fraction like 0.99"
            ));
        }
    };
    if share > 1.0 {
        return Err(format!("{s:?} is more than 100%"));
    }
    Ok((share * 1e6).round() as u32)
}

/// `10`, `0.5` tokens — in the chain's smallest unit.
pub fn parse_tokens(s: &str) -> Result<Balance, String> {
    let (v, unit) = split_number(s).ok_or_else(|| format!("{s:?} is not an amount of tokens"))?;
    if !unit.is_empty() {
        return Err(format!("{s:?}: give tokens as a plain number (e.g. 1.5)"));
    }
    Ok((v * UNIT as f64).round() as Balance)
}

/// A byte rate for people: `12.3 MiB/s`.
pub fn rate(bps: u64) -> String {
    let b = bps as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB/s", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB/s", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB/s", b / 1024.0)
    } else {
        format!("{bps} B/s")
    }
}

/// A size for people: `64.0 MiB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Microseconds for people: `850 µs`, `12.4 ms`, `1.20 s`.
pub fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// Parts per million as a percentage: `99.90 %`.
pub fn percent(ppm: u32) -> String {
    format!("{:.2} %", f64::from(ppm) / 1e4)
}

/// Tokens for people: `1.2500` (4 decimals), signed.
pub fn tokens(amount: i128) -> String {
    format!("{:.4}", amount as f64 / UNIT as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_rate("20MiB/s"), Ok(20 * 1024 * 1024));
        assert_eq!(parse_rate("1.5MB/s"), Ok(1_500_000));
        assert_eq!(parse_rate("800"), Ok(800));
        assert!(parse_rate("fast").is_err() && parse_rate("3 parsecs/s").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_ppm("99%"), Ok(990_000));
        assert_eq!(parse_ppm("0.999"), Ok(999_000));
        assert!(parse_ppm("101%").is_err() && parse_ppm("5").is_err());
        assert_eq!(parse_tokens("1.5"), Ok(UNIT + UNIT / 2));
        assert_eq!(rate(3 * 1024 * 1024), "3.0 MiB/s");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_400), "12.4 ms");
        assert_eq!(percent(999_000), "99.90 %");
        assert_eq!(tokens(-(UNIT as i128) / 4), "-0.2500");
    }
}
