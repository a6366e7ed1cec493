package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds an item's rules: what every event means in every state.
// Decide is a pure function of the item's state, one event and the inputs
// gathered for it; the workflow (backupitem.go) only feeds it events and
// carries out what it returns. Signal handlers, update validators, update
// handlers, the wake-up timer and the results of activities all come
// through it, so an operation is never judged differently depending on how
// it arrived.

// State is an item's protectionState (docs/contract.md section 3).
type State string

const (
	Protected         State = "Protected"
	ProtectionStopped State = "ProtectionStopped"
	SoftDeleted       State = "SoftDeleted"
	// Purging is internal: the window has ended and the purge runs. Users
	// see it as SoftDeleted until the bytes are gone, because "Purged" must
	// only be said of data that no longer exists.
	Purging State = "Purging"
	Purged  State = "Purged"
)

// Operation names an event: what a person asked, or what the item's own
// clock and effects report.
type Operation string

// A person's operations (docs/contract.md section 2).
const (
	OpStop      Operation = "stop"
	OpDelete    Operation = "delete"
	OpUndelete  Operation = "undelete"
	OpResume    Operation = "resume"
	OpBackupNow Operation = "backupNow"
	OpRestore   Operation = "restore"
	// OpApproved is the vault's word that a delete waiting for approval
	// was approved (the deleteApproved signal).
	OpApproved Operation = SignalDeleteApproved
)

// The item's own events.
const (
	// OpWakeUp is the wake-up timer: a backup, the purge reminder or the
	// deadline is due.
	OpWakeUp Operation = "wakeUp"
	// OpBackupDone, OpCollectDone, OpRestoreDone and OpPurgeDone are the
	// results of the effects of the same names.
	OpBackupDone  Operation = "backupDone"
	OpCollectDone Operation = "collectDone"
	OpRestoreDone Operation = "restoreDone"
	OpPurgeDone   Operation = "purgeDone"
	OpLockDone    Operation = "lockDone"
	// OpAnnounced is the answer to an announcement: the vault's settings,
	// from its memo.
	OpAnnounced Operation = "announced"
)

// byPerson is true for the operations people ask for.
func (op Operation) byPerson() bool {
	return slices.Contains(UserOperations, op) || op == OpApproved
}

// What a backup is for, in the audit.
const (
	OpProtect         Operation = "protect"
	OpScheduledBackup Operation = "scheduledBackup"
)

// ItemState is everything an item decides on and carries across
// continue-as-new.
type ItemState struct {
	ProtectionState State `json:"protectionState"`
	// DeletedAt and Deadline are set while soft-deleted (and purging): the
	// deadline is fixed at the delete and only an undelete clears it.
	DeletedAt time.Time `json:"deletedAt,omitzero"`
	Deadline  time.Time `json:"deadline,omitzero"`
	// ReminderAt is when the purge reminder goes out, while soft-deleted.
	ReminderAt time.Time `json:"reminderAt,omitzero"`
	// NextBackupAt is when the next scheduled backup is due, while protected.
	NextBackupAt   time.Time       `json:"nextBackupAt,omitzero"`
	LastBackupTime time.Time       `json:"lastBackupTime,omitzero"`
	BackupSequence int             `json:"backupSequence"`
	RecoveryPoints []RecoveryPoint `json:"recoveryPoints"`
	Audit          []AuditEntry    `json:"audit"`
	// LockedUntil is, on a store with object lock, how long every object
	// of the item is kept at least. While the item is protected or stopped
	// the lock rolls forward to now plus the window, half a window before it
	// runs out; a delete locks it to the deadline, never beyond.
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// LockDueAt is when the rolling lock is next moved forward.
	LockDueAt time.Time `json:"lockDueAt,omitzero"`
	// VaultFloor is the strongest soft-delete setting the item has seen
	// from its vault: a vault reset or weakened later can never shorten the
	// window or turn soft delete off below it.
	VaultFloor VaultFloor `json:"vaultFloor"`
	// AwaitingApproval are the delete requests this item registered at its
	// vault and has not carried out: the only approvals it acts on, once.
	AwaitingApproval []AwaitedApproval `json:"awaitingApproval,omitempty"`
	// ApprovalsUsed are the last approvals carried out: never awaited again.
	ApprovalsUsed []string `json:"approvalsUsed,omitempty"`
	// PendingDelete is a delete its vault could not answer yet (busy,
	// restarting, not created yet): it is asked again at its RetryAt until
	// the vault answers. A delete is refused only by a rule, never lost to
	// a cause that passes.
	PendingDelete *PendingDelete `json:"pendingDelete,omitempty"`
}

// PendingDelete is a delete waiting for its vault's answer.
type PendingDelete struct {
	RequestedBy string `json:"requestedBy"`
	Reason      string `json:"reason,omitempty"`
	// Input is the delete's payload as sent, its signature included.
	Input    json.RawMessage `json:"input,omitempty"`
	Since    time.Time       `json:"since"`
	Attempts int             `json:"attempts"`
	RetryAt  time.Time       `json:"retryAt"`
	// Why is what kept the vault from answering, the last time.
	Why string `json:"why"`
	// Held is true when that was the vault's mass-delete hold: the next ask
	// reads the vault's published hold first.
	Held bool `json:"held,omitempty"`
}

// Retries of a delete waiting for its vault back off to once a minute; of
// one its vault holds (mass-delete guard), which waits for a person to
// clear the hold, to MaxHeldDeleteRetry: two thousand held deletes ask
// about 17 times a second, not 33.
const (
	firstDeleteRetry   = 5 * time.Second
	maxDeleteRetry     = time.Minute
	MaxHeldDeleteRetry = 2 * time.Minute
)

// Event is one thing that happened to an item.
type Event struct {
	Op Operation
	// By and Reason are who asked and why, for a person's operation.
	By     string
	Reason string
	// Malformed is why a signal's payload could not be read: the event
	// changes nothing and is audited.
	Malformed string
	// RecoveryPointID and TargetPath are a restore's.
	RecoveryPointID string
	TargetPath      string
	// RequestID is the approval of OpApproved, and Approval the approve
	// update its approver signed, when the vault requires signatures.
	RequestID string
	Approval  []byte
	// Input is a delete's payload as sent, signature included, for the
	// vault to check.
	Input []byte
	// Retry marks a delete asked again after its vault could not answer.
	Retry bool
	// Results of effects: the point a backup made, the points a collection
	// removed, what a restore wrote, the vault's settings, or why an
	// effect failed.
	Point      *RecoveryPoint
	Files      int
	Removed    []string
	Restored   *RestoreResult
	Settings   *SoftDeleteSettings
	Protection *Protection
	Failure    *Failure
	// LockedUntil is how long the store now keeps the item's objects, a
	// window of LockWindow from when they were locked.
	LockedUntil time.Time
	LockWindow  time.Duration
	// Ref ties an effect's result to the operation that started it, so
	// the one who asked is answered when it is done; For is that operation.
	Ref int
	For Operation
}

// Failure is an effect that did not succeed. Refused is set when its
// input was at fault (a restore target that is not empty): nothing was
// done, and the one who asked is told so.
type Failure struct {
	Message string
	Refused bool
}

// Inputs are what a decision needs besides the state and the event: the
// item's definition, the time and, for a delete, the vault's answer.
type Inputs struct {
	Item ItemInput
	Now  time.Time
	// Vault is the vault's answer to this delete; nil until gathered.
	Vault *VaultAnswer
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
	Audit *AuditEntry
	// Pending is a delete that waits for approval at the vault.
	Pending *MuaRequest
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
	EffectPurge   EffectKind = "purge"
	// EffectLock keeps the item's objects until LockUntil, on a store
	// with object lock.
	EffectLock EffectKind = "lock"
	// EffectAnnounce sends alerts, starts the item's vault if it does not
	// run, and reads the vault's settings.
	EffectAnnounce EffectKind = "announce"
)

// Effect is one activity to run.
type Effect struct {
	Kind EffectKind
	// Ref is the Ref of the event that asked for it.
	Ref int
	// By is who asked, for the audit line of the result.
	By string
	// Backup's point; Collect's point IDs; Restore's point and target.
	Point          RecoveryPoint
	RecoveryPoints []string
	TargetPath     string
	// For is the operation a backup is for: protect, backupNow or
	// scheduledBackup; or for a lock, delete (to the deadline) or none.
	For Operation
	// LockUntil is the deadline a lock holds the objects until; zero is
	// the rolling lock, now plus the window.
	LockUntil time.Time
	// Register asks for the item's vault to be started if it does not run
	// and its settings read, at a change of the item's state; Alerts go out
	// with it. A purge alerts once the data is gone.
	Register bool
	Alerts   []Alert
}

// Refusal is an operation the current state does not allow. Its message is
// meant for the person who asked.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return r.Message }

func refuse(format string, args ...any) (Decision, error) {
	return Decision{}, &Refusal{Message: fmt.Sprintf(format, args...)}
}

// System names the item and vault act under for what their clocks do.
const (
	anonymous = "anonymous"
	system    = "system"
	scheduler = "scheduler"
)

// Decide is the only place that knows the transition table of
// docs/contract.md section 3. It never changes st: the next state is in
// the decision.
func Decide(st ItemState, ev Event, in Inputs) (Decision, error) {
	d := decider{st: st, ev: ev, in: in, item: in.Item.ItemID}
	if ev.Malformed != "" {
		return d.refuse("malformed signal, nothing changed: %s", ev.Malformed)
	}
	switch ev.Op {
	case OpProtect:
		return d.protect(), nil
	case OpStop, OpDelete, OpUndelete, OpResume, OpBackupNow, OpRestore:
		return d.operation()
	case OpApproved:
		return d.approved()
	case OpWakeUp:
		return d.wakeUp(), nil
	case OpBackupDone:
		return d.backupDone(), nil
	case OpCollectDone:
		return d.collectDone(), nil
	case OpRestoreDone:
		return d.restoreDone()
	case OpPurgeDone:
		return d.purgeDone(), nil
	case OpLockDone:
		return d.lockDone(), nil
	case OpAnnounced:
		d.seeVault()
		return d.decision(), nil
	}
	return d.refuse("item %s: operation %q is not known", d.item, ev.Op)
}

type decider struct {
	st      ItemState
	ev      Event
	in      Inputs
	item    string
	effects []Effect
	audit   *AuditEntry
	pending *MuaRequest
	next    []Event
}

func (d *decider) decision() Decision {
	return Decision{State: d.st, Effects: d.effects, Audit: d.audit, Pending: d.pending, Next: d.next}
}

func (d *decider) refuse(format string, args ...any) (Decision, error) {
	return refuse(format, args...)
}

// record writes the audit line of this event.
func (d *decider) record(op Operation, by, outcome, detail string) {
	if d.ev.Reason != "" {
		detail = strings.TrimPrefix(detail+"; reason: "+d.ev.Reason, "; ")
	}
	d.audit = &AuditEntry{Time: d.in.Now.UTC(), Operation: string(op), RequestedBy: by, Outcome: outcome, Detail: detail}
}

// operation decides a person's request.
func (d *decider) operation() (Decision, error) {
	by, op := d.ev.By, d.ev.Op
	switch d.st.ProtectionState {
	case Protected:
		switch op {
		case OpStop:
			d.st.ProtectionState = ProtectionStopped
			d.st.NextBackupAt = time.Time{}
			d.changed(op, by, "protection stopped, recovery points retained")
		case OpDelete:
			return d.delete()
		case OpResume:
			d.record(op, by, OutcomeAccepted, noChange+"already protected")
		case OpBackupNow:
			d.backup(OpBackupNow, by)
		case OpRestore:
			return d.restore()
		case OpUndelete:
			return d.undeleteWaiting()
		}
	case ProtectionStopped:
		switch op {
		case OpStop:
			d.record(op, by, OutcomeAccepted, noChange+"protection already stopped")
		case OpDelete:
			return d.delete()
		case OpResume:
			d.st.ProtectionState = Protected
			d.st.NextBackupAt = d.in.Now.Add(d.frequency())
			d.changed(op, by, "protection resumed; expired recovery points are collected now")
			d.collect()
		case OpRestore:
			return d.restore()
		case OpBackupNow:
			return d.refuse("item %s has protection stopped: resume protection before taking a backup", d.item)
		case OpUndelete:
			return d.undeleteWaiting()
		}
	case SoftDeleted:
		switch op {
		case OpDelete:
			d.record(op, by, OutcomeAccepted, noChange+"already soft-deleted; the purge deadline "+rfc3339(d.st.Deadline)+" does not move")
		case OpUndelete:
			d.st.ProtectionState = ProtectionStopped
			d.st.DeletedAt, d.st.Deadline, d.st.ReminderAt = time.Time{}, time.Time{}, time.Time{}
			if !d.st.LockedUntil.IsZero() {
				// The lock rolls again, from now: now plus the window is
				// never before the deadline the objects were held to.
				d.st.LockDueAt = d.in.Now
			}
			detail := "undeleted: purge cancelled, every recovery point kept; resume to protect again"
			d.changed(op, by, detail, d.alert(AlertUndeleted, by, detail))
		case OpStop:
			return d.refuse("item %s is soft-deleted, so protection is already stopped: undelete it to keep its data", d.item)
		case OpResume:
			return d.refuse("item %s is soft-deleted: undelete it before resuming protection", d.item)
		case OpBackupNow:
			return d.refuse("item %s is soft-deleted: undelete it and resume protection before taking a backup", d.item)
		case OpRestore:
			return d.refuse("item %s is soft-deleted: undelete it before restoring", d.item)
		}
	case Purging:
		return d.refuse("item %s: its soft-delete window ended at %s and its backup data is being purged; it can no longer be recovered",
			d.item, rfc3339(d.st.Deadline))
	case Purged:
		return d.refuse("item %s has been purged: its backup data is gone and it accepts no more operations", d.item)
	}
	return d.decision(), nil
}

// changed commits a change of what users see: its alerts go out, with the
// vault's settings read again, and the audit records it.
func (d *decider) changed(op Operation, by, detail string, alerts ...Alert) {
	d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Register: true, Alerts: alerts})
	d.record(op, by, OutcomeAccepted, detail)
}

// delete asks the vault, then soft-deletes the item, purges it at once
// when the vault's soft delete is disabled, or registers the delete for
// approval.
func (d *decider) delete() (Decision, error) {
	v := d.in.Vault
	if v == nil {
		return Decision{Ask: AskVault}, nil
	}
	by := d.ev.By
	if v.Unavailable != "" && d.ev.Op == OpDelete {
		return d.waitForVault(v.Unavailable, false), nil
	}
	if v.Held != "" && d.ev.Op == OpDelete {
		return d.waitForVault(v.Held, true), nil
	}
	if v.Unavailable != "" && d.ev.Op == OpApproved {
		return d.waitForConfirmation(v.Unavailable), nil
	}
	if d.ev.Op == OpApproved {
		if i := d.awaiting(d.ev.RequestID); i >= 0 {
			// The vault answered: the approval waits no longer.
			d.st.AwaitingApproval = slices.Clone(d.st.AwaitingApproval)
			d.st.AwaitingApproval[i].Confirming = nil
		}
	}
	if d.ev.Op == OpDelete {
		// The vault answered: no delete waits any longer.
		d.st.PendingDelete = nil
	}
	if v.Refusal != "" || v.Unavailable != "" {
		if d.ev.Retry {
			// A delete asked again is refused in the audit: no one waits
			// for its answer.
			d.record(OpDelete, by, OutcomeRejected, v.Refusal)
			return d.decision(), nil
		}
		return d.refuse("%s", v.Refusal+v.Unavailable)
	}
	d.st.VaultFloor.raise(v.Settings)
	if v.Pending != nil {
		r := *v.Pending
		// A request carried out while this answer was on its way is not
		// awaited again.
		if d.awaiting(r.RequestID) < 0 && !slices.Contains(d.st.ApprovalsUsed, r.RequestID) {
			a := AwaitedApproval{RequestID: r.RequestID, RequestedBy: r.RequestedBy, Signer: v.Signer,
				ExpiresAt: r.ExpiresAt, Approvers: v.Approvers, ApproverKeys: v.ApproverKeys}
			d.st.AwaitingApproval = keepLast(append(slices.Clone(d.st.AwaitingApproval), a), maxAwaitingApproval)
		}
		d.record(OpDelete, by, OutcomePending, fmt.Sprintf("request %s at vault %s: %s", r.RequestID, d.in.Item.VaultID, r.Detail))
		d.audit.Signer = v.Signer
		d.pending = &r
		return d.decision(), nil
	}
	if d.ev.Op == OpApproved {
		// Every delete this item waited for is done by this one, asked by
		// its requester and approved by another.
		for _, a := range d.st.AwaitingApproval {
			d.st.ApprovalsUsed = keepLast(append(slices.Clone(d.st.ApprovalsUsed), a.RequestID), maxAwaitingApproval)
		}
		d.st.AwaitingApproval = nil
		by, d.ev.Reason = v.RequestedBy, v.Reason
	}
	now := d.in.Now
	// The vault has recorded the delete and sent its alert with the answer:
	// nothing is announced from here.
	d.st.DeletedAt = now
	if v.Disabled {
		d.st.ProtectionState, d.st.Deadline = Purging, now
		d.record(OpDelete, by, OutcomeAccepted, "soft delete is disabled for the vault: the backup data is purged at once")
		d.audit.Signer = v.Signer
		d.purge()
		return d.decision(), nil
	}
	d.st.ProtectionState, d.st.Deadline = SoftDeleted, now.Add(v.Window)
	d.st.ReminderAt = time.Time{}
	if at := d.st.Deadline.Add(-v.Settings.reminderLead()); at.After(now) {
		d.st.ReminderAt = at
	}
	d.record(OpDelete, by, OutcomeAccepted, SoftDeletedDetail(d.st.Deadline))
	d.audit.Signer = v.Signer
	if !d.st.LockedUntil.IsZero() {
		// Held exactly until the deadline: the rolling lock never went
		// past now plus the window, so this only ever extends it. It rolls
		// no more until an undelete.
		d.st.LockDueAt = time.Time{}
		d.effects = append(d.effects, Effect{Kind: EffectLock, For: OpDelete, By: system, LockUntil: d.st.Deadline})
	}
	return d.decision(), nil
}

// retryAfter is how long the attempt-th try waits for its vault: 5 s,
// doubling, at most most.
func retryAfter(attempt int, most time.Duration) time.Duration {
	return min(firstDeleteRetry<<min(attempt-1, 10), most)
}

// waitForConfirmation keeps an approval its vault could not confirm, to
// ask again, backing off as a delete does: a cause that passes never costs
// an approver a second approval. The audit says so once per approval.
func (d *decider) waitForConfirmation(why string) Decision {
	i := d.awaiting(d.ev.RequestID)
	now := d.in.Now
	c := Confirming{By: d.ev.By, Approval: d.ev.Approval, Attempts: 1, Why: why}
	awaited := slices.Clone(d.st.AwaitingApproval)
	if old := awaited[i].Confirming; old != nil {
		c.Attempts = old.Attempts + 1
	}
	c.RetryAt = now.Add(retryAfter(c.Attempts, maxDeleteRetry))
	awaited[i].Confirming = &c
	d.st.AwaitingApproval = awaited
	if c.Attempts == 1 {
		d.record(OpApproved, d.ev.By, OutcomeWaiting, fmt.Sprintf("request %s approved, %s; nothing deleted yet: the vault is asked again until it confirms the approval", d.ev.RequestID, why))
	}
	return d.decision()
}

// waitForVault keeps a delete its vault could not answer, to ask again:
// the item never guesses how its deletes are protected, and never drops
// one for a cause that passes. The audit says so once per delete.
func (d *decider) waitForVault(why string, held bool) Decision {
	now := d.in.Now
	p := PendingDelete{RequestedBy: d.ev.By, Reason: d.ev.Reason, Input: d.ev.Input, Since: now, Attempts: 1, Why: why, Held: held}
	maxRetry := maxDeleteRetry
	if held {
		maxRetry = MaxHeldDeleteRetry
	}
	if old := d.st.PendingDelete; old != nil && d.ev.Retry {
		// The same delete asked again; a new one replaces it, from now.
		p.Since, p.Attempts = old.Since, old.Attempts+1
	}
	p.RetryAt = now.Add(retryAfter(p.Attempts, maxRetry))
	d.st.PendingDelete = &p
	if p.Attempts == 1 {
		d.record(OpDelete, d.ev.By, OutcomeWaiting, fmt.Sprintf("%s; nothing deleted yet: the delete is asked again until the vault answers (undelete cancels it)", why))
	}
	return d.decision()
}

// undeleteWaiting cancels a delete that waits for its vault; with none,
// there is nothing to undelete.
func (d *decider) undeleteWaiting() (Decision, error) {
	if d.st.PendingDelete == nil {
		what := "it is Protected"
		if d.st.ProtectionState == ProtectionStopped {
			what = "protection is stopped with its data retained"
		}
		return d.refuse("item %s is not soft-deleted (%s): there is nothing to undelete", d.item, what)
	}
	p := d.st.PendingDelete
	d.st.PendingDelete = nil
	d.record(OpUndelete, d.ev.By, OutcomeAccepted, fmt.Sprintf("the delete asked by %s at %s, still waiting for the vault, is cancelled", p.RequestedBy, rfc3339(p.Since)))
	return d.decision(), nil
}

// SoftDeletedDetail says what a delete did, for the audit and the alert.
func SoftDeletedDetail(deadline time.Time) string {
	return "soft-deleted; purge scheduled for " + rfc3339(deadline) + " unless undeleted"
}

// approved is a delete approved at the vault. The signal alone proves
// nothing, anyone can send it: the item acts only on a delete it registered
// itself, once. On a vault that required signatures when the delete was
// requested, the item first checks the approver's signature itself
// (checkApproval, in trust.go); then the vault confirms the approval,
// since only it knows of a rejection, a withdrawal or a key revoked since,
// and counts it once. Whatever can be refused without asking the vault is,
// so a flood of forged approvals costs nothing.
func (d *decider) approved() (Decision, error) {
	id := d.ev.RequestID
	i := d.awaiting(id)
	refuse := func(format string, args ...any) (Decision, error) {
		if d.ev.Retry && i >= 0 {
			// No one waits for a retry's answer: the refusal is audited,
			// and the approval is not asked again.
			d.st.AwaitingApproval = slices.Clone(d.st.AwaitingApproval)
			d.st.AwaitingApproval[i].Confirming = nil
			d.record(OpApproved, d.ev.By, OutcomeRejected, fmt.Sprintf(format, args...))
			return d.decision(), nil
		}
		return d.refuse(format, args...)
	}
	switch {
	case id == "":
		return d.refuse(`no requestId, nothing changed: send {"requestId": "r-1"}`)
	case i < 0:
		return d.refuse("item %s awaits no approval of request %q, nothing changed: it acts only on deletes it registered itself, once",
			d.item, clip([]byte(id)))
	case d.st.ProtectionState != Protected && d.st.ProtectionState != ProtectionStopped:
		return refuse("item %s is %s: request %s has nothing to delete", d.item, VisibleState(d.st.ProtectionState), id)
	}
	// Checked once, before the vault is asked; deciding again with its
	// answer is for the same state and event.
	if a := d.st.AwaitingApproval[i]; a.ApproverKeys != "" && d.in.Vault == nil {
		if _, err := checkApproval(a, d.in.Item.VaultID, d.ev.Approval); err != nil {
			return refuse("item %s: %v; nothing changed", d.item, err)
		}
	}
	return d.delete()
}

// awaiting is the index of request id among the approvals awaited, or -1.
func (d *decider) awaiting(id string) int {
	return slices.IndexFunc(d.st.AwaitingApproval, func(a AwaitedApproval) bool { return a.RequestID == id })
}

// protect takes a new item's first backup, which proves that its source
// exists; the next one is a period later.
func (d *decider) protect() Decision {
	d.st.NextBackupAt = d.in.Now.Add(d.frequency())
	d.backup(OpProtect, system)
	return d.decision()
}

// backup starts a backup: a new recovery point, numbered in the state.
func (d *decider) backup(op Operation, by string) {
	now := d.in.Now.UTC()
	d.st.BackupSequence++
	d.effects = append(d.effects, Effect{Kind: EffectBackup, Ref: d.ev.Ref, By: by, For: op, Point: RecoveryPoint{
		ID:        fmt.Sprintf("rp-%s-%d", now.Format("20060102T150405Z"), d.st.BackupSequence),
		CreatedAt: now,
		ExpiresAt: now.Add(time.Duration(d.in.Item.Policy.RetentionDays) * 24 * time.Hour),
	}})
}

// collect removes expired recovery points, only while protected, and never
// the newest one: an item whose backups keep failing keeps its last good
// point.
func (d *decider) collect() {
	if d.st.ProtectionState != Protected {
		return
	}
	var expired []string
	for i, rp := range d.st.RecoveryPoints {
		if i < len(d.st.RecoveryPoints)-1 && !rp.ExpiresAt.After(d.in.Now) {
			expired = append(expired, rp.ID)
		}
	}
	if len(expired) > 0 {
		d.effects = append(d.effects, Effect{Kind: EffectCollect, By: system, RecoveryPoints: expired})
	}
}

func (d *decider) restore() (Decision, error) {
	rp, err := d.recoveryPoint(d.ev.RecoveryPointID)
	if err != nil {
		return Decision{}, err
	}
	d.effects = append(d.effects, Effect{Kind: EffectRestore, Ref: d.ev.Ref, By: d.ev.By, Point: rp, TargetPath: d.ev.TargetPath})
	return d.decision(), nil
}

func (d *decider) recoveryPoint(id string) (RecoveryPoint, error) {
	for _, rp := range d.st.RecoveryPoints {
		if rp.ID == id {
			return rp, nil
		}
	}
	return RecoveryPoint{}, &Refusal{Message: fmt.Sprintf("item %s has no recovery point %q: the status query lists the %s it has",
		d.item, id, Plural(len(d.st.RecoveryPoints), "recovery point"))}
}

// wakeUp acts on what is due: the purge at the deadline, the reminder
// before it, or a scheduled backup. Only the clock purges, and never before
// the deadline.
func (d *decider) wakeUp() Decision {
	now := d.in.Now
	switch d.st.ProtectionState {
	case SoftDeleted:
		if !now.Before(d.st.Deadline) {
			d.st.ProtectionState, d.st.ReminderAt = Purging, time.Time{}
			d.record("windowEnds", system, OutcomeAccepted, "soft-delete window ended")
			d.purge()
		} else if !d.st.LockDueAt.IsZero() && !now.Before(d.st.LockDueAt) {
			// The lock to the deadline failed before: again, until it holds.
			d.st.LockDueAt = time.Time{}
			d.effects = append(d.effects, Effect{Kind: EffectLock, For: OpDelete, By: system, LockUntil: d.st.Deadline})
		} else if !d.st.ReminderAt.IsZero() && !now.Before(d.st.ReminderAt) {
			d.st.ReminderAt = time.Time{}
			left := "purged in " + FormatRemaining(d.st.Deadline.Sub(now)) + " unless undeleted"
			d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Alerts: []Alert{d.alert(AlertPurgeReminder, system, left)}})
			d.record("purgeReminder", system, OutcomeAccepted, "reminder sent: purge scheduled for "+rfc3339(d.st.Deadline))
		}
	case Protected, ProtectionStopped:
		for i, a := range d.st.AwaitingApproval {
			if c := a.Confirming; c != nil && !c.RetryAt.IsZero() && !now.Before(c.RetryAt) {
				d.next = append(d.next, Event{Op: OpApproved, RequestID: a.RequestID, By: c.By, Approval: c.Approval, Retry: true})
				// Not again until this one is answered.
				waiting := *c
				waiting.RetryAt = time.Time{}
				d.st.AwaitingApproval = slices.Clone(d.st.AwaitingApproval)
				d.st.AwaitingApproval[i].Confirming = &waiting
			}
		}
		if p := d.st.PendingDelete; p != nil && !now.Before(p.RetryAt) {
			d.next = append(d.next, Event{Op: OpDelete, By: p.RequestedBy, Reason: p.Reason, Input: p.Input, Retry: true})
			// Not again until this one is answered.
			waiting := *p
			waiting.RetryAt = time.Time{}
			d.st.PendingDelete = &waiting
		}
		if d.st.ProtectionState == Protected && !d.st.NextBackupAt.IsZero() && !now.Before(d.st.NextBackupAt) {
			d.backup(OpScheduledBackup, scheduler)
			// Keep the cadence; after an outage, one backup catches up, not many.
			next := d.st.NextBackupAt.Add(d.frequency())
			if !next.After(now) {
				next = next.Add(now.Sub(next).Truncate(d.frequency()) + d.frequency())
			}
			d.st.NextBackupAt = next
		}
		if !d.st.LockDueAt.IsZero() && !now.Before(d.st.LockDueAt) {
			d.effects = append(d.effects, Effect{Kind: EffectLock, By: system})
			// Not again until this one is done.
			d.st.LockDueAt = time.Time{}
		}
	}
	return d.decision()
}

// locked records how long the store now keeps the item's objects, and
// when the rolling lock is next due: half a window before it runs out.
func (d *decider) locked() {
	d.st.LockedUntil = d.ev.LockedUntil
	d.st.LockDueAt = d.ev.LockedUntil.Add(-d.ev.LockWindow / 2)
}

// lockDone records a lock. One that failed is alerted and tried again in
// an hour, the lock to a soft-deleted item's deadline included, until it
// holds: the objects stay locked as before meanwhile.
func (d *decider) lockDone() Decision {
	if f := d.ev.Failure; f != nil {
		detail := "objects not locked: " + f.Message + "; tried again in an hour"
		d.record("lock", system, OutcomeFailed, detail)
		d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Alerts: []Alert{d.alert(AlertLockFailed, system, detail)}})
		if d.st.ProtectionState == Protected || d.st.ProtectionState == ProtectionStopped || d.st.ProtectionState == SoftDeleted {
			d.st.LockDueAt = d.in.Now.Add(time.Hour)
		}
		return d.decision()
	}
	if d.st.ProtectionState == SoftDeleted {
		// Held until the deadline: nothing rolls until an undelete.
		d.st.LockedUntil, d.st.LockDueAt = d.ev.LockedUntil, time.Time{}
		return d.decision()
	}
	d.locked()
	return d.decision()
}

// seeVault takes what an event says of the vault now into the item's
// floor: only ever more, but for the vault's own changes in the
// incarnation the item knows (VaultFloor.see).
func (d *decider) seeVault() {
	if d.ev.Settings != nil {
		d.st.VaultFloor.raise(*d.ev.Settings)
	}
	if d.ev.Protection != nil {
		d.st.VaultFloor.see(*d.ev.Protection)
	}
}

// purge destroys every recovery point; the alert is sent once the data
// is gone.
func (d *decider) purge() {
	d.effects = append(d.effects, Effect{Kind: EffectPurge, By: system, Register: true,
		Alerts: []Alert{d.alert(AlertPurged, system, "every recovery point destroyed")}})
}

// backupDone keeps the point a backup made, whatever the state is now: its
// data is in the store, so it is the item's until the purge. A scheduled
// backup is followed by a garbage collection.
func (d *decider) backupDone() Decision {
	d.seeVault()
	op := d.ev.For
	if op == OpProtect {
		// The item exists from its first backup on: it registers with its
		// vault, which comes up with default settings on first use.
		d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Register: true})
	}
	if f := d.ev.Failure; f != nil {
		d.record(op, d.ev.By, OutcomeFailed, "backup failed: "+f.Message)
		return d.decision()
	}
	rp := *d.ev.Point
	d.st.RecoveryPoints = append(slices.Clone(d.st.RecoveryPoints), rp)
	d.st.LastBackupTime = rp.CreatedAt
	if d.st.LockedUntil.IsZero() && !d.ev.LockedUntil.IsZero() {
		// The store locks: from the first backup on, the lock rolls.
		d.locked()
	}
	if op != OpScheduledBackup {
		d.record(op, d.ev.By, OutcomeAccepted, fmt.Sprintf("recovery point %s: %s, %s, %s new in the store",
			rp.ID, Plural(d.ev.Files, "file"), Plural(int(rp.SizeBytes), "byte"), Plural(int(rp.NewBytes), "byte")))
	}
	d.collect()
	return d.decision()
}

func (d *decider) collectDone() Decision {
	if f := d.ev.Failure; f != nil {
		// The points stay listed and are collected after the next backup.
		d.record("garbageCollection", system, OutcomeFailed, f.Message)
		return d.decision()
	}
	d.st.RecoveryPoints = slices.DeleteFunc(slices.Clone(d.st.RecoveryPoints), func(rp RecoveryPoint) bool {
		return slices.Contains(d.ev.Removed, rp.ID)
	})
	d.record("garbageCollection", system, OutcomeAccepted,
		fmt.Sprintf("removed %s: %s", Plural(len(d.ev.Removed), "expired recovery point"), strings.Join(d.ev.Removed, ", ")))
	return d.decision()
}

func (d *decider) restoreDone() (Decision, error) {
	by := d.ev.By
	switch f := d.ev.Failure; {
	case f != nil && f.Refused:
		// Refused before anything was written: the target is wrong.
		d.record(OpRestore, by, OutcomeRejected, f.Message)
		return d.decision(), &Refusal{Message: f.Message}
	case f != nil:
		d.record(OpRestore, by, OutcomeFailed, f.Message)
		return d.decision(), nil
	}
	r := d.ev.Restored
	d.record(OpRestore, by, OutcomeAccepted, fmt.Sprintf("restored %s to %s: %s, %s, every checksum verified",
		d.ev.RecoveryPointID, d.ev.TargetPath, Plural(r.Files, "file"), Plural(int(r.Bytes), "byte")))
	return d.decision(), nil
}

func (d *decider) purgeDone() Decision {
	if f := d.ev.Failure; f != nil {
		d.record(OpPurgeDone, system, OutcomeFailed, "purge interrupted: "+f.Message)
		return d.decision()
	}
	n := len(d.st.RecoveryPoints)
	d.st.ProtectionState = Purged
	d.st.RecoveryPoints = nil
	d.record(OpPurgeDone, system, OutcomeAccepted, fmt.Sprintf("purged: %s destroyed", Plural(n, "recovery point")))
	return d.decision()
}

func (d *decider) alert(kind, by, detail string) Alert {
	a := Alert{Kind: kind, VaultID: d.in.Item.VaultID, ItemID: d.item, RequestedBy: by, Time: d.in.Now.UTC(), Detail: detail}
	if kind != AlertUndeleted {
		a.PurgeTime = d.st.Deadline.UTC()
	}
	return a
}

func (d *decider) frequency() time.Duration {
	f, _ := ParseFrequency(d.in.Item.Policy.Frequency)
	return f
}

// WakeAt is when the item's clock must next look at it: the purge
// reminder or deadline while soft-deleted, the next backup while
// protected. Zero is never.
func (st ItemState) WakeAt() time.Time {
	switch st.ProtectionState {
	case SoftDeleted:
		at := st.Deadline
		for _, t := range []time.Time{st.ReminderAt, st.LockDueAt} {
			if !t.IsZero() && t.Before(at) {
				at = t
			}
		}
		return at
	case Protected:
		return earliest(st.NextBackupAt, st.LockDueAt, st.PendingDelete.retryAt(), st.confirmAt())
	case ProtectionStopped:
		return earliest(st.LockDueAt, st.PendingDelete.retryAt(), st.confirmAt())
	}
	return time.Time{}
}

// confirmAt is when the first approval waiting for its vault's
// confirmation is asked again; zero for none.
func (st ItemState) confirmAt() time.Time {
	var at []time.Time
	for _, a := range st.AwaitingApproval {
		if a.Confirming != nil {
			at = append(at, a.Confirming.RetryAt)
		}
	}
	return earliest(at...)
}

// retryAt is when a waiting delete is asked again; zero for none.
func (p *PendingDelete) retryAt() time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.RetryAt
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

// Runnable says whether an effect that waited its turn for the store may
// still run in state st: a backup or collection needs the item protected,
// a restore what Decide asks of one now. A refusal is for the one who asked.
func Runnable(st ItemState, e Effect, item ItemInput) error {
	switch e.Kind {
	case EffectBackup, EffectCollect:
		if st.ProtectionState == Protected {
			return nil
		}
		_, err := Decide(st, Event{Op: OpBackupNow}, Inputs{Item: item})
		if err == nil {
			err = &Refusal{Message: fmt.Sprintf("item %s is no longer protected: no backup taken", item.ItemID)}
		}
		return err
	case EffectRestore:
		_, err := Decide(st, Event{Op: OpRestore, RecoveryPointID: e.Point.ID}, Inputs{Item: item})
		return err
	case EffectLock:
		// A rolling lock decided before a delete must not run after it.
		if e.For != OpDelete && st.ProtectionState != Protected && st.ProtectionState != ProtectionStopped {
			return &Refusal{Message: fmt.Sprintf("item %s is %s: its objects are locked until its deadline", item.ItemID, VisibleState(st.ProtectionState))}
		}
	}
	return nil
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
	st := ItemState{ProtectionState: s, RecoveryPoints: []RecoveryPoint{{ID: "rp"}}}
	for _, op := range UserOperations {
		d, err := Decide(st, Event{Op: op, RecoveryPointID: "rp"}, Inputs{})
		if err == nil && (d.Ask != "" || len(d.Effects) > 0 || d.State.ProtectionState != s) {
			ops = append(ops, op)
		}
	}
	return ops
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// maxAwaitingApproval bounds the delete requests an item remembers.
const maxAwaitingApproval = 20

func keepLast[T any](ids []T, n int) []T {
	if len(ids) > n {
		return ids[len(ids)-n:]
	}
	return ids
}
