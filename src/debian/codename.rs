//! Debian release codenames and their release numbers, the one table the feeds (OSV names
//! releases `Debian:N`) and the SBOM exporters (the purl `distro` qualifier) share.
//!
//! Source: <https://www.debian.org/releases/> and distro-info-data's `debian.csv`
//! (<https://salsa.debian.org/debian/distro-info-data/-/blob/main/debian.csv>), which also
//! lists the announced codenames forky (14) and duke (15).

/// Release number of a Debian codename from squeeze (6) to duke (15); `None` for any other
/// name (including the aliases `stable`, `testing`, `sid`, …).
pub fn release_number(codename: &str) -> Option<u32> {
    Some(match codename {
        "squeeze" => 6,
        "wheezy" => 7,
        "jessie" => 8,
        "stretch" => 9,
        "buster" => 10,
        "bullseye" => 11,
        "bookworm" => 12,
        "trixie" => 13,
        "forky" => 14,
        "duke" => 15,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(release_number("bookworm"), Some(12));
        assert_eq!(release_number("squeeze"), Some(6));
        assert_eq!(release_number("sid"), None);
    }
}
