package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecideEveryStateAgainstEveryOperation covers the whole table of
// docs/contract.md section 3, plus the internal states and clock events.
func TestDecideEveryStateAgainstEveryOperation(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	// The deadline is due now, so the window-ends column purges; the time
	// before it has its own test below.
	deadline := now
	f := Facts{ItemID: "vm1", Now: now, SoftDeleteRetention: 14 * 24 * time.Hour, Deadline: deadline}

	type want struct {
		next                          State
		noop, backup                  bool
		collect, newDeadline, refused bool
		refusal                       string
	}
	cases := map[State]map[Operation]want{
		Protected: {
			OpStop:            {next: ProtectionStopped},
			OpDelete:          {next: SoftDeleted, newDeadline: true},
			OpUndelete:        {refused: true, refusal: "item vm1 is not soft-deleted"},
			OpResume:          {next: Protected, noop: true},
			OpBackupNow:       {next: Protected, backup: true},
			OpRestore:         {next: Protected},
			OpScheduledBackup: {next: Protected, backup: true},
			OpWindowEnds:      {next: Protected, noop: true},
			OpPurgeDone:       {next: Protected, noop: true},
		},
		ProtectionStopped: {
			OpStop:            {next: ProtectionStopped, noop: true},
			OpDelete:          {next: SoftDeleted, newDeadline: true},
			OpUndelete:        {refused: true, refusal: "item vm1 is not soft-deleted"},
			OpResume:          {next: Protected, collect: true},
			OpBackupNow:       {refused: true, refusal: "resume protection before taking a backup"},
			OpRestore:         {next: ProtectionStopped},
			OpScheduledBackup: {next: ProtectionStopped, noop: true},
			OpWindowEnds:      {next: ProtectionStopped, noop: true},
			OpPurgeDone:       {next: ProtectionStopped, noop: true},
		},
		SoftDeleted: {
			OpStop:            {refused: true, refusal: "undelete it"},
			OpDelete:          {next: SoftDeleted, noop: true},
			OpUndelete:        {next: ProtectionStopped},
			OpResume:          {refused: true, refusal: "undelete it before resuming"},
			OpBackupNow:       {refused: true, refusal: "undelete it and resume protection"},
			OpRestore:         {refused: true, refusal: "item vm1 is soft-deleted: undelete it before restoring"},
			OpScheduledBackup: {next: SoftDeleted, noop: true},
			OpWindowEnds:      {next: Purging},
			OpPurgeDone:       {next: SoftDeleted, noop: true},
		},
		Purging: {
			OpStop:            {refused: true, refusal: "being purged"},
			OpDelete:          {refused: true, refusal: "being purged"},
			OpUndelete:        {refused: true, refusal: "can no longer be recovered"},
			OpResume:          {refused: true, refusal: "being purged"},
			OpBackupNow:       {refused: true, refusal: "being purged"},
			OpRestore:         {refused: true, refusal: "being purged"},
			OpScheduledBackup: {next: Purging, noop: true},
			OpWindowEnds:      {next: Purging, noop: true},
			OpPurgeDone:       {next: Purged},
		},
		Purged: {
			OpStop:            {refused: true, refusal: "has been purged"},
			OpDelete:          {refused: true, refusal: "has been purged"},
			OpUndelete:        {refused: true, refusal: "has been purged"},
			OpResume:          {refused: true, refusal: "has been purged"},
			OpBackupNow:       {refused: true, refusal: "has been purged"},
			OpRestore:         {refused: true, refusal: "has been purged"},
			OpScheduledBackup: {next: Purged, noop: true},
			OpWindowEnds:      {next: Purged, noop: true},
			OpPurgeDone:       {next: Purged, noop: true},
		},
	}
	ops := []Operation{OpStop, OpDelete, OpUndelete, OpResume, OpBackupNow, OpRestore, OpScheduledBackup, OpWindowEnds, OpPurgeDone}
	for _, s := range []State{Protected, ProtectionStopped, SoftDeleted, Purging, Purged} {
		for _, op := range ops {
			w, ok := cases[s][op]
			require.True(t, ok, "no expectation for %s/%s", s, op)
			t.Run(string(s)+"/"+string(op), func(t *testing.T) {
				d, err := Decide(s, op, f)
				if w.refused {
					var r *Refusal
					require.True(t, errors.As(err, &r), "want a refusal, got %v", err)
					assert.Contains(t, r.Message, w.refusal)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, w.next, d.Next)
				assert.Equal(t, w.noop, d.NoOp, "no-op")
				assert.Equal(t, w.backup, d.Backup, "backup")
				assert.Equal(t, w.collect, d.CollectGarbage, "garbage collection")
				if w.newDeadline {
					assert.Equal(t, now.Add(14*24*time.Hour), d.Deadline)
				} else {
					assert.True(t, d.Deadline.IsZero(), "deadline must not move, got %v", d.Deadline)
				}
			})
		}
	}
}

func TestWindowEndingBeforeTheDeadlineDoesNotPurge(t *testing.T) {
	deadline := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	d, err := Decide(SoftDeleted, OpWindowEnds, Facts{ItemID: "vm1", Now: deadline.Add(-time.Millisecond), Deadline: deadline})
	require.NoError(t, err)
	assert.Equal(t, SoftDeleted, d.Next, "not purged a millisecond early")
	d, err = Decide(SoftDeleted, OpWindowEnds, Facts{ItemID: "vm1", Now: deadline, Deadline: deadline})
	require.NoError(t, err)
	assert.Equal(t, Purging, d.Next, "due exactly at the deadline")
}

func TestUnknownOperationIsRefused(t *testing.T) {
	_, err := Decide(Protected, Operation("format"), Facts{ItemID: "vm1"})
	assert.ErrorContains(t, err, `operation "format" is not known`)
}

func TestVisibleStateHidesPurging(t *testing.T) {
	assert.Equal(t, SoftDeleted, VisibleState(Purging))
	assert.Equal(t, Purged, VisibleState(Purged))
}

// TestConsoleOffersOnlyWhatChangesTheItem: an action the state forbids, or
// one that would do nothing, is not offered.
func TestConsoleOffersOnlyWhatChangesTheItem(t *testing.T) {
	for _, c := range []struct {
		state State
		want  []Operation
	}{
		{Protected, []Operation{OpBackupNow, OpStop, OpDelete, OpRestore}},
		{ProtectionStopped, []Operation{OpDelete, OpResume, OpRestore}},
		{SoftDeleted, []Operation{OpUndelete}},
		{Purged, nil},
	} {
		assert.Equal(t, c.want, Offered(c.state), "state %s", c.state)
	}
}
