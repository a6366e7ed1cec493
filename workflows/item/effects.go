package item

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/workflows/protocol"
)

// BackupInput asks for a new recovery point of an item; the activity fills
// in the point's sizes and hash.
type BackupInput struct {
	VaultID    string                 `json:"vaultId"`
	ItemID     string                 `json:"itemId"`
	Point      protocol.RecoveryPoint `json:"point"`
	SourcePath string                 `json:"sourcePath"`
	// Window is the item's part in its soft-delete window: a store with
	// object lock keeps what the backup writes for that window.
	Window protocol.WindowInputs `json:"window"`
	// First is an item's first backup: points already in the store are an
	// earlier run's, terminated or reset.
	First bool `json:"first,omitempty"`
	// CompareWith is the point the change is also measured against, file
	// by file (the anomaly rule's baseline).
	CompareWith string `json:"compareWith,omitempty"`
}

// BackupResult is the recovery point written and what it skipped.
type BackupResult struct {
	Point protocol.RecoveryPoint `json:"point"`
	Files int                    `json:"files"`
	// Since is the change against BackupInput.CompareWith.
	Since *protocol.Change `json:"since,omitempty"`
	// Skipped counts special files not backed up; their names go to the
	// worker's log, never to a history.
	Skipped int `json:"skipped,omitempty"`
	// Lock is how long a store with object lock keeps what it wrote.
	Lock LockResult `json:"lock"`
	// Settings and Protection are the vault's now, when they could be read.
	Settings   *protocol.SoftDeleteSettings `json:"settings,omitempty"`
	Protection *protocol.Protection         `json:"protection,omitempty"`
}

// LockResult says how long objects are kept, from when, for what window;
// zero on a store that does not lock.
type LockResult struct {
	Until  time.Time     `json:"until,omitzero"`
	Window time.Duration `json:"window,omitempty"`
}

// RestoreInput asks for a recovery point to be written under TargetPath,
// checked against the point's hash as the workflow recorded it.
type RestoreInput struct {
	VaultID    string                 `json:"vaultId"`
	ItemID     string                 `json:"itemId"`
	Point      protocol.RecoveryPoint `json:"point"`
	TargetPath string                 `json:"targetPath"`
}

// readBackRetry is how a restore or a drill, which read a whole point back,
// is tried again: a few times, never for what retrying cannot mend.
var readBackRetry = &temporal.RetryPolicy{
	InitialInterval:        5 * time.Second,
	MaximumInterval:        time.Minute,
	MaximumAttempts:        3,
	NonRetryableErrorTypes: protocol.NonRetryableErrorTypes,
}

// VerifyInput names the point a restore drill reads back.
type VerifyInput struct {
	VaultID string                 `json:"vaultId"`
	ItemID  string                 `json:"itemId"`
	Point   protocol.RecoveryPoint `json:"point"`
}

// RestoreResult tells what was written, or for a drill what was read back.
type RestoreResult struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// CollectInput names expired recovery points to remove.
type CollectInput struct {
	VaultID          string                `json:"vaultId"`
	ItemID           string                `json:"itemId"`
	RecoveryPointIDs []string              `json:"recoveryPointIds"`
	Window           protocol.WindowInputs `json:"window"`
}

// LockInput locks an item's objects until Until, or with Until zero for the
// item's window from now: the rolling lock.
type LockInput struct {
	VaultID string                `json:"vaultId"`
	ItemID  string                `json:"itemId"`
	Until   time.Time             `json:"until,omitzero"`
	Window  protocol.WindowInputs `json:"window"`
}

// PurgeInput destroys everything of an item, then reports it.
type PurgeInput struct {
	VaultID string      `json:"vaultId"`
	ItemID  string      `json:"itemId"`
	Report  ReportInput `json:"report"`
}

// ReportInput delivers an item's alerts and reads its vault's settings;
// with Register it first starts the vault if it does not run.
type ReportInput struct {
	VaultID  string           `json:"vaultId"`
	Register bool             `json:"register,omitempty"`
	Alerts   []protocol.Alert `json:"alerts,omitempty"`
	// Floor is what the item has seen of its vault: a vault started anew
	// since is alerted.
	Floor protocol.VaultFloor `json:"floor,omitzero"`
}

// ReportResult is the vault's soft-delete settings and what it requires
// of a delete, when they could be read from its memo.
type ReportResult struct {
	Settings   *protocol.SoftDeleteSettings `json:"settings,omitempty"`
	Protection *protocol.Protection         `json:"protection,omitempty"`
}

// AskVaultInput is an item's delete, asked of its vault (itemDelete).
type AskVaultInput struct {
	VaultID string                     `json:"vaultId"`
	Request protocol.ItemDeleteRequest `json:"request"`
	// HeldBefore is a delete the vault held when last asked: its published
	// hold answers without asking the vault again.
	HeldBefore bool `json:"heldBefore,omitempty"`
	// Floor is what the item has seen of its vault: a vault started anew
	// that requires less is not asked, and the delete waits.
	Floor protocol.VaultFloor `json:"floor,omitzero"`
}

// runStoreEffect runs a backup, collection, restore or purge, and returns
// its result as the event that reports it. Options sit next to each call.
func (w *item) runStoreEffect(ctx workflow.Context, e Effect) Event {
	done := Event{Ref: e.Ref, By: e.By, For: e.For}
	switch e.Kind {
	case EffectBackup:
		done.Op = OpBackupDone
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Hour,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:        5 * time.Second,
				MaximumInterval:        5 * time.Minute,
				MaximumAttempts:        5,
				NonRetryableErrorTypes: protocol.NonRetryableErrorTypes,
			},
		})
		var res BackupResult
		in := BackupInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, Point: e.Point, SourcePath: w.in.SourcePath, Window: w.windowInputs(protocol.RetentionOverride{}),
			First: e.For == OpProtect, CompareWith: e.CompareWith}
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityBackup, in).Get(ctx, &res); err != nil {
			done.Failure = &Failure{Message: protocol.Message(err), Refused: protocol.ErrorType(err) == protocol.ErrTypeSourceMissing}
			return done
		}
		done.Point, done.Files, done.Since = &res.Point, res.Files, res.Since
		done.Settings, done.Protection = res.Settings, res.Protection
		done.LockedUntil, done.LockWindow = res.Lock.Until, res.Lock.Window
	case EffectCollect:
		done.Op = OpCollectDone
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Minute,
			HeartbeatTimeout:    20 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:        5 * time.Second,
				MaximumInterval:        5 * time.Minute,
				MaximumAttempts:        10,
				NonRetryableErrorTypes: protocol.NonRetryableErrorTypes,
			},
		})
		in := CollectInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, RecoveryPointIDs: e.RecoveryPoints, Window: w.windowInputs(protocol.RetentionOverride{})}
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityCollect, in).Get(ctx, nil); err != nil {
			done.Failure = &Failure{Message: protocol.Message(err)}
			return done
		}
		done.Removed = e.RecoveryPoints
	case EffectRestore:
		done.Op, done.RecoveryPointID, done.TargetPath = OpRestoreDone, e.Point.ID, e.TargetPath
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Hour,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         readBackRetry,
		})
		var res RestoreResult
		in := RestoreInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, Point: e.Point, TargetPath: e.TargetPath}
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityRestore, in).Get(ctx, &res); err != nil {
			if t := protocol.ErrorType(err); t == protocol.ErrTypeTargetNotEmpty || t == protocol.ErrTypeInvalidInput {
				// Refused before anything was written: the target is wrong.
				done.Failure = &Failure{Message: protocol.Message(err) + "; nothing was written", Refused: true}
			} else {
				done.Failure = &Failure{Message: fmt.Sprintf("restore of %s to %s failed: %s", e.Point.ID, e.TargetPath, protocol.Message(err))}
			}
			return done
		}
		done.Restored = &res
	case EffectVerify:
		done.Op, done.RecoveryPointID = OpVerifyDone, e.Point.ID
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// Its own queue and limit: a drill never takes a backup's place.
			TaskQueue: protocol.VerifyTaskQueue,
			// Waiting for a drill slot holds the item's store lane: a drill
			// that gets none in half an hour is tried again later.
			ScheduleToStartTimeout: 30 * time.Minute,
			StartToCloseTimeout:    6 * time.Hour,
			HeartbeatTimeout:       time.Minute,
			RetryPolicy:            readBackRetry,
		})
		var res RestoreResult
		in := VerifyInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, Point: e.Point}
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityVerify, in).Get(ctx, &res); err != nil {
			switch protocol.ErrorType(err) {
			case protocol.ErrTypeVerifyFailed, protocol.ErrTypeCorrupted, protocol.ErrTypeUnknownRecoveryPoint:
				done.Failure = &Failure{Message: protocol.Message(err), Damaged: true}
			default:
				done.Failure = &Failure{Message: protocol.Message(err)}
			}
			return done
		}
		done.Restored = &res
	case EffectLock:
		done.Op = OpLockDone
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 5 * time.Minute, MaximumAttempts: 10},
		})
		in := LockInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, Until: e.LockUntil, Window: w.windowInputs(protocol.RetentionOverride{})}
		var res LockResult
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityLock, in).Get(ctx, &res); err != nil {
			done.Failure = &Failure{Message: protocol.Message(err)}
			return done
		}
		done.LockedUntil, done.LockWindow = res.Until, res.Window
	case EffectPurge:
		done.Op = OpPurgeDone
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Minute,
			// A worker that dies mid-purge is noticed within this, and
			// another finishes the purge.
			HeartbeatTimeout: 20 * time.Second,
			// Retried until it succeeds: the deadline has passed and
			// nothing can stop it now.
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 10 * time.Minute},
		})
		in := PurgeInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, Report: w.reportOf(e)}
		// A purge is never given up: it fails only when the item is
		// cancelled, which stops it with whatever data is left.
		if err := workflow.ExecuteActivity(ctx, protocol.ActivityPurge, in).Get(ctx, nil); err != nil {
			done.Failure = &Failure{Message: protocol.Message(err)}
		}
	}
	return done
}

// report sends alerts and registers the item with its vault; the vault's
// settings come back as an event that raises the item's floor.
func (w *item) report(ctx workflow.Context, in ReportInput) Event {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second,
			MaximumInterval: time.Minute,
			MaximumAttempts: 10,
		},
	})
	var res ReportResult
	if err := workflow.ExecuteActivity(ctx, protocol.ActivityReport, in).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("Vault not told of the item's state, or alerts not delivered", "vault", w.in.VaultID, "error", err)
	}
	return Event{Op: OpReported, Settings: res.Settings, Protection: res.Protection}
}

// reportOf is what an effect reports: the alerts, and whether the
// vault must be started if it does not run.
func (w *item) reportOf(e Effect) ReportInput {
	return ReportInput{VaultID: w.in.VaultID, Register: e.Register, Alerts: e.Alerts, Floor: w.st.VaultFloor}
}

// askVault asks the vault about a delete or an approval: the only step
// that blocks a decision. A vault that cannot be asked is an answer too.
func (w *item) askVault(ctx workflow.Context, ev Event) *protocol.VaultAnswer {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{protocol.ErrTypeRefused},
		},
	})
	in := AskVaultInput{VaultID: w.in.VaultID, Request: protocol.ItemDeleteRequest{
		ItemID:      w.in.ItemID,
		Incarnation: w.incarnation,
		RequestedBy: ev.By,
		Reason:      ev.Reason,
		RequestID:   ev.RequestID,
		Input:       ev.Input,
		At:          workflow.Now(ctx).UTC(),
		ReceivedAt:  workflow.Now(ctx).UTC(),
		Window:      w.windowInputs(w.settings.Override()),
	}}
	in.Floor = w.st.VaultFloor
	if ev.Op == protocol.OpClearAnomaly {
		in.Request.Operation, in.Request.Points = string(ev.Op), suspects(w.st.RecoveryPoints)
	}
	if ev.RequestID != "" {
		// An approval: the vault judges it by its own record.
		in.Request.Input = nil
		if i := slices.IndexFunc(w.st.AwaitingApproval, func(a AwaitedApproval) bool { return a.RequestID == ev.RequestID }); i >= 0 {
			in.Request.Operation = string(w.st.AwaitingApproval[i].Op)
		}
	}
	if i := w.st.waiting(ev.Op, ev.RequestID); ev.Retry && i >= 0 {
		in.Request.ReceivedAt = w.st.Waiting[i].Since
		in.HeldBefore = w.st.Waiting[i].Held
	}
	// The item's registration goes first: it starts the vault if need be.
	_ = workflow.Await(ctx, func() bool { return !w.reports.busy })
	var answer protocol.VaultAnswer
	err := workflow.ExecuteActivity(ctx, protocol.ActivityAskVault, in).Get(ctx, &answer)
	switch {
	case protocol.ErrorType(err) == protocol.ErrTypeRefused:
		return &protocol.VaultAnswer{Refusal: protocol.Message(err), RefusalDetails: protocol.RefusalOf(err)}
	case err != nil:
		return &protocol.VaultAnswer{Unavailable: fmt.Sprintf(
			"vault %s could not be asked how deletes of item %s are protected: %s",
			w.in.VaultID, w.in.ItemID, protocol.Message(err))}
	}
	return &answer
}
