package item_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/internal/storetest"
	"recoveryvault/internal/treediff"
	"recoveryvault/store"
	. "recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

const day = 24 * time.Hour

type (
	activityInfo = activity.Info
	ctxT         = context.Context
)

type ItemSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env    *testsuite.TestWorkflowEnvironment
	store  *store.Store
	source string
	// timers records what the environment did to each timer, by ID.
	canceled, firedTimers []string
	canceledAt            []time.Time
	purges                int
	purgeTime             time.Time
	updates               int
	alerts                []protocol.Alert
	// vaultSettings and vault are the item's vault (askVault); no
	// settings is a vault that does not run.
	vaultSettings    protocol.SoftDeleteSettings
	vault            vault.VaultState
	approvalRequests []protocol.ItemDeleteRequest
	confirmations    int
	// heldBefore is, for each ask of the vault, whether the item said the
	// vault held the delete when last asked.
	heldBefore []bool
}

func TestItemSuite(t *testing.T) { suite.Run(t, new(ItemSuite)) }

func (s *ItemSuite) SetupTest() { s.reset() }

func (s *ItemSuite) SetupSubTest() { s.reset() }

func (s *ItemSuite) reset() {
	s.env = s.newItemEnv()
	s.store = storetest.New(s.T())
	s.source = writeSource(s.T())
	s.env.RegisterActivity(&activities.Activities{Store: s.store, Client: ourRuns{}})
	s.mockVault(protocol.DefaultSoftDeleteSettings())
	s.canceled, s.canceledAt, s.firedTimers, s.purges, s.purgeTime = nil, nil, nil, 0, time.Time{}
	s.env.SetOnTimerCanceledListener(func(id string) {
		s.canceled = append(s.canceled, id)
		s.canceledAt = append(s.canceledAt, s.env.Now())
	})
	s.env.SetOnTimerFiredListener(func(id string) { s.firedTimers = append(s.firedTimers, id) })
	s.env.SetOnActivityStartedListener(func(info *activityInfo, _ ctxT, _ converter.EncodedValues) {
		if info.ActivityType.Name == protocol.ActivityPurge {
			s.purges++
			s.purgeTime = s.env.Now()
		}
	})
}

// newItemEnv is a test environment that starts items under their own ID.
func (s *ItemSuite) newItemEnv() *testsuite.TestWorkflowEnvironment {
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: protocol.WorkflowID("vault1", "vm1")})
	return env
}

// mockVault stands in for the vault an item talks to:
// a delete gets the window of settings vs (or waits for approval, or is
// confirmed against the approved requests), and alerts are recorded as
// delivered. The store's activities are the real ones.
func (s *ItemSuite) mockVault(vs protocol.SoftDeleteSettings) {
	var a *activities.Activities
	s.alerts = nil
	s.vaultSettings, s.vault, s.approvalRequests, s.confirmations, s.heldBefore = vs, vault.VaultState{}, nil, 0, nil
	deliver := func(alerts ...protocol.Alert) {
		for _, al := range alerts {
			al.Time = s.env.Now().UTC() // delivery time
			s.alerts = append(s.alerts, al)
		}
	}
	report := func(in ReportInput) (ReportResult, error) {
		s.Equal("vault1", in.VaultID)
		deliver(in.Alerts...)
		if s.vaultSettings.State == "" {
			return ReportResult{}, nil
		}
		settings := s.vaultSettings
		return ReportResult{Settings: &settings}, nil
	}
	s.env.OnActivity(a.Report, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in ReportInput) (ReportResult, error) { return report(in) }).Maybe()
	// The run an item continues from is its own.
	s.env.OnActivity(a.DescribeRun, mock.Anything, mock.Anything, mock.Anything).Return(
		protocol.RunInfo{WorkflowType: protocol.WorkflowType, TaskQueue: protocol.TaskQueue, ContinuedAsNew: true}, nil).Maybe()
	s.env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(
		func(ctx ctxT, in PurgeInput) error {
			if err := s.store.Purge(ctx, in.VaultID, in.ItemID, nil); err != nil {
				return err
			}
			_, err := report(in.Report)
			return err
		}).Maybe()
	s.env.OnActivity(a.AskVault, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in AskVaultInput) (protocol.VaultAnswer, error) {
			s.Equal("vault1", in.VaultID)
			answer, err := s.askVault(in)
			if answer.Alert != nil {
				deliver(*answer.Alert)
			}
			return answer, err
		}).Maybe()
}

// askVault answers an item's delete as its vault does, by the vault's own
// rules (vault.Decide) over the vault the test sets up: its soft-delete
// settings (none: the vault does not run), multi-user authorization,
// allowed signers, requests and hold. The checks that need a server (that
// the delete comes from the item) pass here; a real server runs them in
// the tests of worker/.
func (s *ItemSuite) askVault(in AskVaultInput) (protocol.VaultAnswer, error) {
	s.heldBefore = append(s.heldBefore, in.HeldBefore)
	if s.vaultSettings.State == "" {
		return protocol.VaultAnswer{}, temporal.NewNonRetryableApplicationError("vault vault1 is not running (Terminated)", protocol.ErrTypeNoVault, nil)
	}
	if in.Request.RequestID != "" {
		s.confirmations++
	}
	s.vault.ID, s.vault.SoftDelete = "vault1", s.vaultSettings
	now := s.env.Now()
	d, err := vault.Decide(s.vault, vault.Command{Op: protocol.UpdateItemDelete, Payload: in.Request},
		vault.Facts{Now: now, Count: &vault.ItemCount{HoldingData: 1, At: now}, Caller: &vault.Check{}, Item: &vault.Check{}})
	s.vault = d.State
	if err != nil {
		return protocol.VaultAnswer{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeRefused, nil)
	}
	if d.Answer.Pending != nil {
		s.approvalRequests = append(s.approvalRequests, in.Request)
	}
	return *d.Answer, nil
}

// muaOn is multi-user authorization with alice and bob as approvers.
var muaOn = vault.MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"}

// writeSource makes a small tree to back up.
func writeSource(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "vm1")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "disks", "empty"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"cpu": 2}`), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "disks", "os.img"), []byte(strings.Repeat("block", 1000)), 0o600))
	return dir
}

func (s *ItemSuite) input() ItemInput {
	return ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: s.source, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
}

// at runs f when the workflow has lived for d.
func (s *ItemSuite) at(d time.Duration, f func()) { s.env.RegisterDelayedCallback(f, d) }

func (s *ItemSuite) status() Status {
	v, err := s.env.QueryWorkflow(protocol.QueryStatus)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st
}

// update sends an update and records its answer in *got and *rejected.
func (s *ItemSuite) update(name string, arg any, got *Status, failed *error) {
	s.updates++
	s.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, s.updates), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { *failed = err },
		OnComplete: func(v any, err error) {
			if err != nil {
				*failed = err
				return
			}
			if st, ok := v.(Status); ok {
				*got = st
			}
		},
	}, arg)
}

// mustUpdate sends an update that must succeed.
func (s *ItemSuite) mustUpdate(name string, arg any) {
	var st Status
	var err error
	s.update(name, arg, &st, &err)
	s.Require().NoError(err, "update %s", name)
}

func (s *ItemSuite) end() { s.env.CancelWorkflow() }

func (s *ItemSuite) storedPoints() []string {
	ids, err := s.store.List(context.Background(), "vault1", "vm1")
	s.Require().NoError(err)
	return ids
}

func (s *ItemSuite) TestProtectTakesAFirstBackupAndThenOneEveryPeriod() {
	s.at(3*day+time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.Len(st.RecoveryPoints, 4, "the first backup at protect, then one a day")
		s.Len(s.storedPoints(), 4)
		s.False(st.IsScheduledForDeferredDelete)
		s.Empty(st.DeferredDeleteTimeInUTC)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

func (s *ItemSuite) TestProtectWithMissingSourceIsRefusedAndStoresNothing() {
	in := s.input()
	in.SourcePath = filepath.Join(s.T().TempDir(), "does-not-exist")
	s.env.ExecuteWorkflow(BackupItem, in)
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	s.Contains(err.Error(), "does-not-exist is not a directory the worker can read")
	s.Empty(s.storedPoints())
}

// TestARefusedProtectPublishesNothing: the first backup comes before the
// item shows itself, so an item refused there is in no list, and an
// update sent meanwhile is not carried out.
func (s *ItemSuite) TestARefusedProtectPublishesNothing() {
	in := s.input()
	in.SourcePath = filepath.Join(s.T().TempDir(), "does-not-exist")
	upserts := 0
	s.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(mock.Arguments) { upserts++ }).Return(nil).Maybe()
	var st Status
	var failed error
	s.env.RegisterDelayedCallback(func() { s.update(protocol.UpdateStop, protocol.Request{RequestedBy: "alice"}, &st, &failed) }, 0)
	s.env.ExecuteWorkflow(BackupItem, in)
	s.ErrorContains(s.env.GetWorkflowError(), "does-not-exist is not a directory the worker can read")
	s.Zero(upserts, "no search attribute was set")
	s.Empty(st.ProtectionState, "the stop was not carried out")
}

func (s *ItemSuite) TestInvalidPolicyIsRefusedAtStart() {
	in := s.input()
	in.Policy.Frequency = "10s"
	s.env.ExecuteWorkflow(BackupItem, in)
	s.ErrorContains(s.env.GetWorkflowError(), "policy.frequency 10s is too short")
	s.Empty(s.storedPoints())
}

// TestTransitionTable drives every cell of docs/contract.md section 3 that a user can
// reach, once through an update and once through a signal.
func (s *ItemSuite) TestTransitionTable() {
	type cell struct {
		from, to protocol.State
		op       protocol.Operation
		refusal  string
		points   int // recovery points expected after the operation
	}
	cells := []cell{
		{protocol.Protected, protocol.ProtectionStopped, protocol.OpStop, "", 1},
		{protocol.Protected, protocol.SoftDeleted, protocol.OpDelete, "", 1},
		{protocol.Protected, protocol.Protected, protocol.OpUndelete, "is not soft-deleted", 1},
		{protocol.Protected, protocol.Protected, protocol.OpResume, "", 1},
		{protocol.Protected, protocol.Protected, protocol.OpBackupNow, "", 2},
		{protocol.Protected, protocol.Protected, protocol.OpRestore, "", 1},
		{protocol.ProtectionStopped, protocol.ProtectionStopped, protocol.OpStop, "", 1},
		{protocol.ProtectionStopped, protocol.SoftDeleted, protocol.OpDelete, "", 1},
		{protocol.ProtectionStopped, protocol.ProtectionStopped, protocol.OpUndelete, "is not soft-deleted", 1},
		{protocol.ProtectionStopped, protocol.Protected, protocol.OpResume, "", 1},
		{protocol.ProtectionStopped, protocol.ProtectionStopped, protocol.OpBackupNow, "resume protection before taking a backup", 1},
		{protocol.ProtectionStopped, protocol.ProtectionStopped, protocol.OpRestore, "", 1},
		{protocol.SoftDeleted, protocol.SoftDeleted, protocol.OpStop, "undelete it", 1},
		{protocol.SoftDeleted, protocol.SoftDeleted, protocol.OpDelete, "", 1},
		{protocol.SoftDeleted, protocol.ProtectionStopped, protocol.OpUndelete, "", 1},
		{protocol.SoftDeleted, protocol.SoftDeleted, protocol.OpResume, "undelete it before resuming", 1},
		{protocol.SoftDeleted, protocol.SoftDeleted, protocol.OpBackupNow, "undelete it and resume protection", 1},
		{protocol.SoftDeleted, protocol.SoftDeleted, protocol.OpRestore, "item vm1 is soft-deleted: undelete it before restoring", 1},
	}
	reach := map[protocol.State][]string{protocol.Protected: nil, protocol.ProtectionStopped: {"stop"}, protocol.SoftDeleted: {"delete"}}
	for _, via := range []string{"update", "signal"} {
		for _, c := range cells {
			if via == "signal" && (c.op == protocol.OpBackupNow || c.op == protocol.OpRestore) {
				continue
			}
			s.Run(via+"/"+string(c.from)+"/"+string(c.op), func() {
				target := filepath.Join(s.T().TempDir(), "restored")
				var rpID string
				s.at(time.Hour, func() {
					rpID = s.status().RecoveryPoints[0].ID
					for _, name := range reach[c.from] {
						s.mustUpdate(name, protocol.Request{RequestedBy: "setup"})
					}
				})
				var got Status
				var failed error
				s.at(2*time.Hour, func() {
					s.Require().Equal(c.from, s.status().ProtectionState)
					var arg any = protocol.Request{RequestedBy: "alice", Reason: "table"}
					if c.op == protocol.OpRestore {
						arg = protocol.RestoreRequest{RecoveryPointID: rpID, TargetPath: target, RequestedBy: "alice"}
					}
					if via == "update" {
						s.update(string(c.op), arg, &got, &failed)
					} else {
						s.env.SignalWorkflow(string(c.op), arg)
					}
				})
				s.at(3*time.Hour, func() {
					st := s.status()
					s.Equal(c.to, st.ProtectionState)
					s.Len(st.RecoveryPoints, c.points)
					s.Len(s.storedPoints(), c.points, "every recovery point is still in the store")
					last := st.Audit[len(st.Audit)-1]
					switch {
					case c.refusal != "" && via == "update":
						s.ErrorContains(failed, c.refusal)
						for _, e := range st.Audit {
							s.NotEqual("alice", e.RequestedBy, "a refused update leaves no trace")
						}
					case c.refusal != "":
						s.Equal(protocol.OutcomeRejected, last.Outcome)
						s.Contains(last.Detail, c.refusal)
					default:
						s.NoError(failed)
						s.Equal("alice", last.RequestedBy)
						s.Equal(protocol.OutcomeAccepted, last.Outcome)
						if via == "update" {
							s.Equal(c.to, got.ProtectionState, "the update returns the new status")
						}
					}
					if c.op == protocol.OpRestore && c.refusal == "" {
						assertSameTree(s.T(), s.source, target)
					}
					if c.to == protocol.SoftDeleted {
						s.True(st.IsScheduledForDeferredDelete)
						s.NotEmpty(st.DeferredDeleteTimeInUTC)
					}
					s.end()
				})
				s.env.ExecuteWorkflow(BackupItem, s.input())
				s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
			})
		}
	}
}

func (s *ItemSuite) TestPurgeHappensExactlyAtTheDeadline() {
	deleteAt := 2 * time.Hour
	var deadline time.Time
	s.at(deleteAt, func() {
		s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory", Reason: "ransom"})
	})
	s.at(deleteAt+time.Minute, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState)
		s.Equal(14, st.SoftDeleteRetentionDays)
		deleted := st.Audit[len(st.Audit)-1]
		s.Equal("delete", deleted.Operation)
		s.Equal("mallory", deleted.RequestedBy)
		deadline = deleted.Time.Add(14 * day)
		s.Equal(deadline.Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
		s.Equal("13d 23h 59m", st.DeferredDeleteTimeRemaining[:len("13d 23h 59m")])
	})
	s.at(deleteAt+14*day-time.Second, func() {
		s.Equal(protocol.SoftDeleted, s.status().ProtectionState, "still soft-deleted one second before")
		s.Len(s.storedPoints(), 1, "every byte still there")
		s.Zero(s.purges)
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())

	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(protocol.Purged, final.ProtectionState)
	s.Empty(final.RecoveryPoints)
	s.Equal(1, s.purges, "purged exactly once")
	s.True(deadline.Equal(s.purgeTime), "purged at the deadline %v, not at %v", deadline, s.purgeTime)
	s.Empty(s.storedPoints(), "no byte of the item is left in the store")
	last := final.Audit[len(final.Audit)-1]
	s.Equal("purgeDone", last.Operation)
	s.Contains(last.Detail, "1 recovery point destroyed")
}

func (s *ItemSuite) TestUndeleteOnDay13CancelsPurge() {
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) })
	var undeleteAt time.Time
	s.at(time.Hour+13*day, func() {
		undeleteAt = s.env.Now()
		s.mustUpdate(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(time.Hour+113*day, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState, "still stopped 100 days later")
		s.False(st.IsScheduledForDeferredDelete)
		s.Empty(st.DeferredDeleteTimeInUTC)
		s.Len(st.RecoveryPoints, 1)
		s.Len(s.storedPoints(), 1, "every recovery point intact, expired or not")
		s.Zero(s.purges)
		s.Contains(s.canceledAt, undeleteAt, "the undelete cancelled the purge timer")
		// A delete now starts a fresh 14 days.
		s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(time.Hour+113*day+time.Minute, func() {
		st := s.status()
		s.Equal(s.env.Now().Add(-time.Minute).Add(14*day).UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.Require().True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
	s.Equal(1, s.purges)
	s.Equal(time.Hour+127*day, s.purgeTime.Sub(s.startTime()).Round(time.Minute), "purged 14 days after the second delete")
}

// startTime is when the workflow started: its first audit entry.
func (s *ItemSuite) startTime() time.Time {
	v, err := s.env.QueryWorkflow(protocol.QueryStatus)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st.Audit[0].Time
}

func (s *ItemSuite) TestRepeatedDeleteDoesNotMoveTheDeadline() {
	var first string
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() { first = s.status().DeferredDeleteTimeInUTC })
	s.at(5*day, func() {
		var got Status
		var err error
		s.update(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}, &got, &err)
		s.NoError(err)
		s.env.SignalWorkflow(protocol.SignalDelete, nil)
	})
	s.at(6*day, func() {
		st := s.status()
		s.NotEmpty(first)
		s.Equal(first, st.DeferredDeleteTimeInUTC)
		s.Contains(st.Audit[len(st.Audit)-1].Detail, "does not move")
		s.Contains(st.Audit[len(st.Audit)-2].Detail, "does not move")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
	s.Zero(s.purges)
}

// TestGarbageCollectionRunsOnResumeOnly: points expire while stopped and
// soft-deleted, and survive until protection resumes.
func (s *ItemSuite) TestGarbageCollectionRunsOnResumeOnly() {
	in := s.input()
	in.Policy.RetentionDays = 2
	s.at(3*day+time.Hour, func() {
		st := s.status()
		s.Len(st.RecoveryPoints, 2, "daily backups kept two days: days 0 and 1 were collected")
		s.mustUpdate(protocol.UpdateStop, nil)
	})
	s.at(8*day, func() {
		s.Len(s.status().RecoveryPoints, 2, "no collection while stopped, though both expired")
		s.mustUpdate(protocol.UpdateDelete, nil)
	})
	s.at(12*day, func() {
		s.Len(s.status().RecoveryPoints, 2, "no collection while soft-deleted")
		s.Len(s.storedPoints(), 2)
		s.mustUpdate(protocol.UpdateUndelete, nil)
	})
	s.at(13*day, func() {
		s.Len(s.status().RecoveryPoints, 2, "undelete does not collect")
		s.mustUpdate(protocol.UpdateResume, protocol.Request{RequestedBy: "alice"})
	})
	s.at(13*day+time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.Len(st.RecoveryPoints, 1, "collected at resume, the newest point kept")
		s.Len(s.storedPoints(), 1)
		s.Equal("garbageCollection", st.Audit[len(st.Audit)-1].Operation)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, in)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestMalformedDeleteDoesNotBlockAValidUndelete: a delete with a JSON string
// is refused and recorded; the undelete after it is still served.
func (s *ItemSuite) TestMalformedDeleteDoesNotBlockAValidUndelete() {
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, nil) })
	var undeleteAt time.Time
	s.at(2*time.Hour, func() {
		undeleteAt = s.env.Now()
		s.env.SignalWorkflow(protocol.SignalDelete, "text")
		s.env.SignalWorkflow(protocol.SignalResume, map[string]any{"requestedBy": 7})
		s.env.SignalWorkflow(protocol.SignalUndelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState)
		var rejected []string
		for _, a := range st.Audit {
			if a.Outcome == protocol.OutcomeRejected {
				rejected = append(rejected, a.Operation+": "+a.Detail)
			}
		}
		s.Require().Len(rejected, 2)
		s.Contains(rejected[0], `delete: malformed signal, nothing changed: delete payload "text" is not a JSON object`)
		s.Contains(rejected[1], "resume: malformed signal")
		s.Contains(s.canceledAt, undeleteAt, "the undelete cancelled the purge timer")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

func (s *ItemSuite) TestSignalsWithNoPayloadAreAnonymousRequests() {
	s.at(time.Hour, func() { s.env.SignalWorkflow(protocol.SignalStop, nil) })
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState)
		last := st.Audit[len(st.Audit)-1]
		s.Equal("anonymous", last.RequestedBy)
		s.Equal(protocol.OutcomeAccepted, last.Outcome)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

func (s *ItemSuite) TestMalformedUpdateIsRefusedWithItsReason() {
	var failed error
	var got Status
	s.at(time.Hour, func() { s.update(protocol.UpdateDelete, "text", &got, &failed) })
	s.at(2*time.Hour, func() {
		s.ErrorContains(failed, "is not a JSON object")
		s.Equal(protocol.Protected, s.status().ProtectionState)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestUndeleteMeetingTheDeadlineInOneTaskKeepsTheData: the worker is behind;
// a delete and an undelete are buffered when the purge timer fires, and all
// three reach the workflow in one task. Keeping the data wins.
func (s *ItemSuite) TestUndeleteMeetingTheDeadlineInOneTaskKeepsTheData() {
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, nil) })
	s.at(time.Hour+14*day-time.Second, func() {
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"})
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalUndelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(time.Hour+15*day, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState)
		s.Len(s.storedPoints(), 1)
		s.Zero(s.purges, "no purge ran")
		s.NotEmpty(s.firedTimers, "the purge timer did fire, in the task that carried the undelete")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestContinueAsNewDuringTheWindowKeepsTheDeadline also checks that a signal
// sent just before the continue-as-new is not lost.
func (s *ItemSuite) TestContinueAsNewDuringTheWindowKeepsTheDeadline() {
	var deadline string
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() { deadline = s.status().DeferredDeleteTimeInUTC })
	s.at(5*day, func() {
		s.Require().NotEmpty(deadline)
		// Buffered with no workflow task: it meets the continue-as-new
		// decision in the next task.
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory", Reason: "again"})
	})
	s.at(5*day+time.Second, func() { s.env.SetContinueAsNewSuggested(true) })
	s.env.ExecuteWorkflow(BackupItem, s.input())
	next := s.continuedInput(s.env.GetWorkflowError())
	s.Equal(protocol.SoftDeleted, next.State.ProtectionState)
	s.Equal(deadline, next.State.Deadline.UTC().Format(time.RFC3339), "the deadline crosses continue-as-new unchanged")
	last := next.State.Audit[len(next.State.Audit)-1]
	s.Equal("again", strings.TrimPrefix(last.Detail[strings.LastIndex(last.Detail, "reason: "):], "reason: "),
		"the signal sent just before continue-as-new was handled")

	// The new run purges at the original deadline, not a fresh window later.
	startNew := s.env.Now()
	s.reset()
	s.env.SetStartTime(startNew)
	s.env.SetContinuedExecutionRunID("previous-run")
	s.env.ExecuteWorkflow(BackupItem, next)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.purges)
	s.Equal(deadline, s.purgeTime.UTC().Format(time.RFC3339))
}

func (s *ItemSuite) TestSignalJustBeforeContinueAsNewIsHandled() {
	s.at(2*day+time.Hour, func() {
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalStop, protocol.Request{RequestedBy: "alice"})
	})
	s.at(2*day+time.Hour+time.Second, func() { s.env.SetContinueAsNewSuggested(true) })
	s.env.ExecuteWorkflow(BackupItem, s.input())
	next := s.continuedInput(s.env.GetWorkflowError())
	s.Equal(protocol.ProtectionStopped, next.State.ProtectionState)
	last := next.State.Audit[len(next.State.Audit)-1]
	s.Equal("stop/alice/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
}

func (s *ItemSuite) continuedInput(err error) ItemInput {
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(err, &can), "want continue-as-new, got %v", err)
	var next ItemInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.State)
	return next
}

// TestTenYearsOfDailyBackupsKeepEachRunBounded runs an item for ten simulated
// years, run after run, and checks what each run does and carries.
func (s *ItemSuite) TestTenYearsOfDailyBackupsKeepEachRunBounded() {
	if testing.Short() {
		s.T().Skip("ten simulated years take a few seconds")
	}
	in := s.input()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(10, 0, 0)
	now := start
	runs, backups := 0, 0
	for now.Before(end) {
		s.env = s.newItemEnv()
		s.mockVault(protocol.DefaultSoftDeleteSettings())
		s.env.SetStartTime(now)
		if in.State != nil {
			s.env.SetContinuedExecutionRunID("previous-run")
		}
		perRun := 0
		var a *activities.Activities
		s.env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(
			func(_ ctxT, b BackupInput) (BackupResult, error) {
				perRun++
				// The test environment keeps no history length: a backup
				// adds about ten events on a real server.
				s.env.SetCurrentHistoryLength(10 * perRun)
				rp := b.Point
				rp.SizeBytes, rp.SHA256 = 10, "x"
				return BackupResult{Point: rp}, nil
			})
		s.env.OnActivity(a.Collect, mock.Anything, mock.Anything).Return(nil)
		s.env.ExecuteWorkflow(BackupItem, in)
		next := s.continuedInput(s.env.GetWorkflowError())
		runs++
		backups += perRun
		s.LessOrEqual(10*perRun, MaxHistoryLength+10, "a run ends once its history passes the bound")
		s.LessOrEqual(len(next.State.RecoveryPoints), 31, "only unexpired points are carried")
		s.LessOrEqual(len(next.State.Audit), protocol.MaxAuditEntries)
		size, err := json.Marshal(next)
		s.Require().NoError(err)
		s.Less(len(size), 64*1024, "the carried state stays small")
		in, now = next, s.env.Now()
	}
	s.GreaterOrEqual(backups, 3650)
	s.Greater(runs, 5)
	s.Equal(protocol.Protected, in.State.ProtectionState)
}

func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	diffs, err := treediff.Diff(want, got)
	require.NoError(t, err)
	require.Empty(t, diffs, "restored tree differs from the source")
}

// TestUndeleteAndDeleteInOneTaskPurgeAtTheNewDeadline: an undelete and a
// fresh delete applied before the loop runs again must re-arm the purge
// timer for the new deadline, never keep the old, earlier one.
func (s *ItemSuite) TestUndeleteAndDeleteInOneTaskPurgeAtTheNewDeadline() {
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, nil) })
	var redeleteAt time.Time
	s.at(5*day, func() {
		redeleteAt = s.env.Now()
		// The undelete signal waits in the buffer; the update's task carries
		// both, and the handler applies the earlier signal first.
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalUndelete, protocol.Request{RequestedBy: "alice"})
		s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	})
	s.at(time.Hour+14*day+time.Minute, func() {
		s.Equal(protocol.SoftDeleted, s.status().ProtectionState, "the first deadline no longer applies")
		s.Len(s.storedPoints(), 1)
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.purges)
	s.Equal(redeleteAt.Add(14*day), s.purgeTime, "purged 14 days after the second delete")
}

func (s *ItemSuite) TestStartInputCarryingStateIsRefused() {
	_, err := s.store.Backup(context.Background(), "vault1", "vm1", "rp-old", s.source, time.Time{}, nil)
	s.Require().NoError(err)
	in := s.input()
	in.State = &ItemState{ProtectionState: protocol.SoftDeleted}
	s.env.ExecuteWorkflow(BackupItem, in)
	s.ErrorContains(s.env.GetWorkflowError(), `"state" is carried only by the workflow's own continue-as-new`)
	s.Zero(s.purges)
	s.Equal([]string{"rp-old"}, s.storedPoints(), "data left by an earlier run is untouched")
}

// TestStateCarriedFromARunNotOursIsRefusedBeforeAnyEffect: after a
// terminate, a workflow of someone else's continues as new into the item
// with a soft-deleted state long past its deadline.
func (s *ItemSuite) TestStateCarriedFromARunNotOursIsRefusedBeforeAnyEffect() {
	_, err := s.store.Backup(context.Background(), "vault1", "vm1", "rp-old", s.source, time.Time{}, nil)
	s.Require().NoError(err)
	s.env = s.newItemEnv()
	s.env.RegisterActivity(&activities.Activities{Store: s.store, Client: ourRuns{}})
	var a *activities.Activities
	s.env.OnActivity(a.DescribeRun, mock.Anything, mock.Anything, "previous-run").Return(
		protocol.RunInfo{WorkflowType: "Forger", TaskQueue: "attacker", ContinuedAsNew: true}, nil).Once()
	var effects []string
	s.env.SetOnActivityStartedListener(func(info *activityInfo, _ ctxT, _ converter.EncodedValues) {
		if info.ActivityType.Name != protocol.ActivityDescribeRun {
			effects = append(effects, info.ActivityType.Name)
		}
	})
	s.env.SetContinuedExecutionRunID("previous-run")
	in := s.input()
	now := s.env.Now()
	in.State = &ItemState{ProtectionState: protocol.SoftDeleted, DeletedAt: now.Add(-15 * day), Deadline: now.Add(-day)}
	s.env.ExecuteWorkflow(BackupItem, in)
	s.ErrorContains(s.env.GetWorkflowError(), `carried state refused: the run it continues (previous-run) is a "Forger" on task queue "attacker"`)
	s.Empty(effects, "nothing ran")
	s.Equal([]string{"rp-old"}, s.storedPoints(), "the item's data is untouched")
}

// TestAMegabyteMessageFreezesNoItem: a delete signal whose reason is a
// megabyte is audited as malformed, cut, and changes nothing; an update
// over its bounds is refused; the item answers and backs up as before.
func (s *ItemSuite) TestAMegabyteMessageFreezesNoItem() {
	huge := strings.Repeat("x", 1100<<10)
	s.at(time.Hour, func() {
		s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory", Reason: huge})
	})
	var refusal error
	s.at(2*time.Hour, func() {
		var st Status
		s.update(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory", Reason: huge[:2<<10]}, &st, &refusal)
		s.mustUpdate(protocol.UpdateBackupNow, nil)
	})
	s.at(3*time.Hour, func() {
		s.ErrorContains(refusal, `"reason" of 2048 bytes is over its bound of 1024 bytes`)
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.Len(st.RecoveryPoints, 2, "it still backs up")
		for _, e := range st.Audit {
			s.LessOrEqual(len(e.Detail), protocol.MaxDetailBytes, "audit details are bounded")
		}
		malformed := st.Audit[slices.IndexFunc(st.Audit, func(e protocol.AuditEntry) bool { return e.Operation == "delete" })]
		s.Equal(protocol.OutcomeRejected, malformed.Outcome)
		s.Contains(malformed.Detail, "over its bound of 64 KiB")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

func (s *ItemSuite) TestAWorkflowIDThatIsNotTheItemsIsRefused() {
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "attacker-1"})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.ErrorContains(s.env.GetWorkflowError(), `workflow ID "attacker-1" does not match its input: start it with workflow ID "backup-item/vault1/vm1"`)
	s.Empty(s.storedPoints())
}

func (s *ItemSuite) TestContinuedRunWithoutADeadlineIsRefused() {
	s.env.SetContinuedExecutionRunID("previous-run")
	in := s.input()
	in.State = &ItemState{ProtectionState: protocol.SoftDeleted}
	s.env.ExecuteWorkflow(BackupItem, in)
	s.ErrorContains(s.env.GetWorkflowError(), "without a deadline")
	s.Zero(s.purges)
}

// TestStopSentAfterResumeInOneTaskStands: resume and stop arrive together;
// the stop stands and no expired point is collected.
func (s *ItemSuite) TestStopSentAfterResumeInOneTaskStands() {
	in := s.input()
	in.Policy.RetentionDays = 2
	s.at(3*day+time.Hour, func() { s.mustUpdate(protocol.UpdateStop, nil) })
	s.at(10*day, func() {
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalResume, protocol.Request{RequestedBy: "alice"})
		s.env.SignalWorkflow(protocol.SignalStop, protocol.Request{RequestedBy: "alice", Reason: "changed my mind"})
	})
	s.at(10*day+time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState)
		s.Len(st.RecoveryPoints, 2, "no collection")
		s.Len(s.storedPoints(), 2)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, in)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestSignalBeforeAnUpdateInOneTaskIsAppliedFirst: a delete signal that
// reached the workflow before a resume update is applied before it.
func (s *ItemSuite) TestSignalBeforeAnUpdateInOneTaskIsAppliedFirst() {
	var got Status
	var err error
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateStop, nil) })
	s.at(2*time.Hour, func() {
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"})
		s.update(protocol.UpdateResume, protocol.Request{RequestedBy: "alice"}, &got, &err)
	})
	s.at(3*time.Hour, func() {
		s.ErrorContains(err, "undelete it before resuming")
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState)
		s.Len(s.storedPoints(), 1)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestBackupQueuedBehindAnotherIsDroppedAfterAStop: a backupNow waiting
// for the store when protection is stopped takes no backup.
func (s *ItemSuite) TestBackupQueuedBehindAnotherIsDroppedAfterAStop() {
	var a *activities.Activities
	backups := 0
	var queued error
	s.env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(
		func(_ ctxT, b BackupInput) (BackupResult, error) {
			backups++
			if backups == 2 {
				// While this backupNow holds the store: another one queues, then a stop.
				var st Status
				s.update(protocol.UpdateBackupNow, protocol.Request{RequestedBy: "alice"}, &st, &queued)
				s.env.SignalWorkflow(protocol.SignalStop, protocol.Request{RequestedBy: "mallory"})
			}
			return BackupResult{Point: b.Point}, nil
		})
	s.env.OnActivity(a.Collect, mock.Anything, mock.Anything).Return(nil)
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateBackupNow, nil) })
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState)
		s.Equal(2, backups, "no backup after the stop")
		s.Len(st.RecoveryPoints, 2)
		s.ErrorContains(queued, "item vm1 has protection stopped: resume protection before taking a backup")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestDeleteWaitsForARunningCollection: points are collected only while
// Protected; a delete that lands during a collection is applied after it.
func (s *ItemSuite) TestDeleteWaitsForARunningCollection() {
	in := s.input()
	in.Policy.RetentionDays = 2
	resumed := false
	var a *activities.Activities
	s.env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(
		func(_ ctxT, b BackupInput) (BackupResult, error) { return BackupResult{Point: b.Point}, nil })
	s.env.OnActivity(a.Collect, mock.Anything, mock.Anything).Return(
		func(_ ctxT, _ CollectInput) error {
			if resumed {
				s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
			}
			return nil
		})
	s.at(day+time.Hour, func() { s.mustUpdate(protocol.UpdateStop, nil) })
	s.at(5*day, func() {
		resumed = true
		s.mustUpdate(protocol.UpdateResume, nil)
	})
	s.at(5*day+time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState)
		s.Len(st.RecoveryPoints, 1, "the expired point collected before the delete; the newest kept")
		var order []string
		for _, e := range st.Audit {
			order = append(order, e.Operation)
		}
		s.Equal([]string{"protect", "stop", "resume", "garbageCollection", "delete"}, order)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, in)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestSignalsAreServedWhileAnUpdateRunsAtContinueAsNew: continue-as-new
// waits for a running restore without holding up the signals.
func (s *ItemSuite) TestSignalsAreServedWhileAnUpdateRunsAtContinueAsNew() {
	var a *activities.Activities
	// The restore takes ten minutes of the workflow's clock.
	s.env.OnActivity(a.Restore, mock.Anything, mock.Anything).After(10*time.Minute).Return(RestoreResult{Files: 1}, nil)
	var rp string
	s.at(time.Hour, func() {
		rp = s.status().RecoveryPoints[0].ID
		var st Status
		var err error
		s.update(protocol.UpdateRestore, protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: "/restore/vm1"}, &st, &err)
	})
	s.at(time.Hour+time.Minute, func() {
		s.env.SetContinueAsNewSuggested(true)
		s.env.SignalWorkflow(protocol.SignalStop, protocol.Request{RequestedBy: "alice"})
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	next := s.continuedInput(s.env.GetWorkflowError())
	var order []string
	for _, e := range next.State.Audit {
		order = append(order, e.Operation)
	}
	s.Equal([]string{"protect", "stop", "restore"}, order, "the stop was served while the restore ran")
}

func (s *ItemSuite) TestAFloodOfMalformedSignalsKeepsTheDeleteInTheAudit() {
	s.at(time.Hour, func() { s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() {
		for range protocol.MaxAuditEntries {
			s.env.SignalWorkflow(protocol.SignalUndelete, "junk")
			s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"}) // no-ops
		}
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Len(st.Audit, protocol.MaxAuditEntries)
		s.Equal("delete", st.Audit[1].Operation)
		s.Equal("mallory", st.Audit[1].RequestedBy)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestAnUpdateAlreadyDoneByASignalIsAnsweredAsDone: an undelete signal and
// an undelete update in one task; the update's caller is told it is done.
func (s *ItemSuite) TestAnUpdateAlreadyDoneByASignalIsAnsweredAsDone() {
	var got Status
	var err error
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, nil) })
	s.at(2*time.Hour, func() {
		s.env.SignalWorkflowSkippingWorkflowTask(protocol.SignalUndelete, protocol.Request{RequestedBy: "bob"})
		s.update(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"}, &got, &err)
	})
	s.at(3*time.Hour, func() { s.end() })
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran until the test ended it")
	s.NoError(err)
	s.Equal(protocol.ProtectionStopped, got.ProtectionState, "the update was answered as done")
}

// How an item's delete takes its vault's settings, and its alerts.

func (s *ItemSuite) TestSoftDeleteDisabledPurgesAtOnce() {
	s.vaultSettings = protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14}
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "alice"}) })
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.Require().NoError(s.env.GetWorkflowError())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(protocol.Purged, final.ProtectionState)
	s.Equal(1, s.purges)
	s.Equal(time.Hour, s.purgeTime.Sub(final.Audit[0].Time).Round(time.Minute), "purged at the delete, with no window")
	s.Empty(s.storedPoints())
	s.Equal(protocol.AlertPurged, s.alerts[len(s.alerts)-1].Kind)
}

func (s *ItemSuite) TestTheVaultsRetentionAppliesAtTheDeleteAndLaterChangesDoNotShortenIt() {
	s.vaultSettings = protocol.SoftDeleteSettings{State: protocol.SoftDeleteEnabled, RetentionDays: 30}
	var deleted time.Time
	s.at(time.Hour, func() {
		deleted = s.env.Now()
		s.mustUpdate(protocol.UpdateDelete, nil)
	})
	s.at(2*time.Hour, func() {
		s.vaultSettings = protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14}
		s.mustUpdate(protocol.UpdateDelete, nil) // a repeated delete reads nothing and moves nothing
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(deleted.Add(30*day), s.purgeTime, "purged after the vault's 30 days, unchanged by the later setting")
}

func (s *ItemSuite) TestReminderTwoDaysBeforeThePurgeAndAlertsAlongTheWay() {
	var deleted time.Time
	s.at(time.Hour, func() {
		deleted = s.env.Now()
		s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.Require().NoError(s.env.GetWorkflowError())
	var kinds []string
	for _, a := range s.alerts {
		kinds = append(kinds, a.Kind)
	}
	s.Equal([]string{protocol.AlertSoftDeleted, protocol.AlertPurgeReminder, protocol.AlertPurged}, kinds)
	s.Equal("mallory", s.alerts[0].RequestedBy)
	s.Equal(deleted.Add(14*day).UTC(), s.alerts[0].PurgeTime, "the soft-delete alert carries the purge time")
	s.Equal(deleted.Add(12*day).UTC(), s.alerts[1].Time, "the reminder goes out two days before the purge")
	s.Equal(deleted.Add(14*day).UTC(), s.alerts[2].Time)
}

func (s *ItemSuite) TestNoReminderAfterAnUndelete() {
	var reminderTimers []string
	s.env.SetOnTimerScheduledListener(func(id string, d time.Duration) {
		if d == 12*day {
			reminderTimers = append(reminderTimers, id)
		}
	})
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, nil) })
	s.at(5*day, func() { s.mustUpdate(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"}) })
	s.at(20*day, func() {
		var kinds []string
		for _, a := range s.alerts {
			kinds = append(kinds, a.Kind)
		}
		s.Equal([]string{protocol.AlertSoftDeleted, protocol.AlertUndeleted}, kinds, "no reminder, no purge")
		s.Require().Len(reminderTimers, 1, "a reminder was scheduled 12 days out")
		s.Contains(s.canceled, reminderTimers[0], "the undelete cancelled the reminder timer")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestAResetVaultCannotWeakenWhatAnItemHasSeen: the item saw AlwaysOn with
// 180 days when it registered; the vault is then reset to Disabled (say by
// terminating and restarting it). A delete still soft-deletes for 180 days.
func (s *ItemSuite) TestAResetVaultCannotWeakenWhatAnItemHasSeen() {
	s.vaultSettings = protocol.SoftDeleteSettings{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 180}
	var deleted time.Time
	s.at(time.Hour, func() {
		s.vaultSettings = protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14}
	})
	s.at(2*time.Hour, func() {
		deleted = s.env.Now()
		s.mustUpdate(protocol.UpdateDelete, nil)
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState, "not purged at once")
		s.Equal(deleted.Add(180*day).UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
	s.Zero(s.purges)
}

// TestADeleteWaitsForAVaultThatCannotBeRead: failing closed without
// losing the delete. Whether it needs approval, or how long a window it
// gets, is unknown until the vault answers: the item keeps the delete,
// says so in its status, asks again, and applies it once the vault
// answers, with the window counted from then.
func (s *ItemSuite) TestADeleteWaitsForAVaultThatCannotBeRead() {
	s.vaultSettings = protocol.SoftDeleteSettings{} // no vault answers
	var got Status
	var err error
	var answered time.Time
	s.at(time.Hour, func() {
		s.update(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory", Reason: "burst"}, &got, &err)
	})
	s.at(time.Hour+time.Minute, func() {
		s.Require().NoError(err, "the delete is taken, to be applied when the vault answers")
		s.Require().NotNil(got.PendingDelete)
		s.Equal("mallory", got.PendingDelete.RequestedBy)
		s.Contains(got.PendingDelete.Why, "vault vault1 could not be asked how deletes of item vm1 are protected: vault vault1 is not running (Terminated)")
		s.Equal(protocol.Protected, got.ProtectionState, "nothing deleted yet")
		s.Equal("delete/mallory/"+protocol.OutcomeWaiting, s.lastAudit())
	})
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Require().NotNil(st.PendingDelete, "still waiting, asked again")
		s.Greater(st.PendingDelete.Attempts, 3)
		s.Equal(protocol.Protected, st.ProtectionState)
		waiting := 0
		for _, e := range st.Audit {
			if e.Outcome == protocol.OutcomeWaiting {
				waiting++
			}
		}
		s.Equal(1, waiting, "the audit says it once")
		s.False(st.PendingDelete.Held)
		s.NotContains(s.heldBefore, true, "a vault that could not be asked held nothing")
		s.vaultSettings = protocol.DefaultSoftDeleteSettings() // the vault answers again
		answered = s.env.Now()
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState, "applied once the vault answered")
		s.Nil(st.PendingDelete)
		deadline, _ := time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
		s.WithinDuration(answered.Add(14*day), deadline, protocol.MaxDeleteRetry, "the window counts from the answer")
		s.Equal("delete/mallory/accepted", s.lastAudit())
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
	s.Zero(s.purges)
}

// TestUndeleteCancelsADeleteWaitingForTheVault: a delete sent as a signal
// (whose sender hears nothing) waits the same way, and undelete cancels it.
func (s *ItemSuite) TestUndeleteCancelsADeleteWaitingForTheVault() {
	s.vaultSettings = protocol.SoftDeleteSettings{}
	s.at(time.Hour, func() { s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() {
		s.Require().NotNil(s.status().PendingDelete)
		s.mustUpdate(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})
		s.vaultSettings = protocol.DefaultSoftDeleteSettings()
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Nil(st.PendingDelete)
		s.Equal(protocol.Protected, st.ProtectionState, "the cancelled delete is not asked again")
		s.Equal("undelete/alice/accepted", s.lastAudit())
		s.Contains(st.Audit[len(st.Audit)-1].Detail, "still waiting for the vault, is cancelled")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
	s.Zero(s.purges)
}

// TestADeleteTheVaultHoldsWaitsForTheHoldToClear: under a mass-delete
// hold the delete waits, visibly, and goes through once the hold clears.
func (s *ItemSuite) TestADeleteTheVaultHoldsWaitsForTheHoldToClear() {
	s.vault.MassDelete.HeldSince = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s.at(time.Hour, func() { s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.Require().NotNil(st.PendingDelete)
		s.Contains(st.PendingDelete.Why, "reached its mass-delete guard")
		s.True(st.PendingDelete.Held)
		s.Require().Greater(len(s.heldBefore), 2)
		s.False(s.heldBefore[0], "the first ask")
		for _, held := range s.heldBefore[1:] {
			s.True(held, "every later ask says the vault held it, so that its published hold answers")
		}
		s.vault.MassDelete = vault.MassDeleteState{} // the hold is cleared
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState, "through once the hold cleared")
		s.Nil(st.PendingDelete)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
	s.Zero(s.purges)
}
