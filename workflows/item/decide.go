package item

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// The item's own events.
const (
	// OpWakeUp is the wake-up timer: a backup, the purge reminder or the
	// deadline is due.
	OpWakeUp protocol.Operation = "wakeUp"
	// OpBackupDone, OpCollectDone, OpRestoreDone and OpPurgeDone are the
	// results of the effects of the same names.
	OpBackupDone  protocol.Operation = "backupDone"
	OpCollectDone protocol.Operation = "collectDone"
	OpRestoreDone protocol.Operation = "restoreDone"
	OpPurgeDone   protocol.Operation = "purgeDone"
	OpVerifyDone  protocol.Operation = "verifyDone"
	OpLockDone    protocol.Operation = "lockDone"
	// OpReported is the answer to a report: the vault's settings,
	// from its memo.
	OpReported protocol.Operation = "reported"
)

// What a backup is for, in the audit.
const (
	OpProtect         protocol.Operation = "protect"
	OpScheduledBackup protocol.Operation = "scheduledBackup"
)

// Decide is the item's transition table (docs/contract.md section 3). It
// never changes st: the next state is in the decision.
func Decide(st ItemState, ev Event, in Inputs) (Decision, error) {
	d := decider{st: st, ev: ev, in: in, item: in.Item.ItemID}
	if ev.Malformed != "" {
		return d.refuse("malformed signal, nothing changed: %s", ev.Malformed)
	}
	switch ev.Op {
	case OpProtect:
		return d.protect(), nil
	case protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpResume, protocol.OpBackupNow, protocol.OpRestore, protocol.OpClearAnomaly, protocol.OpVerify:
		return d.operation()
	case protocol.OpApproved:
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
	case OpVerifyDone:
		return d.verifyDone(), nil
	case OpLockDone:
		return d.lockDone(), nil
	case OpReported:
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
	audit   *protocol.AuditEntry
	pending *protocol.MuaRequest
	next    []Event
}

func (d *decider) decision() Decision {
	return Decision{State: d.st, Effects: d.effects, Audit: d.audit, Pending: d.pending, Next: d.next}
}

func (d *decider) refuse(format string, args ...any) (Decision, error) {
	return Decision{}, &protocol.Refusal{Message: fmt.Sprintf(format, args...)}
}

// record writes the audit line of this event.
func (d *decider) record(op protocol.Operation, by, outcome, detail string) {
	if d.ev.Reason != "" {
		detail = strings.TrimPrefix(detail+"; reason: "+d.ev.Reason, "; ")
	}
	d.audit = &protocol.AuditEntry{Time: d.in.Now.UTC(), Operation: string(op), RequestedBy: by, Outcome: outcome, Detail: detail}
}

// operation decides a person's request.
func (d *decider) operation() (Decision, error) {
	by, op := d.ev.By, d.ev.Op
	switch d.st.ProtectionState {
	case protocol.Protected:
		switch op {
		case protocol.OpStop:
			d.st.ProtectionState = protocol.ProtectionStopped
			d.st.NextBackupAt = time.Time{}
			d.changed(op, by, "protection stopped, recovery points retained")
		case protocol.OpDelete:
			return d.delete()
		case protocol.OpResume:
			d.record(op, by, protocol.OutcomeAccepted, protocol.NoChange+"already protected")
		case protocol.OpBackupNow:
			d.backup(protocol.OpBackupNow, by)
		case protocol.OpRestore:
			return d.restore()
		case protocol.OpUndelete:
			return d.undeleteWaiting()
		case protocol.OpClearAnomaly:
			return d.clearAnomaly()
		case protocol.OpVerify:
			return d.verify()
		}
	case protocol.ProtectionStopped:
		switch op {
		case protocol.OpStop:
			d.record(op, by, protocol.OutcomeAccepted, protocol.NoChange+"protection already stopped")
		case protocol.OpDelete:
			return d.delete()
		case protocol.OpResume:
			d.st.ProtectionState = protocol.Protected
			d.st.NextBackupAt = d.in.Now.Add(d.frequency())
			d.changed(op, by, "protection resumed; expired recovery points are collected now")
			d.collect()
		case protocol.OpRestore:
			return d.restore()
		case protocol.OpBackupNow:
			return d.refuse("item %s has protection stopped: resume protection before taking a backup", d.item)
		case protocol.OpUndelete:
			return d.undeleteWaiting()
		case protocol.OpClearAnomaly:
			return d.clearAnomaly()
		case protocol.OpVerify:
			return d.verify()
		}
	case protocol.SoftDeleted:
		switch op {
		case protocol.OpDelete:
			d.record(op, by, protocol.OutcomeAccepted, protocol.NoChange+"already soft-deleted; the purge deadline "+protocol.FormatTime(d.st.Deadline)+" does not move")
		case protocol.OpUndelete:
			d.st.ProtectionState = protocol.ProtectionStopped
			d.st.DeletedAt, d.st.Deadline, d.st.ReminderAt = time.Time{}, time.Time{}, time.Time{}
			if !d.st.LockedUntil.IsZero() {
				// The lock rolls again, from now: now plus the window is
				// never before the deadline the objects were held to.
				d.st.LockDueAt = d.in.Now
			}
			detail := "undeleted: purge cancelled, every recovery point kept; resume to protect again"
			d.changed(op, by, detail, d.alert(protocol.AlertUndeleted, by, detail))
		case protocol.OpStop:
			return d.refuse("item %s is soft-deleted, so protection is already stopped: undelete it to keep its data", d.item)
		case protocol.OpResume:
			return d.refuse("item %s is soft-deleted: undelete it before resuming protection", d.item)
		case protocol.OpBackupNow:
			return d.refuse("item %s is soft-deleted: undelete it and resume protection before taking a backup", d.item)
		case protocol.OpRestore:
			return d.refuse("item %s is soft-deleted: undelete it before restoring", d.item)
		case protocol.OpClearAnomaly:
			return d.refuse("item %s is soft-deleted: it has no anomaly to clear", d.item)
		case protocol.OpVerify:
			return d.refuse("item %s is soft-deleted: undelete it before verifying its recovery points", d.item)
		}
	case protocol.Purging:
		return d.refuse("item %s: its soft-delete window ended at %s and its backup data is being purged; it can no longer be recovered",
			d.item, protocol.FormatTime(d.st.Deadline))
	case protocol.Purged:
		return d.refuse("item %s has been purged: its backup data is gone and it accepts no more operations", d.item)
	}
	return d.decision(), nil
}

// changed commits a change of what users see: its alerts go out, with the
// vault's settings read again, and the audit records it.
func (d *decider) changed(op protocol.Operation, by, detail string, alerts ...protocol.Alert) {
	d.effects = append(d.effects, Effect{Kind: EffectReport, Register: true, Alerts: alerts})
	d.record(op, by, protocol.OutcomeAccepted, detail)
}

// delete asks the vault, then soft-deletes the item, purges it at once, or
// registers the delete for approval.
func (d *decider) delete() (Decision, error) {
	if a := protocol.Anomaly(d.st.RecoveryPoints); a != nil {
		return d.wait(d.heldByAnomaly(a), untilAnomalyCleared), nil
	}
	v, without, err := d.vaultAnswer()
	if v == nil {
		return without, err
	}
	if v.Pending == nil {
		return d.softDelete(v, d.ev.By), nil
	}
	return d.register(protocol.OpDelete, v), nil
}

// register awaits the approval of op, registered at the vault.
func (d *decider) register(op protocol.Operation, v *protocol.VaultAnswer) Decision {
	r := *v.Pending
	// A request carried out while this answer was on its way is not
	// awaited again.
	if d.awaiting(r.RequestID) < 0 && !slices.Contains(d.st.ApprovalsUsed, r.RequestID) {
		a := AwaitedApproval{Op: op, RequestID: r.RequestID, RequestedBy: r.RequestedBy, Signer: v.Signer,
			ExpiresAt: r.ExpiresAt, Approvers: v.Approvers, ApproverKeys: v.ApproverKeys}
		d.st.AwaitingApproval = keepLast(append(slices.Clone(d.st.AwaitingApproval), a), maxAwaitingApproval)
	}
	d.record(op, d.ev.By, protocol.OutcomePending, fmt.Sprintf("request %s at vault %s: %s", r.RequestID, d.in.Item.VaultID, r.Detail))
	d.audit.Signer = v.Signer
	d.pending = &r
	return d.decision()
}

// askVault is the vault's answer, or the decision to make without one: ask
// the vault, or wait and ask again.
func (d *decider) askVault() (*protocol.VaultAnswer, Decision) {
	v := d.in.Vault
	if v == nil {
		return nil, Decision{Ask: AskVault}
	}
	if v.Unavailable != "" {
		return nil, d.wait(v.Unavailable, untilVaultAnswers)
	}
	if v.Held != "" {
		return nil, d.wait(v.Held, untilHoldCleared)
	}
	if i := d.st.waiting(d.ev.Op, d.ev.RequestID); i >= 0 {
		// The vault answered: this waits no longer.
		d.st.Waiting = slices.Delete(slices.Clone(d.st.Waiting), i, i+1)
	}
	return v, Decision{}
}

// vaultAnswer is the vault's answer, the item's floor raised to its settings; or,
// without one, the decision or refusal to make.
func (d *decider) vaultAnswer() (*protocol.VaultAnswer, Decision, error) {
	v, waits := d.askVault()
	if v == nil {
		return nil, waits, nil
	}
	if v.Refusal != "" {
		refused, err := d.vaultRefused(v.Refusal, v.RefusalDetails)
		return nil, refused, err
	}
	d.st.VaultFloor.Raise(v.Settings)
	return v, Decision{}, nil
}

// vaultRefused is the vault's refusal. One asked again is audited: no one waits
// for its answer.
func (d *decider) vaultRefused(why string, details protocol.RefusalDetails) (Decision, error) {
	if d.ev.Retry {
		d.record(d.ev.Op, d.ev.By, protocol.OutcomeRejected, why)
		return d.decision(), nil
	}
	return Decision{}, &protocol.Refusal{Message: why, Code: details.Code, Field: details.Field}
}

// softDelete carries out a delete the vault let through: soft-deleted until
// the deadline, or purged at once when the vault's soft delete is disabled.
func (d *decider) softDelete(v *protocol.VaultAnswer, by string) Decision {
	now := d.in.Now
	// Whatever else waited for the vault has nothing left to delete.
	d.st.Waiting = nil
	d.st.DeletedAt = now
	if v.Disabled {
		d.st.ProtectionState, d.st.Deadline = protocol.Purging, now
		d.record(protocol.OpDelete, by, protocol.OutcomeAccepted, "soft delete is disabled for the vault: the backup data is purged at once")
		d.audit.Signer = v.Signer
		d.purge()
		return d.decision()
	}
	d.st.ProtectionState, d.st.Deadline = protocol.SoftDeleted, now.Add(v.Window)
	d.st.ReminderAt = time.Time{}
	if at := d.st.Deadline.Add(-v.Settings.ReminderLead()); at.After(now) {
		d.st.ReminderAt = at
	}
	d.record(protocol.OpDelete, by, protocol.OutcomeAccepted, protocol.SoftDeletedDetail(d.st.Deadline))
	d.audit.Signer = v.Signer
	if !d.st.LockedUntil.IsZero() {
		// Held exactly until the deadline, which the rolling lock never passed.
		d.st.LockDueAt = time.Time{}
		d.effects = append(d.effects, Effect{Kind: EffectLock, For: protocol.OpDelete, By: signing.System, LockUntil: d.st.Deadline})
	}
	return d.decision()
}

// retryAfter is how long the attempt-th try waits for its vault: 5 s,
// doubling, at most most.
func retryAfter(attempt int, most time.Duration) time.Duration {
	return min(protocol.FirstDeleteRetry<<min(attempt-1, 10), most)
}

// until is what a waiting delete or approval waits for.
type until int

const (
	// untilVaultAnswers: asked again, backing off to MaxDeleteRetry.
	untilVaultAnswers until = iota
	// untilHoldCleared: the vault's mass-delete guard holds it; asked
	// again every MaxHeldDeleteRetry at most.
	untilHoldCleared
	// untilAnomalyCleared: no timer asks again; the clear does.
	untilAnomalyCleared
)

// wait keeps a delete or an approval until u, to ask again: a cause that
// passes costs no delete and no approval.
func (d *decider) wait(why string, u until) Decision {
	now := d.in.Now
	w := Waiting{Op: d.ev.Op, By: d.ev.By, Reason: d.ev.Reason, Input: d.ev.Input, RequestID: d.ev.RequestID,
		Since: now, Attempts: 1, Why: why, Held: u == untilHoldCleared}
	waiting := slices.Clone(d.st.Waiting)
	i := d.st.waiting(d.ev.Op, d.ev.RequestID)
	if i >= 0 && d.ev.Retry {
		// The same event asked again; a new one replaces it, from now.
		w.Since, w.Attempts = waiting[i].Since, waiting[i].Attempts+1
	}
	switch u {
	case untilVaultAnswers:
		w.RetryAt = now.Add(retryAfter(w.Attempts, protocol.MaxDeleteRetry))
	case untilHoldCleared:
		w.RetryAt = now.Add(retryAfter(w.Attempts, protocol.MaxHeldDeleteRetry))
	}
	if i >= 0 {
		waiting[i] = w
	} else {
		waiting = append(waiting, w)
	}
	d.st.Waiting = waiting
	if w.Attempts == 1 {
		detail := why + "; nothing deleted yet: the delete is asked again until the vault answers (undelete cancels it)"
		anomaly := u == untilAnomalyCleared
		switch {
		case anomaly && w.RequestID != "":
			detail = fmt.Sprintf("request %s approved, %s; nothing deleted yet: the approval is asked again once the anomaly is cleared", w.RequestID, why)
		case anomaly:
			detail = why + "; nothing deleted yet: the delete goes on once the anomaly is cleared (undelete cancels it)"
		case w.RequestID != "":
			detail = fmt.Sprintf("request %s approved, %s; nothing deleted yet: the vault is asked again until it confirms the approval", w.RequestID, why)
		}
		d.record(d.ev.Op, d.ev.By, protocol.OutcomeWaiting, detail)
	}
	return d.decision()
}

// undeleteWaiting cancels a delete that waits for its vault; with none,
// there is nothing to undelete.
func (d *decider) undeleteWaiting() (Decision, error) {
	i := d.st.waiting(protocol.OpDelete, "")
	if i < 0 {
		what := "it is Protected"
		if d.st.ProtectionState == protocol.ProtectionStopped {
			what = "protection is stopped with its data retained"
		}
		return d.refuse("item %s is not soft-deleted (%s): there is nothing to undelete", d.item, what)
	}
	w := d.st.Waiting[i]
	d.st.Waiting = slices.Delete(slices.Clone(d.st.Waiting), i, i+1)
	d.record(protocol.OpUndelete, d.ev.By, protocol.OutcomeAccepted, fmt.Sprintf("the delete asked by %s at %s, still waiting for the vault, is cancelled", w.By, protocol.FormatTime(w.Since)))
	return d.decision(), nil
}

// wakeUp acts on what is due: the purge, the reminder, a backup, a retry.
// Only the clock purges, and never before the deadline.
func (d *decider) wakeUp() Decision {
	now := d.in.Now
	switch d.st.ProtectionState {
	case protocol.SoftDeleted:
		if !now.Before(d.st.Deadline) {
			d.st.ProtectionState, d.st.ReminderAt = protocol.Purging, time.Time{}
			d.record("windowEnds", signing.System, protocol.OutcomeAccepted, "soft-delete window ended")
			d.purge()
		} else if !d.st.LockDueAt.IsZero() && !now.Before(d.st.LockDueAt) {
			// The lock to the deadline failed before: again, until it holds.
			d.st.LockDueAt = time.Time{}
			d.effects = append(d.effects, Effect{Kind: EffectLock, For: protocol.OpDelete, By: signing.System, LockUntil: d.st.Deadline})
		} else if !d.st.ReminderAt.IsZero() && !now.Before(d.st.ReminderAt) {
			d.st.ReminderAt = time.Time{}
			left := "purged in " + protocol.FormatRemaining(d.st.Deadline.Sub(now)) + " unless undeleted"
			d.effects = append(d.effects, Effect{Kind: EffectReport, Alerts: []protocol.Alert{d.alert(protocol.AlertPurgeReminder, signing.System, left)}})
			d.record("purgeReminder", signing.System, protocol.OutcomeAccepted, "reminder sent: purge scheduled for "+protocol.FormatTime(d.st.Deadline))
		}
	case protocol.Protected, protocol.ProtectionStopped:
		for i, w := range d.st.Waiting {
			if !w.RetryAt.IsZero() && !now.Before(w.RetryAt) {
				d.next = append(d.next, w.event())
				// Not again until this one is answered.
				d.st.Waiting = slices.Clone(d.st.Waiting)
				d.st.Waiting[i].RetryAt = time.Time{}
			}
		}
		if d.st.ProtectionState == protocol.Protected && !d.st.NextBackupAt.IsZero() && !now.Before(d.st.NextBackupAt) {
			d.backup(OpScheduledBackup, signing.Scheduler)
			d.st.NextBackupAt = nextDue(d.st.NextBackupAt, d.frequency(), now)
		}
		d.scheduledDrill()
		if !d.st.LockDueAt.IsZero() && !now.Before(d.st.LockDueAt) {
			d.effects = append(d.effects, Effect{Kind: EffectLock, By: signing.System})
			// Not again until this one is done.
			d.st.LockDueAt = time.Time{}
		}
	}
	return d.decision()
}

// nextDue is the next time after now on the cadence of due, every period:
// after an outage, one run catches up, not many.
func nextDue(due time.Time, period time.Duration, now time.Time) time.Time {
	next := due.Add(period)
	if !next.After(now) {
		next = next.Add(now.Sub(next).Truncate(period) + period)
	}
	return next
}

// purge destroys every recovery point; the alert is sent once the data
// is gone.
func (d *decider) purge() {
	d.effects = append(d.effects, Effect{Kind: EffectPurge, By: signing.System, Register: true,
		Alerts: []protocol.Alert{d.alert(protocol.AlertPurged, signing.System, "every recovery point destroyed")}})
}

func (d *decider) purgeDone() Decision {
	if f := d.ev.Failure; f != nil {
		d.record(OpPurgeDone, signing.System, protocol.OutcomeFailed, "purge interrupted: "+f.Message)
		return d.decision()
	}
	n := len(d.st.RecoveryPoints)
	d.st.ProtectionState = protocol.Purged
	d.st.RecoveryPoints = nil
	d.record(OpPurgeDone, signing.System, protocol.OutcomeAccepted, fmt.Sprintf("purged: %s destroyed", protocol.Plural(n, "recovery point")))
	return d.decision()
}

func (d *decider) alert(kind, by, detail string) protocol.Alert {
	a := protocol.Alert{Kind: kind, VaultID: d.in.Item.VaultID, ItemID: d.item, RequestedBy: by, Time: d.in.Now.UTC(), Detail: detail}
	if kind != protocol.AlertUndeleted {
		a.PurgeTime = d.st.Deadline.UTC()
	}
	return a
}

func (d *decider) frequency() time.Duration {
	f, _ := protocol.ParseFrequency(d.in.Item.Policy.Frequency)
	return f
}
