//! The message rules (RFC 9114 4.1-4.3): a request, response or trailer head is
//! well formed or "malformed" (a stream error, never a connection error).

use super::qpack::FieldRef;

/// A message (or field) that breaks HTTP/3's rules: "malformed" in RFC 9114 4.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// What the engine needs to know about a valid message head.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageHead {
    pub content_length: Option<u64>,
    /// Response status, or 0 for a request.
    pub status: u16,
    pub is_head_request: bool,
    pub is_connect: bool,
    /// A safe method (RFC 9110 9.2.1) whose replay changes nothing: what may run in 0-RTT.
    pub is_safe_method: bool,
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&c| {
            matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*'
                | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        })
}

fn valid_name_any_case(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| valid_name(&[c.to_ascii_lowercase()]))
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&c| c == 0 || c == b'\r' || c == b'\n')
        && !matches!(value.first(), Some(b' ' | b'\t'))
        && !matches!(value.last(), Some(b' ' | b'\t'))
}

/// Parses content-length; repeated values (or a comma list) must all agree.
fn merge_content_length(current: Option<u64>, value: &[u8]) -> Result<Option<u64>, Malformed> {
    let mut result = current;
    for part in value.split(|&c| c == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(Malformed);
        }
        let v: u64 = std::str::from_utf8(part).map_err(|_| Malformed)?.parse().map_err(|_| Malformed)?;
        match result {
            Some(prev) if prev != v => return Err(Malformed),
            _ => result = Some(v),
        }
    }
    Ok(result)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Rules common to every field section (RFC 9114 4.2, 4.3).
fn check_regular_field(name: &[u8], value: &[u8]) -> Result<(), Malformed> {
    if !valid_name(name) || !valid_value(value) {
        return Err(Malformed);
    }
    match name {
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" => Err(Malformed),
        b"te" if value != b"trailers" => Err(Malformed),
        _ => Ok(()),
    }
}

/// Validates a request head: pseudo-headers present once each and first, no
/// forbidden fields, values without CR/LF/NUL (RFC 9114 4.3.1).
pub fn validate_request<'a>(
    fields: impl IntoIterator<Item = FieldRef<'a>>,
    extended_connect: bool,
) -> Result<MessageHead, Malformed> {
    let mut head = MessageHead::default();
    let (mut method, mut scheme, mut path, mut authority, mut protocol) = (None, None, None, None, None);
    let mut regular_seen = false;
    let mut host: Option<&[u8]> = None;
    for f in fields {
        let (name, value) = (f.name, f.value);
        if let Some(pseudo) = name.strip_prefix(b":") {
            if regular_seen {
                return Err(Malformed);
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"path" => &mut path,
                b"authority" => &mut authority,
                b"protocol" if extended_connect => &mut protocol,
                _ => return Err(Malformed),
            };
            if slot.is_some() || !valid_value(value) {
                return Err(Malformed);
            }
            *slot = Some(value);
            continue;
        }
        regular_seen = true;
        check_regular_field(name, value)?;
        if name == b"content-length" {
            head.content_length = merge_content_length(head.content_length, value)?;
        } else if name == b"host" {
            host = Some(value);
        }
    }
    let method = method.ok_or(Malformed)?;
    // A method is a token (RFC 9110 9.1): the characters of a field name, in either case.
    if !valid_name_any_case(method) {
        return Err(Malformed);
    }
    head.is_head_request = method == b"HEAD";
    head.is_connect = method == b"CONNECT";
    head.is_safe_method = matches!(method, b"GET" | b"HEAD" | b"OPTIONS");
    if head.is_connect && protocol.is_none() {
        // Plain CONNECT: authority only.
        if authority.is_none() || scheme.is_some() || path.is_some() {
            return Err(Malformed);
        }
        return Ok(head);
    }
    if protocol.is_some() && !head.is_connect {
        return Err(Malformed);
    }
    let path = path.ok_or(Malformed)?;
    scheme.filter(|s| !s.is_empty()).ok_or(Malformed)?;
    if path.is_empty() || !(path[0] == b'/' || (path == b"*" && method == b"OPTIONS")) {
        return Err(Malformed);
    }
    if let (Some(a), Some(h)) = (authority, host) {
        if a != h {
            return Err(Malformed);
        }
    }
    Ok(head)
}

/// Validates a response head (informational or final).
pub fn validate_response<'a>(fields: impl IntoIterator<Item = FieldRef<'a>>) -> Result<MessageHead, Malformed> {
    let mut head = MessageHead::default();
    let mut status = None;
    let mut regular_seen = false;
    for f in fields {
        let (name, value) = (f.name, f.value);
        if name.first() == Some(&b':') {
            if regular_seen || name != b":status" || status.is_some() {
                return Err(Malformed);
            }
            if value.len() != 3 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Malformed);
            }
            status = Some(std::str::from_utf8(value).map_err(|_| Malformed)?.parse::<u16>().map_err(|_| Malformed)?);
            continue;
        }
        regular_seen = true;
        check_regular_field(name, value)?;
        // TE is for requests only (RFC 9114 4.2): a response carrying it is malformed.
        if name == b"te" {
            return Err(Malformed);
        }
        if name == b"content-length" {
            head.content_length = merge_content_length(head.content_length, value)?;
        }
    }
    head.status = status.filter(|s| *s >= 100).ok_or(Malformed)?;
    Ok(head)
}

/// Trailers carry no pseudo-headers.
pub fn validate_trailers<'a>(fields: impl IntoIterator<Item = FieldRef<'a>>) -> Result<(), Malformed> {
    for f in fields {
        if f.name.first() == Some(&b':') {
            return Err(Malformed);
        }
        check_regular_field(f.name, f.value)?;
    }
    Ok(())
}
