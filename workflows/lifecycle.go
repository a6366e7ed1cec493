package workflows

import (
	"fmt"
	"time"
)

// State is an item's protectionState (docs/contract.md section 3).
type State string

const (
	Protected         State = "Protected"
	ProtectionStopped State = "ProtectionStopped"
	SoftDeleted       State = "SoftDeleted"
	// Purging is internal: the window has ended and the purge activity runs.
	// Users see it as SoftDeleted until the bytes are gone, because "Purged"
	// must only be said of data that no longer exists.
	Purging State = "Purging"
	Purged  State = "Purged"
)

// Operation is anything that can move an item: a user's signal or update,
// or an event of the workflow's own clock.
type Operation string

const (
	OpStop      Operation = "stop"
	OpDelete    Operation = "delete"
	OpUndelete  Operation = "undelete"
	OpResume    Operation = "resume"
	OpBackupNow Operation = "backupNow"
	OpRestore   Operation = "restore"
	// OpScheduledBackup is the backup timer firing.
	OpScheduledBackup Operation = "scheduledBackup"
	// OpWindowEnds is the purge timer firing at the deadline.
	OpWindowEnds Operation = "windowEnds"
	// OpPurgeDone is the purge activity having destroyed the data.
	OpPurgeDone Operation = "purgeDone"
)

// Facts are what a decision may depend on besides the state and operation.
type Facts struct {
	ItemID string
	Now    time.Time
	// SoftDeleteRetention is the window a delete made now gets.
	SoftDeleteRetention time.Duration
	// Deadline is the current purge deadline (set only while soft-deleted).
	Deadline time.Time
	// SoftDeleteDisabled is the vault's setting at the moment of a delete:
	// the data is purged at once, as in Azure with soft delete off.
	SoftDeleteDisabled bool
}

// Decision is what the workflow must do for an accepted operation.
type Decision struct {
	Next State
	// NoOp is true when the operation is accepted but changes nothing.
	NoOp bool
	// Deadline is set when the item enters SoftDeleted: the purge deadline,
	// fixed once.
	Deadline time.Time
	// CollectGarbage asks for removal of expired recovery points.
	CollectGarbage bool
	Backup         bool
	// Detail explains the decision for the audit trail.
	Detail string
	// Pending is set by the item, never by Decide: a delete that waits for
	// approval at the vault, having changed nothing.
	Pending *MuaRequest
}

// Refusal is an operation the current state does not allow. Its message is
// meant for the person who asked.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return r.Message }

func refuse(format string, args ...any) (Decision, error) {
	return Decision{}, &Refusal{Message: fmt.Sprintf(format, args...)}
}

// Decide is the only place that knows the transition table of docs/contract.md section 3.
// Signal handlers, update validators and update handlers all ask it, so an
// operation can never be judged differently depending on how it arrived.
func Decide(s State, op Operation, f Facts) (Decision, error) {
	item := f.ItemID
	switch s {
	case Protected:
		switch op {
		case OpStop:
			return Decision{Next: ProtectionStopped, Detail: "protection stopped, recovery points retained"}, nil
		case OpDelete:
			return softDelete(f), nil
		case OpResume:
			return Decision{Next: Protected, NoOp: true, Detail: "already protected"}, nil
		case OpBackupNow, OpScheduledBackup:
			return Decision{Next: Protected, Backup: true}, nil
		case OpRestore:
			return Decision{Next: Protected}, nil
		case OpUndelete:
			return refuse("item %s is not soft-deleted (it is Protected): there is nothing to undelete", item)
		}
	case ProtectionStopped:
		switch op {
		case OpStop:
			return Decision{Next: ProtectionStopped, NoOp: true, Detail: "protection already stopped"}, nil
		case OpDelete:
			return softDelete(f), nil
		case OpResume:
			return Decision{Next: Protected, CollectGarbage: true, Detail: "protection resumed; expired recovery points are collected now"}, nil
		case OpRestore:
			return Decision{Next: ProtectionStopped}, nil
		case OpScheduledBackup:
			return Decision{Next: ProtectionStopped, NoOp: true, Detail: "no backups while protection is stopped"}, nil
		case OpBackupNow:
			return refuse("item %s has protection stopped: resume protection before taking a backup", item)
		case OpUndelete:
			return refuse("item %s is not soft-deleted (protection is stopped with its data retained): there is nothing to undelete", item)
		}
	case SoftDeleted:
		switch op {
		case OpDelete:
			return Decision{Next: SoftDeleted, NoOp: true,
				Detail: "already soft-deleted; the purge deadline " + f.Deadline.UTC().Format(time.RFC3339) + " does not move"}, nil
		case OpUndelete:
			return Decision{Next: ProtectionStopped, Detail: "undeleted: purge cancelled, every recovery point kept; resume to protect again"}, nil
		case OpWindowEnds:
			// Only the clock purges, and never before the deadline.
			if f.Now.Before(f.Deadline) {
				return Decision{Next: SoftDeleted, NoOp: true, Detail: "the soft-delete window has not ended"}, nil
			}
			return Decision{Next: Purging, Detail: "soft-delete window ended"}, nil
		case OpScheduledBackup:
			return Decision{Next: SoftDeleted, NoOp: true, Detail: "no backups while soft-deleted"}, nil
		case OpStop:
			return refuse("item %s is soft-deleted, so protection is already stopped: undelete it to keep its data", item)
		case OpResume:
			return refuse("item %s is soft-deleted: undelete it before resuming protection", item)
		case OpBackupNow:
			return refuse("item %s is soft-deleted: undelete it and resume protection before taking a backup", item)
		case OpRestore:
			return refuse("item %s is soft-deleted: undelete it before restoring", item)
		}
	case Purging:
		switch op {
		case OpPurgeDone:
			return Decision{Next: Purged, Detail: "every recovery point destroyed"}, nil
		case OpWindowEnds, OpScheduledBackup:
			return Decision{Next: Purging, NoOp: true}, nil
		}
		return refuse("item %s: its soft-delete window ended at %s and its backup data is being purged; it can no longer be recovered",
			item, f.Deadline.UTC().Format(time.RFC3339))
	case Purged:
		if op == OpWindowEnds || op == OpScheduledBackup || op == OpPurgeDone {
			return Decision{Next: Purged, NoOp: true}, nil
		}
		return refuse("item %s has been purged: its backup data is gone and it accepts no more operations", item)
	}
	// Clock events that do not apply to the state are stale, never harmful.
	if op == OpWindowEnds || op == OpPurgeDone {
		return Decision{Next: s, NoOp: true}, nil
	}
	return refuse("item %s: operation %q is not known in state %s", item, op, s)
}

func softDelete(f Facts) Decision {
	if f.SoftDeleteDisabled {
		return Decision{Next: Purging, Deadline: f.Now,
			Detail: "soft delete is disabled for the vault: the backup data is purged at once"}
	}
	deadline := f.Now.Add(f.SoftDeleteRetention)
	return Decision{
		Next:     SoftDeleted,
		Deadline: deadline,
		Detail:   "soft-deleted; purge scheduled for " + deadline.UTC().Format(time.RFC3339) + " unless undeleted",
	}
}

// VisibleStates are the protectionStates users see, in the order lists
// and filters show them.
var VisibleStates = []State{Protected, ProtectionStopped, SoftDeleted, Purged}

// VisibleState is the protectionState users see: Purging is still
// SoftDeleted to them until the purge has finished.
func VisibleState(s State) State {
	if s == Purging {
		return SoftDeleted
	}
	return s
}

// UserOperations are the operations a person can ask of an item, in the
// order a console offers them.
var UserOperations = []Operation{OpBackupNow, OpStop, OpDelete, OpUndelete, OpResume, OpRestore}

// Offered are the user operations that would change something in state s
// (as users see it): the ones a console offers. Operations that would be
// refused, or accepted as no-ops, are not.
func Offered(s State) []Operation {
	var ops []Operation
	for _, op := range UserOperations {
		d, err := Decide(s, op, Facts{SoftDeleteRetention: time.Hour})
		if err == nil && !d.NoOp {
			ops = append(ops, op)
		}
	}
	return ops
}
