package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// Announce registers an item with its vault, starting the vault with
// default settings if it does not run (a vault that runs is only read, from
// the server's record, without a task of it), reads the vault's settings
// from its memo for the item's floor, and delivers the item's alerts.
func (a *Activities) Announce(ctx context.Context, in item.AnnounceInput) (item.AnnounceResult, error) {
	if err := a.admit(ctx, in.VaultID, anyItemOf(in.VaultID)); err != nil {
		return item.AnnounceResult{}, err
	}
	return a.announce(ctx, in)
}

func (a *Activities) announce(ctx context.Context, in item.AnnounceInput) (item.AnnounceResult, error) {
	var res item.AnnounceResult
	if in.Register {
		vs, err := items.VaultSettings(ctx, a.Client, in.VaultID)
		var running *items.NotRunningError
		if errors.As(err, &running) {
			if err := items.StartVault(ctx, a.Client, in.VaultID); err != nil {
				return res, err
			}
			// A vault just started publishes its settings at its first
			// task: until then the item keeps its floor.
			vs, err = items.VaultSettings(ctx, a.Client, in.VaultID)
		}
		if err == nil {
			p := vs.Protection()
			res.Settings, res.Protection = &vs.SoftDeleteSettings, &p
			if in.Floor.Vault != "" && in.Floor.Vault != p.Incarnation {
				a.alertRestarted(ctx, in.VaultID, in.Floor.Weakened(in.VaultID, p))
			}
		}
	}
	for _, alert := range in.Alerts {
		alert.VaultID = in.VaultID
		if err := a.notify(ctx, alert); err != nil {
			return res, err
		}
	}
	return res, nil
}

// CountVaultItems counts a vault's items that hold data, through
// visibility, for its mass-delete guard.
func (a *Activities) CountVaultItems(ctx context.Context, vaultID string) (int, error) {
	if err := a.admit(ctx, vaultID, vaultCaller(vaultID)); err != nil {
		return 0, err
	}
	return items.HoldingData(ctx, a.Client, vaultID)
}

// AskVault sends an item's delete to its vault (the itemDelete update) and
// delivers the alert the vault's answer calls for. A retry sends the same
// update ID, so the vault decides once. A refusal by the vault is final.
// A delete the vault held when last asked, and that the hold it publishes
// still holds, is answered so from the vault's record: a burst of held
// deletes asking again does not queue at the vault.
func (a *Activities) AskVault(ctx context.Context, in item.AskVaultInput) (protocol.VaultAnswer, error) {
	var answer protocol.VaultAnswer
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.Request.ItemID)); err != nil {
		return answer, err
	}
	id := protocol.VaultWorkflowID(in.VaultID)
	vs, err := items.VaultSettings(ctx, a.Client, in.VaultID)
	if why := in.Floor.Weakened(in.VaultID, vs.Protection()); err == nil && why != "" {
		// Not asked: a vault started anew that requires less than the
		// item saw would let the delete through on less.
		if !in.HeldBefore {
			a.alertRestarted(ctx, in.VaultID, why)
		}
		answer.Held, answer.Settings = why, vs.SoftDeleteSettings
		return answer, nil
	}
	var unpublished *items.NotPublishedError
	switch {
	case errors.As(err, &unpublished) && (in.Floor.Mua || in.Floor.Signers != ""):
		// What it requires now cannot be read: one started anew may
		// require less than the item saw, so it is not asked yet.
		answer.Held = fmt.Sprintf("vault %s has not published in this run what it requires of a delete, and it required approval or signatures before: the delete waits until it does", in.VaultID)
		return answer, nil
	case errors.As(err, &unpublished):
		// It runs, and answers at its first task.
	case err != nil:
		// Not started yet (a new item's first announcement starts it, and
		// a delete right after the protect may come first), or not a vault
		// of ours: the item asks again later.
		return answer, err
	case in.HeldBefore:
		if why := vs.StillHeld(in.VaultID, in.Request, time.Now()); why != "" {
			answer.Held, answer.Settings = why, vs.SoftDeleteSettings
			return answer, nil
		}
	}
	info := activity.GetInfo(ctx)
	err = items.Execute(ctx, a.Client, client.UpdateWorkflowOptions{
		WorkflowID: id,
		UpdateName: protocol.UpdateItemDelete,
		UpdateID:   info.WorkflowExecution.RunID + "/" + info.ActivityID,
		Args:       []any{in.Request},
	}, &answer)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return answer, temporal.NewNonRetryableApplicationError(app.Message(), app.Type(), nil)
	}
	if err != nil {
		return answer, fmt.Errorf("update %s of %s: %w", protocol.UpdateItemDelete, id, err)
	}
	if answer.Alert != nil {
		if err := a.notify(ctx, *answer.Alert); err != nil {
			return answer, err
		}
	}
	return answer, nil
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

// alertRestarted tells that a vault runs a new incarnation since an item
// last saw it: it was terminated or reset and started anew.
func (a *Activities) alertRestarted(ctx context.Context, vaultID, weakened string) {
	info := activity.GetInfo(ctx)
	detail := fmt.Sprintf("vault %s was terminated or reset and started anew since item workflow %s last saw it", vaultID, info.WorkflowExecution.ID)
	if weakened != "" {
		detail = weakened
	}
	alert := protocol.Alert{Kind: protocol.AlertVaultRestarted, VaultID: vaultID, ItemID: strings.TrimPrefix(info.WorkflowExecution.ID, protocol.WorkflowID(vaultID, "")),
		Time: time.Now().UTC(), Detail: protocol.Clip(detail, protocol.MaxDetailBytes)}
	if err := a.notify(ctx, alert); err != nil {
		activity.GetLogger(ctx).Error("Alert of a vault started anew not delivered", "error", err, "detail", detail)
	}
}
