package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/devserver"
	"recoveryvault/internal/histories"
	"recoveryvault/internal/items"
	"recoveryvault/internal/searchattributes"
	"recoveryvault/internal/storetest"
	"recoveryvault/internal/testport"
	"recoveryvault/internal/treediff"
	"recoveryvault/store"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// freePort is a port for a server of the test (see testport.Free).
func freePort(t *testing.T) int { return testport.Free(t) }

// syncBuffer is the dev mode's output, read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// devMode is `go run ./worker --dev` running in the test process.
type devMode struct {
	t    *testing.T
	out  *syncBuffer
	stop chan any
	done chan error
	c    client.Client
}

func startDevMode(t *testing.T, cfg config) *devMode {
	t.Helper()
	cfg.dev = true
	d := &devMode{t: t, out: &syncBuffer{}, stop: make(chan any), done: make(chan error, 1)}
	go func() { d.done <- run(cfg, d.out, d.stop) }()
	require.Eventually(t, func() bool {
		select {
		case err := <-d.done:
			require.NoError(t, err, "dev mode ended early: %s", d.out.String())
		default:
		}
		return strings.Contains(d.out.String(), "Recovery Vault worker:")
	}, 60*time.Second, 50*time.Millisecond, "dev mode did not come up: %s", d.out.String())
	c, err := client.Dial(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", cfg.port), Logger: quietLogger()})
	require.NoError(t, err)
	d.c = c
	t.Cleanup(func() { d.shutdown() })
	return d
}

// shutdown stops dev mode as SIGINT would and returns what run returned.
func (d *devMode) shutdown() error {
	if d.stop == nil {
		return nil
	}
	d.c.Close()
	close(d.stop)
	d.stop = nil
	select {
	case err := <-d.done:
		return err
	case <-time.After(60 * time.Second):
		d.t.Fatal("dev mode did not stop")
		return nil
	}
}

func writeItemSource(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "vm1")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "disks", "empty"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(src, "disks", "os.img"), bytes.Repeat([]byte("sector"), 100000), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "vm.json"), []byte(`{"cpu": 4}`), 0o644))
	return src
}

func protect(t *testing.T, c client.Client, itemID, src string) string {
	t.Helper()
	id := protocol.WorkflowID("vault1", itemID)
	_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: protocol.TaskQueue}, protocol.WorkflowType,
		item.ItemInput{VaultID: "vault1", ItemID: itemID, SourcePath: src, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(query(t, c, id).RecoveryPoints) == 1 }, 30*time.Second, 50*time.Millisecond)
	return id
}

func query(t *testing.T, c client.Client, id string) item.Status {
	t.Helper()
	var st item.Status
	v, err := c.QueryWorkflow(context.Background(), id, "", protocol.QueryStatus)
	if err != nil {
		return st
	}
	require.NoError(t, v.Get(&st))
	return st
}

func update(t *testing.T, c client.Client, id, name string, arg any) (item.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st item.Status
	err := items.Execute(ctx, c, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{arg}}, &st)
	return st, err
}

func mustUpdate(t *testing.T, c client.Client, id, name string, arg any) item.Status {
	t.Helper()
	st, err := update(t, c, id, name, arg)
	require.NoError(t, err, "%s", name)
	return st
}

// purged waits for the item's workflow to complete and returns its result.
func purged(t *testing.T, c client.Client, id string, within time.Duration) item.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var st item.Status
	require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &st))
	return st
}

// purgeActivity reads from the history when the purge activity was
// scheduled and how often it completed.
func purgeActivity(t *testing.T, c client.Client, id string) (scheduled []time.Time, completed int) {
	t.Helper()
	purgeIDs := map[int64]bool{}
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == protocol.ActivityPurge {
			scheduled = append(scheduled, e.GetEventTime().AsTime())
			purgeIDs[e.GetEventId()] = true
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && purgeIDs[a.GetScheduledEventId()] {
			completed++
		}
	}
	return scheduled, completed
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	diffs, err := treediff.Diff(want, got)
	require.NoError(t, err)
	require.Empty(t, diffs, "restore differs from the source")
}

func deleteTime(st item.Status) time.Time {
	for i := len(st.Audit) - 1; i >= 0; i-- {
		if st.Audit[i].Operation == "delete" && st.Audit[i].Outcome == protocol.OutcomeAccepted {
			return st.Audit[i].Time
		}
	}
	return time.Time{}
}

func TestDevModeRunsTheWholeLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	cfg := config{dataDir: dataDir, port: freePort(t), uiPort: freePort(t), consolePort: freePort(t), softDeleteRetention: 3 * time.Second}
	d := startDevMode(t, cfg)
	out := d.out.String()
	assert.Contains(t, out, fmt.Sprintf("Temporal frontend       127.0.0.1:%d", cfg.port))
	assert.Contains(t, out, fmt.Sprintf("Temporal Web UI         http://127.0.0.1:%d", cfg.uiPort))
	assert.Contains(t, out, fmt.Sprintf("Recovery Vault console  http://127.0.0.1:%d", cfg.consolePort))
	assert.Contains(t, out, "Sources may lie in: "+os.TempDir(), "dev mode's roots are printed")
	console, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", cfg.consolePort))
	require.NoError(t, err)
	console.Body.Close()
	assert.Equal(t, http.StatusOK, console.StatusCode, "the console answers, asking for the operator's name")
	assert.Contains(t, out, "WARNING: every delete gets a soft-delete window of 3s")
	assert.Contains(t, out, "query=BackupItemState%20%3D%20%27SoftDeleted%27")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", cfg.uiPort))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the Web UI answers")

	c, src := d.c, writeItemSource(t)
	id := protect(t, c, "vm1", src)
	assert.Len(t, mustUpdate(t, c, id, protocol.UpdateBackupNow, nil).RecoveryPoints, 2)
	mustUpdate(t, c, id, protocol.UpdateStop, protocol.Request{RequestedBy: "alice"})
	rp := query(t, c, id).RecoveryPoints[0].ID
	r1 := filepath.Join(t.TempDir(), "r1")
	mustUpdate(t, c, id, protocol.UpdateRestore, protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: r1})
	sameTree(t, src, r1)

	st := mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	assert.Equal(t, protocol.SoftDeleted, st.ProtectionState)
	assert.Contains(t, st.SoftDeleteRetentionOverride, "3s (dev mode")
	_, err = update(t, c, id, protocol.UpdateRestore, protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: filepath.Join(t.TempDir(), "x")})
	assert.ErrorContains(t, err, "item vm1 is soft-deleted: undelete it before restoring")
	vaultID := protocol.VaultWorkflowID("vault1")
	_, err = update(t, c, vaultID, protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "mallory"})
	assert.ErrorContains(t, err, "vault vault1 cannot be deleted: it holds 1 soft-deleted item: vm1 (purge scheduled for")
	mustUpdate(t, c, id, protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})
	r2 := filepath.Join(t.TempDir(), "r2")
	mustUpdate(t, c, id, protocol.UpdateRestore, protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: r2})
	sameTree(t, src, r2)
	mustUpdate(t, c, id, protocol.UpdateResume, nil)
	st = mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "alice", Reason: "decommissioned"})
	deadline := deleteTime(st).Add(3 * time.Second)

	final := purged(t, c, id, 30*time.Second)
	assert.Equal(t, protocol.Purged, final.ProtectionState)
	assert.Empty(t, final.RecoveryPoints)
	_, err = os.Stat(filepath.Join(dataDir, "store", "vault1", "vm1"))
	assert.True(t, os.IsNotExist(err), "no byte of the item is left in the store")
	scheduled, completed := purgeActivity(t, c, id)
	require.Len(t, scheduled, 1)
	assert.Equal(t, 1, completed)
	assert.False(t, scheduled[0].Before(deadline), "purge at %v, deadline %v", scheduled[0], deadline)

	desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus())
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "BackupVaultId = 'vault1' AND BackupItemState = 'Purged'"})
		return err == nil && len(resp.GetExecutions()) == 1
	}, 20*time.Second, 100*time.Millisecond, "the purged item is listed by state")
	_, err = update(t, c, id, protocol.UpdateUndelete, nil)
	assert.Error(t, err, "a purged item accepts nothing")

	// Visibility counts vm1 purged; with soft delete disabled a delete
	// purges at once; once only purged items remain, the vault can go.
	require.Eventually(t, func() bool {
		counts, err := items.Count(context.Background(), c, "vault1")
		return err == nil && counts[protocol.Purged] == 1
	}, 20*time.Second, 100*time.Millisecond, "vm1 counted purged")
	var vst vault.VaultStatus
	v, err := c.QueryWorkflow(context.Background(), vaultID, "", protocol.QueryVaultStatus)
	require.NoError(t, err)
	require.NoError(t, v.Get(&vst))
	assert.Contains(t, vst.SoftDeleteRetentionOverride, "3s")
	h, err := c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: vaultID, UpdateName: protocol.UpdateSetSoftDelete,
		Args: []any{protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(context.Background(), &vst))
	id2 := protect(t, c, "vm2", src)
	mustUpdate(t, c, id2, protocol.UpdateDelete, protocol.Request{RequestedBy: "alice"})
	assert.Equal(t, protocol.Purged, purged(t, c, id2, 20*time.Second).ProtectionState, "soft delete disabled: purged at once")
	require.Eventually(t, func() bool {
		_, err := update(t, c, vaultID, protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "alice"})
		return err == nil
	}, 20*time.Second, 200*time.Millisecond, "the vault can be deleted once its items are purged")
	var vaultFinal vault.VaultStatus
	require.NoError(t, c.GetWorkflow(context.Background(), vaultID, "").Get(context.Background(), &vaultFinal))
	assert.True(t, vaultFinal.Deleted, "the vault workflow completed")

	require.NoError(t, d.shutdown())
	assert.Contains(t, d.out.String(), "dev mode stopped")
}

// TestDevModeKeepsTheDeadlineAcrossARestart: stop server and worker while an
// item is soft-deleted, start them on the same data directory, and see the
// purge at the original deadline, not before and not a fresh window later.
func TestDevModeKeepsTheDeadlineAcrossARestart(t *testing.T) {
	window := 12 * time.Second
	cfg := config{dataDir: t.TempDir(), port: freePort(t), uiPort: 0, softDeleteRetention: window}
	d := startDevMode(t, cfg)
	id := protect(t, d.c, "vm1", writeItemSource(t))
	st := mustUpdate(t, d.c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	deadline := deleteTime(st).Add(window)
	require.NoError(t, d.shutdown())

	time.Sleep(4 * time.Second)
	d = startDevMode(t, cfg)
	restarted := time.Now()
	require.Eventually(t, func() bool {
		st = query(t, d.c, id)
		return st.ProtectionState != ""
	}, 20*time.Second, 50*time.Millisecond, "the item answers after the restart")
	assert.Equal(t, protocol.SoftDeleted, st.ProtectionState)
	assert.Equal(t, deadline.UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC, "the deadline survived the restart")

	final := purged(t, d.c, id, time.Minute)
	assert.Equal(t, protocol.Purged, final.ProtectionState)
	scheduled, completed := purgeActivity(t, d.c, id)
	require.Len(t, scheduled, 1)
	assert.Equal(t, 1, completed)
	assert.False(t, scheduled[0].Before(deadline), "not before the deadline: purge %v, deadline %v", scheduled[0], deadline)
	assert.True(t, scheduled[0].Before(restarted.Add(window)), "not a fresh window after the restart: purge %v", scheduled[0])
	assert.WithinDuration(t, deadline, scheduled[0], 3*time.Second)
}

// realServer is the embedded server with workers started and stopped by
// the test, for the cases where the worker must be down.
func realServer(t *testing.T, dynamicConfig ...map[string]any) (*devserver.Server, client.Client) {
	o := devserver.Options{DataDir: t.TempDir(), Port: freePort(t), SearchAttributes: searchattributes.Attributes}
	if len(dynamicConfig) > 0 {
		o.DynamicConfig = dynamicConfig[0]
	}
	srv, err := devserver.Start(o)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddress(), Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return srv, c
}

// serverWithWorker is the embedded server with the real worker on a
// temporary store, both stopped at the end of the test.
func serverWithWorker(t *testing.T, dynamicConfig ...map[string]any) (client.Client, *store.Store) {
	_, c := realServer(t, dynamicConfig...)
	st := storetest.New(t)
	w := backupworker.New(c, st, nil, protocol.Settings{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return c, st
}

// TestUndeleteBeforeTheDeadlineWinsWhileTheWorkerIsDown: with the worker
// stopped, delete and undelete signals reach the server before the
// deadline; the deadline passes; the worker then sees the signals and the
// timer's firing in one task and keeps the data.
func TestUndeleteBeforeTheDeadlineWinsWhileTheWorkerIsDown(t *testing.T) {
	_, c := realServer(t)
	stored := storetest.New(t)
	settings := protocol.Settings{SoftDeleteRetention: 4 * time.Second, Dev: true}
	w := backupworker.New(c, stored, nil, settings)
	require.NoError(t, w.Start())
	id := protect(t, c, "vm1", writeItemSource(t))
	mustUpdate(t, c, id, protocol.UpdateBackupNow, nil)
	st := mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	deadline := deleteTime(st).Add(4 * time.Second)
	w.Stop()

	ctx := context.Background()
	require.NoError(t, c.SignalWorkflow(ctx, id, "", protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"}))
	require.NoError(t, c.SignalWorkflow(ctx, id, "", protocol.SignalUndelete, protocol.Request{RequestedBy: "alice"}))
	require.True(t, time.Now().Before(deadline), "the signals must reach the server before the deadline for this test to mean anything")
	time.Sleep(time.Until(deadline) + 2*time.Second) // the deadline passes with no worker

	w = backupworker.New(c, stored, nil, settings)
	require.NoError(t, w.Start())
	defer w.Stop()
	require.Eventually(t, func() bool {
		st = query(t, c, id)
		return st.ProtectionState == protocol.ProtectionStopped
	}, 30*time.Second, 100*time.Millisecond, "state %s", st.ProtectionState)
	assert.Len(t, st.RecoveryPoints, 2)
	fired := false
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		fired = fired || e.GetTimerFiredEventAttributes() != nil
	}
	assert.True(t, fired, "the purge timer fired: the undelete met the deadline")
	points, err := stored.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Len(t, points, 2, "every recovery point intact")
	scheduled, _ := purgeActivity(t, c, id)
	assert.Empty(t, scheduled, "no purge ran")
}

// TestWorkerDyingDuringThePurgeIsPurgedOnceAfterRestart: the first worker
// dies while its purge activity runs; another worker finishes the purge
// and the item ends Purged, once.
func TestWorkerDyingDuringThePurgeIsPurgedOnceAfterRestart(t *testing.T) {
	_, c := realServer(t)
	root := t.TempDir()
	settings := protocol.Settings{SoftDeleteRetention: 2 * time.Second, Dev: true}
	acts := &activities.Activities{Store: storetest.At(t, root), Client: c, Settings: settings}

	// The doomed worker's purge starts, then hangs as a killed process
	// would: no heartbeat, no completion.
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	doomed := worker.New(c, protocol.TaskQueue, worker.Options{})
	doomed.RegisterWorkflowWithOptions(item.NewBackupItem(settings), workflow.RegisterOptions{Name: protocol.WorkflowType})
	doomed.RegisterWorkflowWithOptions(vault.NewVault(settings), workflow.RegisterOptions{Name: protocol.VaultWorkflowType})
	for _, f := range []any{acts.Backup, acts.Restore, acts.Collect, acts.Lock, acts.Report, acts.AskVault, acts.ListVaultItems, acts.Notify, acts.DescribeRun, acts.Signal} {
		doomed.RegisterActivity(f)
	}
	doomed.RegisterActivityWithOptions(func(ctx context.Context, in item.PurgeInput) error {
		close(started)
		<-release
		return fmt.Errorf("the worker died")
	}, activity.RegisterOptions{Name: protocol.ActivityPurge})
	require.NoError(t, doomed.Start())

	id := protect(t, c, "vm1", writeItemSource(t))
	mustUpdate(t, c, id, protocol.UpdateDelete, nil)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the purge did not start")
	}
	doomed.Stop()

	w := backupworker.New(c, storetest.At(t, root), nil, settings)
	require.NoError(t, w.Start())
	defer w.Stop()
	final := purged(t, c, id, 90*time.Second)
	assert.Equal(t, protocol.Purged, final.ProtectionState)
	purges := 0
	for _, e := range final.Audit {
		if e.Operation == "purgeDone" {
			purges++
		}
	}
	assert.Equal(t, 1, purges, "purged exactly once")
	_, completed := purgeActivity(t, c, id)
	assert.Equal(t, 1, completed, "one attempt completed the purge")
	_, err := os.Stat(filepath.Join(root, "vault1", "vm1"))
	assert.True(t, os.IsNotExist(err), "no byte of the item is left")
}

// TestDevModePurgesADeadlinePassedWhileStopped: the deadline passes while
// server and worker are down; at the restart the item is purged at once.
func TestDevModePurgesADeadlinePassedWhileStopped(t *testing.T) {
	window := 4 * time.Second
	cfg := config{dataDir: t.TempDir(), port: freePort(t), softDeleteRetention: window}
	d := startDevMode(t, cfg)
	id := protect(t, d.c, "vm1", writeItemSource(t))
	st := mustUpdate(t, d.c, id, protocol.UpdateDelete, nil)
	deadline := deleteTime(st).Add(window)
	require.NoError(t, d.shutdown())
	time.Sleep(time.Until(deadline) + 3*time.Second)

	d = startDevMode(t, cfg)
	restarted := time.Now()
	final := purged(t, d.c, id, 30*time.Second)
	assert.Equal(t, protocol.Purged, final.ProtectionState)
	scheduled, _ := purgeActivity(t, d.c, id)
	require.Len(t, scheduled, 1)
	assert.WithinDuration(t, restarted, scheduled[0], 5*time.Second, "purged at the restart, not a fresh window later")
}

// TestForgedStateThroughACronWorkflowPurgesNothing: a cron workflow under
// another ID, and one under the item's own ID, both carrying a made-up
// soft-deleted state, must not touch the item's data.
func TestForgedStateThroughACronWorkflowPurgesNothing(t *testing.T) {
	c, st := serverWithWorker(t)
	src := writeItemSource(t)
	id := protect(t, c, "vm1", src)

	forged := item.ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: src, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30},
		State: &item.ItemState{ProtectionState: protocol.SoftDeleted, DeletedAt: time.Unix(946684800, 0), Deadline: time.Unix(946771200, 0)}}
	ctx := context.Background()
	for _, fid := range []string{"attacker-1", protocol.WorkflowID("vault1", "vm2")} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fid, TaskQueue: protocol.TaskQueue, CronSchedule: "@every 2s"},
			protocol.WorkflowType, forged)
		require.NoError(t, err)
		defer func() { _ = c.TerminateWorkflow(ctx, run.GetID(), "", "test over") }()
	}
	time.Sleep(7 * time.Second) // several cron runs
	points, err := st.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Len(t, points, 1, "the item's recovery point is intact")
	assert.Equal(t, protocol.Protected, query(t, c, id).ProtectionState)
}

// TestContinueAsNewOnARealServerKeepsItemsAndVaults: with the server
// suggesting continue-as-new every few dozen events, items and their vault
// continue as new again and again and keep everything: state, recovery
// points, settings, deadlines.
func TestContinueAsNewOnARealServerKeepsItemsAndVaults(t *testing.T) {
	c, _ := serverWithWorker(t, map[string]any{"limit.historyCount.suggestContinueAsNew": 40})
	src := writeItemSource(t)
	id := protect(t, c, "vm1", src)
	vaultID := protocol.VaultWorkflowID("vault1")
	require.Eventually(t, func() bool {
		_, err := update(t, c, vaultID, protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 30})
		return err == nil
	}, 20*time.Second, 200*time.Millisecond)
	firstRun := func(wid string) string {
		d, err := c.DescribeWorkflowExecution(context.Background(), wid, "")
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	}
	itemRun, vaultRun := firstRun(id), firstRun(vaultID)

	for i := 0; i < 8; i++ {
		mustUpdate(t, c, id, protocol.UpdateBackupNow, nil)
		mustUpdate(t, c, id, protocol.UpdateStop, nil)
		mustUpdate(t, c, id, protocol.UpdateResume, nil)
		// The vault hears of no item's change: its own updates make its
		// history.
		_, err := update(t, c, vaultID, vault.UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Threshold: 50 - i, RequestedBy: "alice"})
		require.NoError(t, err)
	}
	st := mustUpdate(t, c, id, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	deadline := st.DeferredDeleteTimeInUTC
	mustUpdate(t, c, id, protocol.UpdateDelete, nil)
	mustUpdate(t, c, id, protocol.UpdateDelete, nil)

	require.Eventually(t, func() bool { return firstRun(id) != itemRun && firstRun(vaultID) != vaultRun }, 30*time.Second, 200*time.Millisecond,
		"both continued as new")
	require.Eventually(t, func() bool {
		st = query(t, c, id)
		return st.ProtectionState == protocol.SoftDeleted
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, deadline, st.DeferredDeleteTimeInUTC, "the deadline crossed continue-as-new")
	assert.Len(t, st.RecoveryPoints, 9, "every recovery point crossed continue-as-new")
	parsed, err := time.Parse(time.RFC3339, deadline)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), parsed, time.Minute, "the vault's 30 days applied")

	v, err := c.QueryWorkflow(context.Background(), vaultID, "", protocol.QueryVaultStatus)
	require.NoError(t, err)
	var vst vault.VaultStatus
	require.NoError(t, v.Get(&vst))
	assert.Equal(t, protocol.SoftDeleteAlwaysOn, vst.SoftDelete.State, "AlwaysOn crossed the vault's continue-as-new")
	assert.Equal(t, 43, vst.MassDeleteGuard.Threshold, "the guard's last setting crossed it too")
	vs, err := items.VaultSettings(context.Background(), c, "vault1")
	require.NoError(t, err, "the new run publishes its settings again")
	assert.Equal(t, protocol.SoftDeleteAlwaysOn, vs.State)
	d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus())

	// Lists (the starter's, the console's) show the item once, not once
	// per run.
	require.Eventually(t, func() bool {
		items, err := items.List(context.Background(), c, protocol.ItemsQuery("vault1", ""))
		return err == nil && len(items) == 1 && items[0].ProtectionState == string(protocol.SoftDeleted)
	}, 20*time.Second, 200*time.Millisecond)
	// Both runs of each, the one that continued and the one continued.
	histories.Replay(t, c, id, itemRun, "item-continued.json")
	histories.Replay(t, c, id, "", "item-continuing.json")
	histories.Replay(t, c, vaultID, vaultRun, "vault-continued.json")
	histories.Replay(t, c, vaultID, "", "vault-continuing.json")
}
