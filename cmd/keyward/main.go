// Command keyward is Keyward's one binary: the server (serve), schema
// migrations (migrate), and the operator's commands for users, clients,
// keys and the audit trail.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	ctx, stop := signalContext(context.Background()) // SIGINT, SIGTERM (lifecycle.go)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyward:", err)
		os.Exit(1)
	}
}
