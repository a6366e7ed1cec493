package protocol

import (
	"errors"
	"fmt"
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
//   - realItem: forged itemDelete updates naming items that do not exist,
//     to fill the vault's bounded queue of requests for approval. A forged
//     delete without multi-user authorization is answered to its sender
//     only; it can count towards the mass-delete guard, which errs towards
//     holding deletes, never towards letting one through.
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
// (askVault), so no one can signal it into "soft delete disabled". The
// vault's memo, which a client could set when it starts the vault, only
// ever raises an item's floor, and each run of the vault writes its own.
// deleteVault counts items from their own workflows (ListVaultItems).

// errForgedState refuses a start input that carries state it may not.
var errForgedState = errors.New(`"state" is carried only by the workflow's own continue-as-new: start it without "state"`)

// checkIdentity refuses a run that is not the workflow it claims to be:
// the workflow ID must be the one its input names, and no cron schedule may
// re-run it. Data is purged by vault and item ID, so a workflow under
// another ID must never act on an item's store.
func CheckIdentity(ctx workflow.Context, wantID string) error {
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
// another (only the server sets that, never a client's start), not in a
// retry of a run (cron runs are refused by checkIdentity), and only from a
// run of ours: anyone may terminate an item and continue a workflow of
// their own into it with any state, so the run continued must have been of
// this workflow's type on our task queue, its code this worker's. Checking
// the run just before, not the chain's first, holds after the first has
// passed the namespace's retention.
func CheckCarriedState(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 {
		return errForgedState
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Until the server answers: the state is neither used nor lost.
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: time.Minute, NonRetryableErrorTypes: []string{ErrTypeForbidden}},
	})
	var prev RunInfo
	if err := workflow.ExecuteActivity(actx, ActivityDescribeRun, info.WorkflowExecution.ID, info.ContinuedExecutionRunID).Get(ctx, &prev); err != nil {
		return fmt.Errorf("the run this one continues could not be checked: %s", Message(err))
	}
	if !prev.ContinuedAsNew || prev.WorkflowType != info.WorkflowType.Name || prev.TaskQueue != TaskQueue {
		return fmt.Errorf("carried state refused: the run it continues (%s) is a %q on task queue %q, not a %s of ours on %q; nothing was done with it",
			info.ContinuedExecutionRunID, prev.WorkflowType, prev.TaskQueue, info.WorkflowType.Name, TaskQueue)
	}
	return nil
}
