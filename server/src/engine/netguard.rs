//! Engines are not a proxy (issue 25): which addresses an engine may reach, and the HTTP agent
//! that holds engines to it where the connection is made.
//!
//! Editors register engines and the server connects to them. Without a rule, an editor could
//! make the server connect to its own loopback, the cloud's metadata service or the private
//! network behind it. So by default an engine reaches **public unicast addresses only**; the
//! operator widens that per process with `--engine-allow CIDR|HOST` (`CAPLENS_ENGINE_ALLOW`).
//!
//! Held twice, for two reasons:
//! - [`check_base_url`] when an engine is saved or built: a clear message before anything is
//!   sent (the URL's text only, no DNS);
//! - [`engine_agent`]'s resolver on every connection: after DNS, so a name that resolves — or
//!   later rebinds — to a refused address, or a spelling of an address that only the operating
//!   system reads as one (`2130706433`, `0x7f.1`), never gets a connection attempt. The agent
//!   follows no redirects and uses no proxy, so nothing connects out of the resolver's sight.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`, `::1`). Bits past the prefix are
    /// ignored (`192.168.1.7/24` is `192.168.1.0/24`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = match address.parse() {
            Ok(ip) => ip,
            Err(_) => match legacy_ipv4(address) {
                LegacyIpv4::Address(v4) => IpAddr::V4(v4),
                _ => return Err(format!("{text:?} is not an IP address or network")),
            },
        };
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= width => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {width}")),
            },
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix);
    (a >> shift) == (b >> shift)
}

/// One `--engine-allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// Addresses in this network may be reached, however they are named.
    Network(Cidr),
    /// This exact host name may be reached, at whatever it resolves to.
    Host(String),
}

impl AllowEntry {
    /// `10.0.0.0/8`, `127.0.0.1`, `fd00::/8`, or a host name (`gpu-box.internal`). The clap
    /// value parser of `--engine-allow`.
    pub fn parse(text: &str) -> Result<AllowEntry, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty --engine-allow entry".into());
        }
        if text.contains("://") {
            return Err(format!(
                "{text:?} is a URL: give a network (10.0.0.0/8, 127.0.0.1) or a host name \
                 (gpu.internal)"
            ));
        }
        let looks_like_address = text.contains('/')
            || text.contains(':')
            || text.parse::<IpAddr>().is_ok()
            || !matches!(legacy_ipv4(text), LegacyIpv4::NotNumeric);
        if looks_like_address {
            return Cidr::parse(text).map(AllowEntry::Network);
        }
        let host = normalise_host(text);
        if is_host_name(&host) {
            Ok(AllowEntry::Host(host))
        } else {
            Err(format!(
                "{text:?} is neither a network (10.0.0.0/8, 127.0.0.1, fd00::/8) nor a host name"
            ))
        }
    }
}

/// Which addresses engines may reach: public unicast ones, plus what the operator allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnginePolicy {
    allowed_networks: Vec<Cidr>,
    allowed_hosts: Vec<String>,
}

/// What the host of a URL alone says, before any DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostVerdict {
    /// Refused, with the reason (the host is an address or a name engines may not reach).
    Refused(String),
    /// An allow-listed name: whatever it resolves to may be reached.
    AllowedByName,
    /// An address that may be reached, or a name: what it resolves to decides.
    CheckAddresses,
}

impl EnginePolicy {
    pub fn new(entries: impl IntoIterator<Item = AllowEntry>) -> EnginePolicy {
        let mut policy = EnginePolicy::default();
        for entry in entries {
            match entry {
                AllowEntry::Network(n) => policy.allowed_networks.push(n),
                AllowEntry::Host(h) => policy.allowed_hosts.push(h),
            }
        }
        policy
    }

    /// A policy from `--engine-allow` texts (tests, `CAPLENS_ENGINE_ALLOW`-like lists).
    pub fn from_entries<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<EnginePolicy, String> {
        let parsed = entries
            .into_iter()
            .map(|e| AllowEntry::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnginePolicy::new(parsed))
    }

    /// Why an engine may not connect to `ip`; `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let canonical = ip.to_canonical();
        if self
            .allowed_networks
            .iter()
            .any(|n| n.contains(ip) || n.contains(canonical))
        {
            return None;
        }
        refusal_reason(ip)
    }

    fn judge_host(&self, url_host: &str) -> HostVerdict {
        let host = normalise_host(url_host);
        let address = match host.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => match legacy_ipv4(&host) {
                LegacyIpv4::Address(v4) => Some(IpAddr::V4(v4)),
                LegacyIpv4::Invalid => {
                    return HostVerdict::Refused(format!(
                        "{url_host} is neither an IP address nor a host name"
                    ))
                }
                LegacyIpv4::NotNumeric => None,
            },
        };
        if let Some(ip) = address {
            return match self.refusal(ip) {
                Some(reason) => HostVerdict::Refused(refused_address_message(ip, reason)),
                None => HostVerdict::CheckAddresses,
            };
        }
        if self.allowed_hosts.contains(&host) {
            return HostVerdict::AllowedByName;
        }
        match refused_host_name(&host) {
            Some(reason) => HostVerdict::Refused(format!(
                "{host} is {reason}: engines reach public addresses only, unless an \
                 administrator allows this one (--engine-allow {host})"
            )),
            None => HostVerdict::CheckAddresses,
        }
    }

    /// [`check_base_url`] under this policy.
    pub fn check_base_url(&self, url: &str) -> Result<(), String> {
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "base_url must start with http:// or https://, got {url:?}"
            ));
        }
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err("base_url must not contain spaces, control characters or \\".into());
        }
        // Paths are appended to the base URL: after a `?` or `#` they would no longer be the
        // path, and the server would fetch whatever the URL names instead.
        if url.contains('?') || url.contains('#') {
            return Err(
                "base_url must not have a query (?) or fragment (#): give the server's address, \
                 e.g. http://host:8000 or http://host:8000/v1"
                    .into(),
            );
        }
        let after_scheme = &url[url.find("://").map_or(0, |i| i + 3)..];
        let authority = after_scheme.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(
                "base_url must not contain a user name or password (an API key goes in api_key)"
                    .into(),
            );
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("base_url {url:?} is not a valid URL: {e}"))?;
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("base_url {url:?} names no host"));
        }
        match self.judge_host(host) {
            HostVerdict::Refused(reason) => Err(format!("base_url: {reason}")),
            HostVerdict::AllowedByName | HostVerdict::CheckAddresses => Ok(()),
        }
    }
}

/// The policy of this process, set once at start from `--engine-allow` ([`set_process_policy`]);
/// until then, and without flags, the default: public unicast addresses only.
pub fn process_policy() -> Arc<EnginePolicy> {
    PROCESS_POLICY.get().cloned().unwrap_or_default()
}

static PROCESS_POLICY: OnceLock<Arc<EnginePolicy>> = OnceLock::new();

/// Sets [`process_policy`] (main.rs, from the command line; tests that run engines on
/// loopback). Once per process: setting the same policy again is fine, another one is an error,
/// so nothing widens a policy after start.
pub fn set_process_policy(policy: EnginePolicy) -> Result<(), String> {
    let policy = Arc::new(policy);
    let set = PROCESS_POLICY.get_or_init(|| policy.clone());
    if **set == *policy {
        Ok(())
    } else {
        Err("the engine address policy (--engine-allow) is already set for this process".into())
    }
}

/// Checks an engine's base URL against the process's policy before anything is sent: scheme,
/// no user name, query or fragment, and a host that is not an address or name engines may not
/// reach (loopback, private, link-local, metadata services, … — see [`refusal_reason`]),
/// unless `--engine-allow` allows it. Reads only the URL's text (no DNS: names are checked
/// again, resolved, on every connection by [`engine_agent`]). The message says what to change.
pub fn check_base_url(url: &str) -> Result<(), String> {
    process_policy().check_base_url(url)
}

/// The message of a refused connection (the connect-time error); [`is_refusal`] tells it apart
/// from other connection errors.
#[derive(Debug)]
pub struct AddressRefused(String);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressRefused {}

/// The refusal inside a ureq error from an [`engine_agent`], if it is one.
pub fn refusal_of(error: &ureq::Error) -> Option<&AddressRefused> {
    match error {
        ureq::Error::Other(e) => e.downcast_ref::<AddressRefused>(),
        _ => None,
    }
}

/// The HTTP agent engines use: connects only to addresses `policy` allows (checked after DNS,
/// on every connection), follows no redirects (the 3xx answer is returned), uses no proxy (one
/// would resolve and connect out of the resolver's sight), and returns HTTP error statuses as
/// answers.
pub fn engine_agent(policy: Arc<EnginePolicy>, timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .proxy(None)
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        GuardedResolver { policy },
    )
}

/// The system resolver, then the policy: refused addresses are dropped before the connector
/// sees them; with none left, the connection fails without an attempt.
#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<EnginePolicy>,
}

impl GuardedResolver {
    fn refuse(message: String) -> ureq::Error {
        ureq::Error::Other(Box::new(AddressRefused(message)))
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or_default();
        let verdict = self.policy.judge_host(host);
        if let HostVerdict::Refused(reason) = &verdict {
            return Err(Self::refuse(reason.clone()));
        }
        // One message whether the name does not resolve or resolves only to refused addresses:
        // the error must not tell an editor what the server's DNS knows about internal names.
        let unreachable = || {
            Self::refuse(format!(
                "{} does not resolve to an address engines may reach (public addresses, or \
                 ones an administrator allows with --engine-allow)",
                normalise_host(host)
            ))
        };
        let resolved = match DefaultResolver::default().resolve(uri, config, timeout) {
            Ok(addresses) => addresses,
            Err(ureq::Error::HostNotFound | ureq::Error::Io(_)) => return Err(unreachable()),
            Err(other) => return Err(other),
        };
        if verdict == HostVerdict::AllowedByName {
            return Ok(resolved);
        }
        let mut kept = self.empty();
        for address in resolved.iter() {
            if self.policy.refusal(address.ip()).is_none() {
                kept.push(*address);
            }
        }
        if kept.is_empty() {
            Err(unreachable())
        } else {
            Ok(kept)
        }
    }
}

fn refused_address_message(ip: IpAddr, reason: &str) -> String {
    format!(
        "{ip} is {reason}: engines reach public addresses only, unless an administrator allows \
         this one (--engine-allow {})",
        ip.to_canonical()
    )
}

/// Lower case, without IPv6 brackets and without the trailing dot of a fully qualified name.
fn normalise_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Names that mean this machine, the cloud's metadata service or a private network, whatever
/// they resolve to at the moment.
fn refused_host_name(host: &str) -> Option<&'static str> {
    const METADATA: [&str; 5] = [
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    ];
    if METADATA.contains(&host) {
        return Some("a cloud metadata service");
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("this machine (localhost)");
    }
    const PRIVATE_SUFFIXES: [&str; 4] = [".internal", ".local", ".localdomain", ".home.arpa"];
    if PRIVATE_SUFFIXES.iter().any(|s| host.ends_with(s)) {
        return Some("a private network's name");
    }
    None
}

/// A host that is an IPv4 address as `inet_aton` (and so the operating system's resolver)
/// reads it: 1 to 4 parts, each decimal, octal (`0177`) or hexadecimal (`0x7f`), the last
/// filling the remaining bytes (`127.1`, `2130706433`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyIpv4 {
    Address(Ipv4Addr),
    /// All parts numeric but out of range: no address, and not a name either.
    Invalid,
    NotNumeric,
}

fn legacy_ipv4(host: &str) -> LegacyIpv4 {
    let parts: Vec<&str> = host.split('.').collect();
    let numbers: Option<Vec<Option<u64>>> = parts.iter().map(|p| numeric_part(p)).collect();
    let Some(numbers) = numbers else {
        return LegacyIpv4::NotNumeric;
    };
    if parts.len() > 4 || numbers.iter().any(Option::is_none) {
        return LegacyIpv4::Invalid;
    }
    let numbers: Vec<u64> = numbers.into_iter().flatten().collect();
    let (last, leading) = numbers
        .split_last()
        .expect("split yields one part at least");
    if leading.iter().any(|&n| n > 255) {
        return LegacyIpv4::Invalid;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return LegacyIpv4::Invalid;
    }
    let mut value: u64 = 0;
    for &n in leading {
        value = (value << 8) | n;
    }
    value = (value << last_bits) | *last;
    LegacyIpv4::Address(Ipv4Addr::from(value as u32))
}

/// `None`: not a number at all (a name's label); `Some(None)`: number-shaped but too large.
fn numeric_part(part: &str) -> Option<Option<u64>> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() && radix == 16 {
        // inet_aton reads a bare `0x` as zero.
        return Some(Some(0));
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(
        u64::from_str_radix(digits, radix)
            .ok()
            .filter(|&n| n <= u32::MAX as u64),
    )
}

/// IPv4 ranges that are not public unicast (IANA's special-purpose registry).
const REFUSED_V4: [([u8; 4], u8, &str); 15] = [
    ([0, 0, 0, 0], 8, "an unspecified address (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "a private address (10.0.0.0/8)"),
    (
        [100, 64, 0, 0],
        10,
        "a carrier-grade NAT address (100.64.0.0/10)",
    ),
    ([127, 0, 0, 0], 8, "a loopback address (127.0.0.0/8)"),
    (
        [169, 254, 0, 0],
        16,
        "a link-local address (169.254.0.0/16, where cloud metadata services answer)",
    ),
    ([172, 16, 0, 0], 12, "a private address (172.16.0.0/12)"),
    ([192, 0, 0, 0], 24, "a reserved address (192.0.0.0/24)"),
    ([192, 0, 2, 0], 24, "a documentation address (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "a reserved address (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "a private address (192.168.0.0/16)"),
    (
        [198, 18, 0, 0],
        15,
        "a benchmarking address (198.18.0.0/15)",
    ),
    (
        [198, 51, 100, 0],
        24,
        "a documentation address (198.51.100.0/24)",
    ),
    (
        [203, 0, 113, 0],
        24,
        "a documentation address (203.0.113.0/24)",
    ),
    ([224, 0, 0, 0], 4, "a multicast address (224.0.0.0/4)"),
    (
        [240, 0, 0, 0],
        4,
        "a reserved or broadcast address (240.0.0.0/4)",
    ),
];

/// IPv6 ranges inside global unicast (2000::/3) or beside it that are not public unicast.
/// Everything else outside 2000::/3 is refused too (see [`refusal_reason`]).
const REFUSED_V6: [([u16; 8], u8, &str); 9] = [
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "a local-use NAT64 address (64:ff9b:1::/48)",
    ),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "a documentation address (2001:db8::/32)",
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "a reserved address (2001::/23: Teredo, benchmarking, ORCHID)",
    ),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "a documentation address (3fff::/20)",
    ),
    (
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "a unique-local address (fc00::/7)",
    ),
    (
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "a link-local address (fe80::/10)",
    ),
    (
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "a site-local address (fec0::/10)",
    ),
    (
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "a multicast address (ff00::/8)",
    ),
    (
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "a discard-only address (100::/64)",
    ),
];

/// Why an engine may not reach `ip` by default; `None` for a public unicast address.
/// IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by that IPv4 address.
pub fn refusal_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_reason_v4(v4),
        IpAddr::V6(v6) => refusal_reason_v6(v6),
    }
}

fn refusal_reason_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let ip = IpAddr::V4(ip);
    REFUSED_V4
        .iter()
        .find(|(net, prefix, _)| {
            Cidr {
                network: IpAddr::V4(Ipv4Addr::from(*net)),
                prefix: *prefix,
            }
            .contains(ip)
        })
        .map(|(_, _, reason)| *reason)
}

fn refusal_reason_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_reason_v4(v4);
    }
    if ip.is_unspecified() {
        return Some("an unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address (::1)");
    }
    let bits = u128::from(ip);
    let nat64 = u128::from(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0));
    if same_prefix(bits, nat64, 128, 96) {
        return refusal_reason_v4(Ipv4Addr::from(bits as u32));
    }
    let six_to_four = u128::from(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0));
    if same_prefix(bits, six_to_four, 128, 16) {
        return refusal_reason_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    let listed = REFUSED_V6.iter().find(|(net, prefix, _)| {
        Cidr {
            network: IpAddr::V6(Ipv6Addr::from(*net)),
            prefix: *prefix,
        }
        .contains(IpAddr::V6(ip))
    });
    if let Some((_, _, reason)) = listed {
        return Some(*reason);
    }
    let global_unicast = u128::from(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0));
    if !same_prefix(bits, global_unicast, 128, 3) {
        // Includes the deprecated IPv4-compatible ::a.b.c.d and every range not yet assigned.
        return Some("a reserved address (outside global unicast 2000::/3)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        refusal_reason(text.parse().unwrap()).is_some()
    }

    #[test]
    fn every_non_public_ipv4_range_is_refused_at_both_ends() {
        for (first, last) in [
            ("0.0.0.0", "0.255.255.255"),
            ("10.0.0.0", "10.255.255.255"),
            ("100.64.0.0", "100.127.255.255"),
            ("127.0.0.0", "127.255.255.255"),
            ("169.254.0.0", "169.254.255.255"),
            ("172.16.0.0", "172.31.255.255"),
            ("192.0.0.0", "192.0.0.255"),
            ("192.0.2.0", "192.0.2.255"),
            ("192.88.99.0", "192.88.99.255"),
            ("192.168.0.0", "192.168.255.255"),
            ("198.18.0.0", "198.19.255.255"),
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            ("224.0.0.0", "239.255.255.255"),
            ("240.0.0.0", "255.255.255.255"),
        ] {
            assert!(refused(first), "{first}");
            assert!(refused(last), "{last}");
        }
        assert!(refusal_reason("169.254.169.254".parse().unwrap())
            .unwrap()
            .contains("metadata"));
        // Just outside the ranges: public.
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(!refused(public), "{public}");
        }
    }

    #[test]
    fn every_non_public_ipv6_range_is_refused() {
        for text in [
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
            "64:ff9b:1::1",
            "5f00::1",
            "4000::1",
            "e000::1",
            // Deprecated IPv4-compatible forms.
            "::7f00:1",
            "::808:808",
        ] {
            assert!(refused(text), "{text}");
        }
        for public in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "2001:4860::8888",
        ] {
            assert!(!refused(public), "{public}");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_an_ipv4_address_are_judged_by_it() {
        for carried in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::",
            "2002:0a00:0001:1::1",
        ] {
            assert!(refused(carried), "{carried}");
        }
        for public in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(!refused(public), "{public}");
        }
    }

    #[test]
    fn legacy_ipv4_spellings_are_read_as_the_operating_system_reads_them() {
        let read = |s: &str| match legacy_ipv4(s) {
            LegacyIpv4::Address(a) => Some(a.to_string()),
            _ => None,
        };
        assert_eq!(read("2130706433").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("0x7f000001").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("0x7f.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("0177.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("169.254.43518").as_deref(), Some("169.254.169.254"));
        assert_eq!(read("10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(legacy_ipv4("256.0.0.1"), LegacyIpv4::Invalid);
        assert_eq!(legacy_ipv4("1.2.3.4.5"), LegacyIpv4::Invalid);
        assert_eq!(legacy_ipv4("08.0.0.1"), LegacyIpv4::NotNumeric);
        assert_eq!(legacy_ipv4("gpu1.example.org"), LegacyIpv4::NotNumeric);
        assert_eq!(legacy_ipv4("1e100.net"), LegacyIpv4::NotNumeric);
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.1.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            !net.contains("::ffff:10.0.0.1".parse().unwrap()),
            "v6 is not v4"
        );
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let masked = Cidr::parse("192.168.1.7/24").unwrap();
        assert!(masked.contains("192.168.1.200".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("10.0.0/x").is_err());
    }

    #[test]
    fn allow_entries_are_networks_or_host_names() {
        assert_eq!(
            AllowEntry::parse(" 127.0.0.1 ").unwrap(),
            AllowEntry::Network(Cidr::parse("127.0.0.1/32").unwrap())
        );
        assert!(matches!(
            AllowEntry::parse("fd00::/8").unwrap(),
            AllowEntry::Network(_)
        ));
        assert_eq!(
            AllowEntry::parse("GPU-Box.Internal.").unwrap(),
            AllowEntry::Host("gpu-box.internal".into())
        );
        for bad in [
            "",
            "http://gpu:8000",
            "gpu box",
            "10.0.0.0/40",
            "a..b",
            "gpu:8000",
        ] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn check(policy: &EnginePolicy, url: &str) -> Result<(), String> {
        policy.check_base_url(url)
    }

    #[test]
    fn base_urls_that_name_a_refused_address_are_refused_however_spelled() {
        let default = EnginePolicy::default();
        for url in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1.:8000",
            "http://localhost:8000",
            "http://LOCALHOST.:8000/v1",
            "http://app.localhost",
            "http://[::1]:8000",
            "http://[::ffff:127.0.0.1]:8000",
            "http://[::ffff:7f00:1]:8000",
            "http://[64:ff9b::7f00:1]:8000",
            "http://[2002:7f00:1::]:8000",
            "http://2130706433:8000",
            "http://0x7f000001:8000",
            "http://0x7f.1:8000",
            "http://0177.0.0.1:8000",
            "http://127.1:8000",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://metadata",
            "http://instance-data",
            "http://10.0.0.7:8000",
            "http://192.168.1.10:8000",
            "http://100.100.100.200",
            "http://0.0.0.0:8000",
            "http://256.1.1.1:8000",
            "https://gpu.local",
        ] {
            let err = check(&default, url).expect_err(url);
            assert!(err.starts_with("base_url"), "{url}: {err}");
        }
        for url in [
            "http://evil@gpu.example.org:8000",
            "http://gpu.example.org:8000/#x",
            "http://gpu.example.org:8000/admin?x=",
            "ftp://gpu.example.org",
            "gpu.example.org:8000",
            "http://gpu.example.org:8000/ v1",
        ] {
            assert!(check(&default, url).is_err(), "{url}");
        }
        for url in [
            "http://gpu.example.org:8000",
            "https://api.example.com/v1/",
            "http://8.8.8.8:8000/v1",
            "http://[2606:4700:4700::1111]:8000",
        ] {
            assert_eq!(check(&default, url), Ok(()), "{url}");
        }
    }

    #[test]
    fn refusals_say_what_the_operator_can_allow() {
        let err = check(&EnginePolicy::default(), "http://[::ffff:127.0.0.1]:8000").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(err.contains("--engine-allow 127.0.0.1"), "{err}");
        let err = check(&EnginePolicy::default(), "http://metadata.google.internal").unwrap_err();
        assert!(err.contains("metadata"), "{err}");
    }

    #[test]
    fn the_allow_list_admits_its_networks_and_hosts_and_nothing_else() {
        let policy =
            EnginePolicy::from_entries(["127.0.0.1", "10.0.0.0/8", "gpu.internal", "fd00::/8"])
                .unwrap();
        for url in [
            "http://127.0.0.1:8000",
            "http://2130706433:8000",
            "http://[::ffff:127.0.0.1]:8000",
            "http://10.20.30.40:8000",
            "http://gpu.internal:8000",
            "http://GPU.internal.:8000",
            "http://[fd12::1]:8000",
        ] {
            assert_eq!(check(&policy, url), Ok(()), "{url}");
        }
        for url in [
            "http://127.0.0.2:8000",
            "http://localhost:8000",
            "http://169.254.169.254",
            "http://192.168.1.1",
            "http://other.internal",
            "http://gpu.internal.evil.internal",
            "http://[fe80::1]",
        ] {
            assert!(check(&policy, url).is_err(), "{url}");
        }
        assert_eq!(policy.refusal("127.0.0.1".parse().unwrap()), None);
        assert!(policy.refusal("127.0.0.2".parse().unwrap()).is_some());
        // A host entry allows the name, not the addresses it happens to resolve to.
        let by_name = EnginePolicy::from_entries(["localhost"]).unwrap();
        assert_eq!(check(&by_name, "http://localhost:8000"), Ok(()));
        assert!(check(&by_name, "http://127.0.0.1:8000").is_err());
        assert!(by_name.refusal("127.0.0.1".parse().unwrap()).is_some());
    }

    fn resolve(policy: EnginePolicy, url: &str) -> Result<Vec<std::net::SocketAddr>, String> {
        let uri: Uri = url.parse().unwrap();
        let config = ureq::config::Config::default();
        GuardedResolver {
            policy: Arc::new(policy),
        }
        .resolve(&uri, &config, NextTimeout::default())
        .map(|a| a.to_vec())
        .map_err(|e| match refusal_of(&e) {
            Some(refused) => refused.to_string(),
            None => panic!("{url}: not a refusal: {e}"),
        })
    }

    #[test]
    fn the_resolver_drops_refused_addresses_after_dns() {
        // `localhost` goes through the system resolver (whatever /etc/hosts says, it is
        // loopback); the numeric spellings too.
        for url in [
            "http://localhost:9",
            "http://2130706433:9",
            "http://127.1:9",
            "http://[::ffff:127.0.0.1]:9",
            "http://169.254.169.254:80",
        ] {
            let err = resolve(EnginePolicy::default(), url).expect_err(url);
            assert!(err.contains("--engine-allow"), "{url}: {err}");
        }
        let allowed = EnginePolicy::from_entries(["127.0.0.0/8", "::1"]).unwrap();
        for url in [
            "http://127.0.0.1:9",
            "http://2130706433:9",
            "http://[::ffff:127.0.0.1]:9",
        ] {
            let addresses = resolve(allowed.clone(), url).unwrap();
            assert!(!addresses.is_empty(), "{url}");
            assert!(
                addresses
                    .iter()
                    .all(|a| a.ip().to_canonical().is_loopback()),
                "{url}: {addresses:?}"
            );
        }
        let by_name = EnginePolicy::from_entries(["localhost"]).unwrap();
        assert!(!resolve(by_name, "http://localhost:9").unwrap().is_empty());
    }

    #[test]
    fn the_process_policy_is_set_once() {
        // The only test in this binary that sets it; the others build their own policies.
        let policy = EnginePolicy::from_entries(["192.0.2.1"]).unwrap();
        assert_eq!(set_process_policy(policy.clone()), Ok(()));
        assert_eq!(set_process_policy(policy), Ok(()), "the same again is fine");
        assert!(set_process_policy(EnginePolicy::default()).is_err());
        assert_eq!(
            *process_policy(),
            EnginePolicy::from_entries(["192.0.2.1"]).unwrap()
        );
    }
}
