// Command pause is the lab's pod sandbox image: the process that holds a
// pod's namespaces. It does what Kubernetes' pause does (sleep until
// SIGINT or SIGTERM, then exit 0) in a static Go binary built here, so
// the lab never pulls an image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
}
