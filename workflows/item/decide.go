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
	OpLockDone    protocol.Operation = "lockDone"
	// OpAnnounced is the answer to an announcement: the vault's settings,
	// from its memo.
	OpAnnounced protocol.Operation = "announced"
)

// What a backup is for, in the audit.
const (
	OpProtect         protocol.Operation = "protect"
	OpScheduledBackup protocol.Operation = "scheduledBackup"
)

func refuse(format string, args ...any) (Decision, error) {
	return Decision{}, &protocol.Refusal{Message: fmt.Sprintf(format, args...)}
}

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
	case protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpResume, protocol.OpBackupNow, protocol.OpRestore:
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
	audit   *protocol.AuditEntry
	pending *protocol.MuaRequest
	next    []Event
}

func (d *decider) decision() Decision {
	return Decision{State: d.st, Effects: d.effects, Audit: d.audit, Pending: d.pending, Next: d.next}
}

func (d *decider) refuse(format string, args ...any) (Decision, error) {
	return refuse(format, args...)
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
	d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Register: true, Alerts: alerts})
	d.record(op, by, protocol.OutcomeAccepted, detail)
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
	if v.Unavailable != "" && d.ev.Op == protocol.OpDelete {
		return d.waitForVault(v.Unavailable, false), nil
	}
	if v.Held != "" && d.ev.Op == protocol.OpDelete {
		return d.waitForVault(v.Held, true), nil
	}
	if v.Unavailable != "" && d.ev.Op == protocol.OpApproved {
		return d.waitForConfirmation(v.Unavailable), nil
	}
	if d.ev.Op == protocol.OpApproved {
		if i := d.awaiting(d.ev.RequestID); i >= 0 {
			// The vault answered: the approval waits no longer.
			d.st.AwaitingApproval = slices.Clone(d.st.AwaitingApproval)
			d.st.AwaitingApproval[i].Confirming = nil
		}
	}
	if d.ev.Op == protocol.OpDelete {
		// The vault answered: no delete waits any longer.
		d.st.PendingDelete = nil
	}
	if v.Refusal != "" || v.Unavailable != "" {
		if d.ev.Retry {
			// A delete asked again is refused in the audit: no one waits
			// for its answer.
			d.record(protocol.OpDelete, by, protocol.OutcomeRejected, v.Refusal)
			return d.decision(), nil
		}
		return d.refuse("%s", v.Refusal+v.Unavailable)
	}
	d.st.VaultFloor.Raise(v.Settings)
	if v.Pending != nil {
		r := *v.Pending
		// A request carried out while this answer was on its way is not
		// awaited again.
		if d.awaiting(r.RequestID) < 0 && !slices.Contains(d.st.ApprovalsUsed, r.RequestID) {
			a := AwaitedApproval{RequestID: r.RequestID, RequestedBy: r.RequestedBy, Signer: v.Signer,
				ExpiresAt: r.ExpiresAt, Approvers: v.Approvers, ApproverKeys: v.ApproverKeys}
			d.st.AwaitingApproval = keepLast(append(slices.Clone(d.st.AwaitingApproval), a), maxAwaitingApproval)
		}
		d.record(protocol.OpDelete, by, protocol.OutcomePending, fmt.Sprintf("request %s at vault %s: %s", r.RequestID, d.in.Item.VaultID, r.Detail))
		d.audit.Signer = v.Signer
		d.pending = &r
		return d.decision(), nil
	}
	if d.ev.Op == protocol.OpApproved {
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
		d.st.ProtectionState, d.st.Deadline = protocol.Purging, now
		d.record(protocol.OpDelete, by, protocol.OutcomeAccepted, "soft delete is disabled for the vault: the backup data is purged at once")
		d.audit.Signer = v.Signer
		d.purge()
		return d.decision(), nil
	}
	d.st.ProtectionState, d.st.Deadline = protocol.SoftDeleted, now.Add(v.Window)
	d.st.ReminderAt = time.Time{}
	if at := d.st.Deadline.Add(-v.Settings.ReminderLead()); at.After(now) {
		d.st.ReminderAt = at
	}
	d.record(protocol.OpDelete, by, protocol.OutcomeAccepted, protocol.SoftDeletedDetail(d.st.Deadline))
	d.audit.Signer = v.Signer
	if !d.st.LockedUntil.IsZero() {
		// Held exactly until the deadline: the rolling lock never went
		// past now plus the window, so this only ever extends it. It rolls
		// no more until an undelete.
		d.st.LockDueAt = time.Time{}
		d.effects = append(d.effects, Effect{Kind: EffectLock, For: protocol.OpDelete, By: signing.System, LockUntil: d.st.Deadline})
	}
	return d.decision(), nil
}

// retryAfter is how long the attempt-th try waits for its vault: 5 s,
// doubling, at most most.
func retryAfter(attempt int, most time.Duration) time.Duration {
	return min(protocol.FirstDeleteRetry<<min(attempt-1, 10), most)
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
	c.RetryAt = now.Add(retryAfter(c.Attempts, protocol.MaxDeleteRetry))
	awaited[i].Confirming = &c
	d.st.AwaitingApproval = awaited
	if c.Attempts == 1 {
		d.record(protocol.OpApproved, d.ev.By, protocol.OutcomeWaiting, fmt.Sprintf("request %s approved, %s; nothing deleted yet: the vault is asked again until it confirms the approval", d.ev.RequestID, why))
	}
	return d.decision()
}

// waitForVault keeps a delete its vault could not answer, to ask again:
// the item never guesses how its deletes are protected, and never drops
// one for a cause that passes. The audit says so once per delete.
func (d *decider) waitForVault(why string, held bool) Decision {
	now := d.in.Now
	p := PendingDelete{RequestedBy: d.ev.By, Reason: d.ev.Reason, Input: d.ev.Input, Since: now, Attempts: 1, Why: why, Held: held}
	maxRetry := protocol.MaxDeleteRetry
	if held {
		maxRetry = protocol.MaxHeldDeleteRetry
	}
	if old := d.st.PendingDelete; old != nil && d.ev.Retry {
		// The same delete asked again; a new one replaces it, from now.
		p.Since, p.Attempts = old.Since, old.Attempts+1
	}
	p.RetryAt = now.Add(retryAfter(p.Attempts, maxRetry))
	d.st.PendingDelete = &p
	if p.Attempts == 1 {
		d.record(protocol.OpDelete, d.ev.By, protocol.OutcomeWaiting, fmt.Sprintf("%s; nothing deleted yet: the delete is asked again until the vault answers (undelete cancels it)", why))
	}
	return d.decision()
}

// undeleteWaiting cancels a delete that waits for its vault; with none,
// there is nothing to undelete.
func (d *decider) undeleteWaiting() (Decision, error) {
	if d.st.PendingDelete == nil {
		what := "it is Protected"
		if d.st.ProtectionState == protocol.ProtectionStopped {
			what = "protection is stopped with its data retained"
		}
		return d.refuse("item %s is not soft-deleted (%s): there is nothing to undelete", d.item, what)
	}
	p := d.st.PendingDelete
	d.st.PendingDelete = nil
	d.record(protocol.OpUndelete, d.ev.By, protocol.OutcomeAccepted, fmt.Sprintf("the delete asked by %s at %s, still waiting for the vault, is cancelled", p.RequestedBy, protocol.FormatTime(p.Since)))
	return d.decision(), nil
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
			d.record(protocol.OpApproved, d.ev.By, protocol.OutcomeRejected, fmt.Sprintf(format, args...))
			return d.decision(), nil
		}
		return d.refuse(format, args...)
	}
	switch {
	case id == "":
		return d.refuse(`no requestId, nothing changed: send {"requestId": "r-1"}`)
	case i < 0:
		return d.refuse("item %s awaits no approval of request %q, nothing changed: it acts only on deletes it registered itself, once",
			d.item, protocol.Quote([]byte(id)))
	case d.st.ProtectionState != protocol.Protected && d.st.ProtectionState != protocol.ProtectionStopped:
		return refuse("item %s is %s: request %s has nothing to delete", d.item, protocol.VisibleState(d.st.ProtectionState), id)
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
	d.backup(OpProtect, signing.System)
	return d.decision()
}

// backup starts a backup: a new recovery point, numbered in the state.
func (d *decider) backup(op protocol.Operation, by string) {
	now := d.in.Now.UTC()
	d.st.BackupSequence++
	d.effects = append(d.effects, Effect{Kind: EffectBackup, Ref: d.ev.Ref, By: by, For: op, Point: protocol.RecoveryPoint{
		ID:        fmt.Sprintf("rp-%s-%d", now.Format("20060102T150405Z"), d.st.BackupSequence),
		CreatedAt: now,
		ExpiresAt: now.Add(time.Duration(d.in.Item.Policy.RetentionDays) * 24 * time.Hour),
	}})
}

// collect removes expired recovery points, only while protected, and never
// the newest one: an item whose backups keep failing keeps its last good
// point.
func (d *decider) collect() {
	if d.st.ProtectionState != protocol.Protected {
		return
	}
	var expired []string
	for i, rp := range d.st.RecoveryPoints {
		if i < len(d.st.RecoveryPoints)-1 && !rp.ExpiresAt.After(d.in.Now) {
			expired = append(expired, rp.ID)
		}
	}
	if len(expired) > 0 {
		d.effects = append(d.effects, Effect{Kind: EffectCollect, By: signing.System, RecoveryPoints: expired})
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

func (d *decider) recoveryPoint(id string) (protocol.RecoveryPoint, error) {
	for _, rp := range d.st.RecoveryPoints {
		if rp.ID == id {
			return rp, nil
		}
	}
	return protocol.RecoveryPoint{}, &protocol.Refusal{Message: fmt.Sprintf("item %s has no recovery point %q: the status query lists the %s it has",
		d.item, id, protocol.Plural(len(d.st.RecoveryPoints), "recovery point"))}
}

// wakeUp acts on what is due: the purge at the deadline, the reminder
// before it, or a scheduled backup. Only the clock purges, and never before
// the deadline.
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
			d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Alerts: []protocol.Alert{d.alert(protocol.AlertPurgeReminder, signing.System, left)}})
			d.record("purgeReminder", signing.System, protocol.OutcomeAccepted, "reminder sent: purge scheduled for "+protocol.FormatTime(d.st.Deadline))
		}
	case protocol.Protected, protocol.ProtectionStopped:
		for i, a := range d.st.AwaitingApproval {
			if c := a.Confirming; c != nil && !c.RetryAt.IsZero() && !now.Before(c.RetryAt) {
				d.next = append(d.next, Event{Op: protocol.OpApproved, RequestID: a.RequestID, By: c.By, Approval: c.Approval, Retry: true})
				// Not again until this one is answered.
				waiting := *c
				waiting.RetryAt = time.Time{}
				d.st.AwaitingApproval = slices.Clone(d.st.AwaitingApproval)
				d.st.AwaitingApproval[i].Confirming = &waiting
			}
		}
		if p := d.st.PendingDelete; p != nil && !now.Before(p.RetryAt) {
			d.next = append(d.next, Event{Op: protocol.OpDelete, By: p.RequestedBy, Reason: p.Reason, Input: p.Input, Retry: true})
			// Not again until this one is answered.
			waiting := *p
			waiting.RetryAt = time.Time{}
			d.st.PendingDelete = &waiting
		}
		if d.st.ProtectionState == protocol.Protected && !d.st.NextBackupAt.IsZero() && !now.Before(d.st.NextBackupAt) {
			d.backup(OpScheduledBackup, signing.Scheduler)
			// Keep the cadence; after an outage, one backup catches up, not many.
			next := d.st.NextBackupAt.Add(d.frequency())
			if !next.After(now) {
				next = next.Add(now.Sub(next).Truncate(d.frequency()) + d.frequency())
			}
			d.st.NextBackupAt = next
		}
		if !d.st.LockDueAt.IsZero() && !now.Before(d.st.LockDueAt) {
			d.effects = append(d.effects, Effect{Kind: EffectLock, By: signing.System})
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
		d.record("lock", signing.System, protocol.OutcomeFailed, detail)
		d.effects = append(d.effects, Effect{Kind: EffectAnnounce, Alerts: []protocol.Alert{d.alert(protocol.AlertLockFailed, signing.System, detail)}})
		if d.st.ProtectionState == protocol.Protected || d.st.ProtectionState == protocol.ProtectionStopped || d.st.ProtectionState == protocol.SoftDeleted {
			d.st.LockDueAt = d.in.Now.Add(time.Hour)
		}
		return d.decision()
	}
	if d.st.ProtectionState == protocol.SoftDeleted {
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
		d.st.VaultFloor.Raise(*d.ev.Settings)
	}
	if d.ev.Protection != nil {
		d.st.VaultFloor.See(*d.ev.Protection)
	}
}

// purge destroys every recovery point; the alert is sent once the data
// is gone.
func (d *decider) purge() {
	d.effects = append(d.effects, Effect{Kind: EffectPurge, By: signing.System, Register: true,
		Alerts: []protocol.Alert{d.alert(protocol.AlertPurged, signing.System, "every recovery point destroyed")}})
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
		d.record(op, d.ev.By, protocol.OutcomeFailed, "backup failed: "+f.Message)
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
		d.record(op, d.ev.By, protocol.OutcomeAccepted, fmt.Sprintf("recovery point %s: %s, %s, %s new in the store",
			rp.ID, protocol.Plural(d.ev.Files, "file"), protocol.Plural(int(rp.SizeBytes), "byte"), protocol.Plural(int(rp.NewBytes), "byte")))
	}
	d.collect()
	return d.decision()
}

func (d *decider) collectDone() Decision {
	if f := d.ev.Failure; f != nil {
		// The points stay listed and are collected after the next backup.
		d.record("garbageCollection", signing.System, protocol.OutcomeFailed, f.Message)
		return d.decision()
	}
	d.st.RecoveryPoints = slices.DeleteFunc(slices.Clone(d.st.RecoveryPoints), func(rp protocol.RecoveryPoint) bool {
		return slices.Contains(d.ev.Removed, rp.ID)
	})
	d.record("garbageCollection", signing.System, protocol.OutcomeAccepted,
		fmt.Sprintf("removed %s: %s", protocol.Plural(len(d.ev.Removed), "expired recovery point"), strings.Join(d.ev.Removed, ", ")))
	return d.decision()
}

func (d *decider) restoreDone() (Decision, error) {
	by := d.ev.By
	switch f := d.ev.Failure; {
	case f != nil && f.Refused:
		// Refused before anything was written: the target is wrong.
		d.record(protocol.OpRestore, by, protocol.OutcomeRejected, f.Message)
		return d.decision(), &protocol.Refusal{Message: f.Message}
	case f != nil:
		d.record(protocol.OpRestore, by, protocol.OutcomeFailed, f.Message)
		return d.decision(), nil
	}
	r := d.ev.Restored
	d.record(protocol.OpRestore, by, protocol.OutcomeAccepted, fmt.Sprintf("restored %s to %s: %s, %s, every checksum verified",
		d.ev.RecoveryPointID, d.ev.TargetPath, protocol.Plural(r.Files, "file"), protocol.Plural(int(r.Bytes), "byte")))
	return d.decision(), nil
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

// Runnable says whether an effect that waited its turn for the store may
// still run in state st: a backup or collection needs the item protected,
// a restore what Decide asks of one now. A refusal is for the one who asked.
func Runnable(st ItemState, e Effect, item ItemInput) error {
	switch e.Kind {
	case EffectBackup, EffectCollect:
		if st.ProtectionState == protocol.Protected {
			return nil
		}
		_, err := Decide(st, Event{Op: protocol.OpBackupNow}, Inputs{Item: item})
		if err == nil {
			err = &protocol.Refusal{Message: fmt.Sprintf("item %s is no longer protected: no backup taken", item.ItemID)}
		}
		return err
	case EffectRestore:
		_, err := Decide(st, Event{Op: protocol.OpRestore, RecoveryPointID: e.Point.ID}, Inputs{Item: item})
		return err
	case EffectLock:
		// A rolling lock decided before a delete must not run after it.
		if e.For != protocol.OpDelete && st.ProtectionState != protocol.Protected && st.ProtectionState != protocol.ProtectionStopped {
			return &protocol.Refusal{Message: fmt.Sprintf("item %s is %s: its objects are locked until its deadline", item.ItemID, protocol.VisibleState(st.ProtectionState))}
		}
	}
	return nil
}

// Offered are the user operations that would change something in state s
// (as users see it): the ones a console offers. Operations that would be
// refused, or accepted as no-ops, are not.
func Offered(s protocol.State) []protocol.Operation {
	var ops []protocol.Operation
	st := ItemState{ProtectionState: s, RecoveryPoints: []protocol.RecoveryPoint{{ID: "rp"}}}
	for _, op := range protocol.UserOperations {
		d, err := Decide(st, Event{Op: op, RecoveryPointID: "rp"}, Inputs{})
		if err == nil && (d.Ask != "" || len(d.Effects) > 0 || d.State.ProtectionState != s) {
			ops = append(ops, op)
		}
	}
	return ops
}

// checkApproval checks, at the item, a signed approval of delete request
// a: the approve update as its approver sent it to the vault, signed by a
// key the vault listed for an approver other than the requester when the
// delete was requested, before the request expired, with another key than
// the request's. The vault then confirms it (approvedDelete): only the
// vault knows of a rejection, a withdrawal or a revoked key since, and it
// counts the approval once.
func checkApproval(a AwaitedApproval, vaultID string, approval []byte) (signing.Signer, error) {
	var req protocol.DecisionRequest
	if err := protocol.DecodeJSON(approval, &req); err != nil {
		return signing.Signer{}, fmt.Errorf("the approval of request %s cannot be read: %v", a.RequestID, err)
	}
	signers, err := signing.ParseAllowedSigners(a.ApproverKeys)
	if err != nil {
		return signing.Signer{}, err
	}
	switch {
	case req.RequestID != a.RequestID:
		return signing.Signer{}, fmt.Errorf("the approval is of request %q, not %s", req.RequestID, a.RequestID)
	case signing.SameIdentity(req.RequestedBy, a.RequestedBy):
		return signing.Signer{}, fmt.Errorf("%s requested %s and cannot approve it", req.RequestedBy, a.RequestID)
	case !slices.ContainsFunc(a.Approvers, func(n string) bool { return signing.SameIdentity(n, req.RequestedBy) }):
		return signing.Signer{}, fmt.Errorf("%s is not an approver of vault %s", req.RequestedBy, vaultID)
	}
	// An approval is for the request's window; the vault checked its
	// freshness when it took it, and confirms it once.
	beforeExpiry := func(at time.Time) error {
		if !at.Before(a.ExpiresAt) {
			return fmt.Errorf("it was signed at %s, after request %s expired at %s: ask again", protocol.FormatTime(at), a.RequestID, protocol.FormatTime(a.ExpiresAt))
		}
		return nil
	}
	s, _, err := signing.VerifySignature(signers, protocol.UpdateApprove, protocol.VaultWorkflowID(vaultID), approval, req.RequestedBy, beforeExpiry, nil)
	if err != nil {
		return signing.Signer{}, fmt.Errorf("the approval of request %s by %s: %w", a.RequestID, req.RequestedBy, err)
	}
	if s.Fingerprint == signing.FingerprintOf(a.Signer) {
		return signing.Signer{}, fmt.Errorf("the approval of request %s is signed with the key that signed the request (%s): a second person must approve", a.RequestID, s.Fingerprint)
	}
	return s, nil
}
