# The two commands a newcomer needs:
#   make demo   the operator reconciling environments/local on the embedded local cluster
#   make test   every check and test, unit and integration, against real servers
# and, for platform engineers:
#   make image  the vardhub OCI image, without a container daemon (target/image)
# Both build the local cluster's components on first use (cached outside the repository).

CLUSTER := environments/local/cluster/cluster.sh

.PHONY: demo test image cluster-up cluster-down crds lint

demo:
	bash environments/local/demo.sh

test:
	bash tests/run.sh

image:
	bash operator/image/build.sh

cluster-up:
	bash $(CLUSTER) up

cluster-down:
	bash $(CLUSTER) down

# Regenerates crds/ from the API types.
crds:
	cargo run --quiet -p vardhub -- crd --write crds

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
