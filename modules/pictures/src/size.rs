//! File sizes written FitTrackee's way (`display_readable_file_size`): 1024-based, one decimal,
//! units " bytes", "KB", "MB", "GB", "TB" ("512.0 bytes", "1.5KB", "1.0MB"), with "0 bytes" and
//! "1 byte" as special cases.

const UNITS: [&str; 5] = [" bytes", "KB", "MB", "GB", "TB"];

/// `bytes` as FitTrackee writes it in its messages.
///
/// Python formats the exact quotient `bytes / 1024^k` with `{:3.1f}`, which rounds half to
/// even; integer arithmetic gives the same digits without a float in between.
pub fn readable(bytes: u64) -> String {
    match bytes {
        0 => return "0 bytes".into(),
        1 => return "1 byte".into(),
        _ => {}
    }
    let bytes = u128::from(bytes);
    let mut divisor: u128 = 1;
    let mut unit = 0;
    // FitTrackee writes sizes past the terabytes oddly ("1.0 bytes" for 1 PB); staying in
    // terabytes is what it means.
    while unit < UNITS.len() - 1 && bytes >= divisor * 1024 {
        divisor *= 1024;
        unit += 1;
    }
    let tenths = round_half_even(bytes * 10, divisor);
    format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[unit])
}

fn round_half_even(numerator: u128, divisor: u128) -> u128 {
    let (quotient, remainder) = (numerator / divisor, numerator % divisor);
    match (remainder * 2).cmp(&divisor) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient % 2),
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn as_fittrackee_writes_them() {
        for (bytes, text) in [
            (0, "0 bytes"),
            (1, "1 byte"),
            (2, "2.0 bytes"),
            (512, "512.0 bytes"),
            (1023, "1023.0 bytes"),
            (1024, "1.0KB"),
            (1536, "1.5KB"),
            (2048, "2.0KB"),
            (1_048_576, "1.0MB"),
            (1_572_864, "1.5MB"),
            (10_485_760, "10.0MB"),
            (1_073_741_824, "1.0GB"),
            (1_099_511_627_776, "1.0TB"),
            (1_125_899_906_842_624, "1024.0TB"),
        ] {
            assert_eq!(readable(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn rounds_like_python() {
        // f"{1280 / 1024:3.1f}" == "1.2" (an exact tie, rounded to even) and 1.35 -> "1.4".
        assert_eq!(readable(1280), "1.2KB");
        assert_eq!(readable(1382), "1.3KB"); // 1.349…
        assert_eq!(readable(1384), "1.4KB"); // 1.351…
        assert_eq!(readable(1_048_575), "1024.0KB");
        assert_eq!(readable(u64::MAX), "16777216.0TB");
    }
}
