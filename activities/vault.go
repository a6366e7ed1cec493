package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"recoveryvault/internal/searchattributes"
	"recoveryvault/internal/updates"
)

// ErrTypeNoVault marks a vault that does not exist (yet): callers fall back
// to the safe defaults.
const ErrTypeNoVault = "NoVault"

// SignalWithStartInput signals a workflow, starting it first when it is not
// running. Payloads are JSON so this package needs none of the workflow types.
type SignalWithStartInput struct {
	WorkflowID   string          `json:"workflowId"`
	WorkflowType string          `json:"workflowType"`
	TaskQueue    string          `json:"taskQueue"`
	SignalName   string          `json:"signalName"`
	Signal       json.RawMessage `json:"signal"`
	StartInput   json.RawMessage `json:"startInput"`
}

// SignalWithStart is how an item registers with its vault and reports to
// it: a vault that does not exist yet comes up with default settings.
func (a *Activities) SignalWithStart(ctx context.Context, in SignalWithStartInput) error {
	_, err := a.Client.SignalWithStartWorkflow(ctx, in.WorkflowID, in.SignalName, in.Signal,
		client.StartWorkflowOptions{ID: in.WorkflowID, TaskQueue: in.TaskQueue}, in.WorkflowType, in.StartInput)
	if err != nil {
		return fmt.Errorf("signal %s to %s: %w", in.SignalName, in.WorkflowID, err)
	}
	return nil
}

// QueryJSON answers a workflow's query as JSON. A workflow that does not
// exist or has completed is a non-retryable NoVault error.
func (a *Activities) QueryJSON(ctx context.Context, workflowID, query string) (json.RawMessage, error) {
	v, err := a.Client.QueryWorkflow(ctx, workflowID, "", query)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s does not exist", workflowID), ErrTypeNoVault, err)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s of %s: %w", query, workflowID, err)
	}
	var raw json.RawMessage
	if err := v.Get(&raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// ListedItem is one item as visibility shows it.
type ListedItem struct {
	WorkflowID         string    `json:"workflowId"`
	RunID              string    `json:"runId"`
	VaultID            string    `json:"vaultId"`
	ProtectionState    string    `json:"protectionState"`
	DeferredDeleteTime time.Time `json:"deferredDeleteTime,omitzero"`
	// WorkflowStatus is the run's status as Temporal names it: Running,
	// Completed, Failed, Terminated...
	WorkflowStatus string `json:"workflowStatus"`
	Running        bool   `json:"running"`
}

// ListVaultItems lists the running items of a vault through visibility,
// whose search attributes only the item workflows themselves can set, and
// confirms each with its workflow: visibility lags, and an item purged a
// moment ago may still be listed as running. It is what deleteVault counts,
// so it must not refuse over an item that is gone, nor miss one that holds
// data. It heartbeats once per item checked.
func (a *Activities) ListVaultItems(ctx context.Context, vaultID string) ([]ListedItem, error) {
	// By workflow ID, which an item's workflow must match: an item still
	// taking its first backup has published no attributes yet, and holds
	// data all the same.
	listed, err := ListItems(ctx, a.Client, fmt.Sprintf("WorkflowType = 'BackupItem' AND WorkflowId STARTS_WITH 'backup-item/%s/' AND ExecutionStatus = 'Running'", vaultID))
	if err != nil {
		return nil, err
	}
	confirmed := make([]*ListedItem, len(listed))
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
	rows := make([]ListedItem, 0, len(listed))
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
func (a *Activities) confirmRunning(ctx context.Context, l ListedItem) (*ListedItem, error) {
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
	r := listedItem(info)
	return &r, nil
}

// ListItems runs a visibility query over items, every page of it.
func ListItems(ctx context.Context, c client.Client, query string) ([]ListedItem, error) {
	var rows []ListedItem
	var token []byte
	for {
		page, next, err := ListItemsPage(ctx, c, query, 0, token)
		if err != nil {
			return nil, err
		}
		rows = append(rows, page...)
		if len(next) == 0 {
			return rows, nil
		}
		token = next
	}
}

// ListItemsPage runs one page of a visibility query over items (pageSize
// 0 is the server's), and gives the token of the next page, empty on the
// last.
func ListItemsPage(ctx context.Context, c client.Client, query string, pageSize int32, token []byte) ([]ListedItem, []byte, error) {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: pageSize, NextPageToken: token})
	if err != nil {
		return nil, nil, fmt.Errorf("list items (%s): %w", query, err)
	}
	rows := make([]ListedItem, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		rows = append(rows, listedItem(e))
	}
	return rows, resp.GetNextPageToken(), nil
}

// listedItem reads an item's identity, status and search attributes.
func listedItem(e *workflowpb.WorkflowExecutionInfo) ListedItem {
	dc := converter.GetDefaultDataConverter()
	fields := e.GetSearchAttributes().GetIndexedFields()
	r := ListedItem{
		WorkflowID:     e.GetExecution().GetWorkflowId(),
		RunID:          e.GetExecution().GetRunId(),
		WorkflowStatus: e.GetStatus().String(),
		Running:        e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}
	_ = dc.FromPayload(fields[searchattributes.VaultID], &r.VaultID)
	_ = dc.FromPayload(fields[searchattributes.State], &r.ProtectionState)
	if p := fields[searchattributes.Deadline]; p != nil {
		_ = dc.FromPayload(p, &r.DeferredDeleteTime)
	}
	return r
}

// Notify delivers an alert through the worker's notifier.
func (a *Activities) Notify(ctx context.Context, alert Alert) error {
	if a.Notifier == nil {
		return LogNotifier{}.Notify(ctx, alert)
	}
	return a.Notifier.Notify(ctx, alert)
}

// RunInfo is the type and status of one workflow run.
type RunInfo struct {
	WorkflowType   string `json:"workflowType"`
	Running        bool   `json:"running"`
	ContinuedAsNew bool   `json:"continuedAsNew"`
	// FirstRunID names the workflow's incarnation: it stays the same
	// across continue-as-new.
	FirstRunID string `json:"firstRunId,omitempty"`
}

// DescribeRun tells what a run of a workflow is or was: a run that carries
// state checks that its predecessor was its own kind of workflow. An empty
// runID is the current run.
func (a *Activities) DescribeRun(ctx context.Context, workflowID, runID string) (RunInfo, error) {
	d, err := a.Client.DescribeWorkflowExecution(ctx, workflowID, runID)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return RunInfo{}, nil
	}
	if err != nil {
		return RunInfo{}, fmt.Errorf("describe run %s of %s: %w", runID, workflowID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	return RunInfo{
		WorkflowType:   info.GetType().GetName(),
		Running:        info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		ContinuedAsNew: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
		FirstRunID:     info.GetFirstRunId(),
	}, nil
}

// QueryRunning answers a query of a workflow that must be running and of
// the given type: anything else under that ID, whatever it answers, is not
// to be believed.
func (a *Activities) QueryRunning(ctx context.Context, workflowID, workflowType, query string) (json.RawMessage, error) {
	if err := a.requireRunning(ctx, workflowID, workflowType); err != nil {
		return nil, err
	}
	return a.QueryJSON(ctx, workflowID, query)
}

// MessageInput names a running workflow of a given type, a signal or update
// of it, and the JSON payload to send.
type MessageInput struct {
	WorkflowID   string          `json:"workflowId"`
	WorkflowType string          `json:"workflowType"`
	Name         string          `json:"name"`
	Payload      json.RawMessage `json:"payload"`
}

// requireRunning refuses, for good, a workflow that is not a running one
// of the expected type.
func (a *Activities) requireRunning(ctx context.Context, workflowID, workflowType string) error {
	info, err := a.DescribeRun(ctx, workflowID, "")
	if err != nil {
		return err
	}
	if !info.Running || info.WorkflowType != workflowType {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s is not a running %s workflow", workflowID, workflowType), ErrTypeNoVault, nil)
	}
	return nil
}

// Signal sends a signal to a running workflow of the given type.
func (a *Activities) Signal(ctx context.Context, in MessageInput) error {
	if err := a.requireRunning(ctx, in.WorkflowID, in.WorkflowType); err != nil {
		return err
	}
	if err := a.Client.SignalWorkflow(ctx, in.WorkflowID, "", in.Name, in.Payload); err != nil {
		return fmt.Errorf("signal %s to %s: %w", in.Name, in.WorkflowID, err)
	}
	return nil
}

// Update runs an update of a running workflow of the given type and answers
// its result as JSON. A retry of the activity sends the same update ID, so
// the update runs once. A refusal by the workflow is final.
func (a *Activities) Update(ctx context.Context, in MessageInput) (json.RawMessage, error) {
	if err := a.requireRunning(ctx, in.WorkflowID, in.WorkflowType); err != nil {
		return nil, err
	}
	info := activity.GetInfo(ctx)
	var raw json.RawMessage
	err := updates.Execute(ctx, a.Client, client.UpdateWorkflowOptions{
		WorkflowID: in.WorkflowID,
		UpdateName: in.Name,
		UpdateID:   info.WorkflowExecution.RunID + "/" + info.ActivityID,
		Args:       []any{in.Payload},
	}, &raw)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return nil, temporal.NewNonRetryableApplicationError(app.Message(), app.Type(), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("update %s of %s: %w", in.Name, in.WorkflowID, err)
	}
	return raw, nil
}
