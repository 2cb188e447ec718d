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
use crate::http3::FieldRef;

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
        self.routes.insert(path, Route { response, length, etag });
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }

    /// The answer to a GET or HEAD of a registered path (the query does not
    /// count): the response head with Date and content-length, and the body;
    /// or, when `if_none_match` names the route's ETag, a bodyless 304.
    pub fn answer(
        &mut self,
        method: &[u8],
        path: &[u8],
        if_none_match: Option<&[u8]>,
    ) -> Option<(Vec<FieldRef<'_>>, &[u8])> {
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = path.split(|&b| b == b'?').next().unwrap_or(path);
        let route = self.routes.get(path)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.date.0 != now || self.date.1.is_empty() {
            self.date = (now, http_date(now).into_bytes());
        }
        // Only a 200 is conditional (Bun's server answers a static 201 whatever the request says).
        let is_ok = route.response.fields.first().is_some_and(|(_, v)| v == b"200");
        let not_modified = match (&route.etag, if_none_match) {
            (Some(etag), Some(condition)) => is_ok && etag_matches(condition, etag),
            _ => false,
        };
        let mut fields: Vec<FieldRef<'_>> = Vec::with_capacity(route.response.fields.len() + 2);
        if not_modified {
            fields.push(FieldRef { name: b":status", value: b"304" });
            fields.extend(route.response.fields.iter().skip(1).map(|(n, v)| FieldRef { name: n, value: v }));
        } else {
            fields.extend(route.response.fields.iter().map(|(n, v)| FieldRef { name: n, value: v }));
            fields.push(FieldRef { name: b"content-length", value: &route.length });
        }
        fields.push(FieldRef { name: b"date", value: &self.date.1 });
        Some((fields, if not_modified { &[] } else { &route.response.body }))
    }
}

impl RequestHeadHook for StaticRoutes {
    fn answer(&mut self, fields: &[quiche::h3::Header]) -> Option<EngineAnswer<'_>> {
        use quiche::h3::NameValue;
        let field = |name: &[u8]| fields.iter().find(|h| h.name() == name).map(|h| h.value());
        let (head, body) = StaticRoutes::answer(self, field(b":method")?, field(b":path")?, field(b"if-none-match"))?;
        Some(EngineAnswer { head, body })
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

    #[test]
    fn answers_get_and_head_without_query() {
        let mut r = StaticRoutes::default();
        r.insert(
            b"/hi".to_vec(),
            StaticResponse { fields: vec![(b":status".to_vec(), b"200".to_vec())], body: b"x".to_vec() },
        );
        let (fields, body) = r.answer(b"GET", b"/hi", None).unwrap();
        assert_eq!(body, b"x");
        assert!(fields.iter().any(|f| f.name == b"content-length" && f.value == b"1"));
        assert!(r.answer(b"HEAD", b"/hi?a=1", None).is_some());
        assert!(r.answer(b"POST", b"/hi", None).is_none());
        assert!(r.answer(b"GET", b"/hi/", None).is_none());
        // Without an ETag a condition changes nothing.
        let (fields, _) = r.answer(b"GET", b"/hi", Some(b"*")).unwrap();
        assert_eq!(fields[0].value, b"200");
    }

    #[test]
    fn if_none_match_gets_304_without_body_or_length() {
        let mut r = StaticRoutes::default();
        let fields = vec![(b":status".to_vec(), b"200".to_vec()), (b"etag".to_vec(), b"\"v1\"".to_vec())];
        r.insert(b"/e".to_vec(), StaticResponse { fields, body: b"body".to_vec() });
        for condition in [&b"\"v1\""[..], b"W/\"v1\"", b"\"x\", \"v1\"", b"*"] {
            let (fields, body) = r.answer(b"GET", b"/e", Some(condition)).unwrap();
            assert_eq!((fields[0].value, body), (&b"304"[..], &b""[..]));
            assert!(fields.iter().any(|f| f.name == b"etag"));
            assert!(!fields.iter().any(|f| f.name == b"content-length"));
        }
        let (fields, body) = r.answer(b"GET", b"/e", Some(b"\"v2\"")).unwrap();
        assert_eq!((fields[0].value, body), (&b"200"[..], &b"body"[..]));
    }
}
