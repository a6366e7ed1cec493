// Command worker runs Recovery Vault's worker against a Temporal cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/worker"

	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/searchattributes"
	"recoveryvault/workflows"
)

func main() {
	store := flag.String("store", envOr("RECOVERYVAULT_STORE", ".recoveryvault/store"),
		"directory of the recovery-point store (env RECOVERYVAULT_STORE); workers that share items must share it")
	flag.Parse()
	if err := run(*store, worker.InterruptCh()); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run serves until stop delivers (SIGINT or SIGTERM from main), then hands
// in-flight tasks back and returns.
func run(store string, stop <-chan any) error {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("read the Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE): %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = "127.0.0.1:7233"
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		return fmt.Errorf("create the recovery-point store %s: %w", store, err)
	}
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s (namespace %s): %w; start a server or set TEMPORAL_ADDRESS", opts.HostPort, opts.Namespace, err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := searchattributes.Ensure(ctx, c, opts.Namespace); err != nil {
		return fmt.Errorf("%w\nregister them once by hand if this worker may not: %s", err, searchattributes.CLIFlags())
	}

	log.Printf("Recovery Vault worker: Temporal %s, namespace %s, task queue %s, store %s",
		opts.HostPort, opts.Namespace, workflows.TaskQueue, store)
	return backupworker.New(c, store).Run(stop)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
