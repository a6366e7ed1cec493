// Package items is the client side of items, shared by the starter, the
// console and the activities: an item's status, listing items through
// visibility, and sending updates; so every client says the same thing
// about an item.
package items

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// NoItemError says, in a sentence for the person who asked, why there is
// no item to show: it was never protected, or it was refused when it was.
type NoItemError struct{ Message string }

func (e *NoItemError) Error() string { return e.Message }

// Status is an item's answer to the status query. An item whose workflow
// does not exist, or whose protect was refused at its first backup, has no
// status (a query would replay the refused run and answer "Protected"):
// that is a *NoItemError.
func Status(ctx context.Context, cl client.Client, vaultID, itemID string) (item.Status, error) {
	var st item.Status
	id := protocol.WorkflowID(vaultID, itemID)
	d, err := cl.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return st, &NoItemError{fmt.Sprintf("there is no item %s in vault %s: protect it first", itemID, vaultID)}
	}
	if err != nil {
		return st, err
	}
	if info := d.GetWorkflowExecutionInfo(); info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		failure := cl.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, nil)
		var app *temporal.ApplicationError
		// Only an item's first run, failing at its first backup, stored
		// nothing. A later run that failed may leave points in the store,
		// and its last status says which.
		if errors.As(failure, &app) && app.Type() == protocol.ErrTypeSourceMissing && info.GetFirstRunId() == info.GetExecution().GetRunId() {
			return st, &NoItemError{fmt.Sprintf("there is no item %s in vault %s: it was refused when it was protected, and nothing was stored (%s)",
				itemID, vaultID, app.Message())}
		}
	}
	v, err := cl.QueryWorkflow(ctx, id, "", protocol.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// WithVaultWindow fills in the soft-delete window that a delete made now
// would get, from the vault's current settings: the item itself knows them
// only as of its last contact with its vault. A vault that cannot be read
// leaves the item's own view. It also says whether such a delete would
// purge at once (soft delete Disabled).
func WithVaultWindow(ctx context.Context, cl client.Client, st item.Status) (item.Status, bool) {
	vs, err := VaultSettings(ctx, cl, st.VaultID)
	if err != nil {
		return st, false
	}
	return VaultWindow(st, vs.SoftDeleteSettings)
}

// StartVault starts a vault with default settings, unless it runs; a
// vault that runs is left as it is.
func StartVault(ctx context.Context, cl client.Client, vaultID string) error {
	id := protocol.VaultWorkflowID(vaultID)
	_, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: protocol.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, protocol.VaultWorkflowType, vault.VaultInput{VaultID: vaultID})
	if err != nil {
		return fmt.Errorf("start vault %s: %w", vaultID, err)
	}
	return nil
}

// NotRunningError is a vault that does not run: never made, or deleted.
type NotRunningError struct{ Message string }

func (e *NotRunningError) Error() string { return e.Message }

// NotPublishedError is a vault that runs and has not yet written its
// settings in its memo (it does at its first task).
type NotPublishedError struct{ Message string }

func (e *NotPublishedError) Error() string { return e.Message }

// VaultSettings reads the delete settings a vault publishes in its memo.
// The server answers from the vault's record, without a task of the vault,
// so a vault busy with a burst of deletes is still read at once. A workflow
// under the vault's ID that is not a running Vault is not believed.
func VaultSettings(ctx context.Context, cl client.Client, vaultID string) (protocol.DeleteSettings, error) {
	var vs protocol.DeleteSettings
	id := protocol.VaultWorkflowID(vaultID)
	d, err := cl.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return vs, &NotRunningError{fmt.Sprintf("vault %s does not exist", vaultID)}
	}
	if err != nil {
		return vs, fmt.Errorf("read the settings of vault %s: %w", vaultID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return vs, &NotRunningError{fmt.Sprintf("vault %s is not running (%s)", vaultID, info.GetStatus())}
	}
	if info.GetType().GetName() != protocol.VaultWorkflowType {
		return vs, fmt.Errorf("%s is not a %s workflow", id, protocol.VaultWorkflowType)
	}
	// A memo given at the start is whoever started it; the vault writes its
	// own at its first task, which only our workers' task queue gets to.
	if info.GetTaskQueue() != protocol.TaskQueue {
		return vs, fmt.Errorf("%s runs on task queue %q, not %q: its memo is not the vault's", id, info.GetTaskQueue(), protocol.TaskQueue)
	}
	p := info.GetMemo().GetFields()[vault.MemoDeleteSettings]
	if p == nil {
		return vs, &NotPublishedError{fmt.Sprintf("vault %s has not published its settings yet: try again in a moment", vaultID)}
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &vs); err != nil || vs.State == "" {
		return vs, fmt.Errorf("vault %s's published settings cannot be read (%v)", vaultID, err)
	}
	// Only the vault's own run writes its run ID in the memo: a memo given
	// at the start (one that has not run yet, under a start delay, say) or
	// carried from the run before is not this run's word.
	if vs.Run != info.GetExecution().GetRunId() {
		return vs, &NotPublishedError{fmt.Sprintf("vault %s has not published its settings in this run yet: try again in a moment", vaultID)}
	}
	// A reset keeps the first run's ID: a vault reset is another
	// incarnation too.
	vs.Incarnation = info.GetFirstRunId()
	if t := d.GetWorkflowExtendedInfo().GetLastResetTime(); t != nil && t.AsTime().Unix() > 0 {
		vs.Incarnation += " reset " + t.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return vs, nil
}

// VaultWindow is WithVaultWindow for a caller that has read the vault's
// settings already.
func VaultWindow(st item.Status, vs protocol.SoftDeleteSettings) (item.Status, bool) {
	var disabled bool
	st.SoftDeleteRetentionDays, st.SoftDeleteWindow, disabled = item.WindowIfDeletedNow(st, vs)
	return st, disabled
}

// AlreadyThere is the answer to a protect of an item that exists: what it
// is, and what to do instead.
func AlreadyThere(st item.Status) error {
	switch st.ProtectionState {
	case protocol.SoftDeleted:
		return fmt.Errorf("item %s of vault %s is soft-deleted, not protected: its purge is scheduled for %s (%s left) unless it is undeleted; "+
			"undelete it (starter undelete --vault %s --item %s), then resume protection (starter resume)",
			st.ItemID, st.VaultID, st.DeferredDeleteTimeInUTC, st.DeferredDeleteTimeRemaining, st.VaultID, st.ItemID)
	case protocol.ProtectionStopped:
		return fmt.Errorf("item %s of vault %s exists with protection stopped and its recovery points kept: resume it (starter resume --vault %s --item %s)",
			st.ItemID, st.VaultID, st.VaultID, st.ItemID)
	}
	return fmt.Errorf("item %s of vault %s is already protected: see its status (starter status --vault %s --item %s)",
		st.ItemID, st.VaultID, st.VaultID, st.ItemID)
}
