//! A multi-step attempt: each step's request made from its templates and the
//! values earlier steps extracted, sent as any request is (guard, redirects,
//! TLS), and judged as it ends. The first failing step ends the attempt.

use super::{connection_error, HttpAdapter, Notes, Resolve};
use ecs_control::domain::probe::kinds::{substitute, HttpStep, StepValues};
use ecs_control::domain::probe::redirect::Hop;
use ecs_control::domain::probe::{verdict, Answer, FailureReason, HeaderValue, ProbeCheck};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// What a value placed in a URL is escaped from: everything but RFC 3986's
/// unreserved characters, so that a value is one path segment or query value.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) async fn run<R: Resolve>(
    adapter: &HttpAdapter<R>,
    check: &ProbeCheck,
    steps: &[HttpStep],
    max_body_bytes: usize,
    notes: &mut Notes,
) -> Result<Answer, FailureReason> {
    let mut values = StepValues::new();
    let mut last_status = None;
    for step in steps {
        notes.begin_step(step.name.clone());
        let ended = one(adapter, check, step, &mut values, max_body_bytes, notes).await;
        let (status, reason) = match &ended {
            Ok(status) => (Some(*status), None),
            Err((status, reason)) => (*status, Some(reason.clone())),
        };
        notes.end_step(status, reason);
        match ended {
            Ok(status) => last_status = Some(status),
            Err((_, reason)) => return Err(reason),
        }
    }
    Ok(Answer::Passed {
        status: last_status,
    })
}

/// One step: its status, or the status (if any) and why it failed.
async fn one<R: Resolve>(
    adapter: &HttpAdapter<R>,
    check: &ProbeCheck,
    step: &HttpStep,
    values: &mut StepValues,
    max_body_bytes: usize,
    notes: &mut Notes,
) -> Result<u16, (Option<u16>, FailureReason)> {
    // The URL is not echoed: it may carry an extracted value.
    let url = Url::parse(&substitute(&step.url, values, |v| {
        utf8_percent_encode(v, URL_VALUE).to_string()
    }))
    .map_err(|e| {
        (
            None,
            connection_error(format!("step {}: invalid URL: {e}", step.name)),
        )
    })?;
    // Each step's host is held to the guard's allowlist, as a redirect's is.
    check
        .guard
        .admits_host(url.host_str().unwrap_or_default())
        .map_err(|refusal| (None, FailureReason::AddressDenied { detail: refusal.0 }))?;
    let hop = Hop {
        url,
        method: step.method.clone(),
        headers: step
            .headers
            .iter()
            .map(|(name, value)| {
                let filled = substitute(value.expose(), values, str::to_string);
                (name.clone(), HeaderValue::Plain(filled))
            })
            .collect(),
        body: step
            .body
            .as_ref()
            .map(|body| substitute(body, values, str::to_string)),
    };
    let response = adapter
        .exchange(hop, check, max_body_bytes, notes)
        .await
        .map_err(|reason| (None, reason))?;
    let status = Some(response.status);
    verdict(&step.expect, &response).map_err(|reason| (status, reason))?;
    for extraction in &step.extract {
        let value = extraction
            .take(&response.body, &response.headers)
            .map_err(|reason| (status, reason))?;
        values.insert(extraction.name.clone(), value);
    }
    Ok(response.status)
}
