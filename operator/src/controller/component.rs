//! The project's own long-running components (the pseudonymisation service, the catalogue, a
//! hub's exposure API): one shape for their labels, Deployment, Service, probes and the
//! NetworkPolicy that admits their callers. Each controller says only what differs: the
//! container's name, image, arguments and environment, who may connect, where it may go.
//! Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ObjectMeta;

use crate::api::Placement;
use crate::controller::workload;

/// One component: its objects' name and namespace, its labels, and the port it serves on.
pub struct Component<'a> {
    /// Name of the Deployment, Service, NetworkPolicy (and usually ServiceAccount).
    pub name: String,
    /// Namespace of its objects.
    pub namespace: Option<String>,
    /// `app.kubernetes.io/name`, for example `catalog-service`.
    pub app: &'static str,
    /// `app.kubernetes.io/instance`: the resource it serves.
    pub instance: String,
    /// `app.kubernetes.io/component`.
    pub role: &'static str,
    /// Where its pods run.
    pub placement: &'a Placement,
    /// The name of its container port (`http` or `https`).
    pub port_name: &'static str,
    /// Its container port.
    pub port: i32,
}

impl Component<'_> {
    /// The labels that select its pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), self.app.to_string()),
            (
                "app.kubernetes.io/instance".to_string(),
                self.instance.clone(),
            ),
        ])
    }

    /// The metadata of its objects: name, namespace and labels.
    pub fn meta(&self) -> ObjectMeta {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/component".into(), self.role.into());
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: self.namespace.clone(),
            labels: Some(labels),
            ..Default::default()
        }
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels()),
            ..Default::default()
        }
    }

    /// A probe of `path` on its port, over HTTPS when `https`.
    pub fn http_probe(&self, path: &str, https: bool, period_seconds: i32) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::Int(self.port),
                scheme: https.then(|| "HTTPS".to_string()),
                ..Default::default()
            }),
            period_seconds: Some(period_seconds),
            ..Default::default()
        }
    }

    /// A probe that only connects to its port.
    pub fn tcp_probe(&self, period_seconds: i32) -> Probe {
        Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(self.port),
                ..Default::default()
            }),
            period_seconds: Some(period_seconds),
            ..Default::default()
        }
    }

    /// Its Deployment, meeting Pod Security "restricted": `container` gets the named port
    /// and the restricted security context; the pod runs as `service_account`.
    pub fn deployment(
        &self,
        replicas: i32,
        service_account: &str,
        container: Container,
    ) -> Deployment {
        let container = Container {
            ports: Some(vec![ContainerPort {
                name: Some(self.port_name.into()),
                container_port: self.port,
                ..Default::default()
            }]),
            security_context: Some(workload::restricted_container()),
            ..container
        };
        let mut template = self.meta();
        template.name = None;
        template.namespace = None;
        Deployment {
            metadata: self.meta(),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: self.selector(),
                template: PodTemplateSpec {
                    metadata: Some(template),
                    spec: Some(PodSpec {
                        service_account_name: Some(service_account.into()),
                        containers: vec![container],
                        security_context: Some(workload::restricted_pod()),
                        node_selector: workload::node_selector(self.placement),
                        tolerations: workload::tolerations(self.placement),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Its Service: `port` to the container's named port.
    pub fn service(&self, port: i32) -> Service {
        Service {
            metadata: self.meta(),
            spec: Some(ServiceSpec {
                selector: Some(self.selector_labels()),
                ports: Some(vec![ServicePort {
                    name: Some(self.port_name.into()),
                    port,
                    target_port: Some(IntOrString::String(self.port_name.into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Binds its Role to its ServiceAccount, both named as the component.
    pub fn role_binding(&self) -> RoleBinding {
        RoleBinding {
            metadata: self.meta(),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: self.name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                ..Default::default()
            }]),
        }
    }

    /// Its NetworkPolicy: `from` may connect to its port (`None`: anyone); with `egress`, its
    /// pods may go only there.
    pub fn network_policy(
        &self,
        from: Option<Vec<NetworkPolicyPeer>>,
        egress: Option<Vec<NetworkPolicyEgressRule>>,
    ) -> NetworkPolicy {
        let mut types = vec!["Ingress".to_string()];
        if egress.is_some() {
            types.push("Egress".into());
        }
        NetworkPolicy {
            metadata: self.meta(),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(self.selector()),
                policy_types: Some(types),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from,
                    ports: Some(vec![NetworkPolicyPort {
                        port: Some(IntOrString::Int(self.port)),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                }]),
                egress,
            }),
        }
    }
}
