//! Disk sizes as Proxmox writes them: `\d+(\.\d+)?[KMGT]?` with an optional `iB`, binary units,
//! stored normalised to the largest unit that divides the size exactly.

/// Parses a size in bytes. A bare number is taken in `default_unit` (1 for bytes, 1 << 30 for
/// the `STORAGE:SIZE_GiB` allocation form).
pub fn parse_size(input: &str, default_unit: u64) -> Result<u64, String> {
    let s = input.trim();
    let s = s.strip_suffix("iB").unwrap_or(s);
    let (number, unit) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, default_unit),
    };
    let bad = || format!("invalid size '{input}': expected a number with an optional K, M, G or T suffix");
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (number.contains('.') && frac.is_empty())
        || int.len() > 15
        || frac.len() > 9
    {
        return Err(bad());
    }
    let int: u128 = int.parse().map_err(|_| bad())?;
    let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
    let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| bad())?);
    let bytes = int * u128::from(unit) + frac_value * u128::from(unit) / scale;
    u64::try_from(bytes).map_err(|_| format!("size '{input}' is too large"))
}

/// Prints a size the way it is stored: `32G`, `1536M`, `512` (bytes when no unit divides it).
pub fn format_size(bytes: u64) -> String {
    for (unit, suffix) in [(1u64 << 40, 'T'), (1 << 30, 'G'), (1 << 20, 'M'), (1 << 10, 'K')] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let g = 1u64 << 30;
        assert_eq!(parse_size("32G", 1), Ok(32 * g));
        assert_eq!(parse_size("32GiB", 1), Ok(32 * g));
        assert_eq!(parse_size("1.5G", 1), Ok(3 * g / 2));
        assert_eq!(parse_size("4", g), Ok(4 * g));
        assert_eq!(parse_size("0.5", g), Ok(g / 2));
        assert_eq!(parse_size("4096", 1), Ok(4096));
        for bad in ["", "G", "-1G", "1.G", ".5G", "1,5G", "12X", "1e3"] {
            assert!(parse_size(bad, 1).is_err(), "{bad:?} accepted");
        }
        assert!(parse_size("99999999999999T", 1).is_err());
        assert_eq!(format_size(32 * g), "32G");
        assert_eq!(format_size(3 * g / 2), "1536M");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(0), "0");
    }
}
