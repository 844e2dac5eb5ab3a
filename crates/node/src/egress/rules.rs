//! What an address is (its [`AddressClass`]) and the `--allow-target` / `--deny-target` rules:
//! pure functions of an address, a name and a port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// What an address is, as far as the egress policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Any address not listed below: reachable by default.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10` (shared address
    /// space), `198.18.0.0/15` (benchmarking), `192.0.0.0/24` (protocol assignments),
    /// `fc00::/7` (unique local) and `fec0::/10` (the deprecated site-local range).
    Private,
    /// `169.254.0.0/16`, `fe80::/10`: only meaningful on the node's own link, where cloud
    /// metadata and other host services live.
    LinkLocal,
    /// A cloud provider's instance metadata service ([`METADATA_ADDRESSES`]).
    Metadata,
    /// `0.0.0.0/8`, `::`: connecting to them reaches the node itself.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `240.0.0.0/4`, `255.255.255.255` included.
    Reserved,
}

impl AddressClass {
    /// Refused whatever the flags say: no delivery has a reason to reach these.
    pub fn always_refused(self) -> bool {
        matches!(
            self,
            AddressClass::LinkLocal
                | AddressClass::Metadata
                | AddressClass::Unspecified
                | AddressClass::Multicast
                | AddressClass::Reserved
        )
    }

    /// Refused unless the nodes run with `--allow-private-targets` or an `--allow-target` rule
    /// covers the address.
    pub fn private(self) -> bool {
        matches!(self, AddressClass::Loopback | AddressClass::Private)
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Reserved => "a reserved or broadcast address",
        })
    }
}

/// Instance metadata services: AWS, GCP, Azure, OCI, DigitalOcean and most others
/// (169.254.169.254), AWS ECS and EKS (169.254.170.2, .23), Alibaba (100.100.100.200), Azure's
/// wire server (168.63.129.16), Oracle Cloud Classic (192.0.0.192), AWS over IPv6
/// (fd00:ec2::254 and its DNS at fd00:ec2::253).
pub const METADATA_ADDRESSES: [IpAddr; 9] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
];

/// Host names of metadata services (lowercase, without a trailing dot), refused before any DNS
/// lookup: GCP, AWS, Tencent, Equinix Metal and the bare `metadata` a search domain completes.
pub const METADATA_NAMES: [&str; 8] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
    "metadata.packet.net",
];

/// The IPv4 address an IPv6 address carries, when the network would deliver it to that IPv4
/// address: mapped (`::ffff:a.b.c.d`), translated (`::ffff:0:a.b.c.d`), compatible
/// (`::a.b.c.d`, but not `::` or `::1`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// `ip` with an embedded IPv4 address (see [`embedded_v4`]) taken out: the address every rule
/// and class is judged on.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The class of `ip`, judged on its [`canonical`] form.
pub fn classify(ip: IpAddr) -> AddressClass {
    let ip = canonical(ip);
    if METADATA_ADDRESSES.contains(&ip) {
        return AddressClass::Metadata;
    }
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (169, 254, _) => AddressClass::LinkLocal,
        (224..=239, _, _) => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) | (100, 64..=127, _) | (198, 18..=19, _) | (192, 0, 0) => {
            AddressClass::Private
        }
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if first & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// A host name as rules and checks compare it: lowercase, without a trailing dot.
pub fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `localhost` and the names under it, which resolve to loopback by definition (RFC 6761):
/// judged as `127.0.0.1` before any DNS lookup.
pub fn is_localhost(name: &str) -> bool {
    let name = normal_name(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// What one rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Addresses in a network; `prefix` bits of `addr` are significant.
    Net { addr: IpAddr, prefix: u8 },
    /// Exactly this host name.
    Name(String),
    /// Every name ending in this suffix (`.corp.example` for `*.corp.example`).
    Suffix(String),
}

/// One `--allow-target` or `--deny-target` entry: a CIDR (`10.1.0.0/16`, `fd00::/8`), an
/// address, a host name (`hooks.internal`) or every name under a domain (`*.corp.example`);
/// an address or name may carry a `:port` (`[fd00::1]:8443`, `hooks.internal:8080`), and then
/// matches that port only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRule {
    pattern: Pattern,
    port: Option<u16>,
    text: String,
}

impl fmt::Display for TargetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a comma-separated rule list (the value of `--allow-target` or `--deny-target`);
/// empty entries are skipped. The error names the entry at fault.
pub fn parse_rules(list: &str) -> Result<Vec<TargetRule>, String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(TargetRule::from_str).collect()
}

impl FromStr for TargetRule {
    type Err = String;

    fn from_str(s: &str) -> Result<TargetRule, String> {
        let text = s.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("{s:?}: {why}");
        let (host, port) = split_port(&text).map_err(|why| bad(&why))?;
        let pattern = if let Some((addr, prefix)) = host.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| bad("a CIDR must start with an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| bad("bad prefix length"))?;
            net(addr, prefix)
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            net(addr, if addr.is_ipv4() { 32 } else { 128 })
        } else if let Some(domain) = host.strip_prefix("*.") {
            check_name(domain).map_err(|why| bad(&why))?;
            Pattern::Suffix(format!(".{}", normal_name(domain)))
        } else {
            // Spellings such as `0x7f.1` are addresses to the URL parser: read them the same way.
            let parsed = reqwest::Url::parse(&format!("http://{host}/")).ok();
            match parsed.as_ref().and_then(|u| u.host_str()).and_then(|h| h.parse::<Ipv4Addr>().ok()) {
                Some(v4) => net(IpAddr::V4(v4), 32),
                None => {
                    check_name(host).map_err(|why| bad(&why))?;
                    Pattern::Name(normal_name(host))
                }
            }
        };
        Ok(TargetRule { pattern, port, text })
    }
}

/// A network rule, with an IPv4-mapped IPv6 network read as the IPv4 network it maps.
fn net(addr: IpAddr, prefix: u8) -> Pattern {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
            Pattern::Net { addr: canonical(addr), prefix: prefix - 96 }
        }
        _ => Pattern::Net { addr, prefix },
    }
}

/// Splits an optional `:port` off a rule: `[v6]:port`, `host:port`, `v4/len:port`; a bare IPv6
/// address or network (more than one colon, no brackets) has no port.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("bad port {p:?}"));
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after ]")),
        };
    }
    match text.matches(':').count() {
        1 => {
            let (host, p) = text.split_once(':').unwrap_or((text, ""));
            Ok((host, Some(port(p)?)))
        }
        _ => Ok((text, None)),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err("expected a CIDR, an IP address or a host name".into())
    }
}

/// Whether `ip` lies in `net`/`prefix` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

impl TargetRule {
    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether the rule covers the address `ip` (judged on its [`canonical`] form) at `port`.
    pub fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        match &self.pattern {
            Pattern::Net { addr, prefix } => self.port_matches(port) && in_net(canonical(ip), *addr, *prefix),
            Pattern::Name(_) | Pattern::Suffix(_) => false,
        }
    }

    /// Whether the rule covers the host name `name` at `port`.
    pub fn matches_name(&self, name: &str, port: u16) -> bool {
        let name = normal_name(name);
        let hit = match &self.pattern {
            Pattern::Name(n) => *n == name,
            Pattern::Suffix(s) => name.ends_with(s.as_str()),
            Pattern::Net { .. } => false,
        };
        hit && self.port_matches(port)
    }
}
