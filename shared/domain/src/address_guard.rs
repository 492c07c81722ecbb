//! Where a probe's connections may go: the addresses a check given by whoever
//! can invoke the probe must never reach (the function's own runtime API, the
//! instance and container metadata endpoints, the VPC's private addresses),
//! judged on the address a connection is about to use, hop by hop.
//!
//! A host name proves nothing: it can resolve to anything, and to something
//! else on the next lookup. So the adapter resolves, asks [`AddressGuard`]
//! about every address, and connects only to an address it admitted.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The rules one check's connections follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressGuard {
    /// Whether addresses of the special-purpose ranges ([`special_purpose`])
    /// are refused.
    pub deny_private: bool,
    /// Ranges let through although special-purpose (a deployment's own VPC
    /// subnet, say).
    pub allowed_ranges: Vec<IpNet>,
    /// When set, every hop's host must be one of these (`api.example.com`,
    /// or `*.example.com` for any subdomain): a redirect is checked as the
    /// first URL was.
    pub allowed_hosts: Option<Vec<String>>,
}

/// Why an address or a hop was refused, said for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl AddressGuard {
    /// The guard of a check given in an invocation: private addresses refused
    /// unless in `allowed_ranges`, every hop's host on `allowed_hosts`.
    pub fn for_adhoc(allowed_hosts: &[String], allowed_ranges: &[IpNet]) -> Self {
        Self {
            deny_private: true,
            allowed_ranges: allowed_ranges.to_vec(),
            allowed_hosts: Some(allowed_hosts.to_vec()),
        }
    }

    /// Whether a hop may go to `host` (a name, or an address as the URL has it).
    ///
    /// # Errors
    /// A [`Refusal`] naming the host when it is not on the allowlist.
    pub fn admits_host(&self, host: &str) -> Result<(), Refusal> {
        match &self.allowed_hosts {
            Some(allowed) if !host_allowed(allowed, host) => Err(Refusal(format!(
                "host {host:?} is not on the allowed hosts"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether a connection may go to `addr`. The Lambda runtime API (at
    /// any of `runtime_api`) is refused whatever the guard says: a check has
    /// no business there, and a request to it could take or answer the
    /// function's own invocations.
    ///
    /// # Errors
    /// A [`Refusal`] naming the address and the range it falls in.
    pub fn admits(&self, addr: SocketAddr, runtime_api: &[SocketAddr]) -> Result<(), Refusal> {
        let ip = canonical(addr.ip());
        let is_api = |api: &SocketAddr| canonical(api.ip()) == ip && api.port() == addr.port();
        if runtime_api.iter().any(is_api) {
            return Err(Refusal(format!("{addr} is the Lambda runtime API")));
        }
        if !self.deny_private || self.allowed_ranges.iter().any(|r| r.contains(&ip)) {
            return Ok(());
        }
        match special_purpose(ip) {
            Some(range) => Err(Refusal(format!("{addr} is {range}"))),
            None => Ok(()),
        }
    }
}

/// Whether `host` matches one of `allowed` (case-insensitive; `*.suffix`
/// matches any subdomain of suffix, not suffix itself).
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host
        .trim_matches(['[', ']'])
        .trim_end_matches('.')
        .to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => host == pattern.trim_matches(['[', ']']),
        }
    })
}

/// The IPv4 address an IPv6 address stands for, where it is only a wrapper
/// for one: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) and 6to4 (`2002::/16`). A guard
/// that looked at the IPv6 form only would let `::ffff:127.0.0.1` through.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let compatible = s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let local_nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1;
    if compatible || nat64 || local_nat64 {
        return Some(low32);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// The address to judge: the IPv4 one inside an IPv6 wrapper, or itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The special-purpose range `ip` falls in, if any (RFC 6890 and its IPv6
/// counterparts): what no check given by an invoker should reach.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(match (a, b, c) {
                (0, _, _) => "in 0.0.0.0/8 (this network)",
                (10, _, _) => "private (10.0.0.0/8)",
                (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
                (127, _, _) => "loopback (127.0.0.0/8)",
                (169, 254, _) => {
                    "link-local (169.254.0.0/16, the instance and container metadata endpoints)"
                }
                (172, 16..=31, _) => "private (172.16.0.0/12)",
                (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
                (192, 168, _) => "private (192.168.0.0/16)",
                (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
                (224..=239, _, _) => "multicast (224.0.0.0/4)",
                (240..=255, _, _) => "reserved (240.0.0.0/4)",
                _ => return None,
            })
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            Some(if v6.is_unspecified() {
                "unspecified (::)"
            } else if v6.is_loopback() {
                "loopback (::1)"
            } else if first & 0xffc0 == 0xfe80 {
                "link-local (fe80::/10)"
            } else if first & 0xffc0 == 0xfec0 {
                "site-local (fec0::/10)"
            } else if first & 0xfe00 == 0xfc00 {
                "unique-local (fc00::/7, the instance metadata's fd00:ec2::254 among them)"
            } else if first & 0xff00 == 0xff00 {
                "multicast (ff00::/8)"
            } else {
                return None;
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn special_purpose_ranges_are_refused_in_every_spelling() {
        let refused = [
            "127.0.0.1:9001",
            "169.254.169.254:80",
            "169.254.170.2:80",
            "10.1.2.3:443",
            "172.31.255.255:443",
            "192.168.0.10:80",
            "100.100.0.1:80",
            "0.0.0.0:80",
            "[::1]:80",
            "[::]:80",
            "[fe80::1]:80",
            "[fd00:ec2::254]:80",
            "[fc00::5]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:169.254.169.254]:80",
            "[::127.0.0.1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[2002:7f00:1::]:80",
        ];
        let guard = AddressGuard::for_adhoc(&[], &[]);
        for text in refused {
            assert!(guard.admits(addr(text), &[]).is_err(), "{text} admitted");
        }
        let public = [
            "93.184.215.14:443",
            "172.32.0.1:80",
            "100.128.0.1:80",
            "[2606:4700::1111]:443",
            "[::ffff:93.184.215.14]:443",
            "[2002:5db8:d70e::]:80",
        ];
        for text in public {
            assert_eq!(guard.admits(addr(text), &[]), Ok(()), "{text}");
        }
    }

    #[test]
    fn allowed_ranges_open_a_private_range_but_never_the_runtime_api() {
        let ranges: Vec<IpNet> = vec!["127.0.0.0/8".parse().expect("range")];
        let guard = AddressGuard::for_adhoc(&[], &ranges);
        let api = &[addr("127.0.0.1:9001")];
        assert_eq!(guard.admits(addr("127.0.0.1:8080"), api), Ok(()));
        assert!(guard.admits(addr("127.0.0.1:9001"), api).is_err());
        assert!(guard.admits(addr("[::ffff:127.0.0.1]:9001"), api).is_err());
        // An unguarded (configured) check is still kept off the runtime API.
        let open = AddressGuard::default();
        assert_eq!(open.admits(addr("10.0.0.1:80"), api), Ok(()));
        assert!(open.admits(addr("127.0.0.1:9001"), api).is_err());
    }

    #[test]
    fn hosts_match_exactly_or_as_subdomains() {
        let allowed = vec![
            "api.example.com".to_string(),
            "*.internal.example".to_string(),
        ];
        let guard = AddressGuard::for_adhoc(&allowed, &[]);
        for ok in [
            "api.example.com",
            "API.example.com.",
            "a.internal.example",
            "b.a.internal.example",
        ] {
            assert_eq!(guard.admits_host(ok), Ok(()), "{ok}");
        }
        for refused in [
            "example.com",
            "internal.example",
            "evilinternal.example",
            "api.example.com.evil",
        ] {
            assert!(guard.admits_host(refused).is_err(), "{refused}");
        }
        assert_eq!(AddressGuard::default().admits_host("anything"), Ok(()));
    }
}
