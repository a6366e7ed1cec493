package item

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

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
	d.effects = append(d.effects, Effect{Kind: EffectBackup, Ref: d.ev.Ref, By: by, For: op, CompareWith: d.rule().Baseline(d.st.RecoveryPoints), Point: protocol.RecoveryPoint{
		ID:        fmt.Sprintf("rp-%s-%d", now.Format("20060102T150405Z"), d.st.BackupSequence),
		CreatedAt: now,
		ExpiresAt: now.Add(time.Duration(d.in.Item.Policy.RetentionDays) * 24 * time.Hour),
	}})
}

// collect removes expired points while protected, never the newest: an
// item whose backups keep failing keeps its last good point.
func (d *decider) collect() {
	if d.st.ProtectionState != protocol.Protected {
		return
	}
	var expired []string
	for i, rp := range d.st.RecoveryPoints {
		if i < len(d.st.RecoveryPoints)-1 && !rp.ExpiresAt.After(d.in.Now) && !keptByAnomaly(d.st.RecoveryPoints, rp) {
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
	return protocol.RecoveryPoint{}, protocol.FieldRefusal(protocol.CodeNotFound, "recoveryPointId", "recoveryPointId %q is not a recovery point of item %s, which has %s, listed in its status",
		id, d.item, protocol.Plural(len(d.st.RecoveryPoints), "recovery point"))
}

// locked records how long the store now keeps the item's objects, and
// when the rolling lock is next due: half a window before it runs out.
func (d *decider) locked() {
	d.st.LockedUntil = d.ev.LockedUntil
	d.st.LockDueAt = d.ev.LockedUntil.Add(-d.ev.LockWindow / 2)
}

// lockDone records a lock; one that failed is alerted and tried again in an
// hour, while the objects stay locked as before.
func (d *decider) lockDone() Decision {
	if f := d.ev.Failure; f != nil {
		detail := "objects not locked: " + f.Message + "; tried again in an hour"
		d.record("lock", signing.System, protocol.OutcomeFailed, detail)
		d.effects = append(d.effects, Effect{Kind: EffectReport, Alerts: []protocol.Alert{d.alert(protocol.AlertLockFailed, signing.System, detail)}})
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

// seeVault raises the item's floor to what an event says of the vault now.
func (d *decider) seeVault() {
	if d.ev.Settings != nil {
		d.st.VaultFloor.Raise(*d.ev.Settings)
	}
	if d.ev.Protection != nil {
		d.st.VaultFloor.See(*d.ev.Protection)
	}
}

// backupDone keeps the point a backup made whatever the state is now: its
// data is in the store until the purge.
func (d *decider) backupDone() Decision {
	d.seeVault()
	op := d.ev.For
	if op == OpProtect {
		// The item exists from its first backup on: it registers with its
		// vault, which comes up with default settings on first use.
		d.effects = append(d.effects, Effect{Kind: EffectReport, Register: true})
	}
	if f := d.ev.Failure; f != nil {
		d.record(op, d.ev.By, protocol.OutcomeFailed, "backup failed: "+f.Message)
		return d.decision()
	}
	rp := *d.ev.Point
	suspect := d.judge(&rp)
	d.st.RecoveryPoints = append(slices.Clone(d.st.RecoveryPoints), rp)
	d.st.LastBackupTime = rp.CreatedAt
	if d.st.LockedUntil.IsZero() && !d.ev.LockedUntil.IsZero() {
		// The store locks: from the first backup on, the lock rolls.
		d.locked()
	}
	if op != OpScheduledBackup {
		d.record(op, d.ev.By, protocol.OutcomeAccepted, strings.TrimSuffix(fmt.Sprintf("recovery point %s: %s, %s, %s new in the store; %s",
			rp.ID, protocol.Plural(d.ev.Files, "file"), protocol.Plural(int(rp.SizeBytes), "byte"), protocol.Plural(int(rp.NewBytes), "byte"), suspect), "; "))
	} else if suspect != "" {
		d.record(op, d.ev.By, protocol.OutcomeAccepted, suspect)
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
		// Refused before anything was written: the target is wrong. The
		// one who asked is told so (outcome), the audit says restore.
		d.record(protocol.OpRestore, by, protocol.OutcomeRejected, f.Message)
		return d.decision(), nil
	case f != nil:
		d.record(protocol.OpRestore, by, protocol.OutcomeFailed, f.Message)
		return d.decision(), nil
	}
	r := d.ev.Restored
	d.record(protocol.OpRestore, by, protocol.OutcomeAccepted, fmt.Sprintf("restored %s to %s: %s, %s, every checksum verified",
		d.ev.RecoveryPointID, d.ev.TargetPath, protocol.Plural(r.Files, "file"), protocol.Plural(int(r.Bytes), "byte")))
	return d.decision(), nil
}

// Runnable says whether an effect that waited its turn for the store may
// still run in state st; a refusal is for the one who asked.
func Runnable(st ItemState, e Effect, item ItemInput) error {
	switch e.Kind {
	case EffectBackup, EffectCollect:
		// A collection decided before a backup found an anomaly keeps what
		// the anomaly keeps.
		for _, rp := range st.RecoveryPoints {
			if e.Kind == EffectCollect && slices.Contains(e.RecoveryPoints, rp.ID) && keptByAnomaly(st.RecoveryPoints, rp) {
				return &protocol.Refusal{Message: fmt.Sprintf("item %s has an anomaly: its points up to the suspect one are kept", item.ItemID)}
			}
		}
		if st.ProtectionState == protocol.Protected {
			return nil
		}
		_, err := Decide(st, Event{Op: protocol.OpBackupNow}, Inputs{Item: item})
		if err == nil {
			err = &protocol.Refusal{Message: fmt.Sprintf("item %s is no longer protected: no backup taken", item.ItemID)}
		}
		return err
	case EffectRestore, EffectVerify:
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

// Offered are the operations that would change something in state s: the
// ones a console offers.
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
