package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
)

// Trust: the checks the workflows make against forged messages. Anyone who
// can reach the namespace can start workflows and send
// any signal or update; these checks are what stands between such a client
// and an item's data. Each says the threat it counters:
//
//   - checkIdentity: a workflow started under another item's ID, or on a
//     cron schedule, acting on an item's store (data is kept by ID).
//   - errForgedState, ItemState.validate, checkCarriedState: a start input,
//     a cron run, a retry or another workflow type continuing as new that
//     claims the item is already soft-deleted, to have it purged at once.
//   - VaultFloor: a vault reset or weakened after an item saw its settings,
//     to shorten the item's window or turn soft delete off under it.
//   - realItem: forged itemChanged reports naming items that do not exist,
//     which would grow what a vault carries without bound.
//   - checkApproval: a forged deleteApproved signal, to skip multi-user
//     authorization; serveApproval (itemapproval.go) adds that the item
//     registered the request itself and has not used it before.
//
// Limits: a run's type is compared by name, so a worker of the namespace
// that registers its own "BackupItem" could forge carried state: the
// namespace's workers are trusted.
//
// Settings are never taken from a message: an item reads them from its
// vault (readVaultSettings), so no one can signal it into "soft delete
// disabled". Reports prove nothing: deleteVault counts items from their
// own workflows (activities.ListVaultItems).

// errForgedState refuses a start input that carries state it may not.
var errForgedState = errors.New(`"state" is carried only by the workflow's own continue-as-new: start it without "state"`)

// checkIdentity refuses a run that is not the workflow it claims to be:
// the workflow ID must be the one its input names, and no cron schedule may
// re-run it. Data is purged by vault and item ID, so a workflow under
// another ID must never act on an item's store.
func checkIdentity(ctx workflow.Context, wantID string) error {
	info := workflow.GetInfo(ctx)
	if info.WorkflowExecution.ID != wantID {
		return fmt.Errorf("workflow ID %q does not match its input: start it with workflow ID %q", info.WorkflowExecution.ID, wantID)
	}
	if info.CronSchedule != "" {
		return errors.New("this workflow cannot run on a cron schedule: start it without --cron")
	}
	return nil
}

// checkCarriedState accepts carried state only in a run continued from a
// run of the same workflow type, and not from a retry: a cron run, a retry
// or another workflow type continuing as new could otherwise forge it.
func checkCarriedState(ctx workflow.Context, workflowType string) error {
	info := workflow.GetInfo(ctx)
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 {
		return errForgedState
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	var prev activities.RunInfo
	err := workflow.ExecuteActivity(actx, acts.DescribeRun, info.WorkflowExecution.ID, info.ContinuedExecutionRunID).Get(ctx, &prev)
	if err != nil {
		return fmt.Errorf("the run this one continues could not be checked: %s", message(err))
	}
	if prev.WorkflowType != workflowType || !prev.ContinuedAsNew {
		return errForgedState
	}
	return nil
}

// validate checks the contents of carried state.
func (st *ItemState) validate() error {
	switch st.ProtectionState {
	case Protected, ProtectionStopped:
	case SoftDeleted:
		if st.DeletedAt.IsZero() || !st.Deadline.After(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline after its deletion time", st.ProtectionState)
		}
	case Purging:
		if st.DeletedAt.IsZero() || st.Deadline.Before(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline", st.ProtectionState)
		}
	default:
		return fmt.Errorf("carried protectionState %q is not a state an item continues in", st.ProtectionState)
	}
	return nil
}

// VaultFloor is the strongest soft-delete setting seen.
type VaultFloor struct {
	AlwaysOn      bool `json:"alwaysOn,omitempty"`
	RetentionDays int  `json:"retentionDays,omitempty"`
}

// raise lifts the floor to what settings s demand.
func (f *VaultFloor) raise(s SoftDeleteSettings) {
	f.AlwaysOn = f.AlwaysOn || s.State == SoftDeleteAlwaysOn
	f.RetentionDays = max(f.RetentionDays, s.RetentionDays)
}

// apply never lets settings fall below the floor.
func (f VaultFloor) apply(s SoftDeleteSettings) SoftDeleteSettings {
	if f.AlwaysOn {
		s.State = SoftDeleteAlwaysOn
	}
	s.RetentionDays = max(s.RetentionDays, f.RetentionDays)
	return s
}

// realItem checks that a report naming an item the vault does not know, or
// a new incarnation of one, comes from such an item: any client can send
// itemChanged, and the vault must not carry an item for every forged one.
func (v *vault) realItem(ctx workflow.Context, r ItemReport) bool {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	var run activities.RunInfo
	err := workflow.ExecuteActivity(actx, acts.DescribeRun, WorkflowID(v.id, r.ItemID), "").Get(ctx, &run)
	return err == nil && run.WorkflowType == WorkflowType && run.FirstRunID == r.Incarnation
}

// checkApproval finds request id at the vault, approved, for a delete of
// this item.
func (w *item) checkApproval(ctx workflow.Context, id string) (MuaRequest, error) {
	var requests []MuaRequest
	if err := queryWorkflow(ctx, VaultWorkflowID(w.in.VaultID), VaultWorkflowType, QueryMuaRequests, &requests); err != nil {
		return MuaRequest{}, fmt.Errorf("vault %s could not be asked about request %s, nothing changed: %s", w.in.VaultID, id, message(err))
	}
	for _, r := range requests {
		if r.RequestID != id {
			continue
		}
		if r.Operation != string(OpDelete) || r.ItemID != w.in.ItemID {
			return MuaRequest{}, fmt.Errorf("request %s at vault %s is not a delete of item %s, nothing changed", id, w.in.VaultID, w.in.ItemID)
		}
		if r.State != RequestApproved {
			return MuaRequest{}, fmt.Errorf("request %s at vault %s is %s, not Approved: nothing changed", id, w.in.VaultID, r.State)
		}
		// An approval is for then: one not carried out within the request's
		// window, say for a vault that could not be read, must be asked again.
		if now := workflow.Now(ctx); !now.Before(r.ExpiresAt) {
			return MuaRequest{}, fmt.Errorf("request %s was approved but its window ended at %s: nothing changed, ask again",
				id, r.ExpiresAt.UTC().Format(time.RFC3339))
		}
		return r, nil
	}
	return MuaRequest{}, fmt.Errorf("vault %s holds no request %s, nothing changed", w.in.VaultID, id)
}
