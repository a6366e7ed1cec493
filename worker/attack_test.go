package main

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/items"
	"recoveryvault/internal/storetest"
	"recoveryvault/store"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// The attacks of docs/security.md, run as an attacker with the namespace's
// credentials would: workflows of the test's own, on a task queue of its
// own, against the real worker on a real server.

// alerts records what the worker's notifier is given.
type alerts struct {
	mu   sync.Mutex
	list []protocol.Alert
}

func (a *alerts) Notify(_ context.Context, al protocol.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, al)
	return nil
}

func (a *alerts) of(kind string) []protocol.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []protocol.Alert
	for _, al := range a.list {
		if al.Kind == kind {
			out = append(out, al)
		}
	}
	return out
}

// attackedWorker is the real worker on a real server, its alerts recorded.
func attackedWorker(t *testing.T) (client.Client, *store.Store, *alerts) {
	_, c := realServer(t)
	st := storetest.New(t)
	rec := &alerts{}
	w := backupworker.New(c, st, rec, protocol.Settings{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return c, st, rec
}

// attacker runs workflows of its own on queue "attacker".
func attacker(t *testing.T, c client.Client, name string, wf any) {
	w := worker.New(c, "attacker", worker.Options{})
	w.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

func TestAWorkflowOfItsOwnCannotRunTheWorkersActivities(t *testing.T) {
	c, st, rec := attackedWorker(t)
	src := writeItemSource(t)
	id := protect(t, c, "vm1", src)
	point := query(t, c, id).RecoveryPoints[0]
	target := filepath.Join(t.TempDir(), "stolen")

	// Each activity that touches the item's data, scheduled on the
	// worker's queue with the item's names.
	calls := map[string]any{
		protocol.ActivityPurge:   item.PurgeInput{VaultID: "vault1", ItemID: "vm1", Report: item.ReportInput{VaultID: "vault1"}},
		protocol.ActivityCollect: item.CollectInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointIDs: []string{point.ID}},
		protocol.ActivityLock:    item.LockInput{VaultID: "vault1", ItemID: "vm1", Until: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)},
		protocol.ActivityRestore: item.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: point, TargetPath: target},
		protocol.ActivityBackup:  item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-forged"}, SourcePath: "/etc"},
		// A restore drill, on the queue drills have of their own.
		protocol.ActivityVerify: item.VerifyInput{VaultID: "vault1", ItemID: "vm1", Point: point},
	}
	attacker(t, c, "Attack", func(ctx workflow.Context, name string) error {
		queue := protocol.TaskQueue
		if name == protocol.ActivityVerify {
			queue = protocol.VerifyTaskQueue
		}
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: queue, StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		return workflow.ExecuteActivity(ctx, name, calls[name]).Get(ctx, nil)
	})
	for name := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "attack-" + name, TaskQueue: "attacker"}, "Attack", name)
			require.NoError(t, err)
			err = run.Get(ctx, nil)
			var app *temporal.ApplicationError
			require.True(t, errors.As(err, &app), "the activity must be refused, got %v", err)
			assert.Equal(t, protocol.ErrTypeForbidden, app.Type())
		})
	}
	points, err := st.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{point.ID}, points, "the item's data is as it was")
	assert.NoFileExists(t, filepath.Join(target, "vm.json"), "nothing was restored for the attacker")
	refused := rec.of(protocol.AlertForbiddenCaller)
	require.Len(t, refused, len(calls), "each refusal is alerted")
	assert.Contains(t, refused[0].Detail, "attack-", "the alert names the caller")

	restored := filepath.Join(t.TempDir(), "restored")
	mustUpdate(t, c, id, protocol.UpdateRestore, protocol.RestoreRequest{RecoveryPointID: point.ID, TargetPath: restored})
	sameTree(t, src, restored)
}

func TestAForgedContinueAsNewAfterATerminatePurgesNothing(t *testing.T) {
	c, st, rec := attackedWorker(t)
	src := writeItemSource(t)
	id := protect(t, c, "vm1", src)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, c.TerminateWorkflow(ctx, id, "", "attack"))

	// A run of the attacker's own under the item's ID continues as new
	// into BackupItem on the worker's queue, soft-deleted, due in 3 s, with
	// the search attributes an item soft-deleted past its deadline shows.
	now := time.Now().UTC()
	forged := item.ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: src, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30},
		State: &item.ItemState{ProtectionState: protocol.SoftDeleted, DeletedAt: now.Add(-time.Hour), Deadline: now.Add(3 * time.Second)}}
	attacker(t, c, "Forger", func(ctx workflow.Context) error {
		if err := workflow.UpsertTypedSearchAttributes(ctx, protocol.VaultIDAttribute.ValueSet("vault1"),
			protocol.StateAttribute.ValueSet(string(protocol.SoftDeleted)), protocol.DeadlineAttribute.ValueSet(forged.State.Deadline)); err != nil {
			return err
		}
		ctx = workflow.WithWorkflowTaskQueue(ctx, protocol.TaskQueue)
		return workflow.NewContinueAsNewError(ctx, protocol.WorkflowType, forged)
	})
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "attacker"}, "Forger")
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.Error(t, err, "the forged run is refused")
	assert.Contains(t, err.Error(), "carried")

	time.Sleep(5 * time.Second)
	points, err := st.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Len(t, points, 1, "the item's data is untouched")

	// Protected anew, the item tells of the points an earlier run left.
	protect(t, c, "vm1", src)
	require.Eventually(t, func() bool { return len(rec.of(protocol.AlertItemRestarted)) == 1 }, 10*time.Second, 100*time.Millisecond)
	assert.Contains(t, rec.of(protocol.AlertItemRestarted)[0].Detail, "started anew over 1 recovery point an earlier run of it left")
}

// TestMegabyteMessagesFreezeNoItemAndNoVault: messages just under the
// server's own bound are refused by the workflows' bounds and change
// nothing; a larger one is refused by the server. Both entities still
// answer and act.
func TestMegabyteMessagesFreezeNoItemAndNoVault(t *testing.T) {
	c, _, _ := attackedWorker(t)
	id := protect(t, c, "vm1", writeItemSource(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := strings.Repeat("x", 900<<10)

	require.NoError(t, c.SignalWorkflow(ctx, id, "", protocol.SignalDelete, protocol.Request{RequestedBy: "mallory", Reason: big}))
	assert.Error(t, c.SignalWorkflow(ctx, id, "", protocol.SignalDelete, protocol.Request{Reason: big + big}), "the server refuses a payload over its bound")
	_, err := update(t, c, id, protocol.UpdateDelete, protocol.Request{Reason: big})
	assert.ErrorContains(t, err, "over its bound of 64 KiB")
	st := mustUpdate(t, c, id, protocol.UpdateBackupNow, nil)
	assert.Equal(t, protocol.Protected, st.ProtectionState)
	assert.Len(t, st.RecoveryPoints, 2, "the item still backs up")
	assert.True(t, slices.ContainsFunc(st.Audit, func(e protocol.AuditEntry) bool {
		return e.Operation == "delete" && e.Outcome == protocol.OutcomeRejected && strings.Contains(e.Detail, "over its bound")
	}), "the oversized signal is audited as malformed")

	vault := protocol.VaultWorkflowID("vault1")
	require.Eventually(t, func() bool {
		_, err := c.DescribeWorkflowExecution(ctx, vault, "")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the item started its vault")
	for range 2 {
		_, err := update(t, c, vault, protocol.UpdateSetSoftDelete, map[string]any{"state": "Disabled", "retentionDays": 14, "reason": big})
		assert.ErrorContains(t, err, "over its bound of 64 KiB")
	}
	_, err = update(t, c, vault, protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteEnabled, RetentionDays: 20, RequestedBy: "alice"})
	require.NoError(t, err, "the vault still answers and acts")
}

// TestAVaultStartedAnewCannotShedItsProtection: the vault required
// multi-user authorization; someone terminates it and starts it anew with
// the defaults. A delete of an item that saw the old vault waits, alerted,
// until the vault requires approval again.
func TestAVaultStartedAnewCannotShedItsProtection(t *testing.T) {
	c, st, rec := attackedWorker(t)
	src := writeItemSource(t)
	protect(t, c, "seed", src)
	vaultWF := protocol.VaultWorkflowID("vault1")
	enable := func() {
		t.Helper()
		require.Eventually(t, func() bool {
			_, err := update(t, c, vaultWF, protocol.UpdateEnableMua, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"})
			return err == nil
		}, 20*time.Second, 200*time.Millisecond)
	}
	early := protect(t, c, "vm2", src) // before approval was required
	enable()
	id := protect(t, c, "vm1", src)                        // it sees the vault require approval
	mustUpdate(t, c, early, protocol.UpdateBackupNow, nil) // and so does vm2, at its next backup

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.TerminateWorkflow(ctx, vaultWF, "", "attack"))
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: vaultWF, TaskQueue: protocol.TaskQueue}, protocol.VaultWorkflowType,
		vault.VaultInput{VaultID: "vault1"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := items.VaultSettings(ctx, c, "vault1")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the new vault publishes its defaults")

	s := mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	assert.Equal(t, protocol.Protected, s.ProtectionState, "not deleted on a vault that asks less")
	require.NotNil(t, s.PendingDelete)
	assert.Contains(t, s.PendingDelete.Why, "vault vault1 was started anew (terminated or reset) and no longer requires multi-user authorization")
	require.Eventually(t, func() bool { return len(rec.of(protocol.AlertVaultRestarted)) > 0 }, 10*time.Second, 100*time.Millisecond,
		"a vaultRestarted alert goes out")
	points, err := st.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Len(t, points, 1)
	s = mustUpdate(t, c, early, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	assert.Equal(t, protocol.Protected, s.ProtectionState, "an item that learnt it at a backup waits too")
	require.NotNil(t, s.PendingDelete)

	enable()
	s = mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	require.NotNil(t, s.PendingApproval, "asked again, the delete waits for approval as it did before")
	assert.Equal(t, protocol.Protected, s.ProtectionState)
}
