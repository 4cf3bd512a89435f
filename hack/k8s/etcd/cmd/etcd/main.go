// Command etcd is the upstream etcd server (etcdmain is the whole server). It
// lives in its own module because etcd v3.6.16 needs newer grpc/otel than
// k8s.io/kubernetes v1.34 compiles against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
