package item

import (
	"fmt"
	"slices"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// Restore drills read a point back and check every file's hash, writing
// nothing to the host: a backup no one has read back may not restore.

// verifyDue is when the next drill is due; zero for none.
func (st ItemState) verifyDue(every time.Duration) time.Time {
	switch {
	case every <= 0 || len(st.RecoveryPoints) == 0:
		return time.Time{}
	case st.VerifyDueAt.IsZero():
		return st.RecoveryPoints[0].CreatedAt.Add(every)
	}
	return st.VerifyDueAt
}

// drilled is the next point to read: newest and oldest unread in turn, so
// that old points an anomaly keeps are read too; then the one read longest ago.
func (st ItemState) drilled() protocol.RecoveryPoint {
	points := st.RecoveryPoints
	newest := points[len(points)-1]
	last := slices.MaxFunc(points, func(a, b protocol.RecoveryPoint) int { return a.CheckedAt.Compare(b.CheckedAt) })
	// The last drill read the newest point of its time: none was taken
	// between that point and the drill.
	lastWasNewest := !last.CheckedAt.IsZero() && !slices.ContainsFunc(points, func(p protocol.RecoveryPoint) bool {
		return p.CreatedAt.After(last.CreatedAt) && p.CreatedAt.Before(last.CheckedAt)
	})
	if newest.CheckedAt.IsZero() && !lastWasNewest {
		return newest
	}
	if i := slices.IndexFunc(points, func(p protocol.RecoveryPoint) bool { return p.CheckedAt.IsZero() }); i >= 0 {
		return points[i]
	}
	return slices.MinFunc(points, func(a, b protocol.RecoveryPoint) int { return a.CheckedAt.Compare(b.CheckedAt) })
}

// verify is a drill asked for by a person, of the point named or of the
// one due next.
func (d *decider) verify() (Decision, error) {
	if len(d.st.RecoveryPoints) == 0 {
		return d.refuse("item %s has no recovery point to verify", d.item)
	}
	rp := d.st.drilled()
	if id := d.ev.RecoveryPointID; id != "" {
		var err error
		if rp, err = d.recoveryPoint(id); err != nil {
			return Decision{}, err
		}
	}
	d.drill(rp, d.ev.By)
	return d.decision(), nil
}

// drill starts reading rp back.
func (d *decider) drill(rp protocol.RecoveryPoint, by string) {
	d.effects = append(d.effects, Effect{Kind: EffectVerify, Ref: d.ev.Ref, By: by, Point: rp})
}

// drillRetry is how soon a drill that could not run is tried again.
const drillRetry = time.Hour

// verifyDone records a drill; a damaged point is alerted at once, and the
// next backup reads every file, so as to rewrite what the store lost.
func (d *decider) verifyDone() Decision {
	id := d.ev.RecoveryPointID
	i := slices.IndexFunc(d.st.RecoveryPoints, func(p protocol.RecoveryPoint) bool { return p.ID == id })
	if i < 0 {
		// Collected or purged meanwhile: nothing left to mark.
		return d.decision()
	}
	f := d.ev.Failure
	if f != nil && !f.Damaged {
		// The store did not answer, or no drill slot came free: nothing is
		// known of the point.
		d.record(protocol.OpVerify, d.ev.By, protocol.OutcomeFailed, fmt.Sprintf("recovery point %s not verified: %s; tried again in an hour", id, f.Message))
		if every, _ := d.in.Item.Policy.VerifyInterval(); every > 0 {
			d.st.VerifyDueAt = d.in.Now.Add(drillRetry)
		}
		return d.decision()
	}
	d.st.RecoveryPoints = slices.Clone(d.st.RecoveryPoints)
	rp := &d.st.RecoveryPoints[i]
	rp.CheckedAt = d.in.Now.UTC()
	if f != nil {
		rp.Verified, rp.VerifyFailed = false, f.Message
		detail := fmt.Sprintf("recovery point %s did not read back as backed up: %s; the next backup reads every file afresh", id, f.Message)
		d.record(protocol.OpVerify, d.ev.By, protocol.OutcomeFailed, detail)
		d.effects = append(d.effects, Effect{Kind: EffectReport, Alerts: []protocol.Alert{d.alert(protocol.AlertVerifyFailed, d.ev.By, detail)}})
		return d.decision()
	}
	rp.Verified, rp.VerifyFailed = true, ""
	r := d.ev.Restored
	d.record(protocol.OpVerify, d.ev.By, protocol.OutcomeAccepted, fmt.Sprintf("recovery point %s read back whole: %s, %s, every checksum verified",
		id, protocol.Plural(r.Files, "file"), protocol.Plural(int(r.Bytes), "byte")))
	return d.decision()
}

// scheduledDrill starts the drill that is due, if one is.
func (d *decider) scheduledDrill() {
	every, _ := d.in.Item.Policy.VerifyInterval()
	due := d.st.verifyDue(every)
	if due.IsZero() || d.in.Now.Before(due) {
		return
	}
	// The schedule moves on at once, so a wake-up meanwhile starts no
	// second drill; it keeps its cadence, so drills wake with backups.
	d.st.VerifyDueAt = nextDue(due, every, d.in.Now)
	d.drill(d.st.drilled(), signing.Scheduler)
}
