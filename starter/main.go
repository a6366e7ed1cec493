// Command starter drives Recovery Vault items: protect one, stop, delete,
// undelete, resume, back up, restore, show its status, list items by state.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, newRootCommand(dial), os.Args[1:], os.Stderr))
}

// execute runs the command line and says what went wrong on stderr: with
// --json as a JSON object {"error": "..."} for scripts, else as a line. It
// returns the exit code.
func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// A flag error stops parsing before --json is read: look at the words.
	if f := root.PersistentFlags().Lookup("json"); (f != nil && f.Value.String() == "true") || slices.Contains(args, "--json") || slices.Contains(args, "--json=true") {
		_ = json.NewEncoder(stderr).Encode(struct {
			Error string `json:"error"`
		}{err.Error()})
	} else {
		fmt.Fprintln(stderr, "error:", err)
	}
	return 1
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
