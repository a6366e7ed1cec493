package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Trust: the checks the workflows make against forged messages. Anyone who
// can reach the namespace can start workflows and send any signal or
// update; these checks are what stands between such a client and an item's
// data. Each counters one threat:
//
//   - checkIdentity: a workflow started under another item's ID, or on a
//     cron schedule, acting on an item's store (data is kept by ID).
//   - checkCarriedState: a start input, a cron run or a retry that claims
//     the item is already soft-deleted, to have it purged at once.
//   - VaultFloor: a vault reset or weakened after an item saw its settings,
//     to shorten the item's window or turn soft delete off under it.
//   - realItem: forged itemChanged reports naming items that do not exist,
//     which would grow what a vault carries without bound.
//   - approvedDelete: a forged deleteApproved signal, to skip multi-user
//     authorization. The item acts only on a delete it registered itself
//     and has not carried out (Decide's approved, in decide.go), and only
//     once its vault confirms the approval here.
//
// Limits: the namespace's workers are trusted. A worker that registers a
// workflow of its own and continues it as new into a BackupItem could hand
// it any state; no check inside the workflow can tell that run from ours.
//
// Settings are never taken from a message: an item's delete asks its vault
// (askVault), so no one can signal it into "soft delete disabled". Reports
// prove nothing: deleteVault counts items from their own workflows
// (ListVaultItems).

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

// checkCarriedState accepts carried state only in a run continued from
// another (only the server sets that, never a client's start) and not in a
// retry of a run; cron runs are refused by checkIdentity. An item's state
// must also be one an item can be in (ItemState.validate).
func checkCarriedState(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 {
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

// VaultFloor is the strongest soft-delete setting an item has seen.
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
	var run RunInfo
	err := workflow.ExecuteActivity(actx, ActivityDescribeRun, WorkflowID(v.id, r.ItemID), "").Get(ctx, &run)
	return err == nil && run.WorkflowType == WorkflowType && run.FirstRunID == r.Incarnation
}

// approvedDelete confirms, for an item carrying out a delete that waited
// for approval, that request id is an approved delete of that item, not
// carried out yet and within its window; it is then marked carried out, so
// the same approval counts once.
func (v *vault) approvedDelete(ctx workflow.Context, itemID, id string) (MuaRequest, error) {
	i := slices.IndexFunc(v.st.Requests, func(r MuaRequest) bool { return r.RequestID == id })
	if i < 0 {
		return MuaRequest{}, fmt.Errorf("vault %s holds no request %s, nothing changed", v.id, id)
	}
	r := &v.st.Requests[i]
	switch now := workflow.Now(ctx); {
	case r.Operation != string(OpDelete) || r.ItemID != itemID:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s is not a delete of item %s, nothing changed", id, v.id, itemID)
	case r.State != RequestApproved:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s is %s, not Approved: nothing changed", id, v.id, r.State)
	case r.CarriedOut:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s has been carried out already: nothing changed", id, v.id)
	case !now.Before(r.ExpiresAt):
		// An approval is for then: one not carried out within the request's
		// window, say for an item that could not be told, must be asked again.
		return MuaRequest{}, fmt.Errorf("request %s was approved but its window ended at %s: nothing changed, ask again",
			id, rfc3339(r.ExpiresAt))
	}
	r.CarriedOut = true
	return *r, nil
}
