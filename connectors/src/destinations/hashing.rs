//! Normalisation and SHA-256 hashing of personal identifiers, as the ad platforms document
//! them for audience matching (Meta's Custom Audiences, Google Ads Customer Match): the value
//! is normalised first (case, spaces, punctuation, phone digits), then hashed to lowercase
//! hex, so the same person gives the same hash on both sides.
//!
//! Sources (the unit tests use their published examples):
//! - Meta: <https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences#hash>
//!   and the worked examples of
//!   <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters>
//!   (`John_Smith@gmail.com`, US `(650)555-1212`, `Mary`, `정`, `Valéry`).
//! - Google (Data Manager API): <https://developers.google.com/data-manager/api/devguides/concepts/formatting>
//!   (email lowercased without any whitespace, and for `gmail.com`/`googlemail.com` the
//!   periods and a `+suffix` of the local part removed: `cloudy.sanfrancisco+shopping@gmail.com`
//!   → `cloudysanfrancisco@gmail.com`, `user.name+NYC@Example.com` → `user.name+nyc@example.com`;
//!   phone in E.164: US `(800)555-0100` → `+18005550100`; names lowercased without
//!   punctuation; region code ISO 3166-1 alpha-2 and postal code not hashed). The digest is
//!   sent hex- or Base64-encoded ([`encode_digest`]).
//!
//! A value that is already a SHA-256 hex digest (64 hex digits) is passed through lowercased,
//! so a warehouse that hashes upstream works unchanged.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `text`'s UTF-8 bytes.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `text` is already a SHA-256 hex digest.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hash of a normalised value, or the value itself when it is already a digest.
pub(crate) fn hash_normalized(
    raw: &str,
    normalize: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let trimmed = raw.trim();
    if is_sha256_hex(trimmed) {
        return Some(trimmed.to_ascii_lowercase());
    }
    normalize(trimmed).map(|n| sha256_hex(&n))
}

/// Email (Meta and Google): trimmed and lowercased; `None` without an `@` between text.
pub(crate) fn email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace))
        .then_some(email)
}

/// Email as Google's Data Manager API documents it: every whitespace removed (leading,
/// trailing and intermediate), lowercased, and for `gmail.com` and `googlemail.com`
/// addresses the periods of the local part and a `+` with everything after it removed.
/// `None` without an `@` between text.
pub(crate) fn email_google(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let email = email(&compact)?;
    let (local, domain) = email.split_once('@')?;
    if domain == "gmail.com" || domain == "googlemail.com" {
        let local = local.split('+').next().unwrap_or_default().replace('.', "");
        (!local.is_empty()).then(|| format!("{local}@{domain}"))
    } else {
        Some(email)
    }
}

/// How Google's Data Manager API takes a SHA-256 digest (`encoding` of the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DigestEncoding {
    /// Lowercase hex, 64 characters.
    Hex,
    /// Standard Base64 with padding, 44 characters.
    Base64,
}

/// A lowercase hex digest (from [`hash_normalized`]) in `encoding`.
pub(crate) fn encode_digest(hex_digest: &str, encoding: DigestEncoding) -> Option<String> {
    match encoding {
        DigestEncoding::Hex => Some(hex_digest.to_string()),
        DigestEncoding::Base64 => {
            use base64::Engine as _;
            let bytes = hex::decode(hex_digest).ok()?;
            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// Phone digits with the country code (Meta): symbols and letters removed. A number written
/// internationally (`+…` or `00…`) keeps its country code; a national number (leading trunk
/// zeros removed) gets `default_country_code` (digits, e.g. `1`, `44`) in front; without one
/// it is taken as already carrying its country code. `None` when fewer than 7 digits remain.
pub(crate) fn phone_digits(raw: &str, default_country_code: Option<&str>) -> Option<String> {
    let raw = raw.trim();
    let international = raw.starts_with('+') || raw.starts_with("00");
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    let full = match (international, default_country_code) {
        (false, Some(code)) => {
            let code: String = code.chars().filter(char::is_ascii_digit).collect();
            format!("{code}{digits}")
        }
        _ => digits.to_string(),
    };
    (full.len() >= 7 && full.len() <= 15).then_some(full)
}

/// Phone in E.164 (Google): `+` and the digits of [`phone_digits`].
pub(crate) fn phone_e164(raw: &str, default_country_code: Option<&str>) -> Option<String> {
    phone_digits(raw, default_country_code).map(|d| format!("+{d}"))
}

/// First or last name (Meta and Google): lowercased, punctuation and spaces around removed;
/// letters outside a–z (`é`, `정`) are kept as UTF-8.
pub(crate) fn name(raw: &str) -> Option<String> {
    let name: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// City (Meta): lowercased, spaces and punctuation removed (`New York` → `newyork`).
pub(crate) fn city(raw: &str) -> Option<String> {
    let city: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    (!city.is_empty()).then_some(city)
}

/// State or province (Meta): lowercased, spaces and punctuation removed (US states as their
/// two-letter code, e.g. `ca`; other values are kept as written, normalised).
pub(crate) fn state(raw: &str) -> Option<String> {
    city(raw)
}

/// Postal code (Meta): lowercased without spaces or dashes; a US ZIP+4 (`94025-1234`) keeps
/// its first five digits.
pub(crate) fn zip(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let bytes = raw.as_bytes();
    if bytes.len() == 10
        && bytes[5] == b'-'
        && raw[..5].bytes().all(|b| b.is_ascii_digit())
        && raw[6..].bytes().all(|b| b.is_ascii_digit())
    {
        return Some(raw[..5].to_string());
    }
    let zip: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    (!zip.is_empty()).then_some(zip)
}

/// Country (Meta, Google): the ISO 3166-1 alpha-2 code, lowercased; `None` for anything but
/// two letters.
pub(crate) fn country(raw: &str) -> Option<String> {
    let code = raw.trim().to_lowercase();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(code)
}

/// Gender (Meta): `m` or `f` (from `m`, `male`, `f`, `female`, any case).
pub(crate) fn gender(raw: &str) -> Option<String> {
    match raw.trim().to_lowercase().as_str() {
        "m" | "male" => Some("m".to_string()),
        "f" | "female" => Some("f".to_string()),
        _ => None,
    }
}

/// Birth year (Meta `DOBY`): four digits, 1900 or later.
pub(crate) fn birth_year(raw: &str) -> Option<String> {
    let year = raw.trim();
    (year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) && year >= "1900")
        .then(|| year.to_string())
}

/// Birth month or day (Meta `DOBM` 01–12, `DOBD` 01–31): two digits within `1..=max`.
pub(crate) fn two_digits(raw: &str, max: u32) -> Option<String> {
    let n: u32 = raw.trim().parse().ok()?;
    (1..=max).contains(&n).then(|| format!("{n:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_documented_examples() {
        // customer-information-parameters: the inputs, their normalised forms and hashes.
        assert_eq!(
            email("John_Smith@gmail.com").as_deref(),
            Some("john_smith@gmail.com")
        );
        assert_eq!(
            hash_normalized(" John_Smith@gmail.com ", email).as_deref(),
            Some("62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f")
        );
        assert_eq!(
            phone_digits("(650)555-1212", Some("1")).as_deref(),
            Some("16505551212")
        );
        assert_eq!(
            hash_normalized("(650)555-1212", |p| phone_digits(p, Some("1"))).as_deref(),
            Some("e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176")
        );
        assert_eq!(
            hash_normalized("Mary", name).as_deref(),
            Some("6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec")
        );
        assert_eq!(
            hash_normalized("정", name).as_deref(),
            Some("8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14")
        );
        assert_eq!(name("Valéry").as_deref(), Some("valéry"));
        assert_eq!(
            hash_normalized("Valéry", name).as_deref(),
            Some("08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c")
        );
    }

    #[test]
    fn googles_documented_examples() {
        // formatting guide of the Data Manager API: inputs and their normalised forms.
        assert_eq!(
            email_google("cloudy.sanfrancisco+shopping@gmail.com").as_deref(),
            Some("cloudysanfrancisco@gmail.com")
        );
        assert_eq!(
            email_google("user.name+NYC@Example.com").as_deref(),
            Some("user.name+nyc@example.com")
        );
        assert_eq!(
            email_google(" Cloudy.SanFrancisco @ googlemail.com ").as_deref(),
            Some("cloudysanfrancisco@googlemail.com")
        );
        assert_eq!(
            phone_e164("(800)555-0100", Some("1")).as_deref(),
            Some("+18005550100")
        );
        assert_eq!(
            phone_e164("+1 800 555 0100", None).as_deref(),
            Some("+18005550100")
        );
        // SHA-256 of the normalised forms (computed independently), hex and Base64.
        let gmail = hash_normalized("cloudy.sanfrancisco+shopping@gmail.com", email_google);
        assert_eq!(
            gmail.as_deref(),
            Some("223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4")
        );
        assert_eq!(
            hash_normalized("user.name+NYC@Example.com", email_google).as_deref(),
            Some("f109a2a632fbcea5fc82049f50beed3d8621bf9034399f437fb622222acccdac")
        );
        let phone = hash_normalized("(800)555-0100", |p| phone_e164(p, Some("1")));
        assert_eq!(
            phone.as_deref(),
            Some("fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30")
        );
        assert_eq!(
            encode_digest(&gmail.unwrap(), DigestEncoding::Base64).as_deref(),
            Some("Ij69pvaImxSUVRupAtnTgdry9kK64FWIjpY0PVPp+cQ=")
        );
        assert_eq!(
            encode_digest(&phone.unwrap(), DigestEncoding::Base64).as_deref(),
            Some("+09zpuxf23B31WTN0iw1VLQ85JFoVQw7EsVHt4xRezA=")
        );
        assert_eq!(email_google("+tag@gmail.com"), None);
    }

    #[test]
    fn phones_keep_or_gain_their_country_code() {
        assert_eq!(
            phone_digits("+1 (650) 555-1212", None).as_deref(),
            Some("16505551212")
        );
        assert_eq!(
            phone_digits("+1 (650) 555-1212", Some("44")).as_deref(),
            Some("16505551212")
        );
        assert_eq!(
            phone_digits("0044 20 7946 0000", None).as_deref(),
            Some("442079460000")
        );
        assert_eq!(
            phone_digits("020 7946 0000", Some("+44")).as_deref(),
            Some("442079460000")
        );
        assert_eq!(
            phone_e164("(650)555-1212", Some("1")).as_deref(),
            Some("+16505551212")
        );
        assert_eq!(phone_digits("12-34", None), None);
        assert_eq!(phone_digits("call me", Some("1")), None);
    }

    #[test]
    fn other_identifiers_normalise_as_documented() {
        assert_eq!(email("not an email"), None);
        assert_eq!(email("@example.com"), None);
        assert_eq!(
            email_google("Jane.Doe@GMail.com").as_deref(),
            Some("janedoe@gmail.com")
        );
        assert_eq!(
            email_google("jane.doe@example.com").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(name(" O'Brien-Smith ").as_deref(), Some("obriensmith"));
        assert_eq!(name("..."), None);
        assert_eq!(city("New York").as_deref(), Some("newyork"));
        assert_eq!(state(" CA ").as_deref(), Some("ca"));
        assert_eq!(zip("94025-1234").as_deref(), Some("94025"));
        assert_eq!(zip("SW1A 1AA").as_deref(), Some("sw1a1aa"));
        assert_eq!(country("US").as_deref(), Some("us"));
        assert_eq!(country("USA"), None);
        assert_eq!(gender("Female").as_deref(), Some("f"));
        assert_eq!(gender("x"), None);
        assert_eq!(birth_year("1987").as_deref(), Some("1987"));
        assert_eq!(birth_year("87"), None);
        assert_eq!(two_digits("3", 12).as_deref(), Some("03"));
        assert_eq!(two_digits("13", 12), None);
        let digest = sha256_hex("x@example.com");
        assert_eq!(hash_normalized(&digest.to_uppercase(), email), Some(digest));
    }
}
