package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/protocol"
)

// caller is a workflow allowed to schedule an activity: its type, and the
// workflow ID it must run under (or, with prefix, begin with).
type caller struct {
	typ, id string
	prefix  bool
}

// itemCaller is the item whose data an activity touches.
func itemCaller(vaultID, itemID string) caller {
	return caller{typ: protocol.WorkflowType, id: protocol.WorkflowID(vaultID, itemID)}
}

// anyItemOf is any item of a vault.
func anyItemOf(vaultID string) caller {
	return caller{typ: protocol.WorkflowType, id: protocol.WorkflowID(vaultID, ""), prefix: true}
}

// vaultCaller is the vault an activity serves.
func vaultCaller(vaultID string) caller {
	return caller{typ: protocol.VaultWorkflowType, id: protocol.VaultWorkflowID(vaultID)}
}

func (c caller) matches(typ, id string) bool {
	if c.typ != typ {
		return false
	}
	if c.prefix {
		return strings.HasPrefix(id, c.id) && len(id) > len(c.id)
	}
	return id == c.id
}

// admit lets an activity run only for the workflows it serves. Any client
// of the namespace can schedule our activities on queue backup from a
// workflow of its own, with any input: the caller's type and workflow ID
// must be one of allowed, and its run must be one of ours, a run of that
// type on our task queue, so that the code that scheduled the activity is
// this worker's. A refusal changes nothing, is final, and is alerted.
func (a *Activities) admit(ctx context.Context, vaultID string, allowed ...caller) error {
	if !activity.IsActivity(ctx) {
		return temporal.NewNonRetryableApplicationError("not scheduled by a workflow: refused", protocol.ErrTypeForbidden, nil)
	}
	info := activity.GetInfo(ctx)
	typ, id, run := info.WorkflowType.Name, info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	if !matchesAny(allowed, typ, id) {
		// Refused without asking the server about it.
		return a.refuseCaller(ctx, vaultID, "is not the workflow this activity serves")
	}
	switch ok, err := a.runs.ours(ctx, a.Client, id, run, typ); {
	case err != nil:
		// The run could not be checked: retried, nothing done.
		return err
	case !ok:
		return a.refuseCaller(ctx, vaultID, "is not a run of ours: its type or task queue is not Recovery Vault's")
	}
	return nil
}

func matchesAny(allowed []caller, typ, id string) bool {
	for _, c := range allowed {
		if c.matches(typ, id) {
			return true
		}
	}
	return false
}

// refuseCaller alerts a refused caller and returns the final refusal.
func (a *Activities) refuseCaller(ctx context.Context, vaultID, why string) error {
	info := activity.GetInfo(ctx)
	msg := fmt.Sprintf("activity %s scheduled by workflow %s (type %s, run %s) refused: the caller %s; nothing changed",
		info.ActivityType.Name, info.WorkflowExecution.ID, info.WorkflowType.Name, info.WorkflowExecution.RunID, why)
	alert := protocol.Alert{Kind: protocol.AlertForbiddenCaller, VaultID: vaultID, Time: time.Now().UTC(), Detail: protocol.Clip(msg, protocol.MaxDetailBytes)}
	if err := a.notify(ctx, alert); err != nil {
		activity.GetLogger(ctx).Error("Alert of a refused caller not delivered", "error", err, "detail", msg)
	}
	return temporal.NewNonRetryableApplicationError(msg, protocol.ErrTypeForbidden, nil)
}

// dueForPurge confirms, from the calling run's search attributes as the
// server holds them now, that the item is soft-deleted and its deadline had
// passed when the purge was scheduled (by the server's clock).
func (a *Activities) dueForPurge(ctx context.Context, vaultID string) error {
	info := activity.GetInfo(ctx)
	if a.Client == nil {
		return a.refuseCaller(ctx, vaultID, "cannot be checked: the worker has no Temporal client")
	}
	d, err := a.Client.DescribeWorkflowExecution(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID)
	if err != nil {
		return fmt.Errorf("describe %s to confirm its purge is due: %w", info.WorkflowExecution.ID, err)
	}
	l := items.Listed(d.GetWorkflowExecutionInfo())
	switch {
	case l.ProtectionState != string(protocol.SoftDeleted):
		return a.refuseCaller(ctx, vaultID, fmt.Sprintf("is %q, not soft-deleted", l.ProtectionState))
	case l.DeferredDeleteTime.IsZero() || info.ScheduledTime.Before(l.DeferredDeleteTime):
		return a.refuseCaller(ctx, vaultID, fmt.Sprintf("asked for a purge at %s, before its deadline %s",
			info.ScheduledTime.UTC().Format(time.RFC3339), l.DeferredDeleteTime.UTC().Format(time.RFC3339)))
	}
	return nil
}

// runCache remembers which runs are ours, by run ID: a run's type and task
// queue never change, and a workflow ID can be reused by another run.
type runCache struct {
	mu   sync.Mutex
	seen map[string]bool
}

// maxCachedRuns bounds the cache; past it, it starts again.
const maxCachedRuns = 100_000

// runDescriber is the part of the Temporal client that describes runs.
type runDescriber interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// ours tells whether run runID of workflow id is of type typ on our task
// queue. An error is a question the server did not answer.
func (c *runCache) ours(ctx context.Context, cl runDescriber, id, runID, typ string) (bool, error) {
	c.mu.Lock()
	ok, known := c.seen[runID]
	c.mu.Unlock()
	if known {
		return ok, nil
	}
	if cl == nil {
		return false, nil
	}
	d, err := cl.DescribeWorkflowExecution(ctx, id, runID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		ok = false
	case err != nil:
		return false, fmt.Errorf("describe the calling workflow %s run %s: %w", id, runID, err)
	default:
		info := d.GetWorkflowExecutionInfo()
		ok = info.GetType().GetName() == typ &&
			d.GetExecutionConfig().GetTaskQueue().GetName() == protocol.TaskQueue &&
			info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) >= maxCachedRuns {
		c.seen = map[string]bool{}
	}
	if ok {
		// A refusal is not remembered: it costs the caller, not us.
		c.seen[runID] = true
	}
	return ok, nil
}
