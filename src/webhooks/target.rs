//! Where a webhook may deliver. A webhook URL is a way into the network Rapport runs in,
//! so by default targets on loopback, link-local, private, shared and unspecified
//! addresses are refused, both as written in the URL and as its name resolves (checked on
//! every connection, so a name that later resolves inside is refused then), and redirects
//! are never followed. `webhooks.allow_private_targets` lifts the address rule.

use std::net::{IpAddr, SocketAddr};

use super::WebhookError;
use crate::config::WebhooksConfig;

/// Whether `ip` is somewhere a webhook must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                // "This network", 0.0.0.0/8.
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Checks a URL a subscription delivers to: `http` or `https`, a host, and (unless
/// private targets are allowed) an address outside the internal ranges.
pub async fn check_url(url: &str, config: &WebhooksConfig) -> Result<(), WebhookError> {
    let bad = |m: &str| WebhookError::Invalid {
        field: "/url",
        message: m.to_owned(),
    };
    let u = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "must not hold credentials (sign with the subscription's secret)",
        ));
    }
    let host = u.host_str().ok_or_else(|| bad("must name a host"))?;
    if config.allow_private_targets {
        return Ok(());
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bad(&format!("does not resolve: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(bad("does not resolve"));
    }
    if addrs.iter().any(|a| is_internal(a.ip())) {
        return Err(bad(
            "resolves to a loopback, link-local or private address; webhooks do not deliver inside the network (webhooks.allow_private_targets)",
        ));
    }
    Ok(())
}

/// A name resolver that refuses internal addresses, so that what a name resolves to when
/// the connection is made is checked, not only what it resolved to before.
struct Guarded;

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address webhooks may reach").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client deliveries use: the configured timeout, no redirects, no proxy from
/// the environment, and (unless private targets are allowed) the guarded resolver.
pub fn client(config: &WebhooksConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(config.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("rapport-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private_targets {
        b = b.dns_resolver(std::sync::Arc::new(Guarded));
    }
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use super::is_internal;

    #[tokio::test]
    async fn by_default_a_url_inside_the_network_is_refused() {
        let default = crate::config::WebhooksConfig::default();
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/x",
            "http://169.254.169.254/latest",
            "http://10.0.0.7/",
        ] {
            let e = super::check_url(url, &default).await.unwrap_err();
            assert!(e.to_string().contains("/url"), "{url}: {e}");
        }
        assert!(super::check_url("ftp://example.com/", &default)
            .await
            .is_err());
        assert!(super::check_url("http://u:p@example.com/", &default)
            .await
            .is_err());
        let allowed = crate::config::WebhooksConfig {
            allow_private_targets: true,
            ..default
        };
        assert!(super::check_url("http://127.0.0.1:9/hook", &allowed)
            .await
            .is_ok());
    }

    #[test]
    fn internal_ranges_are_told_from_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "203.0.114.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
