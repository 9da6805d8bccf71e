//! Where the operator's workloads may connect, and the NetworkPolicy egress rules that say
//! so: one piece shared by every controller that isolates a namespace.
//!
//! NetworkPolicy is enforced after a Service's address is translated to its endpoints, so a
//! rule that names a Service's port (the API server's 443, cluster DNS on the `kube-dns`
//! Service) does not match the packet a pod really sends. The operator therefore reads the
//! endpoints of the `kubernetes` and `kube-dns` Services at start, and resolves the
//! addresses of OpenBao and the S3 server it was given, into exact address/port peers:
//! - an IP literal is that address;
//! - a cluster Service name (`name.namespace.svc[.cluster.local]`) is its endpoints;
//! - any other host name is the addresses it resolves to.
//!
//! A name that resolves to nothing opens nothing: the port is never opened to every
//! destination.

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, Client};

/// Name of the NetworkPolicy that opens a namespace's egress paths (its default-deny closes
/// the rest).
pub const ALLOW_EGRESS: &str = "allow-egress";

/// A destination by address and TCP port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// `a.b.c.d/32` (or an IPv6 `/128`).
    pub cidr: String,
    /// TCP port.
    pub port: i32,
}

/// The destinations the operator's workloads may need, resolved to addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// Cluster DNS endpoints (UDP and TCP 53), besides DNS pods in `kube-system`.
    pub dns: Vec<String>,
    /// The API server's endpoints.
    pub api_server: Vec<Peer>,
    /// OpenBao's endpoints.
    pub openbao: Vec<Peer>,
    /// The S3 server's endpoints.
    pub s3: Vec<Peer>,
}

/// The single-address range of `ip`.
pub fn cidr(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => format!("{ip}/32"),
        std::net::IpAddr::V6(ip) => format!("{ip}/128"),
    }
}

/// The address/port peers of a Service's EndpointSlices (TCP ports only). Pure.
pub fn endpoint_peers(slices: &[EndpointSlice]) -> Vec<Peer> {
    let mut out = Vec::new();
    for slice in slices {
        let ports: Vec<i32> = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| p.port)
            .collect();
        for endpoint in slice.endpoints.iter().flatten() {
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse() else { continue };
                for port in &ports {
                    out.push(Peer {
                        cidr: cidr(ip),
                        port: *port,
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn service_endpoints(client: &Client, namespace: &str, service: &str) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    match api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(namespace, service, error = %e, "cannot read the Service's endpoints");
            Vec::new()
        }
    }
}

fn host_and_port(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let port = parsed.port_or_known_default()?;
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some((host, port))
}

/// The peer of a URL whose host is an IP literal; nothing for a host name. Pure (what the
/// offline `render` can know).
pub fn literal(url: &str) -> Vec<Peer> {
    host_and_port(url)
        .and_then(|(host, port)| {
            let ip = host.parse().ok()?;
            Some(vec![Peer {
                cidr: cidr(ip),
                port: i32::from(port),
            }])
        })
        .unwrap_or_default()
}

/// The peers of one URL (see the module's rules); the URL's port applies to addresses
/// that are not a Service's endpoints.
pub async fn resolve(client: &Client, url: &str) -> Vec<Peer> {
    let Some((host, port)) = host_and_port(url) else {
        return Vec::new();
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return literal(url);
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 3 && labels[2] == "svc" {
        return endpoint_peers(&service_endpoints(client, labels[1], labels[0]).await);
    }
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(addresses) => {
            let mut out: Vec<Peer> = addresses
                .map(|a| Peer {
                    cidr: cidr(a.ip()),
                    port: i32::from(port),
                })
                .collect();
            out.sort();
            out.dedup();
            out
        }
        Err(e) => {
            tracing::warn!(host, error = %e, "cannot resolve; no egress to it is opened");
            Vec::new()
        }
    }
}

/// Reads the cluster's DNS and API server endpoints and resolves OpenBao's and the S3
/// server's addresses.
pub async fn discover(client: &Client, openbao: Option<&str>, s3: Option<&str>) -> Paths {
    let dns = endpoint_peers(&service_endpoints(client, "kube-system", "kube-dns").await)
        .into_iter()
        .map(|p| p.cidr)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let paths = Paths {
        dns,
        api_server: endpoint_peers(&service_endpoints(client, "default", "kubernetes").await),
        openbao: match openbao {
            Some(url) => resolve(client, url).await,
            None => Vec::new(),
        },
        s3: match s3 {
            Some(url) => resolve(client, url).await,
            None => Vec::new(),
        },
    };
    tracing::info!(
        dns = paths.dns.len(),
        api_server = paths.api_server.len(),
        openbao = paths.openbao.len(),
        s3 = paths.s3.len(),
        "egress destinations resolved"
    );
    paths
}

/// Selects a namespace by its name.
pub fn namespace_named(ns: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            ns.to_string(),
        )])),
        ..Default::default()
    }
}

fn port(p: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn ip_block(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: None,
        }),
        ..Default::default()
    }
}

/// Cluster DNS: pods in `kube-system` and the DNS Service's endpoints, port 53.
pub fn dns(paths: &Paths) -> NetworkPolicyEgressRule {
    let mut to = vec![NetworkPolicyPeer {
        namespace_selector: Some(namespace_named("kube-system")),
        ..Default::default()
    }];
    to.extend(paths.dns.iter().map(|c| ip_block(c)));
    NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(vec![port(53, "UDP"), port(53, "TCP")]),
    }
}

/// The `allow-egress` NetworkPolicy of namespace `ns`: every pod there may open `rules` (its
/// default-deny closes the rest).
pub fn allow_egress(ns: &str, rules: Vec<NetworkPolicyEgressRule>) -> NetworkPolicy {
    NetworkPolicy {
        metadata: kube::core::ObjectMeta {
            name: Some(ALLOW_EGRESS.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(rules),
            ..Default::default()
        }),
    }
}

/// One rule per peer: exactly that address and port.
pub fn to_peers(peers: &[Peer]) -> Vec<NetworkPolicyEgressRule> {
    peers
        .iter()
        .map(|p| NetworkPolicyEgressRule {
            to: Some(vec![ip_block(&p.cidr)]),
            ports: Some(vec![port(p.port, "TCP")]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_become_exact_peers() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.250.0.1"]}],
            "ports": [{"name": "https", "port": 16443, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        }))
        .expect("slice");
        assert_eq!(
            endpoint_peers(&[slice]),
            vec![Peer {
                cidr: "10.250.0.1/32".into(),
                port: 16443
            }]
        );
    }

    #[test]
    fn no_rule_opens_a_port_to_every_destination() {
        let paths = Paths {
            dns: vec!["10.250.0.1/32".into()],
            ..Default::default()
        };
        let rules = [dns(&paths)]
            .into_iter()
            .chain(to_peers(&[Peer {
                cidr: "10.0.0.5/32".into(),
                port: 8200,
            }]))
            .collect::<Vec<_>>();
        assert!(
            rules
                .iter()
                .all(|r| r.to.as_ref().is_some_and(|t| !t.is_empty()))
        );
        // Offline, a host name is not an address: no peer, so no rule at all.
        assert!(literal("https://openbao.example.se:8200").is_empty());
        assert_eq!(literal("http://10.0.0.5:8200").len(), 1);
    }
}
