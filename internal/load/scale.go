package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// ScaleOptions bound a scale run (the starter's scale command): protect
// Items items in one vault, then delete Burst of them at once with the
// vault's mass-delete guard off, then Guarded more with it on at
// GuardThreshold, then clear the hold.
type ScaleOptions struct {
	VaultID        string
	Items          int
	Burst          int
	Guarded        int
	GuardThreshold int
	// BaselineItems is how many logic-free workflows measure the server.
	BaselineItems int
	// Concurrency is how many starts or signals are in flight at once.
	Concurrency int
	Source      string
	// Settle bounds each phase's wait for visibility to show it done.
	Settle time.Duration
	// Progress is told of each phase's progress; may be nil.
	Progress func(phase string, done, total int)
}

// Validate refuses options that would not make a bounded run.
func (o ScaleOptions) Validate() error {
	switch {
	case protocol.ValidateID("vault", o.VaultID) != nil:
		return protocol.ValidateID("vault", o.VaultID)
	case o.Items < 1 || o.Items > 100000:
		return fmt.Errorf("--items %d: protect 1 to 100000 items", o.Items)
	case o.Burst < 0 || o.Guarded < 0 || o.Burst+o.Guarded > o.Items:
		return fmt.Errorf("--burst %d and --guarded %d: delete at most the %d items, in all", o.Burst, o.Guarded, o.Items)
	case o.Guarded > 0 && (o.GuardThreshold < 1 || o.GuardThreshold >= o.Guarded):
		return fmt.Errorf("--guard-threshold %d: give a threshold from 1 to %d, below --guarded, so that the guard has deletes to hold", o.GuardThreshold, o.Guarded-1)
	case o.BaselineItems < 0 || o.BaselineItems > 100000:
		return fmt.Errorf("--baseline-items %d: run 0 to 100000 baseline workflows", o.BaselineItems)
	case o.Concurrency < 1 || o.Concurrency > 1000:
		return fmt.Errorf("--concurrency %d: send 1 to 1000 calls at once", o.Concurrency)
	case o.Settle <= 0:
		return fmt.Errorf("--settle %s: give each phase a time limit", o.Settle)
	case o.Source == "":
		return errors.New("--source is missing: a directory every worker can read")
	}
	return nil
}

// Phase is one measured step: N workflows done in Elapsed.
type Phase struct {
	N       int
	Elapsed time.Duration
}

// Rate is the phase's workflows per second.
func (p Phase) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.N) / p.Elapsed.Seconds()
}

// ScaleReport is what a scale run saw.
type ScaleReport struct {
	Baseline, Protect Phase
	// Burst is the deletes with the guard off, until visibility shows
	// every one of them SoftDeleted.
	Burst Phase
	// Through are the guarded deletes that got through before the hold,
	// Held those that wait, visibly, at their items; Released is the time
	// from clearing the hold until all of them are SoftDeleted.
	Through, Held int
	Released      Phase
}

// Scale runs the phases in order and stops at the first that fails: a
// delete lost, a phase not settled in time, a guard that let too many
// through.
func Scale(ctx context.Context, c client.Client, o ScaleOptions, rep *ScaleReport) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.BaselineItems > 0 {
		n, done, err := o.run(ctx, "baseline", o.BaselineItems, func(ctx context.Context, i int) error {
			_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: baselineID(o.VaultID, i), TaskQueue: BaselineTaskQueue,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			}, ScaleBaselineWorkflowType)
			return err
		}, func(ctx context.Context) (int, error) {
			return items.CountQuery(ctx, c, fmt.Sprintf("WorkflowType = '%s' AND WorkflowId STARTS_WITH 'scale-baseline/%s/' AND ExecutionStatus = 'Completed'",
				ScaleBaselineWorkflowType, o.VaultID))
		})
		rep.Baseline = Phase{N: n, Elapsed: done}
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	n, done, err := o.run(ctx, "protect", o.Items, func(ctx context.Context, i int) error {
		in := item.ItemInput{VaultID: o.VaultID, ItemID: ItemID(i), SourcePath: o.Source, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: protocol.WorkflowID(o.VaultID, ItemID(i)), TaskQueue: protocol.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		}, protocol.WorkflowType, in)
		return err
	}, o.counter(c, protocol.Protected))
	rep.Protect = Phase{N: n, Elapsed: done}
	if err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	if o.Burst > 0 {
		if err := o.setGuard(ctx, c, false, 0); err != nil {
			return err
		}
		n, done, err := o.run(ctx, "burst", o.Burst, o.deleter(c, 0), o.counter(c, protocol.SoftDeleted))
		rep.Burst = Phase{N: n, Elapsed: done}
		if err != nil {
			return fmt.Errorf("burst of %d deletes, guard off: %w", o.Burst, err)
		}
	}
	if o.Guarded == 0 {
		return nil
	}
	return o.guarded(ctx, c, rep)
}

// guarded sends Guarded deletes with the guard on, checks that no more
// than its threshold got through and that every other one waits at its
// item, then clears the hold and waits for all of them.
func (o ScaleOptions) guarded(ctx context.Context, c client.Client, rep *ScaleReport) error {
	if err := o.setGuard(ctx, c, true, o.GuardThreshold); err != nil {
		return err
	}
	soft := o.counter(c, protocol.SoftDeleted)
	// Settled once every delete has either gone through or waits at its
	// item, held: none may be anything else.
	var lost []string
	_, _, err := o.run(ctx, "guarded", o.Guarded, o.deleter(c, o.Burst), func(ctx context.Context) (int, error) {
		var through, held atomic.Int64
		var mu sync.Mutex
		lost = nil
		quiet := o
		quiet.Progress = nil
		err := quiet.each(ctx, "guarded (asked)", o.Guarded, func(ctx context.Context, i int) error {
			st, err := items.Status(ctx, c, o.VaultID, ItemID(o.Burst+i))
			switch {
			case err != nil:
				return err
			case st.ProtectionState == protocol.SoftDeleted:
				through.Add(1)
			case st.PendingDelete != nil && strings.Contains(st.PendingDelete.Why, "holds deletes"):
				held.Add(1)
			default:
				mu.Lock()
				lost = append(lost, ItemID(o.Burst+i)+" ("+string(st.ProtectionState)+")")
				mu.Unlock()
			}
			return nil
		})
		rep.Through, rep.Held = int(through.Load()), int(held.Load())
		return rep.Through + rep.Held, err
	})
	if err != nil {
		return fmt.Errorf("deletes with the guard on: %d through, %d held, the others neither: %s: %w", rep.Through, rep.Held, strings.Join(lost, ", "), err)
	}
	if rep.Through > o.GuardThreshold {
		return fmt.Errorf("the guard let %d deletes through, more than its threshold of %d", rep.Through, o.GuardThreshold)
	}
	var st vault.VaultStatus
	if err := items.Execute(ctx, c, client.UpdateWorkflowOptions{
		WorkflowID: protocol.VaultWorkflowID(o.VaultID), UpdateName: vault.UpdateClearMassDeleteHold,
		Args: []any{protocol.Request{RequestedBy: "starter scale", Reason: "measured hold released"}},
	}, &st); err != nil {
		return fmt.Errorf("clear the hold: %w", err)
	}
	start := time.Now()
	want := o.Burst + o.Guarded
	done, err := waitFor(ctx, o.Settle, func() (bool, error) {
		n, err := soft(ctx)
		if o.Progress != nil {
			o.Progress("released", n-o.Burst-rep.Through, rep.Held)
		}
		return n >= want, err
	})
	rep.Released = Phase{N: rep.Held, Elapsed: done.Sub(start)}
	return err
}

// run calls send for each of n workflows, o.Concurrency at a time, from one
// start time, and waits until done counts n of them; it answers how many
// were done and when, since the start.
func (o ScaleOptions) run(ctx context.Context, phase string, n int, send func(context.Context, int) error,
	done func(context.Context) (int, error)) (int, time.Duration, error) {
	start := time.Now()
	if err := o.each(ctx, phase+" (sent)", n, send); err != nil {
		return 0, time.Since(start), err
	}
	got := 0
	at, err := waitFor(ctx, o.Settle, func() (bool, error) {
		var err error
		got, err = done(ctx)
		if o.Progress != nil {
			o.Progress(phase, got, n)
		}
		return got >= n, err
	})
	if err != nil {
		return got, at.Sub(start), fmt.Errorf("%d of %d done after %s: %w", got, n, time.Since(start).Round(time.Second), err)
	}
	return got, at.Sub(start), nil
}

// each calls f for 0..n-1, o.Concurrency at a time; the first error stops it.
func (o ScaleOptions) each(ctx context.Context, phase string, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var sent atomic.Int64
	sem := make(chan struct{}, o.Concurrency)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				cancel(fmt.Errorf("%s %d: %w", phase, i, err))
			}
			if k := sent.Add(1); o.Progress != nil && k%100 == 0 {
				o.Progress(phase, int(k), n)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// waitFor polls check every 250 ms until it is true, for at most limit;
// it answers when it became true.
func waitFor(ctx context.Context, limit time.Duration, check func() (bool, error)) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ok, err := check()
		if ok && err == nil {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return time.Now(), err
			}
			return time.Now(), fmt.Errorf("not settled within %s", limit)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// counter counts the vault's items in state through visibility.
func (o ScaleOptions) counter(c client.Client, state protocol.State) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		return items.CountQuery(ctx, c, protocol.ItemsQuery(o.VaultID, state))
	}
}

// deleter sends the delete signal, as a person or a script with the
// namespace's credentials would, to item from+i.
func (o ScaleOptions) deleter(c client.Client, from int) func(context.Context, int) error {
	return func(ctx context.Context, i int) error {
		return c.SignalWorkflow(ctx, protocol.WorkflowID(o.VaultID, ItemID(from+i)), "", protocol.SignalDelete,
			protocol.Request{RequestedBy: "starter scale", Reason: "burst"})
	}
}

// setGuard turns the vault's mass-delete guard on, at threshold, or off.
func (o ScaleOptions) setGuard(ctx context.Context, c client.Client, on bool, threshold int) error {
	return setGuard(ctx, c, o.VaultID, protocol.SetMassDeleteGuardRequest{Enabled: &on, Threshold: threshold, Window: "10m", RequestedBy: "starter scale"})
}

func baselineID(vaultID string, i int) string {
	return "scale-baseline/" + vaultID + "/" + strconv.Itoa(i)
}

// Memory reads a process's resident memory now and at its peak, in bytes,
// from /proc.
func Memory(pid int) (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case err != nil:
		case name == "VmRSS":
			rss = kb << 10
		case name == "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// DiskUsage is the bytes of the files at path: one file, with SQLite's
// -wal and -shm beside it, or every file under a directory.
func DiskUsage(path string) (int64, error) {
	var total int64
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		err := filepath.WalkDir(p, func(_ string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if info, err := d.Info(); err == nil && !d.IsDir() {
				total += info.Size()
			}
			return nil
		})
		if err != nil && !(p != path && errors.Is(err, os.ErrNotExist)) {
			return 0, fmt.Errorf("measure %s: %w", p, err)
		}
	}
	return total, nil
}
