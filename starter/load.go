package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/load"
	"recoveryvault/workflows/protocol"
)

func (a *app) loadCommand() *cobra.Command {
	o := load.Options{Items: 200, Concurrency: 20, Timeout: 10 * time.Minute}
	var baseline bool
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Drive many items through their whole lifecycle and measure the cluster",
		Long: "Protects --items items and drives each through stop, delete, undelete, resume and\n" +
			"delete, then waits for its purge: run the workers with a short window\n" +
			"(--load-test --soft-delete-retention 30s) on a throwaway cluster. It checks that\n" +
			"an undelete gives back every recovery point and that each item is purged once,\n" +
			"and prints throughput, deadline-to-purge times and Temporal actions per item.\n" +
			"--baseline also runs a workflow making the same Temporal calls with no logic.",
		Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			if o.VaultID == "" {
				o.VaultID = "load-" + time.Now().UTC().Format("20060102-150405")
			}
			if baseline && o.Window <= 0 {
				return errors.New("--baseline needs --window: the workers' --soft-delete-retention")
			}
			if o.Source == "" {
				// Three files, 96 KiB.
				src, remove, err := tempSource("recoveryvault-load-", 64<<10, 16<<10, 16<<10)
				if err != nil {
					return err
				}
				defer remove()
				o.Source = src
			}
			if err := o.Validate(); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "Recovery Vault load: %d items in vault %s, %d at a time, at most %s\n", o.Items, o.VaultID, o.Concurrency, o.Timeout)
			rep, actions, err := a.measure(ctx, cl, o, "items purged")
			if err != nil {
				return err
			}
			vaultActions, err := load.CountActions(ctx, cl, []string{protocol.VaultWorkflowID(o.VaultID)})
			if err != nil {
				return err
			}
			// The load's own setup is no item's cost: it turned the vault's
			// mass-delete guard off, with one update.
			vaultActions.Total--
			vaultActions.ByKind["update"]--
			printLoad(a.out, rep)
			n := float64(o.Items)
			fmt.Fprintf(a.out, "  Temporal actions   %.1f per item in its own history, %.1f of them from its first update to its purge, plus %.1f at its vault\n",
				float64(actions.Total)/n, float64(actions.Lifecycle)/n, float64(vaultActions.Total)/n)
			fmt.Fprintf(a.out, "    in the item      %s\n", perKind(actions, n))
			fmt.Fprintf(a.out, "    at the vault     %s\n", perKind(vaultActions, n))
			if baseline {
				w := load.NewBaselineWorker(cl)
				if err := w.Start(); err != nil {
					return err
				}
				defer w.Stop()
				b := o
				b.Baseline = true
				fmt.Fprintf(a.out, "\nBaseline: the same Temporal calls (a start, one activity, five updates, one timer of %s), no logic of ours\n", o.Window)
				brep, bactions, err := a.measure(ctx, cl, b, "baseline done")
				if err != nil {
					return err
				}
				printLoad(a.out, brep)
				fmt.Fprintf(a.out, "  Temporal actions   %.1f per workflow\n", float64(bactions.Total)/float64(b.Items))
				if brep.OpsPerSecond > 0 {
					fmt.Fprintf(a.out, "\nRecovery Vault ran at %.2f of the baseline's throughput\n", rep.OpsPerSecond/brep.OpsPerSecond)
				}
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d items failed", rep.Failed, rep.Items)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.VaultID, "vault", "", "vault of the items (default a new one, load-<time>)")
	f.IntVar(&o.Items, "items", o.Items, "how many items to drive (1 to 100000)")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "how many items to drive at once")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long, purges included")
	f.StringVar(&o.Source, "source", "", "directory to back up, readable by every worker (default a small temporary tree)")
	f.BoolVar(&baseline, "baseline", false, "also run the baseline workflow, on task queue "+load.BaselineTaskQueue+" served by this command")
	f.DurationVar(&o.Window, "window", 0, "the workers' soft-delete window, for the baseline's timer")
	return cmd
}

// measure runs the load with a progress bar on stderr and reads the
// histories it made.
func (a *app) measure(ctx context.Context, cl client.Client, o load.Options, what string) (load.Report, load.Actions, error) {
	bar := progressbar.NewOptions(o.Items, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionThrottle(200*time.Millisecond))
	o.Progress = func() { _ = bar.Add(1) }
	rep, err := load.Run(ctx, cl, o)
	_ = bar.Finish()
	fmt.Fprintln(os.Stderr)
	for i, e := range rep.Errors {
		if i == 5 {
			fmt.Fprintf(a.out, "  ... and %d more failures\n", len(rep.Errors)-i)
			break
		}
		fmt.Fprintf(a.out, "  FAILED %s\n", e)
	}
	if err != nil {
		return rep, load.Actions{}, fmt.Errorf("load stopped after %s: %w", o.Timeout, err)
	}
	actions, err := load.CountActions(ctx, cl, load.WorkflowIDs(o))
	return rep, actions, err
}

// perKind lists actions by kind, per item, the most frequent first.
func perKind(a load.Actions, items float64) string {
	kinds := slices.Collect(maps.Keys(a.ByKind))
	slices.SortFunc(kinds, func(x, y string) int { return cmp.Or(a.ByKind[y]-a.ByKind[x], strings.Compare(x, y)) })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.1f", k, float64(a.ByKind[k])/items)
	}
	return strings.Join(parts, ", ")
}

func printLoad(out io.Writer, r load.Report) {
	fmt.Fprintf(out, "  lifecycles         %d purged, %d failed, in %s\n", r.Items-r.Failed, r.Failed, r.Total.Round(time.Millisecond))
	fmt.Fprintf(out, "  throughput         %.1f operations/s (%d per item: protect, stop, delete, undelete, resume, delete) over %s\n",
		r.OpsPerSecond, load.OpsPerItem, r.DriveTime.Round(time.Millisecond))
	fmt.Fprintf(out, "  deadline to purge  median %s, worst %s\n", r.Median().Round(time.Millisecond), r.Worst().Round(time.Millisecond))
}

// tempSource makes a tree to back up, one file of each size, for a
// measurement given no --source; remove removes it.
func tempSource(prefix string, sizes ...int) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	for i, size := range sizes {
		name := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		if err = os.WriteFile(name, []byte(strings.Repeat(string(rune('a'+i)), size)), 0o644); err != nil {
			break
		}
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		remove()
		return "", nil, err
	}
	return dir, remove, nil
}
