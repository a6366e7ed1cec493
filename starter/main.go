// Command starter drives Recovery Vault items: protect one, stop, delete,
// undelete, resume, back up, restore, show its status, list items by state.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand(dial)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// dial connects as the Temporal CLI would: TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE or a CLI profile, else 127.0.0.1:7233.
func dial() (client.Client, string, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, "", fmt.Errorf("read the Temporal connection settings: %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = "127.0.0.1:7233"
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	// The SDK's own debug lines would bury the answers.
	opts.Logger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := client.Dial(opts)
	if err != nil {
		return nil, "", fmt.Errorf("connect to Temporal at %s: %w; is the worker's server running? set TEMPORAL_ADDRESS otherwise", opts.HostPort, err)
	}
	return c, opts.Namespace, nil
}
