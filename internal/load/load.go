// Package load drives many backup items through their whole lifecycle on a
// cluster and measures it: the starter's load command, and the scale-out
// test. Each item is protected, stopped, deleted, undeleted, resumed and
// deleted again, then waited for until the window ends and it is purged.
package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// Options bound a run: how many items, how many at once, for how long.
type Options struct {
	VaultID     string
	Items       int
	Concurrency int
	Source      string
	// Timeout bounds the whole run, purges included.
	Timeout time.Duration
	// Progress is told of each item whose lifecycle ended; may be nil.
	Progress func()
	// Baseline drives the baseline workflow instead of BackupItem, whose
	// soft-delete window it is told by Window.
	Baseline bool
	Window   time.Duration
}

// Validate refuses options that would not make a bounded run.
func (o Options) Validate() error {
	switch {
	case protocol.ValidateID("vault", o.VaultID) != nil:
		return protocol.ValidateID("vault", o.VaultID)
	case o.Items < 1 || o.Items > 100000:
		return fmt.Errorf("--items %d: drive 1 to 100000 items", o.Items)
	case o.Concurrency < 1 || o.Concurrency > 1000:
		return fmt.Errorf("--concurrency %d: run 1 to 1000 items at once", o.Concurrency)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout %s: give the run a time limit", o.Timeout)
	case o.Source == "":
		return errors.New("--source is missing: a directory every worker can read")
	}
	return nil
}

// OpsPerItem are the calls each lifecycle makes: a start and five updates.
const OpsPerItem = 6

// Result is one item's lifecycle as seen from outside.
type Result struct {
	ItemID string
	// Driven is when the last delete was answered; Deadline what it said.
	Driven, Deadline, Purged time.Time
	Err                      error
}

// Report sums up a run.
type Report struct {
	Items, Failed int
	// DriveTime is from the first start to the last item's final delete;
	// Total adds the wait for the purges.
	DriveTime, Total time.Duration
	OpsPerSecond     float64
	// PurgeDelays are, for each purged item, the time from its deadline to
	// its purge.
	PurgeDelays []time.Duration
	Errors      []error
}

// Median and Worst of the purge delays.
func (r Report) Median() time.Duration { return quantile(r.PurgeDelays, 0.5) }
func (r Report) Worst() time.Duration  { return quantile(r.PurgeDelays, 1) }

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// ItemID names the i-th item of a run.
func ItemID(i int) string { return fmt.Sprintf("item-%05d", i) }

// Run drives o.Items items and reports what it saw. Items that fail are
// counted and their errors kept; the run goes on.
func Run(ctx context.Context, c client.Client, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if !o.Baseline {
		if err := guardOff(ctx, c, o.VaultID); err != nil {
			return Report{}, err
		}
	}
	results := make([]Result, o.Items)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Concurrency)
	for i := range o.Items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			// The slot is freed once the item is driven: waiting for its
			// window to end is not load on the cluster.
			var once sync.Once
			release := func() { once.Do(func() { <-sem }) }
			defer release()
			results[i] = lifecycle(ctx, c, o, ItemID(i), release)
			if o.Progress != nil {
				o.Progress()
			}
		}()
	}
	wg.Wait()
	rep := Report{Items: o.Items, Total: time.Since(start)}
	var lastDriven time.Time
	for _, r := range results {
		if r.Err != nil {
			rep.Failed++
			rep.Errors = append(rep.Errors, fmt.Errorf("%s: %w", r.ItemID, r.Err))
			continue
		}
		if r.Driven.After(lastDriven) {
			lastDriven = r.Driven
		}
		rep.PurgeDelays = append(rep.PurgeDelays, r.Purged.Sub(r.Deadline))
	}
	if !lastDriven.IsZero() {
		rep.DriveTime = lastDriven.Sub(start)
		rep.OpsPerSecond = float64(OpsPerItem*(rep.Items-rep.Failed)) / rep.DriveTime.Seconds()
	}
	return rep, ctx.Err()
}

// guardOff turns the mass-delete guard of the load's vault off, making
// the vault first if it does not exist yet: a load test deletes every item,
// which is exactly the burst the guard holds.
func guardOff(ctx context.Context, c client.Client, vaultID string) error {
	if err := items.StartVault(ctx, c, vaultID); err != nil {
		return err
	}
	off := false
	return setGuard(ctx, c, vaultID, protocol.SetMassDeleteGuardRequest{Enabled: &off, RequestedBy: "starter load", Reason: "a load test deletes every item"})
}

// setGuard changes the mass-delete guard of a measurement's vault, which
// must take the change at once: one waiting for approval is not for a
// measurement.
func setGuard(ctx context.Context, c client.Client, vaultID string, req protocol.SetMassDeleteGuardRequest) error {
	var st vault.VaultStatus
	err := items.Execute(ctx, c, client.UpdateWorkflowOptions{
		WorkflowID: protocol.VaultWorkflowID(vaultID), UpdateName: vault.UpdateSetMassDeleteGuard, Args: []any{req},
	}, &st)
	switch {
	case err != nil:
		return fmt.Errorf("set the mass-delete guard of vault %s: %w; measure on a vault of its own", vaultID, err)
	case req.Enabled != nil && st.MassDeleteGuard.Enabled != *req.Enabled:
		return fmt.Errorf("the mass-delete guard of vault %s could not be changed at once (it waits for approval): measure on a vault of its own", vaultID)
	}
	return nil
}

// lifecycle drives one item and checks, on the way, that an undelete gives
// back every recovery point and that the item is purged exactly once.
func lifecycle(ctx context.Context, c client.Client, o Options, itemID string, driven func()) Result {
	res := Result{ItemID: itemID}
	id := protocol.WorkflowID(o.VaultID, itemID)
	in := item.ItemInput{VaultID: o.VaultID, ItemID: itemID, SourcePath: o.Source,
		Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
	opts := client.StartWorkflowOptions{
		ID: id, TaskQueue: protocol.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
	var run client.WorkflowRun
	var err error
	if o.Baseline {
		opts.ID, opts.TaskQueue = "baseline/"+o.VaultID+"/"+itemID, BaselineTaskQueue
		id = opts.ID
		run, err = c.ExecuteWorkflow(ctx, opts, BaselineWorkflowType, o.Window)
	} else {
		run, err = c.ExecuteWorkflow(ctx, opts, protocol.WorkflowType, in)
	}
	if err != nil {
		res.Err = fmt.Errorf("protect: %w", err)
		return res
	}
	send := func(name string) (item.Status, error) {
		var st item.Status
		err := items.Execute(ctx, c, client.UpdateWorkflowOptions{
			WorkflowID: id, UpdateName: name, Args: []any{protocol.Request{RequestedBy: "load"}},
		}, &st)
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
		}
		return st, err
	}
	// The first backup runs at protect; a stop sent before it ends would
	// rightly stop it from being taken.
	if err := firstBackup(ctx, c, id); err != nil {
		res.Err = err
		return res
	}
	stopped, err := send(protocol.UpdateStop)
	if err == nil && len(stopped.RecoveryPoints) == 0 {
		err = errors.New("stop: no recovery point after the first backup")
	}
	if err == nil {
		_, err = send(protocol.UpdateDelete)
	}
	var undeleted item.Status
	if err == nil {
		undeleted, err = send(protocol.UpdateUndelete)
	}
	if err == nil && !slices.Equal(pointIDs(undeleted), pointIDs(stopped)) {
		err = fmt.Errorf("undelete gave back %v, not the %v kept at the stop", pointIDs(undeleted), pointIDs(stopped))
	}
	if err == nil {
		_, err = send(protocol.UpdateResume)
	}
	var deleted item.Status
	if err == nil {
		deleted, err = send(protocol.UpdateDelete)
	}
	if err == nil {
		res.Driven = time.Now()
		res.Deadline, err = time.Parse(time.RFC3339, deleted.DeferredDeleteTimeInUTC)
	}
	if err != nil {
		res.Err = err
		return res
	}
	driven()
	var final item.Status
	if err := run.Get(ctx, &final); err != nil {
		res.Err = fmt.Errorf("waiting for the purge: %w", err)
		return res
	}
	purges := 0
	for _, e := range final.Audit {
		if e.Operation == "purgeDone" {
			purges++
			res.Purged = e.Time
		}
	}
	switch {
	case final.ProtectionState != protocol.Purged:
		res.Err = fmt.Errorf("ended %s, not Purged", final.ProtectionState)
	case purges != 1:
		res.Err = fmt.Errorf("purged %d times", purges)
	case res.Purged.Before(res.Deadline):
		res.Err = fmt.Errorf("purged at %s, before its deadline %s", res.Purged, res.Deadline)
	}
	return res
}

func firstBackup(ctx context.Context, c client.Client, id string) error {
	for {
		v, err := c.QueryWorkflow(ctx, id, "", protocol.QueryStatus)
		var st item.Status
		if err == nil && v.Get(&st) == nil && len(st.RecoveryPoints) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no first backup: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pointIDs(st item.Status) []string {
	var ids []string
	for _, rp := range st.RecoveryPoints {
		ids = append(ids, rp.ID)
	}
	return ids
}

// WorkflowIDs are the workflows a run with o drives.
func WorkflowIDs(o Options) []string {
	ids := make([]string, o.Items)
	for i := range ids {
		if o.Baseline {
			ids[i] = "baseline/" + o.VaultID + "/" + ItemID(i)
		} else {
			ids[i] = protocol.WorkflowID(o.VaultID, ItemID(i))
		}
	}
	return ids
}

// actionEvents are the history events Temporal Cloud bills as actions,
// each with the kind a report gives it: starts, signals, updates,
// activities, timers, search-attribute upserts, markers (side effects,
// versions, local activities), child workflows, external signals and
// continue-as-new.
var actionEvents = map[enumspb.EventType]string{
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:                   "start",
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:                  "signal",
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:           "update",
	enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:                      "activity",
	enumspb.EVENT_TYPE_TIMER_STARTED:                                "timer",
	enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:            "search attributes",
	enumspb.EVENT_TYPE_MARKER_RECORDED:                              "marker",
	enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:     "child workflow",
	enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "external signal",
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:          "continue-as-new",
}

// Actions are the actions counted in some workflows' histories.
type Actions struct {
	Total int
	// Lifecycle counts from each workflow's first update on: for an item of
	// the load, its stop, delete, undelete, resume, delete and purge.
	Lifecycle int
	// ByKind counts them by kind; an activity's kind names it.
	ByKind map[string]int
}

// CountActions reads every run of the given workflows (continue-as-new
// included) and counts their action events.
func CountActions(ctx context.Context, c client.Client, ids []string) (Actions, error) {
	a := Actions{ByKind: map[string]int{}}
	for _, id := range ids {
		runs, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
		if err != nil {
			return a, fmt.Errorf("runs of %s: %w", id, err)
		}
		updated := false
		for _, run := range runs.GetExecutions() {
			it := c.GetWorkflowHistory(ctx, id, run.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return a, fmt.Errorf("history of %s: %w", id, err)
				}
				kind, ok := actionEvents[e.GetEventType()]
				if !ok {
					continue
				}
				if s := e.GetActivityTaskScheduledEventAttributes(); s != nil {
					kind += " " + s.GetActivityType().GetName()
				}
				updated = updated || kind == "update"
				a.Total++
				a.ByKind[kind]++
				if updated {
					a.Lifecycle++
				}
			}
		}
	}
	return a, nil
}
