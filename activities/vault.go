package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/protocol"
)

// CountVaultItems counts a vault's items that hold data, through
// visibility, for its mass-delete guard.
func (a *Activities) CountVaultItems(ctx context.Context, vaultID string) (int, error) {
	if err := a.admit(ctx, vaultID, vaultCaller(vaultID)); err != nil {
		return 0, err
	}
	return items.HoldingData(ctx, a.Client, vaultID)
}

// ListVaultItems lists the running items of a vault through visibility,
// whose search attributes only the item workflows themselves can set, and
// confirms each with its workflow: visibility lags, and an item purged a
// moment ago may still be listed as running. It is what deleteVault counts,
// so it must not refuse over an item that is gone, nor miss one that holds
// data. It heartbeats once per item checked.
func (a *Activities) ListVaultItems(ctx context.Context, vaultID string) ([]protocol.ListedItem, error) {
	if err := a.admit(ctx, vaultID, vaultCaller(vaultID)); err != nil {
		return nil, err
	}
	return a.listVaultItems(ctx, vaultID)
}

func (a *Activities) listVaultItems(ctx context.Context, vaultID string) ([]protocol.ListedItem, error) {
	// By workflow ID, which an item's workflow must match: an item still
	// taking its first backup has published no attributes yet, and holds
	// data all the same.
	listed, err := items.List(ctx, a.Client, fmt.Sprintf("WorkflowType = 'BackupItem' AND WorkflowId STARTS_WITH 'backup-item/%s/' AND ExecutionStatus = 'Running'", vaultID))
	if err != nil {
		return nil, err
	}
	confirmed := make([]*protocol.ListedItem, len(listed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range listed {
		g.Go(func() error {
			var err error
			confirmed[i], err = a.confirmRunning(gctx, listed[i])
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, i)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rows := make([]protocol.ListedItem, 0, len(listed))
	for _, r := range confirmed {
		if r != nil {
			rows = append(rows, *r)
		}
	}
	return rows, nil
}

// confirmRunning asks the server, which answers from the workflow's own
// state, whether a listed item still runs, and with which attributes; nil
// when it has completed (or never was a BackupItem).
func (a *Activities) confirmRunning(ctx context.Context, l protocol.ListedItem) (*protocol.ListedItem, error) {
	d, err := a.Client.DescribeWorkflowExecution(ctx, l.WorkflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", l.WorkflowID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || info.GetType().GetName() != "BackupItem" {
		return nil, nil
	}
	r := items.Listed(info)
	return &r, nil
}

// Notify delivers a vault's alert through the worker's notifier.
func (a *Activities) Notify(ctx context.Context, alert protocol.Alert) error {
	if err := a.admit(ctx, alert.VaultID, vaultCaller(alert.VaultID)); err != nil {
		return err
	}
	return a.notify(ctx, alert)
}

func (a *Activities) notify(ctx context.Context, alert protocol.Alert) error {
	if a.Notifier == nil {
		return LogNotifier{}.Notify(ctx, alert)
	}
	return a.Notifier.Notify(ctx, alert)
}

// DescribeRun tells what a run of a workflow is or was: a run that carries
// state checks that its predecessor was its own kind of workflow, and a
// vault checks the item a delete names. An empty runID is the current run.
func (a *Activities) DescribeRun(ctx context.Context, workflowID, runID string) (protocol.RunInfo, error) {
	vaultID := vaultOf(workflowID)
	if v, ok := strings.CutPrefix(workflowID, protocol.VaultWorkflowID("")); ok {
		vaultID = v
	}
	// Items and vaults describe their own runs; a vault, its items'.
	self := []caller{{typ: protocol.WorkflowType, id: workflowID}, {typ: protocol.VaultWorkflowType, id: workflowID}}
	if err := a.admit(ctx, vaultID, append(self, vaultCaller(vaultID))...); err != nil {
		return protocol.RunInfo{}, err
	}
	return a.describeRun(ctx, workflowID, runID)
}

func (a *Activities) describeRun(ctx context.Context, workflowID, runID string) (protocol.RunInfo, error) {
	d, err := a.Client.DescribeWorkflowExecution(ctx, workflowID, runID)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return protocol.RunInfo{}, nil
	}
	if err != nil {
		what := workflowID
		if runID != "" {
			what += " run " + runID
		}
		return protocol.RunInfo{}, fmt.Errorf("describe %s: %w", what, err)
	}
	info := d.GetWorkflowExecutionInfo()
	var asking []string
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == protocol.ActivityAskVault {
			asking = append(asking, pa.GetActivityId())
		}
	}
	return protocol.RunInfo{
		RunID:          info.GetExecution().GetRunId(),
		Asking:         asking,
		WorkflowType:   info.GetType().GetName(),
		TaskQueue:      d.GetExecutionConfig().GetTaskQueue().GetName(),
		Running:        info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		ContinuedAsNew: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
		FirstRunID:     info.GetFirstRunId(),
	}, nil
}

// requireRunning refuses, for good, a workflow that is not a running one
// of the expected type.
func (a *Activities) requireRunning(ctx context.Context, workflowID, workflowType string) error {
	info, err := a.describeRun(ctx, workflowID, "")
	if err != nil {
		return err
	}
	if !info.Running || info.WorkflowType != workflowType {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s is not a running %s workflow", workflowID, workflowType), protocol.ErrTypeNoVault, nil)
	}
	return nil
}

// Signal sends a signal to a running workflow of the given type.
func (a *Activities) Signal(ctx context.Context, in protocol.MessageInput) error {
	// A vault signals its own items, and nothing else.
	vaultID := vaultOf(in.WorkflowID)
	if in.WorkflowType != protocol.WorkflowType {
		vaultID = ""
	}
	if err := a.admit(ctx, vaultID, vaultCaller(vaultID)); err != nil {
		return err
	}
	if err := a.requireRunning(ctx, in.WorkflowID, in.WorkflowType); err != nil {
		return err
	}
	if err := a.Client.SignalWorkflow(ctx, in.WorkflowID, "", in.Name, in.Payload); err != nil {
		return fmt.Errorf("signal %s to %s: %w", in.Name, in.WorkflowID, err)
	}
	return nil
}

// vaultOf is the vault of an item's workflow ID, "" for any other ID.
func vaultOf(workflowID string) string {
	rest, ok := strings.CutPrefix(workflowID, "backup-item/")
	if !ok {
		return ""
	}
	vaultID, _, _ := strings.Cut(rest, "/")
	return vaultID
}
