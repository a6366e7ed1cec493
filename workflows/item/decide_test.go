package item

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

const day = 24 * time.Hour

var (
	testNow = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	// Its drills are off: verify_test.go has their own.
	testItem = ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: "/data/vm1", Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30, VerifyEvery: "off"}}
	// A vault's answer to a delete: the default 14 days.
	testVault = &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings(), Window: 14 * 24 * time.Hour}
)

// testState is an item in state s, with one recovery point, whose deadline
// (while soft-deleted or purging) is due now.
func testState(s protocol.State) ItemState {
	st := ItemState{ProtectionState: s, RecoveryPoints: []protocol.RecoveryPoint{{ID: "rp-1", ExpiresAt: testNow.Add(30 * 24 * time.Hour)}}}
	switch s {
	case protocol.Protected:
		st.NextBackupAt = testNow
	case protocol.SoftDeleted, protocol.Purging:
		st.DeletedAt, st.Deadline = testNow.Add(-14*24*time.Hour), testNow
	}
	return st
}

func kinds(effects []Effect) []EffectKind {
	var ks []EffectKind
	for _, e := range effects {
		ks = append(ks, e.Kind)
	}
	return ks
}

// TestDecideEveryStateAgainstEveryOperation covers the whole table of
// docs/contract.md section 3, plus the internal state and the clock: for
// each state and event, the next state, the effects, the audit outcome, or
// the refusal.
func TestDecideEveryStateAgainstEveryOperation(t *testing.T) {
	type want struct {
		next    protocol.State
		effects []EffectKind
		// outcome is the audit line's outcome; "" means no line.
		outcome string
		refusal string
		// newDeadline: soft-deleted with a deadline 14 days from now.
		newDeadline bool
	}
	accepted, none := protocol.OutcomeAccepted, ""
	report := []EffectKind{EffectReport}
	cases := map[protocol.State]map[protocol.Operation]want{
		protocol.Protected: {
			protocol.OpStop:      {next: protocol.ProtectionStopped, effects: report, outcome: accepted},
			protocol.OpDelete:    {next: protocol.SoftDeleted, outcome: accepted, newDeadline: true},
			protocol.OpUndelete:  {refusal: "item vm1 is not soft-deleted"},
			protocol.OpResume:    {next: protocol.Protected, outcome: accepted},
			protocol.OpBackupNow: {next: protocol.Protected, effects: []EffectKind{EffectBackup}},
			protocol.OpRestore:   {next: protocol.Protected, effects: []EffectKind{EffectRestore}},
			OpWakeUp:             {next: protocol.Protected, effects: []EffectKind{EffectBackup}},
		},
		protocol.ProtectionStopped: {
			protocol.OpStop:      {next: protocol.ProtectionStopped, outcome: accepted},
			protocol.OpDelete:    {next: protocol.SoftDeleted, outcome: accepted, newDeadline: true},
			protocol.OpUndelete:  {refusal: "item vm1 is not soft-deleted"},
			protocol.OpResume:    {next: protocol.Protected, effects: report, outcome: accepted},
			protocol.OpBackupNow: {refusal: "resume protection before taking a backup"},
			protocol.OpRestore:   {next: protocol.ProtectionStopped, effects: []EffectKind{EffectRestore}},
			OpWakeUp:             {next: protocol.ProtectionStopped, outcome: none},
		},
		protocol.SoftDeleted: {
			protocol.OpStop:      {refusal: "undelete it"},
			protocol.OpDelete:    {next: protocol.SoftDeleted, outcome: accepted},
			protocol.OpUndelete:  {next: protocol.ProtectionStopped, effects: report, outcome: accepted},
			protocol.OpResume:    {refusal: "undelete it before resuming"},
			protocol.OpBackupNow: {refusal: "undelete it and resume protection"},
			protocol.OpRestore:   {refusal: "item vm1 is soft-deleted: undelete it before restoring"},
			OpWakeUp:             {next: protocol.Purging, effects: []EffectKind{EffectPurge}, outcome: accepted},
		},
		protocol.Purging: {
			protocol.OpStop:      {refusal: "being purged"},
			protocol.OpDelete:    {refusal: "being purged"},
			protocol.OpUndelete:  {refusal: "can no longer be recovered"},
			protocol.OpResume:    {refusal: "being purged"},
			protocol.OpBackupNow: {refusal: "being purged"},
			protocol.OpRestore:   {refusal: "being purged"},
			OpWakeUp:             {next: protocol.Purging, outcome: none},
		},
		protocol.Purged: {
			protocol.OpStop:      {refusal: "has been purged"},
			protocol.OpDelete:    {refusal: "has been purged"},
			protocol.OpUndelete:  {refusal: "has been purged"},
			protocol.OpResume:    {refusal: "has been purged"},
			protocol.OpBackupNow: {refusal: "has been purged"},
			protocol.OpRestore:   {refusal: "has been purged"},
			OpWakeUp:             {next: protocol.Purged, outcome: none},
		},
	}
	ops := []protocol.Operation{protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpResume, protocol.OpBackupNow, protocol.OpRestore, OpWakeUp}
	for _, s := range []protocol.State{protocol.Protected, protocol.ProtectionStopped, protocol.SoftDeleted, protocol.Purging, protocol.Purged} {
		for _, op := range ops {
			w, ok := cases[s][op]
			require.True(t, ok, "no expectation for %s/%s", s, op)
			t.Run(string(s)+"/"+string(op), func(t *testing.T) {
				st := testState(s)
				ev := Event{Op: op, By: "alice", RecoveryPointID: "rp-1", TargetPath: "/restore"}
				d, err := Decide(st, ev, Inputs{Item: testItem, Now: testNow, Vault: testVault})
				if w.refusal != "" {
					var r *protocol.Refusal
					require.True(t, errors.As(err, &r), "want a refusal, got %v", err)
					assert.Contains(t, r.Message, w.refusal)
					return
				}
				require.NoError(t, err)
				assert.Empty(t, d.Ask)
				assert.Equal(t, w.next, d.State.ProtectionState)
				assert.Equal(t, w.effects, kinds(d.Effects), "effects")
				if w.outcome == "" {
					assert.Nil(t, d.Audit, "no audit line")
				} else {
					require.NotNil(t, d.Audit, "an audit line")
					assert.Equal(t, w.outcome, d.Audit.Outcome)
				}
				if w.newDeadline {
					assert.Equal(t, testNow.Add(14*24*time.Hour), d.State.Deadline)
					assert.Equal(t, testNow.Add(12*24*time.Hour), d.State.ReminderAt, "the reminder 48h before")
				} else if s != protocol.SoftDeleted && s != protocol.Purging {
					assert.True(t, d.State.Deadline.IsZero(), "no deadline, got %v", d.State.Deadline)
				} else if d.State.ProtectionState != protocol.ProtectionStopped {
					assert.Equal(t, st.Deadline, d.State.Deadline, "the deadline does not move")
				}
				assert.Equal(t, testState(s), st, "Decide never changes the state it is given")
			})
		}
	}
}

func TestDeleteAsksTheVaultFirstAndTakesItsWindow(t *testing.T) {
	st := testState(protocol.Protected)
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "alice"}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, AskVault, d.Ask, "no decision before the vault answers")

	vault := &protocol.VaultAnswer{Settings: protocol.SoftDeleteSettings{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 30, PurgeReminder: "24h"}, Window: 30 * 24 * time.Hour}
	d, err = Decide(st, Event{Op: protocol.OpDelete, By: "alice", Reason: "ransom"}, Inputs{Item: testItem, Now: testNow, Vault: vault})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState)
	assert.Equal(t, testNow.Add(30*24*time.Hour), d.State.Deadline)
	assert.Equal(t, testNow.Add(29*24*time.Hour), d.State.ReminderAt)
	assert.Equal(t, protocol.VaultFloor{AlwaysOn: true, RetentionDays: 30}, d.State.VaultFloor, "the floor rises with what the vault said")
	assert.Empty(t, d.Effects, "the vault was told, and alerted, by its answer")
	assert.Equal(t, "soft-deleted; purge scheduled for 2026-12-24T10:00:00Z unless undeleted; reason: ransom", d.Audit.Detail)

	_, err = Decide(st, Event{Op: protocol.OpDelete, By: "alice"}, Inputs{Item: testItem, Now: testNow, Vault: &protocol.VaultAnswer{Refusal: "vault vault1 could not be asked"}})
	assert.EqualError(t, err, "vault vault1 could not be asked", "a vault that cannot be asked refuses the delete")
}

func TestDeleteWithSoftDeleteDisabledPurgesAtOnce(t *testing.T) {
	d, err := Decide(testState(protocol.ProtectionStopped), Event{Op: protocol.OpDelete, By: "alice"},
		Inputs{Item: testItem, Now: testNow, Vault: &protocol.VaultAnswer{Settings: protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled}, Disabled: true}})
	require.NoError(t, err)
	assert.Equal(t, protocol.Purging, d.State.ProtectionState)
	assert.Equal(t, []EffectKind{EffectPurge}, kinds(d.Effects))
	assert.Contains(t, d.Audit.Detail, "purged at once")
}

func TestDeleteUnderMuaWaitsAndOnlyItsOwnApprovalIsCarriedOut(t *testing.T) {
	st := testState(protocol.Protected)
	request := &protocol.MuaRequest{RequestID: "r-1", State: protocol.RequestPending, Detail: "pending approval by bob"}
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, Inputs{Item: testItem, Now: testNow, Vault: &protocol.VaultAnswer{Pending: request}})
	require.NoError(t, err)
	assert.Equal(t, protocol.Protected, d.State.ProtectionState, "nothing changes")
	assert.Equal(t, request, d.Pending)
	require.Len(t, d.State.AwaitingApproval, 1)
	assert.Equal(t, "r-1", d.State.AwaitingApproval[0].RequestID)
	assert.Empty(t, d.State.AwaitingApproval[0].ApproverKeys, "an unsigned vault confirms its approvals")
	assert.Equal(t, protocol.OutcomePending, d.Audit.Outcome)
	st = d.State

	for _, c := range []struct{ id, refusal string }{
		{"", "no requestId"},
		{"r-9", `awaits no approval of request "r-9"`},
	} {
		_, err := Decide(st, Event{Op: protocol.OpApproved, RequestID: c.id}, Inputs{Item: testItem, Now: testNow})
		assert.ErrorContains(t, err, c.refusal)
	}
	d, err = Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1"}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, AskVault, d.Ask, "the vault confirms an approval before it counts")

	confirmed := *testVault
	confirmed.RequestedBy, confirmed.Reason = "mallory", "approved by bob (request r-1)"
	d, err = Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1"}, Inputs{Item: testItem, Now: testNow, Vault: &confirmed})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState)
	assert.Equal(t, "mallory", d.Audit.RequestedBy, "the delete is the requester's")
	assert.Contains(t, d.Audit.Detail, "approved by bob (request r-1)")
	assert.Empty(t, d.State.AwaitingApproval)
	assert.Equal(t, []string{"r-1"}, d.State.ApprovalsUsed)

	undeleted := d.State
	undeleted.ProtectionState = protocol.ProtectionStopped
	_, err = Decide(undeleted, Event{Op: protocol.OpApproved, RequestID: "r-1"}, Inputs{Item: testItem, Now: testNow})
	assert.ErrorContains(t, err, `awaits no approval of request "r-1"`, "an approval counts once")
}

func TestWakeUpBeforeTheDeadlineDoesNotPurge(t *testing.T) {
	st := testState(protocol.SoftDeleted)
	st.Deadline = testNow.Add(time.Millisecond)
	d, err := Decide(st, Event{Op: OpWakeUp}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState, "not purged a millisecond early")
	assert.Empty(t, d.Effects)

	st.ReminderAt = testNow
	d, err = Decide(st, Event{Op: OpWakeUp}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState)
	require.Equal(t, []EffectKind{EffectReport}, kinds(d.Effects))
	assert.Equal(t, protocol.AlertPurgeReminder, d.Effects[0].Alerts[0].Kind)
	assert.False(t, d.Effects[0].Register, "a reminder changes nothing the vault shows")
	assert.True(t, d.State.ReminderAt.IsZero(), "the reminder goes out once")
}

func TestScheduledBackupsKeepTheirCadenceAfterAnOutage(t *testing.T) {
	st := testState(protocol.Protected)
	st.NextBackupAt = testNow.Add(-50 * time.Hour)
	d, err := Decide(st, Event{Op: OpWakeUp}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, []EffectKind{EffectBackup}, kinds(d.Effects), "one backup catches up, not three")
	assert.Equal(t, testNow.Add(22*time.Hour), d.State.NextBackupAt)
	assert.Equal(t, OpScheduledBackup, d.Effects[0].For)
}

func TestABackupDoneIsKeptWhateverTheStateAndCollectionSparesTheNewest(t *testing.T) {
	expired := protocol.RecoveryPoint{ID: "rp-old", ExpiresAt: testNow.Add(-time.Hour)}
	fresh := protocol.RecoveryPoint{ID: "rp-new", CreatedAt: testNow, ExpiresAt: testNow.Add(-time.Minute)}
	for _, s := range []protocol.State{protocol.Protected, protocol.ProtectionStopped, protocol.SoftDeleted} {
		st := testState(s)
		st.RecoveryPoints = []protocol.RecoveryPoint{expired}
		d, err := Decide(st, Event{Op: OpBackupDone, For: OpScheduledBackup, Point: &fresh}, Inputs{Item: testItem, Now: testNow})
		require.NoError(t, err)
		assert.Equal(t, []protocol.RecoveryPoint{expired, fresh}, d.State.RecoveryPoints, "state %s keeps the new point", s)
		if s == protocol.Protected {
			require.Equal(t, []EffectKind{EffectCollect}, kinds(d.Effects))
			assert.Equal(t, []string{"rp-old"}, d.Effects[0].RecoveryPoints, "never the newest, expired or not")
		} else {
			assert.Empty(t, d.Effects, "no collection unless protected")
		}
	}
}

func TestStoreEffectsThatWaitedAreCheckedAgainstTheStateNow(t *testing.T) {
	backup := Effect{Kind: EffectBackup}
	restore := Effect{Kind: EffectRestore, Point: protocol.RecoveryPoint{ID: "rp-1"}}
	assert.NoError(t, Runnable(testState(protocol.Protected), backup, testItem))
	assert.ErrorContains(t, Runnable(testState(protocol.ProtectionStopped), backup, testItem), "resume protection before taking a backup")
	assert.NoError(t, Runnable(testState(protocol.ProtectionStopped), restore, testItem))
	assert.ErrorContains(t, Runnable(testState(protocol.SoftDeleted), restore, testItem), "undelete it before restoring")
	gone := testState(protocol.Protected)
	gone.RecoveryPoints = nil
	assert.ErrorContains(t, Runnable(gone, restore, testItem), `recoveryPointId "rp-1" is not a recovery point of item`, "collected meanwhile")
	assert.NoError(t, Runnable(testState(protocol.Purging), Effect{Kind: EffectPurge}, testItem))
}

func TestWakeAtFollowsTheState(t *testing.T) {
	st := testState(protocol.SoftDeleted)
	st.ReminderAt = st.Deadline.Add(-time.Hour)
	assert.Equal(t, st.ReminderAt, st.WakeAt(0))
	st.ReminderAt = time.Time{}
	assert.Equal(t, st.Deadline, st.WakeAt(0))
	assert.Equal(t, testNow, testState(protocol.Protected).WakeAt(0))
	assert.True(t, testState(protocol.ProtectionStopped).WakeAt(0).IsZero())
	assert.True(t, testState(protocol.Purging).WakeAt(0).IsZero())
}

func TestMalformedAndUnknownEventsAreRefused(t *testing.T) {
	_, err := Decide(testState(protocol.SoftDeleted), Event{Op: protocol.OpUndelete, Malformed: "not a JSON object"}, Inputs{Item: testItem, Now: testNow})
	assert.ErrorContains(t, err, "malformed signal, nothing changed: not a JSON object")
	_, err = Decide(testState(protocol.Protected), Event{Op: "format"}, Inputs{Item: testItem, Now: testNow})
	assert.ErrorContains(t, err, `operation "format" is not known`)
}

func TestVisibleStateHidesPurging(t *testing.T) {
	assert.Equal(t, protocol.SoftDeleted, protocol.VisibleState(protocol.Purging))
	assert.Equal(t, protocol.Purged, protocol.VisibleState(protocol.Purged))
}

// TestConsoleOffersOnlyWhatChangesTheItem: an action the state forbids, or
// one that would do nothing, is not offered.
func TestConsoleOffersOnlyWhatChangesTheItem(t *testing.T) {
	for _, c := range []struct {
		state protocol.State
		want  []protocol.Operation
	}{
		{protocol.Protected, []protocol.Operation{protocol.OpBackupNow, protocol.OpStop, protocol.OpDelete, protocol.OpRestore, protocol.OpVerify}},
		{protocol.ProtectionStopped, []protocol.Operation{protocol.OpDelete, protocol.OpResume, protocol.OpRestore, protocol.OpVerify}},
		{protocol.SoftDeleted, []protocol.Operation{protocol.OpUndelete}},
		{protocol.Purged, nil},
	} {
		assert.Equal(t, c.want, Offered(c.state), "state %s", c.state)
	}
}

// TestTheLockRollsWhileTheItemLivesAndHoldsTheDeadlineOnceDeleted: on a
// store with object lock, the first backup's lock starts the rolling lock,
// moved forward half a window before it runs out, while protected or
// stopped; a delete locks to the deadline, and a rolling lock decided
// before the delete does not run after it.
func TestTheLockRollsWhileTheItemLivesAndHoldsTheDeadlineOnceDeleted(t *testing.T) {
	in := Inputs{Item: testItem, Now: testNow}
	st := ItemState{ProtectionState: protocol.Protected, NextBackupAt: testNow.Add(day)}
	point := protocol.RecoveryPoint{ID: "rp-1", CreatedAt: testNow}
	d, err := Decide(st, Event{Op: OpBackupDone, For: OpProtect, Point: &point, LockedUntil: testNow.Add(14 * day), LockWindow: 14 * day}, in)
	require.NoError(t, err)
	st = d.State
	assert.Equal(t, testNow.Add(14*day), st.LockedUntil)
	assert.Equal(t, testNow.Add(7*day), st.LockDueAt, "half a window before it runs out")
	assert.Equal(t, testNow.Add(day), st.WakeAt(0), "the next backup comes first")

	st.ProtectionState, st.NextBackupAt = protocol.ProtectionStopped, time.Time{}
	assert.Equal(t, testNow.Add(7*day), st.WakeAt(0), "a stopped item wakes for its lock")
	in.Now = testNow.Add(7 * day)
	d, err = Decide(st, Event{Op: OpWakeUp}, in)
	require.NoError(t, err)
	require.Equal(t, []EffectKind{EffectLock}, kinds(d.Effects))
	assert.True(t, d.Effects[0].LockUntil.IsZero(), "the rolling lock: now plus the window, as the worker knows it")
	rolling := d.Effects[0]
	st = d.State
	assert.True(t, st.WakeAt(0).IsZero(), "not again until that one is done")
	d, err = Decide(st, Event{Op: OpLockDone, LockedUntil: in.Now.Add(14 * day), LockWindow: 14 * day}, in)
	require.NoError(t, err)
	st = d.State
	assert.Equal(t, in.Now.Add(14*day), st.LockedUntil)
	assert.Equal(t, in.Now.Add(7*day), st.LockDueAt)

	in.Vault = testVault
	d, err = Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, in)
	require.NoError(t, err)
	require.Equal(t, []EffectKind{EffectLock}, kinds(d.Effects))
	assert.Equal(t, protocol.OpDelete, d.Effects[0].For)
	assert.Equal(t, d.State.Deadline, d.Effects[0].LockUntil, "held exactly until the deadline")
	assert.Error(t, Runnable(d.State, rolling, testItem), "a rolling lock never runs once the item is soft-deleted")
	assert.NoError(t, Runnable(d.State, d.Effects[0], testItem))
	assert.Equal(t, d.State.ReminderAt, d.State.WakeAt(0), "while soft-deleted the lock does not roll")

	d, err = Decide(st, Event{Op: OpLockDone, Failure: &Failure{Message: "bucket unreachable"}}, in)
	require.NoError(t, err)
	assert.Equal(t, in.Now.Add(time.Hour), d.State.LockDueAt, "a failed lock is tried again in an hour")
	assert.Equal(t, protocol.OutcomeFailed, d.Audit.Outcome)
}

func TestTheLockToTheDeadlineIsTriedAgainUntilItHoldsAndAlerted(t *testing.T) {
	in := Inputs{Item: testItem, Now: testNow, Vault: testVault}
	st := ItemState{ProtectionState: protocol.Protected, NextBackupAt: testNow.Add(day), LockedUntil: testNow.Add(14 * day), LockDueAt: testNow.Add(7 * day)}
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, in)
	require.NoError(t, err)
	st = d.State
	deadline := st.Deadline
	for try := 1; try <= 3; try++ {
		d, err = Decide(st, Event{Op: OpLockDone, Failure: &Failure{Message: "bucket unreachable"}}, in)
		require.NoError(t, err)
		st = d.State
		require.Equal(t, []EffectKind{EffectReport}, kinds(d.Effects))
		assert.Equal(t, protocol.AlertLockFailed, d.Effects[0].Alerts[0].Kind, "try %d is alerted", try)
		assert.Equal(t, in.Now.Add(time.Hour), st.WakeAt(0), "woken in an hour to try again")
		in.Now = st.WakeAt(0)
		d, err = Decide(st, Event{Op: OpWakeUp}, in)
		require.NoError(t, err)
		st = d.State
		require.Equal(t, []EffectKind{EffectLock}, kinds(d.Effects))
		assert.Equal(t, deadline, d.Effects[0].LockUntil, "the lock to the deadline, again")
		assert.NoError(t, Runnable(st, d.Effects[0], testItem))
	}
	d, err = Decide(st, Event{Op: OpLockDone, LockedUntil: deadline}, in)
	require.NoError(t, err)
	assert.Equal(t, deadline, d.State.LockedUntil)
	assert.True(t, d.State.LockDueAt.IsZero(), "it holds: not tried again")
	assert.Equal(t, d.State.ReminderAt, d.State.WakeAt(0), "the reminder, then the deadline, come next")
	assert.Empty(t, d.Effects)

	d, err = Decide(d.State, Event{Op: protocol.OpUndelete, By: "alice"}, in)
	require.NoError(t, err)
	assert.Equal(t, in.Now, d.State.WakeAt(0), "undeleted, the lock rolls again at once")
	d, err = Decide(d.State, Event{Op: OpWakeUp}, in)
	require.NoError(t, err)
	require.Equal(t, []EffectKind{EffectLock}, kinds(d.Effects))
	assert.True(t, d.Effects[0].LockUntil.IsZero(), "the rolling lock")
	assert.NoError(t, Runnable(d.State, d.Effects[0], testItem))
}

func TestADeleteTheVaultCannotAnswerWaitsAndIsAskedAgain(t *testing.T) {
	st := testState(protocol.ProtectionStopped)
	busy := &protocol.VaultAnswer{Unavailable: "vault vault1 could not be asked: deadline exceeded"}
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "alice", Input: []byte(`{"requestedBy":"alice"}`)}, Inputs{Item: testItem, Now: testNow, Vault: busy})
	require.NoError(t, err, "waiting is not a refusal")
	require.NotNil(t, waitingDelete(d.State))
	assert.Equal(t, protocol.ProtectionStopped, d.State.ProtectionState)
	assert.Equal(t, testNow.Add(5*time.Second), d.State.WakeAt(0), "asked again soon")
	assert.Equal(t, protocol.OutcomeWaiting, d.Audit.Outcome)

	later := testNow.Add(5 * time.Second)
	d, err = Decide(d.State, Event{Op: OpWakeUp}, Inputs{Item: testItem, Now: later})
	require.NoError(t, err)
	require.Len(t, d.Next, 1)
	assert.Equal(t, Event{Op: protocol.OpDelete, By: "alice", Input: []byte(`{"requestedBy":"alice"}`), Retry: true}, d.Next[0])
	assert.True(t, d.State.WakeAt(0).IsZero(), "not asked twice at once")

	again, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: busy})
	require.NoError(t, err)
	assert.Equal(t, 2, waitingDelete(again.State).Attempts)
	assert.Equal(t, later.Add(10*time.Second), waitingDelete(again.State).RetryAt, "backing off")
	assert.Nil(t, again.Audit, "the audit said it once")

	// A new delete sent meanwhile replaces the waiting one, from now: its
	// item received it now.
	replaced, err := Decide(again.State, Event{Op: protocol.OpDelete, By: "bob"}, Inputs{Item: testItem, Now: later, Vault: busy})
	require.NoError(t, err)
	assert.Equal(t, Waiting{Op: protocol.OpDelete, By: "bob", Since: later, Attempts: 1, RetryAt: later.Add(5 * time.Second), Why: busy.Unavailable}, *waitingDelete(replaced.State))

	refused, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: &protocol.VaultAnswer{Refusal: "a rule says no"}})
	require.NoError(t, err, "no one waits for a retry's answer: the refusal is audited")
	assert.Nil(t, waitingDelete(refused.State))
	assert.Equal(t, protocol.OutcomeRejected, refused.Audit.Outcome)
	assert.Equal(t, protocol.ProtectionStopped, refused.State.ProtectionState)

	done, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: testVault})
	require.NoError(t, err)
	assert.Nil(t, waitingDelete(done.State))
	assert.Equal(t, protocol.SoftDeleted, done.State.ProtectionState)
	assert.Equal(t, later.Add(14*day), done.State.Deadline, "the window counts from the vault's answer")
}

// TestRetriesBackOffToAMinuteWhenBusyAndTwoWhenHeld: a vault that cannot
// answer is asked again at most a minute later; a delete its guard holds
// waits for a person, and asks at most every two minutes meanwhile.
func TestRetriesBackOffToAMinuteWhenBusyAndTwoWhenHeld(t *testing.T) {
	cases := map[string]struct {
		answer protocol.VaultAnswer
		most   time.Duration
	}{
		"busy": {protocol.VaultAnswer{Unavailable: "vault vault1 could not be asked"}, time.Minute},
		"held": {protocol.VaultAnswer{Held: "vault vault1 holds deletes since 2026-12-01T10:00:00Z"}, 2 * time.Minute},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			st, now := testState(protocol.Protected), testNow
			var gaps []time.Duration
			for range 8 {
				d, err := Decide(st, Event{Op: protocol.OpDelete, By: "alice", Retry: waitingDelete(st) != nil}, Inputs{Item: testItem, Now: now, Vault: &c.answer})
				require.NoError(t, err)
				require.NotNil(t, waitingDelete(d.State))
				assert.Equal(t, c.answer.Unavailable+c.answer.Held, waitingDelete(d.State).Why)
				gaps = append(gaps, waitingDelete(d.State).RetryAt.Sub(now))
				st, now = d.State, waitingDelete(d.State).RetryAt
			}
			assert.Equal(t, 5*time.Second, gaps[0])
			assert.Equal(t, c.most, gaps[len(gaps)-1], "%v", gaps)
			assert.True(t, slices.IsSorted(gaps), "%v", gaps)
		})
	}
}

// TestAnApprovalTheVaultCannotConfirmYetWaitsAndIsAskedAgain: an approval
// is refused only by a rule; one whose vault is busy waits at the item,
// visibly, and is confirmed at a later try.
func TestAnApprovalTheVaultCannotConfirmYetWaitsAndIsAskedAgain(t *testing.T) {
	st := testState(protocol.ProtectionStopped)
	request := &protocol.MuaRequest{RequestID: "r-1", State: protocol.RequestPending, Detail: "pending approval by bob"}
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, Inputs{Item: testItem, Now: testNow, Vault: &protocol.VaultAnswer{Pending: request}})
	require.NoError(t, err)
	busy := &protocol.VaultAnswer{Unavailable: "vault vault1 could not be asked: deadline exceeded"}
	approval := []byte(`{"requestId":"r-1","requestedBy":"bob"}`)
	d, err = Decide(d.State, Event{Op: protocol.OpApproved, RequestID: "r-1", By: "bob", Input: approval}, Inputs{Item: testItem, Now: testNow, Vault: busy})
	require.NoError(t, err, "waiting is not a refusal")
	assert.Equal(t, protocol.ProtectionStopped, d.State.ProtectionState)
	require.Len(t, d.State.AwaitingApproval, 1)
	c := waitingApproval(d.State, "r-1")
	require.NotNil(t, c)
	assert.Equal(t, busy.Unavailable, c.Why)
	assert.Equal(t, testNow.Add(5*time.Second), d.State.WakeAt(0), "asked again soon")
	assert.Equal(t, protocol.OutcomeWaiting, d.Audit.Outcome)

	later := testNow.Add(5 * time.Second)
	d, err = Decide(d.State, Event{Op: OpWakeUp}, Inputs{Item: testItem, Now: later})
	require.NoError(t, err)
	require.Len(t, d.Next, 1)
	assert.Equal(t, Event{Op: protocol.OpApproved, RequestID: "r-1", By: "bob", Input: approval, Retry: true}, d.Next[0])
	assert.True(t, d.State.WakeAt(0).IsZero(), "not asked twice at once")

	again, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: busy})
	require.NoError(t, err)
	assert.Equal(t, 2, waitingApproval(again.State, "r-1").Attempts)
	assert.Nil(t, again.Audit, "the audit said it once")

	confirmed := *testVault
	confirmed.RequestedBy, confirmed.Reason = "mallory", "approved by bob (request r-1)"
	done, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: &confirmed})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, done.State.ProtectionState)
	assert.Empty(t, done.State.AwaitingApproval)

	refused, err := Decide(d.State, d.Next[0], Inputs{Item: testItem, Now: later, Vault: &protocol.VaultAnswer{Refusal: "request r-1 was rejected by alice"}})
	require.NoError(t, err, "no one waits for a retry's answer: the refusal is audited")
	assert.Equal(t, protocol.OutcomeRejected, refused.Audit.Outcome)
	assert.Nil(t, waitingApproval(refused.State, "r-1"), "not asked again")
	assert.Equal(t, protocol.ProtectionStopped, refused.State.ProtectionState)

	// Refused by the item itself (deleted another way meanwhile): audited,
	// and not shown as waiting any more.
	moved := d.State
	moved.ProtectionState, moved.Deadline = protocol.SoftDeleted, later.Add(14*day)
	gone, err := Decide(moved, d.Next[0], Inputs{Item: testItem, Now: later})
	require.NoError(t, err)
	assert.Equal(t, protocol.OutcomeRejected, gone.Audit.Outcome)
	assert.Contains(t, gone.Audit.Detail, "request r-1 has nothing to delete")
	assert.Nil(t, waitingApproval(gone.State, "r-1"))
}

// waitingDelete is the delete waiting for the vault in st, or nil.
func waitingDelete(st ItemState) *Waiting { return waitingFor(st, protocol.OpDelete, "") }

// waitingApproval is the approval of request id waiting for the vault in
// st, or nil.
func waitingApproval(st ItemState, id string) *Waiting {
	return waitingFor(st, protocol.OpApproved, id)
}

func waitingFor(st ItemState, op protocol.Operation, id string) *Waiting {
	if i := st.waiting(op, id); i >= 0 {
		return &st.Waiting[i]
	}
	return nil
}

// TestNothingWaitsForTheVaultOnceTheItemIsDeleted: an approval or a delete
// left waiting when another delete went through waits no more, and one
// retried that is no longer awaited is let go, not kept for ever.
func TestNothingWaitsForTheVaultOnceTheItemIsDeleted(t *testing.T) {
	st := testState(protocol.ProtectionStopped)
	for _, id := range []string{"r-1", "r-2"} {
		d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, Inputs{Item: testItem, Now: testNow,
			Vault: &protocol.VaultAnswer{Pending: &protocol.MuaRequest{RequestID: id, State: protocol.RequestPending}}})
		require.NoError(t, err)
		st = d.State
	}
	busy := &protocol.VaultAnswer{Unavailable: "vault vault1 could not be asked"}
	d, err := Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1", By: "bob"}, Inputs{Item: testItem, Now: testNow, Vault: busy})
	require.NoError(t, err)
	require.NotNil(t, waitingApproval(d.State, "r-1"))
	confirmed := *testVault
	confirmed.RequestedBy = "mallory"
	d, err = Decide(d.State, Event{Op: protocol.OpApproved, RequestID: "r-2", By: "bob"}, Inputs{Item: testItem, Now: testNow, Vault: &confirmed})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState)
	assert.Empty(t, d.State.Waiting, "r-1's approval waits for nothing now")

	// Undeleted, then r-1's approval retried from an older state: no
	// longer awaited, it is audited and let go.
	left := st
	left.Waiting = []Waiting{{Op: protocol.OpApproved, RequestID: "r-9", By: "bob", Since: testNow, Attempts: 1}}
	d, err = Decide(left, Event{Op: protocol.OpApproved, RequestID: "r-9", By: "bob", Retry: true}, Inputs{Item: testItem, Now: testNow})
	require.NoError(t, err, "no one waits for a retry's answer")
	assert.Nil(t, waitingApproval(d.State, "r-9"))
	assert.Equal(t, protocol.OutcomeRejected, d.Audit.Outcome)
}
