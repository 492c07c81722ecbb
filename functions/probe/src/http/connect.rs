//! Opening a check's connection: the host resolved by our resolver, every
//! address put to the check's guard, and only an admitted address connected
//! to. Connecting to a name would let the name resolve again, to anything.

use ecs_control::domain::address_guard::AddressGuard;
use ecs_control::domain::probe::{FailureReason, IpPreference, Phases};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;
use url::{Host, Url};

/// Looks a host name up.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn lookup(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send;
}

/// The system's resolver (getaddrinfo, as every other client in the function).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

pub(super) fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn connection_error(detail: impl Into<String>) -> FailureReason {
    FailureReason::Connection {
        detail: detail.into(),
    }
}

pub(super) fn io_failure(error: &std::io::Error) -> FailureReason {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => FailureReason::ConnectionRefused {
            detail: error.to_string(),
        },
        std::io::ErrorKind::TimedOut => FailureReason::Timeout,
        _ => connection_error(error.to_string()),
    }
}

/// Orders (or filters) looked-up addresses by family preference, keeping the
/// resolver's order within a family.
pub(super) fn by_preference(
    mut addrs: Vec<SocketAddr>,
    preference: IpPreference,
) -> Result<Vec<SocketAddr>, String> {
    match preference {
        IpPreference::Ipv4Only => addrs.retain(SocketAddr::is_ipv4),
        IpPreference::Ipv6Only => addrs.retain(SocketAddr::is_ipv6),
        _ => {}
    }
    let v4_first = matches!(
        preference,
        IpPreference::Ipv4Preferred | IpPreference::Ipv4Only
    );
    addrs.sort_by_key(|a| a.is_ipv4() != v4_first);
    if addrs.is_empty() {
        return Err(format!("no address of the allowed family ({preference:?})"));
    }
    Ok(addrs)
}

/// The addresses the guard admits, in order; when none, why the first was refused.
pub(super) fn admitted(
    addrs: Vec<SocketAddr>,
    guard: &AddressGuard,
    runtime_api: &[SocketAddr],
) -> Result<Vec<SocketAddr>, FailureReason> {
    let mut first_refusal = None;
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| match guard.admits(*addr, runtime_api) {
            Ok(()) => true,
            Err(refusal) => {
                first_refusal.get_or_insert(refusal.0);
                false
            }
        })
        .collect();
    match (kept.is_empty(), first_refusal) {
        (true, Some(why)) => Err(FailureReason::AddressDenied { detail: why }),
        _ => Ok(kept),
    }
}

/// Where one hop connects: the URL's host resolved (timed, into `phases`)
/// unless it is an address, ordered by preference, kept to what the guard admits.
pub(super) async fn addresses<R: Resolve>(
    resolver: &R,
    url: &Url,
    preference: IpPreference,
    guard: &AddressGuard,
    runtime_api: &[SocketAddr],
    phases: &mut Phases,
) -> Result<Vec<SocketAddr>, FailureReason> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| connection_error("the URL has no port"))?;
    let addrs = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Domain(name)) => {
            let started = Instant::now();
            let looked_up = resolver.lookup(name, port).await;
            Phases::add(&mut phases.dns_ms, millis(started));
            let addrs = looked_up.map_err(|e| FailureReason::Dns {
                detail: format!("{name}: {e}"),
            })?;
            by_preference(addrs, preference).map_err(|e| FailureReason::Dns {
                detail: format!("{name} has {e}"),
            })?
        }
        None => return Err(connection_error("the URL has no host")),
    };
    admitted(addrs, guard, runtime_api)
}

/// Opens a TCP connection to the first of `addrs` that answers (timed).
pub(super) async fn connect(
    addrs: &[SocketAddr],
    phases: &mut Phases,
) -> Result<TcpStream, FailureReason> {
    let started = Instant::now();
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                Phases::add(&mut phases.connect_ms, millis(started));
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or_else(
        || connection_error("no address to connect to"),
        |e| io_failure(&e),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_family_preference() {
        let v4: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let v6: SocketAddr = "[fd00::1]:80".parse().expect("addr");
        let both = vec![v6, v4];
        assert_eq!(
            by_preference(both.clone(), IpPreference::Ipv4Preferred),
            Ok(vec![v4, v6])
        );
        assert_eq!(
            by_preference(both.clone(), IpPreference::Ipv6Preferred),
            Ok(vec![v6, v4])
        );
        assert_eq!(by_preference(both, IpPreference::Ipv4Only), Ok(vec![v4]));
        assert!(by_preference(vec![v4], IpPreference::Ipv6Only).is_err());
    }

    #[test]
    fn only_admitted_addresses_are_kept_and_none_is_a_refusal() {
        let public: SocketAddr = "93.184.215.14:80".parse().expect("addr");
        let metadata: SocketAddr = "169.254.169.254:80".parse().expect("addr");
        let guard = AddressGuard::for_adhoc(&[], &[]);
        assert_eq!(
            admitted(vec![metadata, public], &guard, &[]),
            Ok(vec![public])
        );
        let refused = admitted(vec![metadata], &guard, &[]).expect_err("refused");
        assert_eq!(refused.kind(), "address_denied");
        assert!(refused.to_string().contains("169.254.169.254"), "{refused}");
    }
}
