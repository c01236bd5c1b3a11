//! Amounts on the command line: `20sat` or `20000msat` (whole numbers; a unit is required, so
//! a sat is never taken for a msat).

/// Parses `<whole number>sat` or `<whole number>msat` into msat.
pub fn parse_msat(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, factor) = if let Some(digits) = text.strip_suffix("msat") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix("sat") {
        (digits, 1_000)
    } else if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "{text:?} has no unit: write it in sat or msat, e.g. 20sat or 20000msat"
        ));
    } else {
        return Err(format!(
            "{text:?}: the unit is sat or msat, e.g. 20sat or 20000msat"
        ));
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number of sat or msat"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|amount| amount.checked_mul(factor))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// msat as a person reads it: `10 sat` when whole, `10500 msat` otherwise.
pub fn show_msat(msat: u64) -> String {
    if msat % 1_000 == 0 {
        format!("{} sat", msat / 1_000)
    } else {
        format!("{msat} msat")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sat_and_msat_are_read_with_their_unit() {
        assert_eq!(parse_msat("20sat"), Ok(20_000));
        assert_eq!(parse_msat("20000msat"), Ok(20_000));
        assert_eq!(parse_msat(" 5 sat "), Ok(5_000));
        assert!(parse_msat("20").is_err());
        assert!(parse_msat("-1sat").is_err());
        assert!(parse_msat("1.5sat").is_err());
        assert!(parse_msat("sat").is_err());
        assert!(parse_msat("18446744073709552sat").is_err());
    }

    #[test]
    fn whole_sats_show_as_sat() {
        assert_eq!(show_msat(10_000), "10 sat");
        assert_eq!(show_msat(10_500), "10500 msat");
    }
}
