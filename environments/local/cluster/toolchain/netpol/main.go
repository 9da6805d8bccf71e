// Command vardhub-netpol enforces Kubernetes NetworkPolicy on the local cluster's real node.
//
// The policy engine is the Kubernetes SIG Network project kube-network-policies (its
// networkpolicy package, unchanged): it evaluates the first packet of every new connection
// of a pod, in userspace, against the NetworkPolicies that select the pod on either side,
// and answers accept or drop. Upstream hands packets to it with nftables' `queue`
// statement, which this kernel lacks; here node.sh hands them over with the xtables NFQUEUE
// target instead (same netlink queue), and this launcher runs the engine on the host with
// the node's kubeconfig. Upstream's own nftables rules fail to load on this
// kernel and are left to fail: nothing else changes in the packet path.
//
// Without this process, queued packets are dropped (fail closed): a pod on the node has
// no new connection until it runs again.
package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the node's identity")
	nodeName := flag.String("node-name", "", "name of the node whose pods are enforced")
	queueID := flag.Int("nfqueue-id", 100, "number of the netlink queue the NFQUEUE rules use")
	metrics := flag.String("metrics-address", "127.0.0.1:20254", "where /metrics is served (verdicts per protocol)")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		klog.Fatal("--kubeconfig and --node-name are required")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("reading %s: %v", *kubeconfig, err)
	}
	config.UserAgent = "vardhub-netpol"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	factory := informers.NewSharedInformerFactory(client, 0)
	controller, err := networkpolicy.NewController(
		client,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil,
		networkpolicy.Config{
			FailOpen:    false,
			QueueID:     *queueID,
			NodeName:    *nodeName,
			// NRI stays "enabled" in the engine: with it disabled, v0.8.0 dereferences its
			// absent NRI plugin for any address that is not a known pod's (this machine's
			// own, for example). The node's containerd runs without NRI, so the plugin
			// finds no socket, says so once, and the engine uses the API server's pod
			// addresses alone.
			NRIdisabled: false,
			NFTableName: "vardhub-netpol",
		},
	)
	if err != nil {
		klog.Fatalf("network policy controller: %v", err)
	}
	http.Handle("/metrics", promhttp.Handler())
	go func() {
		klog.Error(http.ListenAndServe(*metrics, nil))
	}()
	factory.Start(ctx.Done())
	if err := controller.Run(ctx); err != nil && ctx.Err() == nil {
		klog.Fatalf("network policy controller stopped: %v", err)
	}
}
