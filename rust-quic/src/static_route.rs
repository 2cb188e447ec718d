//! Static responses answered inside the engine: `routes: { "/hi": new Response(...) }`
//! in Bun.serve is served natively by Bun's own server, so over HTTP/3 it must not
//! cost a trip into JavaScript either. A GET or HEAD whose path (without the query)
//! names a registered route is answered at the request head — headers with a
//! fresh Date, the body, FIN — and the application never sees the stream.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

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
        self.routes.insert(path, Route { response, length });
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The answer to a GET or HEAD of a registered path (the query does not
    /// count): the response head with Date and content-length, and the body.
    pub fn answer(&mut self, method: &[u8], path: &[u8]) -> Option<(Vec<FieldRef<'_>>, &[u8])> {
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = path.split(|&b| b == b'?').next().unwrap_or(path);
        let route = self.routes.get(path)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.date.0 != now || self.date.1.is_empty() {
            self.date = (now, http_date(now).into_bytes());
        }
        let mut fields: Vec<FieldRef<'_>> =
            route.response.fields.iter().map(|(n, v)| FieldRef { name: n.as_slice(), value: v.as_slice() }).collect();
        fields.push(FieldRef { name: b"content-length", value: &route.length });
        fields.push(FieldRef { name: b"date", value: &self.date.1 });
        Some((fields, &route.response.body))
    }
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
        let (fields, body) = r.answer(b"GET", b"/hi").unwrap();
        assert_eq!(body, b"x");
        assert!(fields.iter().any(|f| f.name == b"content-length" && f.value == b"1"));
        assert!(r.answer(b"HEAD", b"/hi?a=1").is_some());
        assert!(r.answer(b"POST", b"/hi").is_none());
        assert!(r.answer(b"GET", b"/hi/").is_none());
    }
}
