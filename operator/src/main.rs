//! The `vardhub` command: one binary for every component of the project.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vardhub::adapters::until_ok;
use vardhub::controller::manager::{self, Options, Stopped};

/// vardhub deploys the reference architecture of the Swedish regions' shared health data hub.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text", env = "VARDHUB_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile vardhub resources in the cluster of the current kubeconfig
    /// (or the pod's ServiceAccount). Only the replica holding the Lease reconciles.
    Operator {
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, default_value = "0.0.0.0:8080", env = "VARDHUB_METRICS_ADDR")]
        metrics_addr: SocketAddr,
        /// Namespace of the leader-election Lease (defaults to the pod's namespace).
        #[arg(long, env = "POD_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// Name of the leader-election Lease.
        #[arg(long, default_value = "vardhub-operator")]
        leader_election_lease: String,
        /// This replica's identity (defaults to the pod name, else host name and process id).
        #[arg(long, env = "POD_NAME")]
        leader_election_identity: Option<String>,
        /// Seconds the lease stays valid without renewal.
        #[arg(long, default_value_t = 15)]
        lease_duration_seconds: u64,
        /// Seconds one reconcile may run before it is cancelled and reported as
        /// `DeadlineExceeded` (every step is idempotent; the next attempt starts over).
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
        reconcile_deadline_seconds: u64,
        /// Reconciles each controller runs at once. More do not finish sooner on a busy API
        /// server; each holds a connection and its objects in memory.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
        max_concurrent_reconciles: u16,
        /// OpenBao's address; with `--openbao-role` or `VAULT_TOKEN`, enables the controllers
        /// that manage keys.
        #[arg(long, env = "VAULT_ADDR")]
        openbao_addr: Option<String>,
        /// The operator's role in OpenBao's Kubernetes auth method: it logs in with its
        /// ServiceAccount token, and again before each token expires. Without it, the token
        /// in `VAULT_TOKEN` is used.
        #[arg(long, env = "VARDHUB_OPENBAO_ROLE")]
        openbao_role: Option<String>,
        /// Mount of the Kubernetes auth method.
        #[arg(long, env = "VARDHUB_OPENBAO_AUTH_MOUNT", default_value = "kubernetes")]
        openbao_auth_mount: String,
        /// The ServiceAccount token used to log in.
        #[arg(
            long,
            default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )]
        openbao_token_path: PathBuf,
        /// The S3 server's endpoint; with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`,
        /// enables the controllers that manage storage.
        #[arg(long, env = "VARDHUB_S3_ENDPOINT")]
        s3_endpoint: Option<String>,
        /// The S3 server's region.
        #[arg(long, env = "AWS_REGION", default_value = "eu-north-1")]
        s3_region: String,
        /// The STS endpoint that issues the workloads' S3 credentials; defaults to the S3
        /// endpoint, where MinIO serves it (on AWS: `https://sts.<region>.amazonaws.com`).
        #[arg(long, env = "VARDHUB_STS_ENDPOINT")]
        sts_endpoint: Option<String>,
        /// The role the workloads' S3 credentials are issued for with `AssumeRole`. MinIO
        /// ignores it; on AWS it is a role the operator may assume, with rights on every
        /// vardhub bucket (each credential is narrowed to its prefixes by a session policy).
        #[arg(long, env = "VARDHUB_S3_ROLE_ARN", default_value = vardhub::adapters::s3::DEFAULT_ROLE_ARN)]
        s3_role_arn: String,
        /// Image of the project's own workloads (pseudonymisation service, catalogue); the
        /// chart passes the operator's own image, pinned as it was installed.
        #[arg(long, env = "VARDHUB_IMAGE")]
        image: Option<String>,
    },
    /// Run one of a regional node's reference jobs (what `environments/` schedule as the
    /// node's mapping and export CronJobs): log in to OpenBao with the pod's ServiceAccount,
    /// read the node's S3 credential there and check the node's buckets with it. The
    /// environment comes from the CronJob the operator writes.
    Job {
        /// Which job.
        #[arg(value_enum)]
        stage: vardhub::jobs::Stage,
    },
    /// Run the pseudonymisation service: an HTTP API that turns identifiers into pseudonyms
    /// per domain, with keys in OpenBao Transit.
    PseudonymisationService {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// OpenBao's address.
        #[arg(long, env = "VAULT_ADDR")]
        openbao_addr: String,
        /// Mount of the Transit engine.
        #[arg(long, default_value = "transit")]
        transit_mount: String,
        /// `transit`: one Transit call per batch; `local`: HMAC in process with the key
        /// exported once at start.
        #[arg(long, value_parser = ["transit", "local"], default_value = "transit")]
        mode: String,
        /// A domain as `NAME=KEY@VERSION`: the Transit key and the pinned key version.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// A domain whose pseudonyms are reversible (Transit convergent encryption);
        /// re-identification then needs a caller token with the domain's decrypt policy.
        #[arg(long = "reversible-domain")]
        reversible: Vec<String>,
        /// OpenBao role of the Kubernetes auth method; without it, `VAULT_TOKEN` is used.
        #[arg(long)]
        auth_role: Option<String>,
        /// Mount of the Kubernetes auth method.
        #[arg(long, default_value = "kubernetes")]
        auth_mount: String,
        /// OpenBao role (of the same auth method) that confirms each caller's token with the
        /// API server, so that a token of a deleted ServiceAccount or pod is refused.
        #[arg(long)]
        caller_role: Option<String>,
        /// The ServiceAccount token used to log in.
        #[arg(
            long,
            default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )]
        token_path: PathBuf,
        /// The audience callers' ServiceAccount tokens must carry; their signatures are
        /// checked against the keys the API server publishes.
        #[arg(long)]
        audience: String,
        /// Who may use a domain: `DOMAIN=NAMESPACE` (every ServiceAccount of the namespace)
        /// or `DOMAIN=NAMESPACE/SERVICEACCOUNT`. A domain without a grant serves no one.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// The stated purpose of a domain, `DOMAIN=TEXT` (repeat), written into every audit
        /// record of the domain.
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// Serve HTTPS with a certificate issued by this OpenBao PKI mount's `server` role.
        #[arg(long)]
        tls_pki_mount: Option<String>,
        /// A DNS name of the certificate (repeat; the first is the common name).
        #[arg(long = "tls-name", requires = "tls_pki_mount")]
        tls_names: Vec<String>,
        /// Rows each caller may send per second; also the most rows one request may carry.
        #[arg(long, default_value_t = vardhub::pseudonymisation::access::DEFAULT_ROWS_PER_SECOND)]
        rows_per_second: u32,
    },
    /// Serve the catalogue of a `CatalogService` over HTTP: it follows the resource and the
    /// `Dataset`s of its namespace through the API server (read-only) and answers in
    /// Turtle, JSON-LD, RDF/XML or N-Triples by content negotiation.
    CatalogService {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Namespace of the `CatalogService` and its datasets.
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        /// Name of the `CatalogService`.
        #[arg(long)]
        name: String,
    },
    /// Serve a hub's data products to the holders of data permits over HTTP (run by the hub's
    /// controller when `spec.exposure.api` is on). Logs in to OpenBao with its ServiceAccount
    /// for a read-only S3 credential; the OpenBao settings come from the environment
    /// (`VAULT_ADDR`, `VARDHUB_OPENBAO_AUTH_MOUNT`, `VARDHUB_OPENBAO_ROLE`,
    /// `VARDHUB_OPENBAO_TOKEN_FILE`, `VARDHUB_S3_CREDENTIALS`).
    ExposureApi {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        component: ExposureArgs,
        /// The OIDC issuer whose bearer tokens are accepted.
        #[arg(long)]
        issuer: String,
        /// The audience the tokens must carry.
        #[arg(long)]
        audience: String,
        /// Serve HTTPS with a certificate issued by this OpenBao PKI mount's `server` role.
        #[arg(long)]
        tls_pki_mount: Option<String>,
        /// A DNS name of the certificate (repeat; the first is the common name).
        #[arg(long = "tls-name", requires = "tls_pki_mount")]
        tls_names: Vec<String>,
    },
    /// Run a hub's read-only SFTP server for data products (what the operator deploys when
    /// `spec.exposure.sftp` is on): a permit's holder logs in as the permit with its SSH key
    /// and reads exactly the permit's products.
    ExposureSftp {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:2222")]
        listen: SocketAddr,
        #[command(flatten)]
        component: ExposureArgs,
        /// Where the host key lives in OpenBao (`<namespace>/<mount>/data/<path>`).
        #[arg(long)]
        host_key: String,
    },
    /// Render the DCAT-AP 3 / HealthDCAT-AP catalogue of a manifest directory offline, as the
    /// cluster would serve it: each dataset's distributions come from the directory's own
    /// hubs and nodes. Needs no cluster; for reviewing a change before it is merged.
    ///
    /// Example: `vardhub catalog environments/local --format jsonld`.
    Catalog {
        /// The directory (or file; `-` for standard input).
        dir: PathBuf,
        /// The `CatalogService` to render, when the directory has several.
        #[arg(long)]
        catalog: Option<String>,
        /// RDF serialisation: turtle, jsonld, rdfxml or ntriples.
        #[arg(long, default_value = "turtle")]
        format: String,
        /// Only this page (1-based) as the server pages it; without it, the whole catalogue.
        #[arg(long, conflicts_with = "dataset")]
        page: Option<usize>,
        /// Only this dataset's resource.
        #[arg(long)]
        dataset: Option<String>,
        /// The variable list as CSV instead of RDF.
        #[arg(long, conflicts_with_all = ["page", "dataset"])]
        variables: bool,
    },
    /// Print every Kubernetes object the operator would create for the vardhub resources in a
    /// manifest directory, from the same builders the controllers use. Needs no cluster.
    ///
    /// Example: `vardhub render environments/local -o yaml`. A kustomization with patches is
    /// refused; pipe it: `kubectl kustomize environments/cloud | vardhub render -`. Buckets,
    /// keys and credentials live outside the cluster and are not printed.
    Render {
        /// The directory (or file; `-` for standard input).
        dir: PathBuf,
        /// Output format.
        #[arg(short, long, value_parser = ["yaml", "json"], default_value = "yaml")]
        output: String,
        /// Where workloads reach OpenBao and S3.
        #[command(flatten)]
        addresses: Addresses,
    },
    /// Show what applying a manifest directory would change in the live cluster (a
    /// server-side dry run of its vardhub resources), and what the operator would then create,
    /// restore or prune. Exit code 0: no changes; 2: changes; 1: error.
    ///
    /// Example, in a GitOps pipeline: `vardhub plan environments/cloud || test $? -eq 2`.
    Plan {
        /// The directory (or file; `-` for standard input).
        dir: PathBuf,
        /// Where workloads reach OpenBao and S3.
        #[command(flatten)]
        addresses: Addresses,
    },
    /// Check a manifest directory against the compliance rules (Rego, evaluated offline):
    /// storage and keys in the EU/EEA, key rotation, images pinned by digest, datasets with a
    /// legal basis and an access body, Pod Security "restricted" for every workload (the
    /// operator's, as rendered, and the directory's own). Exit code 0: compliant; 2:
    /// violations, each naming its rule, object and field; 1: error.
    ///
    /// Example: `kubectl kustomize environments/cloud | vardhub validate -`.
    Validate {
        /// The directory (or file; `-` for standard input).
        dir: PathBuf,
        /// A directory of `.rego` rules (and `settings.json`) to use instead of the built-in
        /// ones from `policies/rego`.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Output format.
        #[arg(short, long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
    /// Compare realisation alternatives side by side: where every component and every copy
    /// of patient-level data lives, whether identifiable data leaves a region, key
    /// custodians, CPU, memory and storage, an estimated monthly cost from a price table,
    /// and the compliance rules' verdict.
    ///
    /// Example: `vardhub compare environments/cloud environments/on-prem environments/hybrid
    /// -o html > alternatives.html`.
    Compare {
        /// The alternatives' directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The price table (currency, prices per site, volume assumptions).
        #[arg(long, default_value = "environments/prices.yaml")]
        prices: PathBuf,
        /// Output format: Markdown, or a self-contained HTML page with data-flow diagrams.
        #[arg(short, long, value_parser = ["markdown", "html"], default_value = "markdown")]
        output: String,
        /// Figures the flow benchmark measured (`target/bench/flow.json`), shown beside the
        /// price table's assumptions.
        #[arg(long)]
        measured: Option<PathBuf>,
    },
    /// Print the CRDs, or write them to a folder (`vardhub crd --write crds`).
    Crd {
        /// Folder to write one file per CRD into; without it, print them as one YAML stream.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Exit non-zero if the files in this folder differ from the types.
        #[arg(long, conflicts_with = "write")]
        check: Option<PathBuf>,
    },
}

/// What both exposure components take: the hub, its bucket and namespace, and how they log
/// in to OpenBao for their credential (set by the operator in their environment).
#[derive(clap::Args, Debug)]
struct ExposureArgs {
    /// Namespace of the hub's workloads and its `DataPermit`s.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// The hub.
    #[arg(long)]
    hub: String,
    /// The hub's purpose-specific bucket.
    #[arg(long)]
    bucket: String,
    #[arg(long, env = "VAULT_ADDR", hide = true)]
    openbao_addr: String,
    #[arg(long, env = "VARDHUB_OPENBAO_AUTH_MOUNT", hide = true)]
    auth_mount: String,
    #[arg(long, env = "VARDHUB_OPENBAO_ROLE", hide = true)]
    openbao_role: String,
    #[arg(long, env = "VARDHUB_OPENBAO_TOKEN_FILE", hide = true)]
    token_file: PathBuf,
    #[arg(long, env = "VARDHUB_S3_CREDENTIALS", hide = true)]
    credentials: String,
}

impl ExposureArgs {
    fn settings(self) -> vardhub::exposure::Settings {
        vardhub::exposure::Settings {
            namespace: self.namespace,
            hub: self.hub,
            bucket: self.bucket,
            openbao_addr: self.openbao_addr,
            auth_mount: self.auth_mount,
            role: self.openbao_role,
            token_file: self.token_file,
            credentials: self.credentials,
        }
    }
}

/// OpenBao and S3 as the workloads reach them, as the operator would be given them.
#[derive(clap::Args, Debug)]
struct Addresses {
    /// OpenBao's address as workloads reach it.
    #[arg(
        long,
        env = "VAULT_ADDR",
        default_value = "https://openbao.openbao.svc:8200"
    )]
    openbao_addr: String,
    /// The S3 endpoint as workloads reach it.
    #[arg(
        long,
        env = "VARDHUB_S3_ENDPOINT",
        default_value = "https://s3.eu-north-1.amazonaws.com"
    )]
    s3_endpoint: String,
    /// The cluster DNS's address (its endpoints, as NetworkPolicy sees them); repeatable.
    /// The operator reads it from the `kube-dns` Service when it runs.
    #[arg(long = "dns-address")]
    dns: Vec<std::net::IpAddr>,
    /// The API server's endpoint `IP:PORT`; repeatable. The operator reads it from the
    /// `kubernetes` Service when it runs.
    #[arg(long = "api-server-address")]
    api_server: Vec<std::net::SocketAddr>,
}

impl Addresses {
    fn settings(self) -> vardhub::render::Settings {
        let mut settings = vardhub::render::Settings::new(self.openbao_addr, self.s3_endpoint);
        settings.cluster.dns = self
            .dns
            .into_iter()
            .map(vardhub::controller::network::cidr)
            .collect();
        settings.cluster.api_server = self
            .api_server
            .iter()
            .flat_map(|a| vardhub::controller::network::literal(&format!("https://{a}")))
            .collect();
        settings
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vardhub::telemetry::init_logging(cli.log_format == "json");
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Compare {
            dirs,
            prices,
            output,
            measured,
        } => {
            let mut table: vardhub::compare::PriceTable = serde_yaml::from_str(
                &std::fs::read_to_string(&prices)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", prices.display()))?,
            )?;
            if let Some(path) = measured {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                table.measured = Some(serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: not the flow benchmark's figures: {e}", path.display())
                })?);
            }
            let mut alternatives = Vec::new();
            for dir in &dirs {
                eprintln!("analysing {}", dir.display());
                let name = dir
                    .file_name()
                    .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
                let resources = vardhub::render::load(dir)?;
                alternatives.push(vardhub::compare::analyse(&name, &resources, &table)?);
            }
            let report = if output == "html" {
                vardhub::compare::html(&alternatives, &table)
            } else {
                vardhub::compare::markdown(&alternatives, &table)
            };
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            dir,
            policies,
            output,
        } => {
            let resources = vardhub::render::load(&dir)?;
            let settings = vardhub::render::Settings::new(
                "https://openbao.openbao.svc:8200",
                "https://s3.eu-north-1.amazonaws.com",
            );
            let violations =
                vardhub::validate::evaluate(&resources, &settings, policies.as_deref())?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&violations)?);
            } else if violations.is_empty() {
                println!("{}: compliant", dir.display());
            } else {
                for v in &violations {
                    println!("{v}");
                }
                println!("{} violations", violations.len());
            }
            Ok(if violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Plan { dir, addresses } => {
            let resources = vardhub::render::load(&dir)?;
            let settings = addresses.settings();
            eprintln!(
                "planning {} resources of {} against the cluster (a server-side dry run)...",
                resources.documents.len(),
                dir.display()
            );
            let runtime = tokio::runtime::Runtime::new()?;
            let changes = runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                vardhub::plan::plan(&client, &resources, &settings).await
            })?;
            if changes.is_empty() {
                println!("no changes: the cluster matches {}", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            for change in &changes {
                println!("{change}");
            }
            println!("{} changes", changes.len());
            Ok(ExitCode::from(2))
        }
        Command::Render {
            dir,
            output,
            addresses,
        } => {
            let resources = vardhub::render::load(&dir)?;
            let settings = addresses.settings();
            let objects = vardhub::render::render(&resources, &settings)?;
            let text = if output == "json" {
                vardhub::render::to_json(&objects)?
            } else {
                vardhub::render::to_yaml(&objects)?
            };
            println!("{text}");
            eprintln!(
                "rendered {} objects (DataHub: {}, RegionalNode: {}, PseudonymisationService: {})",
                objects.len(),
                resources.hubs.len(),
                resources.nodes.len(),
                resources.pseudonymisation.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd {
            write: Some(dir), ..
        } => {
            for path in vardhub::crdgen::write(&dir)? {
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd {
            check: Some(dir), ..
        } => {
            let drifted = vardhub::crdgen::drift(&dir)?;
            if drifted.is_empty() {
                println!("{} matches the API types", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "out of date: {}; run `vardhub crd --write {}`",
                drifted.join(", "),
                dir.display()
            );
            Ok(ExitCode::from(1))
        }
        Command::Crd { .. } => {
            for (_, text) in vardhub::crdgen::render()? {
                print!("---\n{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ExposureApi {
            listen,
            component,
            issuer,
            audience,
            tls_pki_mount,
            tls_names,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                let options = vardhub::exposure::api::Options {
                    issuer,
                    audience,
                    tls: tls_pki_mount.map(|mount| (mount, tls_names)),
                };
                vardhub::exposure::api::run(
                    client,
                    component.settings(),
                    options,
                    listen,
                    shutdown_signal(),
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::ExposureSftp {
            listen,
            component,
            host_key,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                vardhub::exposure::sftp::run(
                    client,
                    component.settings(),
                    host_key,
                    listen,
                    shutdown_signal(),
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::CatalogService {
            listen,
            namespace,
            name,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                vardhub::catalog::server::run(client, namespace, name, listen, shutdown_signal())
                    .await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Catalog {
            dir,
            catalog,
            format,
            page,
            dataset,
            variables,
        } => {
            use std::io::Write as _;
            use vardhub::catalog::format::{Format, serialize};
            let resources = vardhub::render::load(&dir)?;
            let catalogue = vardhub::catalog::offline(&resources, catalog.as_deref())?;
            let bytes = if variables {
                catalogue.variables_csv()?
            } else {
                let format = Format::parse(&format).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--format: unknown format {format:?}; use turtle, jsonld, rdfxml or ntriples"
                    )
                })?;
                let triples = match (page, &dataset) {
                    (Some(n), _) => catalogue.page(n).ok_or_else(|| {
                        anyhow::anyhow!("--page: {n} is outside 1..={}", catalogue.pages())
                    })?,
                    (None, Some(d)) => catalogue.dataset(d).ok_or_else(|| {
                        anyhow::anyhow!("--dataset: no dataset {d} in the catalogue")
                    })?,
                    (None, None) => catalogue.all(),
                };
                serialize(&triples, format)?
            };
            std::io::stdout().write_all(&bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { stage } => {
            let settings =
                vardhub::jobs::Settings::from_lookup(stage, |name| std::env::var(name).ok())?;
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(vardhub::jobs::run(stage, &settings))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::PseudonymisationService {
            listen,
            openbao_addr,
            transit_mount,
            mode,
            domains,
            reversible,
            auth_role,
            auth_mount,
            caller_role,
            token_path,
            audience,
            grants,
            purposes,
            rows_per_second,
            tls_pki_mount,
            tls_names,
        } => {
            use vardhub::pseudonymisation::access::{
                Grants, Liveness, RowLimit, Throttle, Verifier,
            };
            use vardhub::pseudonymisation::audit::AuditLog;
            use vardhub::pseudonymisation::service::{
                Access, Auth, Config, Service, TlsSettings, parse_domain,
            };
            let auth = match auth_role {
                Some(role) => Auth::Kubernetes {
                    mount: auth_mount.clone(),
                    role,
                    jwt_path: token_path,
                },
                None => Auth::Token(std::env::var("VAULT_TOKEN").map_err(|_| {
                    anyhow::anyhow!("set --auth-role (Kubernetes auth) or VAULT_TOKEN")
                })?),
            };
            let domains = domains
                .iter()
                .map(|d| parse_domain(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let grants = Grants::parse(&grants).map_err(anyhow::Error::msg)?;
            let purposes = purposes
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(d, t)| (d.to_string(), t.to_string()))
                        .ok_or_else(|| anyhow::anyhow!("--purpose {p:?}: expected DOMAIN=TEXT"))
                })
                .collect::<anyhow::Result<_>>()?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                let mut verifier = until_ok("reading the API server's token keys", || {
                    let (client, audience) = (client.clone(), audience.clone());
                    async move { Ok(Verifier::discover(client, &audience).await?) }
                })
                .await;
                if let Some(role) = &caller_role {
                    let liveness = Liveness::new(&openbao_addr, &auth_mount, role)
                        .map_err(anyhow::Error::msg)?;
                    verifier = verifier.confirming(liveness);
                }
                let config = Config {
                    openbao_addr,
                    auth,
                    transit_mount,
                    local: mode == "local",
                    domains,
                    reversible,
                    access: Access {
                        verifier: std::sync::Arc::new(verifier),
                        grants,
                        audit: AuditLog::default().with_purposes(purposes),
                        throttle: Some(std::sync::Arc::new(Throttle::new(RowLimit {
                            per_second: std::num::NonZeroU32::new(rows_per_second).ok_or_else(
                                || anyhow::anyhow!("--rows-per-second must be above 0"),
                            )?,
                        }))),
                    },
                    tls: tls_pki_mount.map(|pki_mount| TlsSettings {
                        pki_mount,
                        names: tls_names,
                    }),
                };
                // It listens before it starts, so that the kubelet's liveness check (a TCP
                // connect) does not restart a pod that waits for OpenBao; connections wait in
                // the backlog, and readiness (HTTPS) waits for the service. A failed start is
                // tried again rather than ending the process.
                let listener = tokio::net::TcpListener::bind(listen).await?;
                let service = until_ok("starting: OpenBao login, keys and certificate", || {
                    let config = config.clone();
                    async move { Ok(Service::start(config).await?) }
                })
                .await;
                tracing::info!(%listen, tls = service.is_tls(), "serving the pseudonymisation API");
                service.serve(listener, shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Operator {
            metrics_addr,
            leader_election_namespace,
            leader_election_lease,
            leader_election_identity,
            lease_duration_seconds,
            reconcile_deadline_seconds,
            max_concurrent_reconciles,
            openbao_addr,
            openbao_role,
            openbao_auth_mount,
            openbao_token_path,
            s3_endpoint,
            s3_region,
            sts_endpoint,
            s3_role_arn,
            image,
        } => {
            use vardhub::adapters::openbao::Auth;
            let auth = match openbao_role {
                Some(role) => Some(Auth::Kubernetes {
                    mount: openbao_auth_mount,
                    role,
                    jwt_path: openbao_token_path,
                }),
                None => std::env::var("VAULT_TOKEN").ok().map(Auth::Token),
            };
            let openbao = openbao_addr
                .zip(auth)
                .map(|(address, auth)| manager::OpenBaoSettings { address, auth });
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                let options = Options {
                    metrics_addr,
                    lease_namespace: leader_election_namespace
                        .or_else(in_cluster_namespace)
                        .unwrap_or_else(|| client.default_namespace().to_string()),
                    lease_name: leader_election_lease,
                    identity: leader_election_identity.unwrap_or_else(default_identity),
                    lease_duration_seconds,
                    reconcile_deadline: std::time::Duration::from_secs(reconcile_deadline_seconds),
                    max_concurrent_reconciles,
                    image,
                    openbao,
                    s3: s3_endpoint.and_then(|endpoint| {
                        Some(vardhub::adapters::s3::Settings {
                            endpoint,
                            region: s3_region,
                            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok()?,
                            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
                            sts_endpoint,
                            role_arn: s3_role_arn,
                        })
                    }),
                };
                match manager::run(client, options, shutdown_signal()).await? {
                    Stopped::Shutdown => Ok(ExitCode::SUCCESS),
                    Stopped::LostLeadership => Ok(ExitCode::from(3)),
                }
            })
        }
    }
}

fn in_cluster_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
}

fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "vardhub".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
