//! Validators of `koncis_diag/redaction/validators.py` ported to Rust, with the same verdicts
//! (`tests/test_redaction_native.py` compares them on fuzzed values). A value outside what a
//! port covers gets no verdict here and goes to the Python validator.

use std::sync::OnceLock;

use regex::bytes::Regex;

use crate::rule::build_regex;

#[derive(Clone, Copy)]
pub enum Native {
    Ipv4,
    Hostname,
}

impl Native {
    pub fn named(name: &str) -> Option<Native> {
        match name {
            "ipv4" => Some(Native::Ipv4),
            "hostname" => Some(Native::Hostname),
            _ => None,
        }
    }

    /// The verdict on `buf[start..start + value.len()]`, or None: ask Python.
    pub fn judge(self, value: &[u8], buf: &[u8], start: usize) -> Option<bool> {
        match self {
            Native::Ipv4 => ipv4(value, buf, start),
            Native::Hostname => Some(hostname(value)),
        }
    }
}

fn compiled(cell: &'static OnceLock<Regex>, source: &str, ignore_case: bool) -> &'static Regex {
    cell.get_or_init(|| build_regex(source, ignore_case).expect("a fixed pattern"))
}

// ------------------------------------------------------------------------------- ipv4

const LOOKBEHIND: usize = 96;

fn octets(value: &[u8]) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut parts = value.split(|&b| b == b'.');
    for slot in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 {
            return None; // int(b"") fails; more than three digits is refused
        }
        *slot = part
            .iter()
            .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'));
        if *slot > 255 {
            return None;
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

fn kept_ipv4(octets: [u32; 4]) -> bool {
    match octets[0] {
        0 | 127 => true,
        255 => {
            let value = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3];
            let inverted = !value;
            inverted & inverted.wrapping_add(1) == 0
        }
        _ => false,
    }
}

fn preceded_by_version_word(buf: &[u8], start: usize) -> bool {
    static VERSION_BEFORE: OnceLock<Regex> = OnceLock::new();
    if start == 0 || !b" \t:=#vVrR\"'".contains(&buf[start - 1]) {
        return false;
    }
    let mut window = &buf[start.saturating_sub(LOOKBEHIND)..start];
    if let Some(newline) = memchr::memrchr(b'\n', window) {
        window = &window[newline + 1..];
    }
    let source = "(?:(?:versions?|\\b(?:ver|release|build|rev|revision|firmware|fw))\
                  (?:[ \\t]+(?:number|no\\.?|nr|string|id))?[\"']?[ \\t]*[:=#]?[ \\t]*[\"']?\
                  |\\b[vr])\\z";
    compiled(&VERSION_BEFORE, source, true).is_match(window)
}

fn glued_version(value: &[u8], buf: &[u8], start: usize) -> bool {
    if start == 0 || !b"-_/".contains(&buf[start - 1]) {
        return false;
    }
    if product_before(buf, start) {
        return true;
    }
    if value.get(1) != Some(&b'.') {
        return false;
    }
    &buf[start.saturating_sub(2)..start] != b"//"
}

/// `(?<![\w./-])[A-Z][A-Za-z]{1,24}/\Z` searched in `buf[start - 32:start]`: the letters
/// must be the whole run of letters before the `/` (a letter before them is a `\w`).
fn product_before(buf: &[u8], start: usize) -> bool {
    if buf[start - 1] != b'/' {
        return false;
    }
    let mut first = start - 1;
    while first > 0 && buf[first - 1].is_ascii_alphabetic() {
        first -= 1;
    }
    let letters = start - 1 - first;
    let glued = first > 0 && {
        let before = buf[first - 1];
        before.is_ascii_alphanumeric() || b"_./-".contains(&before)
    };
    (2..=25).contains(&letters)
        && first >= start.saturating_sub(32)
        && buf[first].is_ascii_uppercase()
        && !glued
}

fn ipv4(value: &[u8], buf: &[u8], start: usize) -> Option<bool> {
    if !value.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        return None; // int() reads more than digits: Python decides
    }
    let host = octets(value).map_or(false, |o| !kept_ipv4(o));
    Some(host && !preceded_by_version_word(buf, start) && !glued_version(value, buf, start))
}

// --------------------------------------------------------------------------- hostname

const LOCAL_HOSTS: [&[u8]; 10] = [
    b"localhost",
    b"localhost.localdomain",
    b"localhost4",
    b"localhost6",
    b"ip6-localhost",
    b"ip6-loopback",
    b"localhost4.localdomain4",
    b"localhost6.localdomain6",
    b"broadcasthost",
    b"localdomain",
];

const PUBLIC_HOSTS: [&[u8]; 39] = [
    b"w3.org",
    b"apache.org",
    b"atlassian.com",
    b"sun.com",
    b"oracle.com",
    b"java.com",
    b"jcp.org",
    b"springframework.org",
    b"jboss.org",
    b"hibernate.org",
    b"eclipse.org",
    b"maven.org",
    b"xmlsoap.org",
    b"oasis-open.org",
    b"ietf.org",
    b"purl.org",
    b"json-schema.org",
    b"openxmlformats.org",
    b"schemas.microsoft.com",
    b"mozilla.org",
    b"opensymphony.com",
    b"ehcache.org",
    b"logback.qos.ch",
    b"slf4j.org",
    b"postgresql.org",
    b"mysql.com",
    b"mariadb.org",
    b"slack.com",
    b"github.com",
    b"githubusercontent.com",
    b"bitbucket.org",
    b"gitlab.com",
    b"google.com",
    b"googleapis.com",
    b"microsoft.com",
    b"microsoftonline.com",
    b"elastic.co",
    b"hubapi.com",
    b"twilio.com",
];

const PACKAGE_ROOTS: [&[u8]; 20] = [
    b"com", b"org", b"net", b"io", b"java", b"javax", b"jdk", b"sun", b"edu", b"de", b"fr", b"ch",
    b"uk", b"nl", b"it", b"ru", b"jakarta", b"kotlin", b"scala", b"groovy",
];

const PLACEHOLDER_WORDS: [&[u8]; 11] = [
    b"true",
    b"false",
    b"null",
    b"none",
    b"nil",
    b"yes",
    b"no",
    b"on",
    b"off",
    b"undefined",
    b"",
];

fn trim_dots(value: &[u8]) -> &[u8] {
    let mut end = value.len();
    while end > 0 && value[end - 1] == b'.' {
        end -= 1;
    }
    &value[..end]
}

/// `is_placeholder` for a value of host-name syntax (letters, digits, `_.-`): only a run of
/// one repeated byte (three or more) and the words can match there.
fn host_placeholder(value: &[u8]) -> bool {
    if value.len() >= 3 && value.iter().all(|&b| b == value[0]) {
        return true;
    }
    let lowered = value.to_ascii_lowercase();
    !value.is_empty()
        && PLACEHOLDER_WORDS[..10]
            .iter()
            .any(|w| *w == lowered.as_slice())
}

fn looks_like_java_name(name: &[u8]) -> bool {
    static CLASS_LABEL: OnceLock<Regex> = OnceLock::new();
    let labels: Vec<&[u8]> = name.split(|&b| b == b'.').collect();
    if labels.len() < 2 {
        return false;
    }
    let last = labels[labels.len() - 1];
    let class = compiled(&CLASS_LABEL, "\\A[A-Z][a-z0-9]*[a-z][A-Za-z0-9]*\\z", false);
    if class.is_match(last) && last.iter().any(u8::is_ascii_lowercase) {
        return true;
    }
    labels.len() >= 3 && PACKAGE_ROOTS.contains(&labels[0])
}

fn hostname(value: &[u8]) -> bool {
    static HOST_NAME: OnceLock<Regex> = OnceLock::new();
    let syntax = "\\A[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})\
                  (?:\\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})){0,30}\\.?\\z";
    if !compiled(&HOST_NAME, syntax, false).is_match(value) || value.len() > 254 {
        return false;
    }
    let lowered_all = value.to_ascii_lowercase();
    let lowered = trim_dots(&lowered_all);
    if LOCAL_HOSTS.contains(&lowered) || lowered.ends_with(b".localhost") {
        return false;
    }
    if !lowered.iter().any(u8::is_ascii_lowercase) {
        return false;
    }
    let public = PUBLIC_HOSTS.iter().any(|host| {
        lowered == *host
            || (lowered.len() > host.len()
                && lowered.ends_with(host)
                && lowered[lowered.len() - host.len() - 1] == b'.')
    });
    if host_placeholder(value) || public {
        return false;
    }
    !looks_like_java_name(trim_dots(value))
}
