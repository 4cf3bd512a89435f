// Command kube-controller-manager is the upstream controller manager (garbage
// collector, namespace, workload controllers), built from the pinned module.
package main

import (
	"os"

	_ "time/tzdata" // CronJob time zones must resolve without a system zoneinfo.

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics on /metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build-info metric
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
