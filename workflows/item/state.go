package item

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"recoveryvault/workflows/protocol"
)

// ItemState is everything an item decides on and carries across
// continue-as-new.
type ItemState struct {
	ProtectionState protocol.State `json:"protectionState"`
	// DeletedAt and Deadline are set while soft-deleted (and purging): the
	// deadline is fixed at the delete and only an undelete clears it.
	DeletedAt time.Time `json:"deletedAt,omitzero"`
	Deadline  time.Time `json:"deadline,omitzero"`
	// ReminderAt is when the purge reminder goes out, while soft-deleted.
	ReminderAt time.Time `json:"reminderAt,omitzero"`
	// NextBackupAt is when the next scheduled backup is due, while protected.
	NextBackupAt   time.Time                `json:"nextBackupAt,omitzero"`
	LastBackupTime time.Time                `json:"lastBackupTime,omitzero"`
	BackupSequence int                      `json:"backupSequence"`
	RecoveryPoints []protocol.RecoveryPoint `json:"recoveryPoints"`
	Audit          []protocol.AuditEntry    `json:"audit"`
	// LockedUntil is how long the store's object lock keeps the item's
	// objects: rolling while it lives, to the deadline once soft-deleted.
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// LockDueAt is when the rolling lock is next moved forward.
	LockDueAt time.Time `json:"lockDueAt,omitzero"`
	// VerifyDueAt is when the next restore drill is due; zero until the
	// first, a period after the item's first point.
	VerifyDueAt time.Time `json:"verifyDueAt,omitzero"`
	// VaultFloor is the most the item has seen its vault require.
	VaultFloor protocol.VaultFloor `json:"vaultFloor"`
	// AwaitingApproval are the delete requests this item registered at its
	// vault and has not carried out: the only approvals it acts on, once.
	AwaitingApproval []AwaitedApproval `json:"awaitingApproval,omitempty"`
	// ApprovalsUsed are the last approvals carried out: never awaited again.
	ApprovalsUsed []string `json:"approvalsUsed,omitempty"`
	// Waiting are the deletes and approvals the vault could not answer yet,
	// or an anomaly holds: asked again at RetryAt, or by the clear.
	Waiting []Waiting `json:"waiting,omitempty"`
}

// Waiting is a delete, or an approval of one, waiting for its vault's
// answer: the event as it came, and when it is asked again.
type Waiting struct {
	Op        protocol.Operation `json:"op"`
	By        string             `json:"by"`
	Reason    string             `json:"reason,omitempty"`
	Input     json.RawMessage    `json:"input,omitempty"`
	RequestID string             `json:"requestId,omitempty"`
	Since     time.Time          `json:"since"`
	Attempts  int                `json:"attempts"`
	RetryAt   time.Time          `json:"retryAt"`
	// Why kept the vault from answering; Held says it held the delete.
	Why  string `json:"why"`
	Held bool   `json:"held,omitempty"`
}

// event is the waiting event, asked again.
func (w Waiting) event() Event {
	return Event{Op: w.Op, By: w.By, Reason: w.Reason, Input: w.Input, RequestID: w.RequestID, Retry: true}
}

// waiting is the index of the event of op and request id that waits for
// the vault, or -1.
func (st ItemState) waiting(op protocol.Operation, id string) int {
	return slices.IndexFunc(st.Waiting, func(w Waiting) bool { return w.Op == op && w.RequestID == id })
}

// Event is one thing that happened to an item.
type Event struct {
	Op protocol.Operation
	// By and Reason are who asked and why, for a person's operation.
	By     string
	Reason string
	// Malformed is why a signal's payload could not be read: the event
	// changes nothing and is audited.
	Malformed string
	// RecoveryPointID and TargetPath are a restore's.
	RecoveryPointID string
	TargetPath      string
	// RequestID is the request an approval (OpApproved) approves.
	RequestID string
	// Input is a signed delete's payload as sent, for the vault to check,
	// or an approval as its approver signed it, for the item to check.
	Input []byte
	// Retry marks a delete asked again after its vault could not answer.
	Retry bool
	// Results of effects; Since is a backup's change against its
	// CompareWith.
	Point      *protocol.RecoveryPoint
	Since      *protocol.Change
	Files      int
	Removed    []string
	Restored   *RestoreResult
	Settings   *protocol.SoftDeleteSettings
	Protection *protocol.Protection
	Failure    *Failure
	// LockedUntil is how long the store now keeps the item's objects, a
	// window of LockWindow from when they were locked.
	LockedUntil time.Time
	LockWindow  time.Duration
	// Ref ties an effect's result to the operation that started it, so
	// the one who asked is answered when it is done; For is that operation.
	Ref int
	For protocol.Operation
}

// Failure is an effect that did not succeed; Refused means its input was at
// fault and nothing was done.
type Failure struct {
	Message string
	Refused bool
	// Damaged is a drill that found the point damaged, not one that could
	// not run.
	Damaged bool
}

// Inputs are what a decision needs besides the state and the event: the
// item's definition, the time and, for a delete, the vault's answer.
type Inputs struct {
	Item ItemInput
	Now  time.Time
	// Vault is the vault's answer to this delete; nil until gathered.
	Vault *protocol.VaultAnswer
}

// Ask names an input to gather before deciding again.
type Ask string

// AskVault: a delete needs its vault's answer.
const AskVault Ask = "vault"

// Decision is everything an accepted event means.
type Decision struct {
	// State is the item's next state.
	State ItemState
	// Ask, when set, means no decision yet: gather that input and decide
	// again. Nothing else in the decision counts.
	Ask Ask
	// Effects are the activities to run; their results come back as events.
	Effects []Effect
	// Audit is the line for the audit trail, if the event leaves one.
	Audit *protocol.AuditEntry
	// Pending is a delete that waits for approval at the vault.
	Pending *protocol.MuaRequest
	// Next are events to decide after this one: a delete asked again.
	Next []Event
}

// EffectKind names an activity an item runs.
type EffectKind string

const (
	// EffectBackup, EffectCollect, EffectRestore and EffectPurge work on
	// the item's store, one at a time.
	EffectBackup  EffectKind = "backup"
	EffectCollect EffectKind = "collect"
	EffectRestore EffectKind = "restore"
	EffectVerify  EffectKind = "verify"
	EffectPurge   EffectKind = "purge"
	// EffectLock keeps the item's objects until LockUntil, on a store
	// with object lock.
	EffectLock EffectKind = "lock"
	// EffectReport sends alerts, starts the item's vault if it does not
	// run, and reads the vault's settings.
	EffectReport EffectKind = "report"
)

// Effect is one activity to run.
type Effect struct {
	Kind EffectKind
	// Ref is the Ref of the event that asked for it.
	Ref int
	// By is who asked, for the audit line of the result.
	By string
	// Backup's point and the point its change is added up from; Collect's
	// point IDs; Restore's point and target.
	Point          protocol.RecoveryPoint
	CompareWith    string
	RecoveryPoints []string
	TargetPath     string
	// For is the operation a backup is for: protect, backupNow or
	// scheduledBackup; or for a lock, delete (to the deadline) or none.
	For protocol.Operation
	// LockUntil is the deadline a lock holds the objects until; zero is
	// the rolling lock, now plus the window.
	LockUntil time.Time
	// Register starts the item's vault if need be and reads its settings;
	// Alerts go out with it.
	Register bool
	Alerts   []protocol.Alert
}

// WakeAt is when the item's clock must next look at it, with restore
// drills every verifyEvery (0: none); zero is never.
func (st ItemState) WakeAt(verifyEvery time.Duration) time.Time {
	switch st.ProtectionState {
	case protocol.SoftDeleted:
		at := st.Deadline
		for _, t := range []time.Time{st.ReminderAt, st.LockDueAt} {
			if !t.IsZero() && t.Before(at) {
				at = t
			}
		}
		return at
	case protocol.Protected:
		return earliest(st.NextBackupAt, st.LockDueAt, st.retryAt(), st.verifyDue(verifyEvery))
	case protocol.ProtectionStopped:
		return earliest(st.LockDueAt, st.retryAt(), st.verifyDue(verifyEvery))
	}
	return time.Time{}
}

// retryAt is when the first event waiting for the vault is asked again;
// zero for none.
func (st ItemState) retryAt() time.Time {
	at := make([]time.Time, len(st.Waiting))
	for i, w := range st.Waiting {
		at[i] = w.RetryAt
	}
	return earliest(at...)
}

// earliest of some times, zero ones left out.
func earliest(times ...time.Time) time.Time {
	var first time.Time
	for _, t := range times {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// maxAwaitingApproval bounds the delete requests an item remembers.
const maxAwaitingApproval = 20

func keepLast[T any](ids []T, n int) []T {
	if len(ids) > n {
		return ids[len(ids)-n:]
	}
	return ids
}

// validate checks the contents of carried state.
func (st *ItemState) validate() error {
	switch st.ProtectionState {
	case protocol.Protected, protocol.ProtectionStopped:
	case protocol.SoftDeleted:
		if st.DeletedAt.IsZero() || !st.Deadline.After(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline after its deletion time", st.ProtectionState)
		}
	case protocol.Purging:
		if st.DeletedAt.IsZero() || st.Deadline.Before(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline", st.ProtectionState)
		}
	default:
		return fmt.Errorf("carried protectionState %q is not a state an item continues in", st.ProtectionState)
	}
	return nil
}

// AwaitedApproval is a delete the item registered at its vault for
// approval, with who may approve it and, on a signed vault, their keys.
type AwaitedApproval struct {
	// Op is what the request asks: a delete, or clearAnomaly.
	Op          protocol.Operation `json:"op,omitempty"`
	RequestID   string             `json:"requestId"`
	RequestedBy string             `json:"requestedBy"`
	ExpiresAt   time.Time          `json:"expiresAt"`
	// Signer is the key that signed the delete, or Unsigned.
	Signer string `json:"signer,omitempty"`
	// Approvers and ApproverKeys (allowed_signers lines) are the vault's
	// when the delete was requested; no keys means an unsigned vault.
	Approvers    []string `json:"approvers,omitempty"`
	ApproverKeys string   `json:"approverKeys,omitempty"`
}
