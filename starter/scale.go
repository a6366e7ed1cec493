package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/load"
)

func (a *app) scaleCommand() *cobra.Command {
	o := load.ScaleOptions{Items: 10000, Burst: 2000, Guarded: 200, GuardThreshold: 100, BaselineItems: 2000, Concurrency: 64, Settle: 15 * time.Minute}
	var workerPID int
	var dbPath string
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Protect many items in one vault, then delete a burst of them, and measure",
		Long: "Measures a vault under a ransomware-like burst, on a throwaway cluster:\n" +
			"  1. the baseline: --baseline-items logic-free workflows (a start and one no-op\n" +
			"     activity, served by this command), the server's own rate;\n" +
			"  2. protect --items items in one vault, until visibility shows each Protected;\n" +
			"  3. with the vault's mass-delete guard off, --burst delete signals at once, until\n" +
			"     visibility shows every one SoftDeleted (its alert is delivered before);\n" +
			"  4. with the guard on at --guard-threshold, --guarded more: no more than the\n" +
			"     threshold may get through, every other one must wait at its item; then the\n" +
			"     hold is cleared and all of them must go through.\n" +
			"It fails if a delete is lost or a phase does not settle within --settle.",
		Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			if o.VaultID == "" {
				o.VaultID = "scale-" + time.Now().UTC().Format("20060102-150405")
			}
			if o.Source == "" {
				src, remove, err := tempSource("recoveryvault-scale-", 4<<10)
				if err != nil {
					return err
				}
				defer remove()
				o.Source = src
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if o.BaselineItems > 0 {
				w := load.NewBaselineWorker(cl)
				if err := w.Start(); err != nil {
					return err
				}
				defer w.Stop()
			}
			fmt.Fprintf(a.out, "Recovery Vault scale: %d items in vault %s, then %d deletes with the guard off and %d with it on at %d\n",
				o.Items, o.VaultID, o.Burst, o.Guarded, o.GuardThreshold)
			last := ""
			o.Progress = func(phase string, done, total int) {
				if phase != last {
					fmt.Fprintln(os.Stderr)
					last = phase
				}
				fmt.Fprintf(os.Stderr, "\r  %-16s %d/%d", phase, done, total)
			}
			var rep load.ScaleReport
			err := load.Scale(ctx, cl, o, &rep)
			fmt.Fprintln(os.Stderr)
			printScale(a.out, o, rep)
			if workerPID > 0 {
				rss, peak, merr := load.Memory(workerPID)
				if merr != nil {
					return merr
				}
				fmt.Fprintf(a.out, "  worker memory      %s resident now, %s at most (process %d)\n", mib(rss), mib(peak), workerPID)
			}
			if dbPath != "" {
				size, derr := load.DiskUsage(dbPath)
				if derr != nil {
					return derr
				}
				fmt.Fprintf(a.out, "  database           %s (%s)\n", mib(size), dbPath)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.VaultID, "vault", "", "vault of the items (default a new one, scale-<time>)")
	f.IntVar(&o.Items, "items", o.Items, "how many items to protect (1 to 100000)")
	f.IntVar(&o.Burst, "burst", o.Burst, "deletes sent at once with the mass-delete guard off")
	f.IntVar(&o.Guarded, "guarded", o.Guarded, "deletes sent at once with the guard on, after the burst")
	f.IntVar(&o.GuardThreshold, "guard-threshold", o.GuardThreshold, "the guard's threshold for the guarded deletes (window 10m)")
	f.IntVar(&o.BaselineItems, "baseline-items", o.BaselineItems, "logic-free workflows that measure the server first (0: none)")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "starts or signals in flight at once")
	f.DurationVar(&o.Settle, "settle", o.Settle, "how long each phase may take")
	f.StringVar(&o.Source, "source", "", "directory to back up, readable by every worker (default one 4 KiB file)")
	f.IntVar(&workerPID, "worker-pid", 0, "process ID of the worker, to report its memory")
	f.StringVar(&dbPath, "db", "", "Temporal's SQLite file (dev mode: <data-dir>/temporal.db), to report its size")
	return cmd
}

func printScale(out io.Writer, o load.ScaleOptions, r load.ScaleReport) {
	if r.Baseline.N > 0 {
		fmt.Fprintf(out, "  baseline           %d logic-free workflows in %s: %.1f/s\n", r.Baseline.N, r.Baseline.Elapsed.Round(time.Millisecond), r.Baseline.Rate())
	}
	fmt.Fprintf(out, "  protect            %d items to their first backup in %s: %.1f/s", r.Protect.N, r.Protect.Elapsed.Round(time.Millisecond), r.Protect.Rate())
	if r.Baseline.Rate() > 0 && r.Protect.N > 0 {
		fmt.Fprintf(out, ", %.0f%% of the baseline", 100*r.Protect.Rate()/r.Baseline.Rate())
	}
	fmt.Fprintln(out)
	if r.Burst.N > 0 {
		fmt.Fprintf(out, "  burst, guard off   %d deletes, every one SoftDeleted in visibility after %s: %.1f/s\n", r.Burst.N, r.Burst.Elapsed.Round(time.Millisecond), r.Burst.Rate())
	}
	if r.Through+r.Held > 0 {
		fmt.Fprintf(out, "  burst, guard on    %d deletes: %d through (threshold %d), %d held at their items\n", o.Guarded, r.Through, o.GuardThreshold, r.Held)
	}
	if r.Released.N > 0 {
		fmt.Fprintf(out, "  hold cleared       the %d held deletes SoftDeleted after %s\n", r.Released.N, r.Released.Elapsed.Round(time.Millisecond))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
