package load

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// The baseline makes the Temporal calls of an item's lifecycle in the load
// (a start, one activity, status queries, the same five updates, one timer
// for the window)
// with none of our logic, so that the cost of our logic can be told apart
// from the cluster's.
const (
	BaselineWorkflowType = "LoadBaseline"
	BaselineTaskQueue    = "recoveryvault-baseline"
	// ScaleBaselineWorkflowType is the scale run's baseline: a start and
	// one no-op activity, what protecting an item costs the server at
	// least.
	ScaleBaselineWorkflowType = "ScaleBaseline"
)

// NewBaselineWorker serves the baseline workflow; start it beside a run.
func NewBaselineWorker(c client.Client) worker.Worker {
	w := worker.New(c, BaselineTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(Baseline, workflow.RegisterOptions{Name: BaselineWorkflowType})
	w.RegisterWorkflowWithOptions(ScaleBaseline, workflow.RegisterOptions{Name: ScaleBaselineWorkflowType})
	w.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: "BaselineNoop"})
	return w
}

func noop(context.Context) error { return nil }

// Baseline answers the updates with the fields the load reads and ends
// with a timer of the window after the second delete.
func Baseline(ctx workflow.Context, window time.Duration) (item.Status, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	points := []protocol.RecoveryPoint{{ID: "rp-1"}}
	deletes := 0
	var deadline time.Time
	for _, name := range []string{protocol.UpdateStop, protocol.UpdateDelete, protocol.UpdateUndelete, protocol.UpdateResume} {
		err := workflow.SetUpdateHandler(ctx, name, func(ctx workflow.Context, _ protocol.Request) (item.Status, error) {
			st := item.Status{RecoveryPoints: points}
			if name == protocol.UpdateDelete {
				deletes++
				deadline = workflow.Now(ctx).Add(window)
				st.DeferredDeleteTimeInUTC = deadline.UTC().Format(time.RFC3339)
			}
			return st, nil
		})
		if err != nil {
			return item.Status{}, err
		}
	}
	backedUp := false
	err := workflow.SetQueryHandler(ctx, protocol.QueryStatus, func() (item.Status, error) {
		if !backedUp {
			return item.Status{}, nil
		}
		return item.Status{RecoveryPoints: points}, nil
	})
	if err != nil {
		return item.Status{}, err
	}
	if err := workflow.ExecuteActivity(actx, "BaselineNoop").Get(ctx, nil); err != nil {
		return item.Status{}, err
	}
	backedUp = true
	if err := workflow.Await(ctx, func() bool { return deletes == 2 }); err != nil {
		return item.Status{}, err
	}
	if err := workflow.NewTimer(ctx, deadline.Sub(workflow.Now(ctx))).Get(ctx, nil); err != nil {
		return item.Status{}, err
	}
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return item.Status{ProtectionState: protocol.Purged, Audit: []protocol.AuditEntry{
		{Time: workflow.Now(ctx).UTC(), Operation: "purgeDone"},
	}}, nil
}

// ScaleBaseline runs one no-op activity and completes.
func ScaleBaseline(ctx workflow.Context) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	return workflow.ExecuteActivity(actx, "BaselineNoop").Get(ctx, nil)
}
