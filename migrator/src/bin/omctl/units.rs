//! Human-readable figures shared by the tables and the monitor: sizes in binary units
//! (as `free -h` prints them) and load figures with two decimals (as mosmon showed them).

/// Bytes as `512K`, `1.5G`, `12G`: one decimal below 10 units, none above, like `free -h`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    // Precision loss above 2^53 bytes is irrelevant for a one-decimal display.
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let suffix = UNITS[unit];
    if unit == 0 {
        format!("{n}{suffix}")
    } else if value < 10.0 {
        format!("{value:.1}{suffix}")
    } else {
        format!("{value:.0}{suffix}")
    }
}

/// A normalised load with two decimals.
pub fn load(l: f64) -> String {
    format!("{l:.2}")
}

/// A percentage with no decimals.
pub fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(2 * 1024 * 1024 * 1024), "2.0G");
        assert_eq!(bytes(12 * 1024 * 1024 * 1024), "12G");
    }

    #[test]
    fn figures() {
        assert_eq!(load(0.5), "0.50");
        assert_eq!(percent(0.873), "87%");
    }
}
