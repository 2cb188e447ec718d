//! Static responses answered inside the engine: `routes: { "/hi": new Response(...) }`
//! in Bun.serve is served natively by Bun's own server, so over HTTP/3 it must not
//! cost a trip into JavaScript either. A GET or HEAD whose path (without the query)
//! names a registered route is answered at the request head — headers with a
//! fresh Date, the body, FIN — and the application never sees the stream.
//! A conditional GET whose `If-None-Match` matches the route's ETag gets a 304
//! with the same fields and no body, as Bun's own server answers it.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::context::{EngineAnswer, RequestHeadHook};
use crate::http3::{self, FieldRef};

pub struct StaticResponse {
    /// Response fields (":status" first); `date` and `content-length` are added here.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

struct Route {
    response: StaticResponse,
    /// The body length as a header value, made once.
    length: Vec<u8>,
    /// The `etag` field's value, if the response has one.
    etag: Option<Vec<u8>>,
    /// The answers as they go on the wire, encoded once per Date second.
    encoded: Encoded,
}

/// A route's two answers in HTTP/3 framing for one Date second: the full
/// response (HEADERS, then DATA with the body) and the bodyless 304.
#[derive(Default)]
struct Encoded {
    second: Option<u64>,
    full: Vec<u8>,
    /// Where `full`'s HEADERS frame ends (a HEAD request gets only that).
    full_head_len: usize,
    not_modified: Vec<u8>,
}

#[derive(Default)]
pub struct StaticRoutes {
    routes: HashMap<Vec<u8>, Route>,
    /// The Date value for the current second, made once per second.
    date: (u64, Vec<u8>),
}

impl StaticRoutes {
    pub fn insert(&mut self, path: Vec<u8>, response: StaticResponse) {
        let length = response.body.len().to_string().into_bytes();
        let etag = response.fields.iter().find(|(n, _)| n == b"etag").map(|(_, v)| v.clone());
        self.routes.insert(path, Route { response, length, etag, encoded: Encoded::default() });
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }

    /// The answer to a GET or HEAD of a registered path (the query does not
    /// count): the response head with Date and content-length, then the body;
    /// or, when `if_none_match` names the route's ETag, a bodyless 304.
    pub fn answer(&mut self, method: &[u8], path: &[u8], if_none_match: Option<&[u8]>) -> Option<EngineAnswer<'_>> {
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = path.split(|&b| b == b'?').next().unwrap_or(path);
        let route = self.routes.get_mut(path)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.date.0 != now || self.date.1.is_empty() {
            self.date = (now, http_date(now).into_bytes());
        }
        if route.encoded.second != Some(now) {
            route.encode(now, &self.date.1)?;
        }
        // Only a 200 is conditional (Bun's server answers a static 201 whatever the request says).
        let is_ok = route.response.fields.first().is_some_and(|(_, v)| v == b"200");
        let not_modified = match (&route.etag, if_none_match) {
            (Some(etag), Some(condition)) => is_ok && etag_matches(condition, etag),
            _ => false,
        };
        let e = &route.encoded;
        Some(if not_modified {
            EngineAnswer { frames: &e.not_modified, head_len: e.not_modified.len() }
        } else {
            EngineAnswer { frames: &e.full, head_len: e.full_head_len }
        })
    }
}

impl Route {
    /// Encodes both answers with `date`; None if the fields cannot be encoded.
    fn encode(&mut self, second: u64, date: &[u8]) -> Option<()> {
        let fields = &self.response.fields;
        let e = &mut self.encoded;
        e.full.clear();
        let mut head: Vec<FieldRef<'_>> = fields.iter().map(|(n, v)| FieldRef { name: n, value: v }).collect();
        head.push(FieldRef { name: b"content-length", value: &self.length });
        head.push(FieldRef { name: b"date", value: date });
        http3::encode_headers_frame(&head, &mut e.full).ok()?;
        e.full_head_len = e.full.len();
        if !self.response.body.is_empty() {
            http3::put_frame_header(&mut e.full, http3::FRAME_DATA, self.response.body.len() as u64);
            e.full.extend_from_slice(&self.response.body);
        }
        e.not_modified.clear();
        let mut head: Vec<FieldRef<'_>> = vec![FieldRef { name: b":status", value: b"304" }];
        head.extend(fields.iter().skip(1).map(|(n, v)| FieldRef { name: n, value: v }));
        head.push(FieldRef { name: b"date", value: date });
        http3::encode_headers_frame(&head, &mut e.not_modified).ok()?;
        e.second = Some(second);
        Some(())
    }
}

impl RequestHeadHook for StaticRoutes {
    fn answer(&mut self, fields: &http3::Fields) -> Option<EngineAnswer<'_>> {
        StaticRoutes::answer(self, fields.get(b":method")?, fields.get(b":path")?, fields.get(b"if-none-match"))
    }
}

/// If-None-Match (RFC 9110 13.1.2): `*`, or a list of entity tags compared
/// weakly (a `W/` prefix on either side does not count).
pub fn etag_matches(condition: &[u8], etag: &[u8]) -> bool {
    let strip = |t: &[u8]| -> Vec<u8> {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t).to_vec()
    };
    let etag = strip(etag);
    condition.split(|&b| b == b',').any(|candidate| {
        let candidate = candidate.trim_ascii();
        candidate == b"*" || strip(candidate) == etag
    })
}

/// IMF-fixdate (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_795_263_493), "Sat, 21 Nov 2026 12:18:13 GMT");
    }

    /// The fields of the HEADERS frame that starts `frames`, and what follows it.
    fn decode(answer: &EngineAnswer<'_>) -> (Vec<(String, String)>, Vec<u8>) {
        let (ty, a) = http3::get_varint(answer.frames).unwrap();
        let (len, b) = http3::get_varint(&answer.frames[a..]).unwrap();
        assert_eq!((ty, a + b + len as usize), (http3::FRAME_HEADERS, answer.head_len));
        let block = &answer.frames[a + b..answer.head_len];
        let mut fields = http3::Fields::default();
        http3::decode_header_block(block, 1 << 16, &mut fields).unwrap();
        let fields = fields
            .iter()
            .map(|h| (String::from_utf8_lossy(h.name).into(), String::from_utf8_lossy(h.value).into()))
            .collect();
        (fields, answer.frames[answer.head_len..].to_vec())
    }

    fn body_of(rest: &[u8]) -> Vec<u8> {
        if rest.is_empty() {
            return Vec::new();
        }
        let (ty, a) = http3::get_varint(rest).unwrap();
        let (len, b) = http3::get_varint(&rest[a..]).unwrap();
        assert_eq!((ty, rest.len()), (http3::FRAME_DATA, a + b + len as usize));
        rest[a + b..].to_vec()
    }

    fn has(fields: &[(String, String)], name: &str, value: &str) -> bool {
        fields.iter().any(|(n, v)| n == name && v == value)
    }

    #[test]
    fn answers_get_and_head_without_query() {
        let mut r = StaticRoutes::default();
        r.insert(
            b"/hi".to_vec(),
            StaticResponse { fields: vec![(b":status".to_vec(), b"200".to_vec())], body: b"x".to_vec() },
        );
        let (fields, rest) = decode(&r.answer(b"GET", b"/hi", None).unwrap());
        assert_eq!(body_of(&rest), b"x");
        assert!(has(&fields, ":status", "200") && has(&fields, "content-length", "1"));
        assert!(fields.iter().any(|(n, v)| n == "date" && v.ends_with(" GMT")));
        assert!(r.answer(b"HEAD", b"/hi?a=1", None).is_some());
        assert!(r.answer(b"POST", b"/hi", None).is_none());
        assert!(r.answer(b"GET", b"/hi/", None).is_none());
        // Without an ETag a condition changes nothing.
        let (fields, _) = decode(&r.answer(b"GET", b"/hi", Some(b"*")).unwrap());
        assert!(has(&fields, ":status", "200"));
    }

    #[test]
    fn if_none_match_gets_304_without_body_or_length() {
        let mut r = StaticRoutes::default();
        let fields = vec![(b":status".to_vec(), b"200".to_vec()), (b"etag".to_vec(), b"\"v1\"".to_vec())];
        r.insert(b"/e".to_vec(), StaticResponse { fields, body: b"body".to_vec() });
        for condition in [&b"\"v1\""[..], b"W/\"v1\"", b"\"x\", \"v1\"", b"*"] {
            let (fields, rest) = decode(&r.answer(b"GET", b"/e", Some(condition)).unwrap());
            assert!(has(&fields, ":status", "304") && has(&fields, "etag", "\"v1\""));
            assert!(rest.is_empty());
            assert!(!fields.iter().any(|(n, _)| n == "content-length"));
        }
        let (fields, rest) = decode(&r.answer(b"GET", b"/e", Some(b"\"v2\"")).unwrap());
        assert!(has(&fields, ":status", "200"));
        assert_eq!(body_of(&rest), b"body");
    }

    #[test]
    fn the_encoding_is_made_once_per_date_second() {
        let mut r = StaticRoutes::default();
        r.insert(b"/c".to_vec(), StaticResponse { fields: vec![(b":status".to_vec(), b"200".to_vec())], body: vec![] });
        let (fields, rest) = decode(&r.answer(b"GET", b"/c", None).unwrap());
        assert!(has(&fields, "content-length", "0") && rest.is_empty());
        // Within the second the stored encoding is sent as it is...
        r.routes.get_mut(&b"/c"[..]).unwrap().encoded.full = b"stored".to_vec();
        assert_eq!(r.answer(b"GET", b"/c", None).unwrap().frames, b"stored");
        // ...and a new second encodes afresh.
        r.routes.get_mut(&b"/c"[..]).unwrap().encoded.second = Some(0);
        let answer = r.answer(b"GET", b"/c", None).unwrap();
        assert_ne!(answer.frames, b"stored");
        assert!(has(&decode(&answer).0, ":status", "200"));
    }
}
