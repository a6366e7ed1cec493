package item

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

// Changes as the store measures them, for 100 files.
var (
	normalDay   = protocol.Change{Files: 100, Changed: 3, BytesChanged: 60 << 10, Sampled: 12 << 10}
	reformatted = protocol.Change{Files: 100, Changed: 100, BytesChanged: 2 << 20, Sampled: 400 << 10, Incompressible: 8 << 10}
	encrypted   = protocol.Change{Files: 100, Added: 61, Deleted: 60, Replaced: 60, NewExtension: ".locked", RansomNotes: 1,
		BytesChanged: 1200 << 10, Sampled: 240 << 10, Incompressible: 240 << 10}
	// A sixth of the files encrypted in place each day.
	slowDay = protocol.Change{Files: 100, Changed: 12, BytesChanged: 240 << 10, Sampled: 48 << 10, Incompressible: 46 << 10}
)

// backupDone decides a backup's result with change c, n days from now;
// since is its change against the rule's baseline, as the store measures
// it, or nil for c.
func backupDone(t *testing.T, st ItemState, n int, c *protocol.Change, since ...protocol.Change) Decision {
	t.Helper()
	at := testNow.Add(time.Duration(n) * day)
	rp := protocol.RecoveryPoint{ID: "rp-" + at.Format("0102"), CreatedAt: at, ExpiresAt: at.Add(2 * day), Change: c}
	ev := Event{Op: OpBackupDone, For: OpScheduledBackup, Point: &rp, Since: c}
	if len(since) > 0 {
		ev.Since = &since[0]
	}
	d, err := Decide(st, ev, Inputs{Item: testItem, Now: at})
	require.NoError(t, err)
	return d
}

func anomalyAlerts(d Decision) int {
	n := 0
	for _, e := range d.Effects {
		for _, a := range e.Alerts {
			if a.Kind == protocol.AlertAnomaly {
				n++
			}
		}
	}
	return n
}

func TestTheFirstBackupANormalDayAndALargeCompressibleChangeRaiseNothing(t *testing.T) {
	st := ItemState{ProtectionState: protocol.Protected}
	for i, c := range []*protocol.Change{nil, &normalDay, &reformatted, &normalDay} {
		d := backupDone(t, st, i, c)
		st = d.State
		assert.Zero(t, anomalyAlerts(d), "backup %d", i)
	}
	assert.Nil(t, protocol.Anomaly(st.RecoveryPoints))
}

func TestAnEncryptedSourceMakesThePointSuspectAndAlertsAtOnce(t *testing.T) {
	st := backupDone(t, ItemState{ProtectionState: protocol.Protected}, 0, nil).State
	d := backupDone(t, st, 1, &encrypted)
	assert.Equal(t, 1, anomalyAlerts(d))
	a := protocol.Anomaly(d.State.RecoveryPoints)
	require.NotNil(t, a)
	assert.Equal(t, `60 files replaced by files with the new extension ".locked"`, a.Suspect)
	require.NotNil(t, d.Audit, "a scheduled backup leaves a line when it is suspect")
	assert.Contains(t, d.Audit.Detail, "is suspect")
}

func TestEncryptionSpreadOverDaysAddsUp(t *testing.T) {
	st := backupDone(t, ItemState{ProtectionState: protocol.Protected}, 0, nil).State
	alerts := 0
	for i := 1; i <= 3; i++ {
		since := slowDay
		since.Changed *= i // twelve other files each day
		d := backupDone(t, st, i, &slowDay, since)
		st, alerts = d.State, alerts+anomalyAlerts(d)
	}
	assert.Equal(t, 1, alerts, "12%, 24%: normal; 36% of the files by the third day: suspect")
	assert.Contains(t, protocol.Anomaly(st.RecoveryPoints).Suspect, "over the last 3 backups")
}

func TestOneArchiveRewrittenEveryDayIsNoAnomaly(t *testing.T) {
	archive := protocol.Change{Files: 20, Changed: 1, BytesChanged: 4 << 20, Sampled: 16 << 10, Incompressible: 16 << 10}
	st := backupDone(t, ItemState{ProtectionState: protocol.Protected}, 0, nil).State
	for i := 1; i <= 20; i++ {
		d := backupDone(t, st, i, &archive, archive)
		st = d.State
		require.Zero(t, anomalyAlerts(d), "day %d: the same file changed again counts once", i)
	}
}

func TestAnAnomalyKeepsTheOlderPointsAndHoldsDeletesUntilItIsCleared(t *testing.T) {
	st := ItemState{ProtectionState: protocol.Protected}
	for i, c := range []*protocol.Change{nil, &normalDay, &encrypted} {
		st = backupDone(t, st, i, c).State
	}
	later := testNow.Add(20 * day)
	d := backupDone(t, st, 20, &normalDay)
	assert.NotContains(t, kinds(d.Effects), EffectCollect, "every point up to the suspect one is kept past its retention")
	st = d.State

	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, Inputs{Item: testItem, Now: later, Vault: testVault})
	require.NoError(t, err)
	assert.Empty(t, d.Ask, "the vault is not even asked")
	assert.Equal(t, protocol.Protected, d.State.ProtectionState)
	w := waitingDelete(d.State)
	require.NotNil(t, w)
	assert.False(t, w.Held, "the vault did not hold it: its guard counts it when it goes on")
	assert.Zero(t, w.RetryAt, "no timer: the clear asks again")
	assert.Contains(t, w.Why, "has an anomaly since recovery point")
	st = d.State

	_, err = Decide(st, Event{Op: protocol.OpClearAnomaly, By: "alice"}, Inputs{Item: testItem, Now: later})
	assert.EqualError(t, err, "reason is needed to clear an anomaly: say whether it was a false alarm or a change accepted; nothing changed")
	clear := Event{Op: protocol.OpClearAnomaly, By: "alice", Reason: "false alarm: the archive was re-encrypted on purpose"}
	d, err = Decide(st, clear, Inputs{Item: testItem, Now: later})
	require.NoError(t, err)
	assert.Equal(t, AskVault, d.Ask, "critical: the vault decides")
	d, err = Decide(st, clear, Inputs{Item: testItem, Now: later, Vault: &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings()}})
	require.NoError(t, err)
	assert.Nil(t, protocol.Anomaly(d.State.RecoveryPoints))
	assert.Contains(t, kinds(d.Effects), EffectCollect, "the older points expire again")
	assert.Equal(t, later, waitingDelete(d.State).RetryAt, "the delete goes on now")
	assert.Equal(t, later, waitingDelete(d.State).Since, "as a delete asked now: the vault's guard counts it")

	_, err = Decide(d.State, clear, Inputs{Item: testItem, Now: later})
	assert.ErrorContains(t, err, "has no anomaly to clear")

	_, err = Decide(st, clear, Inputs{Item: testItem, Now: later, Vault: &protocol.VaultAnswer{Unavailable: "vault vault1 is busy"}})
	assert.EqualError(t, err, "item vm1: vault vault1 is busy; nothing cleared: ask again once the vault answers",
		"a clear does not wait: asked again later it would accept points found suspect meanwhile")
}

func TestAClearUnderMultiUserAuthorizationWaitsForItsApproval(t *testing.T) {
	st := ItemState{ProtectionState: protocol.Protected}
	for i, c := range []*protocol.Change{nil, &encrypted} {
		st = backupDone(t, st, i, c).State
	}
	clear := Event{Op: protocol.OpClearAnomaly, By: "alice", Reason: "a change accepted"}
	pending := &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings(),
		Pending: &protocol.MuaRequest{RequestID: "r-1", RequestedBy: "alice", ExpiresAt: testNow.Add(day)}, Approvers: []string{"bob"}}
	d, err := Decide(st, clear, Inputs{Item: testItem, Now: testNow, Vault: pending})
	require.NoError(t, err)
	assert.NotNil(t, protocol.Anomaly(d.State.RecoveryPoints), "nothing cleared before the approval")
	require.Len(t, d.State.AwaitingApproval, 1)
	assert.Equal(t, protocol.OpClearAnomaly, d.State.AwaitingApproval[0].Op)

	approved := Event{Op: protocol.OpApproved, RequestID: "r-1"}
	answer := &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings(), RequestedBy: "alice", Reason: "approved by bob", Points: suspects(d.State.RecoveryPoints)}
	// Encrypted again while the clear waited for its approval: that point
	// is not what alice asked to accept.
	again := backupDone(t, d.State, 2, &encrypted).State
	later, err := Decide(again, approved, Inputs{Item: testItem, Now: testNow.Add(2 * day), Vault: answer})
	require.NoError(t, err)
	require.NotNil(t, protocol.Anomaly(later.State.RecoveryPoints), "a point found suspect after the clear was asked stays suspect")
	assert.Equal(t, "rp-"+testNow.Add(2*day).Format("0102"), protocol.Anomaly(later.State.RecoveryPoints).ID)

	d, err = Decide(d.State, approved, Inputs{Item: testItem, Now: testNow, Vault: answer})
	require.NoError(t, err)
	assert.Nil(t, protocol.Anomaly(d.State.RecoveryPoints))
	assert.Equal(t, protocol.Protected, d.State.ProtectionState, "an approved clear deletes nothing")
	assert.True(t, slices.Contains(d.State.ApprovalsUsed, "r-1"))
}
