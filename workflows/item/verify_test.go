package item

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

// drillItem is testItem with weekly drills, the default.
var drillItem = func() ItemInput {
	in := testItem
	in.Policy.VerifyEvery = ""
	return in
}()

// threePoints is a stopped item with points a day apart, none read back.
func threePoints() ItemState {
	st := ItemState{ProtectionState: protocol.ProtectionStopped}
	for i := range 3 {
		at := testNow.Add(time.Duration(i) * day)
		st.RecoveryPoints = append(st.RecoveryPoints, protocol.RecoveryPoint{ID: "rp-" + at.Format("0102"), CreatedAt: at, ExpiresAt: at.Add(30 * day)})
	}
	return st
}

func decideAt(t *testing.T, st ItemState, ev Event, at time.Time) Decision {
	t.Helper()
	d, err := Decide(st, ev, Inputs{Item: drillItem, Now: at})
	require.NoError(t, err)
	return d
}

func TestDrillsRunWeeklyNewestFirstThenTheOldest(t *testing.T) {
	st := threePoints()
	every, err := drillItem.Policy.VerifyInterval()
	require.NoError(t, err)
	assert.Equal(t, 7*day, every, "weekly by default")
	var order []string
	for range 4 {
		at := st.WakeAt(every)
		require.False(t, at.IsZero())
		d := decideAt(t, st, Event{Op: OpWakeUp}, at)
		require.Equal(t, []EffectKind{EffectVerify}, kinds(d.Effects), "one drill, one activity")
		id := d.Effects[0].Point.ID
		order = append(order, id)
		assert.Empty(t, kinds(decideAt(t, d.State, Event{Op: OpWakeUp}, at).Effects), "a wake-up meanwhile starts no second drill")
		st = decideAt(t, d.State, Event{Op: OpVerifyDone, RecoveryPointID: id, Restored: &RestoreResult{Files: 3, Bytes: 30}}, at.Add(time.Minute)).State
	}
	assert.Equal(t, []string{"rp-1126", "rp-1124", "rp-1125", "rp-1126"}, order, "the newest, then in turn the oldest not yet read back")
	assert.True(t, st.RecoveryPoints[2].Verified)

	st.ProtectionState, st.DeletedAt, st.Deadline = protocol.SoftDeleted, testNow, testNow.Add(60*day)
	assert.Equal(t, st.Deadline, st.WakeAt(every), "no drill while soft-deleted")
	_, err = Decide(st, Event{Op: protocol.OpVerify}, Inputs{Item: drillItem, Now: testNow})
	assert.ErrorContains(t, err, "undelete it before verifying")
	assert.True(t, threePoints().WakeAt(0).IsZero(), "drills off: a stopped item sleeps")
}

func TestDrillsAlternateBetweenTheNewestAndTheOldestUnderDailyBackups(t *testing.T) {
	st := threePoints()
	var order []string
	for week := range 4 {
		at := testNow.Add(time.Duration(week+1) * 7 * day)
		// A new point every day: the newest is always one never read back.
		for d := 6; d >= 0; d-- {
			p := at.Add(-time.Duration(d) * day)
			st.RecoveryPoints = append(st.RecoveryPoints, protocol.RecoveryPoint{ID: "rp-" + p.Format("0102"), CreatedAt: p})
		}
		rp := st.drilled()
		order = append(order, rp.ID)
		st = decideAt(t, st, Event{Op: OpVerifyDone, RecoveryPointID: rp.ID, Restored: &RestoreResult{}}, at.Add(time.Minute)).State
	}
	assert.Equal(t, []string{"rp-1201", "rp-1124", "rp-1215", "rp-1125"}, order, "the newest, the oldest never read, in turn")
}

func TestAFailedDrillAlertsMarksThePointAndTheNextBackupIsFresh(t *testing.T) {
	st := threePoints()
	st.ProtectionState, st.LastBackupTime, st.NextBackupAt = protocol.Protected, testNow.Add(2*day), testNow.Add(3*day)
	d := decideAt(t, st, Event{Op: protocol.OpVerify, By: "alice", RecoveryPointID: "rp-1124", Ref: 7}, testNow.Add(2*day+time.Hour))
	require.Equal(t, []EffectKind{EffectVerify}, kinds(d.Effects))
	assert.Equal(t, 7, d.Effects[0].Ref, "the one who asked waits for the answer")

	notRun := Event{Op: OpVerifyDone, By: "alice", RecoveryPointID: "rp-1124", Failure: &Failure{Message: "the store did not answer"}}
	later := decideAt(t, d.State, notRun, testNow.Add(2*day+2*time.Hour))
	assert.Empty(t, later.Effects, "a drill that could not run alerts no one")
	assert.Empty(t, later.State.RecoveryPoints[0].VerifyFailed)
	assert.Equal(t, testNow.Add(2*day+3*time.Hour), later.State.verifyDue(7*day), "tried again in an hour")
	assert.Contains(t, later.Audit.Detail, "not verified: the store did not answer; tried again in an hour")

	failed := Event{Op: OpVerifyDone, By: "alice", RecoveryPointID: "rp-1124", Failure: &Failure{Message: "recovery point rp-1124: 4 of 20 files do not read back as backed up", Damaged: true}}
	d = decideAt(t, d.State, failed, testNow.Add(2*day+2*time.Hour))
	assert.Equal(t, "recovery point rp-1124: 4 of 20 files do not read back as backed up", d.State.RecoveryPoints[0].VerifyFailed)
	require.Len(t, d.Effects, 1)
	assert.Equal(t, protocol.AlertVerifyFailed, d.Effects[0].Alerts[0].Kind)
	assert.Equal(t, protocol.OutcomeFailed, d.Audit.Outcome)

	_, err := Decide(d.State, Event{Op: protocol.OpVerify, RecoveryPointID: "rp-nope"}, Inputs{Item: drillItem, Now: testNow})
	assert.ErrorContains(t, err, `recoveryPointId "rp-nope" is not a recovery point`)
}
