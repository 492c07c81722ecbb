//! Which redirects a check follows, and what the next request carries.
//!
//! A redirect is a new request the server chose, so it is judged as the
//! first one was, and carries only what the check meant for the origin it
//! named: its headers and body stay there, and https never becomes http.

use super::{FailureReason, HeaderValue};
use crate::address_guard::AddressGuard;
use url::Url;

/// Redirects followed at most in one attempt.
pub const MAX_REDIRECTS: usize = 10;

/// One request of an attempt: the first, or one a redirect led to.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub url: Url,
    pub method: String,
    /// The check's own headers: only for the check's origin.
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Option<String>,
}

/// What a response means for the attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The response is the answer (not a redirect, or one that leads nowhere
    /// a check can go, such as `ftp:`).
    Final,
    /// Follow it with this request.
    Follow(Hop),
}

/// Where a redirect answer leads, if it is one with a usable `Location`.
pub fn redirect_target(url: &Url, status: u16, location: Option<&str>) -> Option<Url> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let next = url.join(location?).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// The request a redirect answer leads to (RFC 9110, section 15.4), or why
/// it is not followed.
///
/// 303, and 301 or 302 after a POST, become a GET without a body. On another
/// origin, the check's headers are dropped; a 307 or 308 that would resend a
/// body there is refused. A hop from https to http is refused, and so is a
/// host the guard's allowlist lacks.
///
/// # Errors
/// [`FailureReason::RedirectRefused`] saying why.
pub fn follow(
    hop: &Hop,
    status: u16,
    location: Option<&str>,
    guard: &AddressGuard,
) -> Result<Next, FailureReason> {
    let Some(url) = redirect_target(&hop.url, status, location) else {
        return Ok(Next::Final);
    };
    let refuse = |why: String| {
        Err(FailureReason::RedirectRefused {
            detail: format!("{status} to {}: {why}", super::redacted_url(url.as_str())),
        })
    };
    if hop.url.scheme() == "https" && url.scheme() == "http" {
        return refuse("a check never downgrades from https to http".into());
    }
    if let Err(refusal) = guard.admits_host(url.host_str().unwrap_or_default()) {
        return refuse(refusal.0);
    }
    let becomes_get = match status {
        303 => hop.method != "HEAD",
        301 | 302 => hop.method == "POST",
        _ => false,
    };
    let body = if becomes_get { None } else { hop.body.clone() };
    let same_origin = url.origin() == hop.url.origin();
    if !same_origin && body.is_some() {
        return refuse("the check's body is for its own origin only".into());
    }
    Ok(Next::Follow(Hop {
        url,
        method: if becomes_get {
            "GET".to_string()
        } else {
            hop.method.clone()
        },
        headers: if same_origin {
            hop.headers.clone()
        } else {
            Vec::new()
        },
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(url: &str, method: &str, body: Option<&str>) -> Hop {
        Hop {
            url: Url::parse(url).expect("url"),
            method: method.into(),
            headers: vec![
                ("Authorization".into(), "Bearer x".into()),
                ("X-Id".into(), "1".into()),
            ],
            body: body.map(str::to_string),
        }
    }

    fn followed(next: Result<Next, FailureReason>) -> Hop {
        match next {
            Ok(Next::Follow(hop)) => hop,
            other => panic!("not followed: {other:?}"),
        }
    }

    #[test]
    fn methods_change_as_rfc_9110_says_and_headers_stay_at_home() {
        let open = AddressGuard::default();
        let post = hop("https://a.example/form", "POST", Some("data"));
        let kept = followed(follow(&post, 307, Some("/next"), &open));
        assert_eq!(
            (kept.method.as_str(), kept.body.as_deref()),
            ("POST", Some("data"))
        );
        assert_eq!(kept.headers.len(), 2);
        let got = followed(follow(&post, 302, Some("/next"), &open));
        assert_eq!((got.method.as_str(), got.body), ("GET", None));
        let seen = followed(follow(&post, 303, Some("https://b.example/"), &open));
        assert_eq!((seen.method.as_str(), seen.headers.len()), ("GET", 0));
        // A body is never resent to another origin.
        let away = follow(&post, 308, Some("https://b.example/"), &open);
        assert!(
            matches!(away, Err(FailureReason::RedirectRefused { .. })),
            "{away:?}"
        );
        let get = hop("https://a.example/", "GET", None);
        let elsewhere = followed(follow(&get, 301, Some("https://a.example:8443/"), &open));
        assert!(
            elsewhere.headers.is_empty(),
            "another port is another origin"
        );
    }

    #[test]
    fn https_never_becomes_http_and_hosts_stay_on_the_allowlist() {
        let open = AddressGuard::default();
        let get = hop("https://a.example/", "GET", None);
        let down = follow(&get, 302, Some("http://a.example/"), &open);
        assert!(
            matches!(down, Err(FailureReason::RedirectRefused { .. })),
            "{down:?}"
        );
        let up = followed(follow(
            &hop("http://a.example/", "GET", None),
            301,
            Some("https://a.example/"),
            &open,
        ));
        assert_eq!(up.url.as_str(), "https://a.example/");
        let guard = AddressGuard::for_adhoc(&["a.example".into()], &[]);
        assert!(follow(&get, 302, Some("/ok"), &guard).is_ok());
        let off = follow(
            &get,
            302,
            Some("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next"),
            &guard,
        );
        assert!(
            matches!(off, Err(FailureReason::RedirectRefused { .. })),
            "{off:?}"
        );
    }

    #[test]
    fn only_a_redirect_with_a_location_to_http_leads_anywhere() {
        let open = AddressGuard::default();
        let get = hop("http://a.example/x/y", "GET", None);
        let to = |status, location: Option<&str>| follow(&get, status, location, &open);
        assert_eq!(
            followed(to(301, Some("z"))).url.as_str(),
            "http://a.example/x/z"
        );
        assert_eq!(to(302, Some("ftp://b.example/")), Ok(Next::Final));
        assert_eq!(to(200, Some("/z")), Ok(Next::Final));
        assert_eq!(to(302, None), Ok(Next::Final));
    }
}
