package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/server/temporaltest"

	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/histories"
	"recoveryvault/internal/items"
	"recoveryvault/internal/searchattributes"
	"recoveryvault/internal/storetest"
	"recoveryvault/internal/treediff"
	"recoveryvault/store"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// cluster is a real Temporal server in the test process with the real
// worker and a temporary recovery-point store.
type cluster struct {
	t  *testing.T
	ts *temporaltest.TestServer
	c  client.Client
	// store is the worker's store, in storeDir.
	store    *store.Store
	storeDir string
}

func startCluster(t *testing.T) *cluster { return startClusterWith(t, protocol.Settings{}) }

// startClusterWith runs the worker with the given settings, such as a short
// soft-delete window.
func startClusterWith(t *testing.T, settings protocol.Settings) *cluster {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, searchattributes.Ensure(ctx, c, ts.GetDefaultNamespace()))
	require.NoError(t, searchattributes.Ensure(ctx, c, ts.GetDefaultNamespace()), "registering twice is harmless")
	dir := t.TempDir()
	w := backupworker.New(c, storetest.At(t, dir), nil, settings)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return &cluster{t: t, ts: ts, c: c, store: storetest.At(t, dir), storeDir: dir}
}

// starter runs the starter's command line against the cluster.
func (k *cluster) starter(args ...string) (string, error) { return k.run(nil, args) }

// root is the starter's command tree, connected to the cluster.
func (k *cluster) root() *cobra.Command {
	return newRootCommand(func() (client.Client, string, error) {
		return k.ts.NewClientWithOptions(client.Options{}), k.ts.GetDefaultNamespace(), nil
	})
}

// starterWithInput runs the starter with what a person types at its prompt.
func (k *cluster) starterWithInput(input string, args ...string) (string, error) {
	return k.run(strings.NewReader(input), args)
}

// run runs the starter's command line; with in nil, its input is the test's
// own, which is no terminal.
func (k *cluster) run(in io.Reader, args []string) (string, error) {
	root := k.root()
	var out bytes.Buffer
	if in != nil {
		root.SetIn(in)
	}
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func (k *cluster) vaultStatus(vaultID string) vault.VaultStatus {
	k.t.Helper()
	out, err := k.starter("vault", "status", "--vault", vaultID, "--json")
	require.NoError(k.t, err, out)
	var vst vault.VaultStatus
	require.NoError(k.t, json.Unmarshal([]byte(out), &vst), out)
	return vst
}

// counts are a vault's items by state, as visibility counts them (an
// empty map when it does not answer).
func (k *cluster) counts(vaultID string) map[protocol.State]int {
	counts, err := items.Count(context.Background(), k.c, vaultID)
	if err != nil {
		return map[protocol.State]int{}
	}
	return counts
}

// nonZero keeps the states with items.
func nonZero(counts map[protocol.State]int) map[protocol.State]int {
	m := map[protocol.State]int{}
	for s, n := range counts {
		if n > 0 {
			m[s] = n
		}
	}
	return m
}

func (k *cluster) mustJSON(args ...string) item.Status {
	k.t.Helper()
	out, err := k.starter(append(args, "--json")...)
	require.NoError(k.t, err, out)
	var st item.Status
	require.NoError(k.t, json.Unmarshal([]byte(out), &st), out)
	return st
}

// signalAsCLI sends a signal as `temporal workflow signal` does: no
// --input means no payload at all.
func (k *cluster) signalAsCLI(id, name string, input *commonpb.Payloads) {
	k.t.Helper()
	_, err := k.c.WorkflowService().SignalWorkflowExecution(context.Background(), &workflowservice.SignalWorkflowExecutionRequest{
		Namespace:         k.ts.GetDefaultNamespace(),
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id},
		SignalName:        name,
		Input:             input,
		Identity:          "cli-like",
	})
	require.NoError(k.t, err)
}

func jsonInput(t *testing.T, raw string) *commonpb.Payloads {
	return &commonpb.Payloads{Payloads: []*commonpb.Payload{{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)},
		Data:     []byte(raw),
	}}}
}

func writeSource(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "vm1")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "disks", "empty"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(src, "disks", "os.img"), bytes.Repeat([]byte("sector"), 50000), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "vm.json"), []byte(`{"cpu": 4}`), 0o644))
	return src
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	diffs, err := treediff.Diff(want, got)
	require.NoError(t, err)
	require.Empty(t, diffs, "restore differs from the source")
}

func TestStarterDrivesTheLifecycleOnARealServer(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	item := []string{"--vault", "vault1", "--item", "vm1", "--requested-by", "alice"}

	st := k.mustJSON(append([]string{"protect", "--source", src, "--frequency", "24h", "--retention-days", "30"}, item...)...)
	assert.Equal(t, protocol.Protected, st.ProtectionState)
	require.Len(t, st.RecoveryPoints, 1, "protect waits for the first backup")
	first := st.RecoveryPoints[0].ID

	_, err := k.starter(append([]string{"protect", "--source", src}, item...)...)
	assert.ErrorContains(t, err, "item vm1 of vault vault1 is already protected: see its status")

	st = k.mustJSON(append([]string{"backup-now"}, item...)...)
	assert.Len(t, st.RecoveryPoints, 2)

	st = k.mustJSON(append([]string{"stop", "--reason", "maintenance"}, item...)...)
	assert.Equal(t, protocol.ProtectionStopped, st.ProtectionState)

	_, err = k.starter(append([]string{"backup-now"}, item...)...)
	assert.ErrorContains(t, err, "backupNow refused: item vm1 has protection stopped: resume protection before taking a backup")

	restored1 := filepath.Join(t.TempDir(), "r1")
	k.mustJSON(append([]string{"restore", "--recovery-point", first, "--target", restored1}, item...)...)
	sameTree(t, src, restored1)

	st = k.mustJSON(append([]string{"delete", "--reason", "decommissioned"}, item...)...)
	assert.Equal(t, protocol.SoftDeleted, st.ProtectionState)
	assert.True(t, st.IsScheduledForDeferredDelete)
	deadline, err := time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(14*24*time.Hour), deadline, time.Minute)
	assert.Regexp(t, `^(14d 0h 0m|13d 23h 59m)$`, st.DeferredDeleteTimeRemaining)

	_, err = k.starter(append([]string{"restore", "--recovery-point", first, "--target", filepath.Join(t.TempDir(), "r")}, item...)...)
	assert.ErrorContains(t, err, "item vm1 is soft-deleted: undelete it before restoring")
	// Protect says what the item is and what to do.
	_, err = k.starter(append([]string{"protect", "--source", src}, item...)...)
	assert.ErrorContains(t, err, "item vm1 of vault vault1 is soft-deleted, not protected: its purge is scheduled for "+st.DeferredDeleteTimeInUTC)
	assert.ErrorContains(t, err, "undelete it (starter undelete --vault vault1 --item vm1)")
	// The window shown is the one the delete applied.
	out, err := k.starter(append([]string{"status"}, item...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "Soft-delete window  14 days (applied at the delete)")
	assert.Contains(t, out, "Purge scheduled     "+st.DeferredDeleteTimeInUTC)

	// Listing by state goes through visibility, which trails a little.
	var listedOut string
	require.Eventually(t, func() bool {
		listedOut, err = k.starter("list", "--vault", "vault1", "--state", "SoftDeleted")
		return err == nil && strings.Contains(listedOut, "vm1")
	}, 20*time.Second, 200*time.Millisecond, "list --state SoftDeleted: %s", listedOut)
	assert.Contains(t, listedOut, deadline.Format(time.RFC3339))
	out, err = k.starter("list", "--state", "Protected")
	require.NoError(t, err)
	assert.NotContains(t, out, "vm1")
	_, err = k.starter("list", "--state", "Deleted")
	assert.ErrorContains(t, err, `--state "Deleted" is not a state`)

	st = k.mustJSON(append([]string{"undelete"}, item...)...)
	assert.Equal(t, protocol.ProtectionStopped, st.ProtectionState)
	assert.Empty(t, st.DeferredDeleteTimeInUTC)

	restored2 := filepath.Join(t.TempDir(), "r2")
	k.mustJSON(append([]string{"restore", "--recovery-point", first, "--target", restored2}, item...)...)
	sameTree(t, src, restored2)

	_, err = k.starter(append([]string{"restore", "--recovery-point", first, "--target", restored2}, item...)...)
	assert.EqualError(t, err, "restore refused (--target): "+restored2+" is a directory that is not empty: restore into an absent or empty directory, so that nothing is overwritten; nothing was written")
	refused := k.mustJSON(append([]string{"status"}, item...)...).Audit
	assert.Equal(t, "restore/rejected", refused[len(refused)-1].Operation+"/"+refused[len(refused)-1].Outcome, "the audit names the operation asked for")
	_, err = k.starter(append([]string{"restore", "--recovery-point", "rp-nope", "--target", filepath.Join(t.TempDir(), "r3")}, item...)...)
	assert.ErrorContains(t, err, `restore refused: --recovery-point "rp-nope" is not a recovery point of item`, "said with the flag typed")
	file := filepath.Join(restored2, "vm.json")
	_, err = k.starter(append([]string{"restore", "--recovery-point", first, "--target", file}, item...)...)
	assert.EqualError(t, err, "restore refused (--target): "+file+" is a file, not a directory: restore into an absent or empty directory; nothing was written")
	// --json says what went wrong as JSON on stderr, with a non-zero exit.
	var stderr bytes.Buffer
	code := execute(context.Background(), k.root(), append([]string{"restore", "--json", "--recovery-point", first, "--target", file}, item...), &stderr)
	assert.Equal(t, 1, code)
	var jerr struct{ Error string }
	require.NoError(t, json.Unmarshal(stderr.Bytes(), &jerr), stderr.String())
	assert.Equal(t, "restore refused (--target): "+file+" is a file, not a directory: restore into an absent or empty directory; nothing was written", jerr.Error)
	stderr.Reset()
	assert.Equal(t, 1, execute(context.Background(), k.root(), []string{"stop", "--json", "--force"}, &stderr))
	require.NoError(t, json.Unmarshal(stderr.Bytes(), &jerr), "a flag error too is JSON: %s", stderr.String())
	assert.Contains(t, jerr.Error, "unknown flag: --force")

	st = k.mustJSON(append([]string{"resume"}, item...)...)
	assert.Equal(t, protocol.Protected, st.ProtectionState)

	out, err = k.starter(append([]string{"status"}, item...)...)
	require.NoError(t, err)
	assert.Regexp(t, `State +Protected`, out)
	assert.Contains(t, out, "Recovery points (2)")
	assert.Contains(t, out, "decommissioned")

	// Signals exactly as the Temporal CLI sends them.
	id := protocol.WorkflowID("vault1", "vm1")
	k.signalAsCLI(id, protocol.SignalDelete, jsonInput(t, `"text"`))
	k.signalAsCLI(id, protocol.SignalStop, nil)
	k.signalAsCLI(id, protocol.SignalDelete, jsonInput(t, `{}`))
	require.Eventually(t, func() bool {
		st = k.mustJSON(append([]string{"status"}, item...)...)
		return st.ProtectionState == protocol.SoftDeleted
	}, 20*time.Second, 200*time.Millisecond)
	// Signals of different names that land in one task are applied by
	// name (resume, stop, delete, undelete), so only the set is certain.
	audit := st.Audit[len(st.Audit)-3:]
	var got []string
	for _, e := range audit {
		got = append(got, e.Operation+"/"+e.Outcome+"/"+e.RequestedBy)
	}
	assert.ElementsMatch(t, []string{"delete/rejected/anonymous", "stop/accepted/anonymous", "delete/accepted/anonymous"}, got)
	k.signalAsCLI(id, protocol.SignalUndelete, jsonInput(t, `{"requestedBy": "alice", "reason": "mistake"}`))
	require.Eventually(t, func() bool {
		return k.mustJSON(append([]string{"status"}, item...)...).ProtectionState == protocol.ProtectionStopped
	}, 20*time.Second, 200*time.Millisecond)

	ids, err := k.store.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Len(t, ids, 2, "every recovery point is still in the store")

	k.replayAndSave(id, "item-lifecycle.json")
}

func TestStarterRefusesBadInputAndChangesNothing(t *testing.T) {
	k := startCluster(t)
	cases := map[string]struct {
		args []string
		want string
	}{
		"missing item":       {[]string{"protect", "--vault", "v", "--source", "/tmp"}, "--item is missing"},
		"bad vault id":       {[]string{"protect", "--vault", "a/b", "--item", "i", "--source", "/tmp"}, `--vault "a/b" is not valid`},
		"frequency too fast": {[]string{"protect", "--vault", "v", "--item", "i", "--source", "/tmp", "--frequency", "30s"}, "too short"},
		"retention zero":     {[]string{"protect", "--vault", "v", "--item", "i", "--source", "/tmp", "--retention-days", "0"}, "--retention-days 0: recovery points are kept 1 to 3650 days"},
		"soft delete 7 days": {[]string{"protect", "--vault", "v", "--item", "i", "--source", "/tmp", "--soft-delete-retention-days", "7"}, "--soft-delete-retention-days 7: soft-deleted data is kept 14 to 180 days"},
		"relative source":    {[]string{"protect", "--vault", "v", "--item", "i", "--source", "data"}, "is not absolute"},
		"restore no point":   {[]string{"restore", "--vault", "v", "--item", "i", "--target", "/tmp/x"}, "--recovery-point is required"},
		"unknown item":       {[]string{"stop", "--vault", "v", "--item", "nothing"}, "is not running"},
		"unknown flag":       {[]string{"stop", "--vault", "v", "--item", "i", "--force"}, "unknown flag"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := k.starter(c.args...)
			assert.ErrorContains(t, err, c.want)
		})
	}

	missing := filepath.Join(t.TempDir(), "does-not-exist")
	_, err := k.starter("protect", "--vault", "v", "--item", "gone", "--source", missing)
	assert.ErrorContains(t, err, "item gone was not protected: source path "+missing+" is not a directory")
	entries, _ := os.ReadDir(k.storeDir)
	assert.Empty(t, entries, "nothing stored")

	resp, err := k.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowType = 'BackupItem' AND ExecutionStatus = 'Running'"})
	require.NoError(t, err)
	assert.Empty(t, resp.GetExecutions(), "no item left running")
}

// TestRefusedProtectLeavesNoItemBehind: an item refused at its first
// backup is in no list, no vault and no status, and protecting it again
// with a good source makes one item.
func TestRefusedProtectLeavesNoItemBehind(t *testing.T) {
	k := startCluster(t)
	item := []string{"--vault", "r1", "--item", "vm1"}
	missing := filepath.Join(t.TempDir(), "does-not-exist")
	_, err := k.starter(append([]string{"protect", "--source", missing}, item...)...)
	assert.ErrorContains(t, err, "item vm1 was not protected: source path "+missing+" is not a directory the worker can read")

	_, err = k.starter(append([]string{"status"}, item...)...)
	assert.EqualError(t, err, "there is no item vm1 in vault r1: it was refused when it was protected, and nothing was stored "+
		"(source path "+missing+" is not a directory the worker can read: create it or protect the item with the right sourcePath)")
	_, err = k.starter("vault", "status", "--vault", "r1")
	assert.ErrorContains(t, err, "vault r1 does not answer", "the refused item created no vault")

	src := writeSource(t)
	k.mustJSON(append([]string{"protect", "--source", src}, item...)...)
	var rows []listed
	require.Eventually(t, func() bool {
		out, err := k.starter("list", "--vault", "r1", "--json")
		return err == nil && json.Unmarshal([]byte(out), &rows) == nil && len(rows) > 0
	}, 20*time.Second, 100*time.Millisecond)
	// Give visibility the time to show the refused run too, if it would.
	time.Sleep(time.Second)
	for _, args := range [][]string{{"list", "--vault", "r1", "--json"}, {"list", "--json"}, {"list", "--state", "Protected", "--json"}} {
		out, err := k.starter(args...)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		var mine []listed
		for _, r := range rows {
			if r.VaultID == "r1" {
				mine = append(mine, r)
			}
		}
		require.Len(t, mine, 1, "%v lists the item once: %s", args, out)
		assert.Equal(t, "Protected", mine[0].ProtectionState)
		assert.Equal(t, "Running", mine[0].WorkflowStatus)
	}
	require.Eventually(t, func() bool {
		return k.counts("r1")[protocol.Protected] == 1
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, map[protocol.State]int{protocol.Protected: 1}, nonZero(k.counts("r1")), "visibility counts one item, protected")
}

// replayAndSave replays a workflow's real history with the current code,
// and saves it as a fixture of the replay test when asked to.
func (k *cluster) replayAndSave(id, name string) { histories.Replay(k.t, k.c, id, "", name) }

func TestStarterVaultCommands(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	k.mustJSON("protect", "--vault", "vault9", "--item", "vm1", "--source", src)

	var vst vault.VaultStatus
	require.Eventually(t, func() bool {
		out, err := k.starter("vault", "status", "--vault", "vault9", "--json")
		return err == nil && json.Unmarshal([]byte(out), &vst) == nil && k.counts("vault9")[protocol.Protected] == 1
	}, 20*time.Second, 100*time.Millisecond, "the vault runs and visibility shows the protected item")
	assert.Equal(t, protocol.SoftDeleteEnabled, vst.SoftDelete.State)
	assert.Equal(t, 14, vst.SoftDelete.RetentionDays)

	// AlwaysOn cannot be undone: without a terminal to ask on, it needs --yes.
	_, err := k.starter("vault", "set-soft-delete", "--vault", "vault9", "--state", "AlwaysOn", "--retention-days", "30", "--requested-by", "alice")
	assert.ErrorContains(t, err, "cannot be undone, and there is no terminal to confirm it on: run the command again with --yes. Nothing was changed")
	_, err = k.starterWithInput("no\n", "vault", "set-soft-delete", "--vault", "vault9", "--state", "AlwaysOn", "--retention-days", "30")
	assert.ErrorContains(t, err, `not confirmed (the answer was "no", not yes): nothing was changed`)
	assert.Equal(t, protocol.SoftDeleteEnabled, k.vaultStatus("vault9").SoftDelete.State, "nothing was sent")
	// Before the change, the item shows the 14 days a delete gets now.
	out, err := k.starter("status", "--vault", "vault9", "--item", "vm1")
	require.NoError(t, err)
	assert.Contains(t, out, "Soft-delete window  14 days (what a delete made now gets)")
	out, err = k.starterWithInput("yes\n", "vault", "set-soft-delete", "--vault", "vault9", "--state", "AlwaysOn", "--retention-days", "30", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Soft delete  AlwaysOn, 30 days")
	// The item has not heard of the change, yet the window shown is the one
	// a delete would now get.
	out, err = k.starter("status", "--vault", "vault9", "--item", "vm1")
	require.NoError(t, err)
	assert.Contains(t, out, "Soft-delete window  30 days (what a delete made now gets)")
	_, err = k.starter("vault", "set-soft-delete", "--vault", "vault9", "--state", "Disabled", "--requested-by", "mallory")
	assert.ErrorContains(t, err, "setSoftDelete refused: soft delete of vault vault9 is AlwaysOn, which is irreversible")
	_, err = k.starter("vault", "set-soft-delete", "--vault", "vault9", "--retention-days", "7")
	assert.EqualError(t, err, "--retention-days 7: soft-deleted data is kept 14 to 180 days; nothing was sent", "said in the flag the operator typed")
	// A refusal about a field is said with the flag the operator typed.
	_, err = k.starter("vault", "set-soft-delete", "--vault", "vault9", "--purge-reminder", "soon", "--requested-by", "alice")
	assert.EqualError(t, err, `setSoftDelete refused: --purge-reminder "soon" is not a positive duration such as "48h"`)

	// The item's delete now gets the vault's 30 days.
	st := k.mustJSON("delete", "--vault", "vault9", "--item", "vm1", "--requested-by", "mallory")
	deadline, err := time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), deadline, time.Minute)

	out, err = k.starter("status", "--vault", "vault9", "--item", "vm1")
	require.NoError(t, err)
	assert.Contains(t, out, "Soft-delete window  30 days (applied at the delete)")
	// Refused before it asks: it would not go through.
	out, err = k.starterWithInput("yes\n", "vault", "delete", "--vault", "vault9", "--requested-by", "mallory")
	assert.ErrorContains(t, err, "vault vault9 cannot be deleted: it holds 1 soft-deleted item: vm1 (purge scheduled for "+st.DeferredDeleteTimeInUTC+")")
	assert.NotContains(t, out, "Type yes", "nothing asked")
	// The vault refuses it too, and audits it.
	h, err := k.c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: protocol.VaultWorkflowID("vault9"),
		UpdateName: protocol.UpdateDeleteVault, Args: []any{protocol.Request{RequestedBy: "mallory"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	assert.ErrorContains(t, h.Get(context.Background(), nil), "vault vault9 cannot be deleted: it holds 1 soft-deleted item")
	out, err = k.starter("vault", "status", "--vault", "vault9")
	require.NoError(t, err)
	assert.Regexp(t, `\nSoftDeleted +1\n`, out, "visibility counts the soft-deleted item")
	assert.Contains(t, out, "deleteVault")
	// The vault publishes its settings in its memo, which items and the
	// starter read without a task of the vault.
	vs, err := items.VaultSettings(context.Background(), k.c, "vault9")
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleteAlwaysOn, vs.State)
	assert.Equal(t, 30, vs.RetentionDays)
	assert.Contains(t, out, "rejected")

	_, err = k.starter("vault", "status", "--vault", "nothing")
	assert.ErrorContains(t, err, "vault nothing does not answer")
}

// TestStarterMultiUserAuthorization drives approval on a real server: the
// item registers its delete at the vault, the vault sends the approval, and
// the item checks it at the vault before deleting.
func TestStarterMultiUserAuthorization(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	k.mustJSON("protect", "--vault", "vault7", "--item", "vm1", "--source", src)
	vault := func() vault.VaultStatus {
		t.Helper()
		out, err := k.starter("vault", "status", "--vault", "vault7", "--json")
		require.NoError(t, err, out)
		var vst vault.VaultStatus
		require.NoError(t, json.Unmarshal([]byte(out), &vst), out)
		return vst
	}
	require.Eventually(t, func() bool { return k.counts("vault7")[protocol.Protected] == 1 }, 20*time.Second, 100*time.Millisecond)

	out, err := k.starter("vault", "enable-mua", "--vault", "vault7", "--approvers", "alice,bob", "--approval-window", "2h", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "multi-user authorization on: approvers alice, bob, requests expire after 2h0m0s")

	// A delete waits, and says who may approve it.
	out, err = k.starter("delete", "--vault", "vault7", "--item", "vm1", "--requested-by", "mallory", "--reason", "cleanup")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Pending approval: request r-1 at vault vault7; pending approval by alice or bob until")
	assert.Contains(t, out, "starter vault approve --vault vault7 --request r-1")
	assert.Equal(t, protocol.Protected, k.mustJSON("status", "--vault", "vault7", "--item", "vm1").ProtectionState)

	_, err = k.starter("vault", "approve", "--vault", "vault7", "--request", "r-1", "--requested-by", "mallory")
	assert.ErrorContains(t, err, "approve refused: mallory requested r-1 and cannot approve it")
	_, err = k.starter("vault", "approve", "--vault", "vault7", "--request", "r-1", "--requested-by", "eve")
	assert.ErrorContains(t, err, "approve refused: eve is not an approver of vault vault7: its approvers are alice, bob")
	_, err = k.starter("vault", "approve", "--vault", "vault7", "--requested-by", "alice")
	assert.ErrorContains(t, err, `required flag(s) "request" not set`)
	out, err = k.starter("vault", "approve", "--vault", "vault7", "--request", "r-1", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Request r-1 (delete the backup data of item vm1): Approved")

	var st item.Status
	require.Eventually(t, func() bool {
		st = k.mustJSON("status", "--vault", "vault7", "--item", "vm1")
		return st.ProtectionState == protocol.SoftDeleted
	}, 20*time.Second, 100*time.Millisecond, "the approved delete reached the item")
	last := st.Audit[len(st.Audit)-1]
	assert.Equal(t, "delete/mallory/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
	assert.Contains(t, last.Detail, "reason: cleanup; approved by alice (request r-1)")

	// The same approval sent again, as anyone could, changes nothing: the
	// item acts only on deletes it registered, once.
	k.mustJSON("undelete", "--vault", "vault7", "--item", "vm1", "--requested-by", "alice")
	k.signalAsCLI(protocol.WorkflowID("vault7", "vm1"), protocol.SignalDeleteApproved, jsonInput(t, `{"requestId": "r-1"}`))
	require.Eventually(t, func() bool {
		a := k.mustJSON("status", "--vault", "vault7", "--item", "vm1").Audit
		return a[len(a)-1].Outcome == protocol.OutcomeRejected
	}, 20*time.Second, 100*time.Millisecond)
	st = k.mustJSON("status", "--vault", "vault7", "--item", "vm1")
	assert.Equal(t, protocol.ProtectionStopped, st.ProtectionState, "an approval is used once")
	assert.Contains(t, st.Audit[len(st.Audit)-1].Detail, `item vm1 awaits no approval of request "r-1"`)

	// Disabling soft delete is rejected by an approver; turning approval off
	// is approved by the other one.
	out, err = k.starter("vault", "set-soft-delete", "--vault", "vault7", "--state", "Disabled", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Request r-2 (set soft delete to Disabled, 14 days): PendingApproval")
	out, err = k.starter("vault", "reject", "--vault", "vault7", "--request", "r-2", "--requested-by", "bob", "--reason", "no ticket")
	require.NoError(t, err, out)
	out, err = k.starter("vault", "enable-mua", "--vault", "vault7", "--off", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Request r-3 (turn multi-user authorization off): PendingApproval")
	_, err = k.starter("vault", "approve", "--vault", "vault7", "--request", "r-3", "--requested-by", "alice")
	assert.ErrorContains(t, err, "alice requested r-3 and cannot approve it")
	out, err = k.starter("vault", "approve", "--vault", "vault7", "--request", "r-3", "--requested-by", "bob")
	require.NoError(t, err, out)
	vst := vault()
	assert.False(t, vst.MultiUserAuthorization.Enabled)
	assert.Equal(t, protocol.SoftDeleteEnabled, vst.SoftDelete.State)
	states := map[string]protocol.RequestState{}
	for _, r := range vst.Requests {
		states[r.RequestID] = r.State
	}
	assert.Equal(t, map[string]protocol.RequestState{"r-1": protocol.RequestApproved, "r-2": protocol.RequestRejected, "r-3": protocol.RequestApproved}, states)
	out, err = k.starter("vault", "status", "--vault", "vault7")
	require.NoError(t, err)
	assert.Contains(t, out, "Approval     multi-user authorization off")
	assert.Contains(t, out, "rejected by bob; reason: no ticket")
	k.replayAndSave(protocol.WorkflowID("vault7", "vm1"), "item-approval.json")
	k.replayAndSave(protocol.VaultWorkflowID("vault7"), "vault-approval.json")
}

// TestLoadDrivesItemsToTheirPurgeAndMeasures runs the load command, with its
// baseline, on a real server whose worker has a 2 s window.
func TestLoadDrivesItemsToTheirPurgeAndMeasures(t *testing.T) {
	k := startClusterWith(t, protocol.Settings{Dev: true, SoftDeleteRetention: 2 * time.Second})
	out, err := k.starter("load", "--items", "6", "--concurrency", "3", "--vault", "load1", "--timeout", "2m", "--baseline", "--window", "2s")
	require.NoError(t, err, out)
	assert.Contains(t, out, "lifecycles         6 purged, 0 failed")
	assert.Regexp(t, `throughput +\d+\.\d operations/s`, out)
	assert.Regexp(t, `deadline to purge  median \d`, out)
	actions := regexp.MustCompile(`Temporal actions   (\d+\.\d) per item in its own history, (\d+\.\d) of them from its first update to its purge, plus (\d+\.\d) at its vault`).FindStringSubmatch(out)
	require.NotNil(t, actions, out)
	// Read from the real histories of protect, stop, delete, undelete,
	// resume, delete and the purge. Each action is billed on Temporal Cloud
	// and is load on a cluster: this fails if the lifecycle grows past its
	// cost (at most 22 from the stop to the purge, 27 with the protect: a
	// stopped item still wakes for its weekly restore drill, a timer
	// started and cancelled; and
	// at the vault the 2 deletes asked of it per item, plus what each of
	// the vault's runs costs once, shared by the 6 items: its start, one
	// count of its items, and the version marker of publishing its hold,
	// with the search attribute the SDK sets with it; before the
	// item became one pipeline it was 34 in the item and 5.7 at the vault,
	// markers not counted, and 7.5 at the vault while items reported every
	// change to it).
	perItem, _ := strconv.ParseFloat(actions[1], 64)
	lifecycle, _ := strconv.ParseFloat(actions[2], 64)
	atVault, _ := strconv.ParseFloat(actions[3], 64)
	t.Logf("Temporal actions per item: %.1f in its history, %.1f of them for stop to purge, %.1f at its vault\n%s", perItem, lifecycle, atVault,
		regexp.MustCompile(`(?m)^    (in the item|at the vault).*$`).FindAllString(out, -1))
	assert.LessOrEqual(t, lifecycle, 22.0, "actions from the first update to the purge")
	assert.LessOrEqual(t, perItem, 27.0, "actions in each item's history")
	assert.LessOrEqual(t, atVault, 2.0+4.0/6+0.05, "actions at the vault per item")
	assert.Regexp(t, `in the item .*\bupdate 5\.0`, out, "the five updates are in the breakdown")
	assert.Contains(t, out, "Baseline: the same Temporal calls")
	assert.Regexp(t, `Recovery Vault ran at \d+\.\d\d of the baseline's throughput`, out)
	entries, err := os.ReadDir(filepath.Join(k.storeDir, "load1"))
	if err == nil {
		assert.Empty(t, entries, "no data of a purged item is left")
	}

	_, err = k.starter("load", "--items", "0")
	assert.ErrorContains(t, err, "--items 0: drive 1 to 100000 items")
	_, err = k.starter("load", "--baseline")
	assert.ErrorContains(t, err, "--baseline needs --window")
}

// TestListPagesThroughAVault: list shows a page at a time and says the
// command of the next page, until every item has been shown once.
func TestListPagesThroughAVault(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	for i := range 5 {
		k.mustJSON("protect", "--vault", "paged", "--item", fmt.Sprintf("vm%d", i), "--source", src)
	}
	require.Eventually(t, func() bool { return k.counts("paged")[protocol.Protected] == 5 }, 20*time.Second, 100*time.Millisecond)
	next := regexp.MustCompile(`More items follow: go run \./starter (list --vault paged --page-size 2 --page (\S+))\n`)
	seen := map[string]int{}
	args := []string{"list", "--vault", "paged", "--page-size", "2"}
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, 3, "5 items in pages of 2")
		out, err := k.starter(args...)
		require.NoError(t, err, out)
		for _, m := range regexp.MustCompile(`(?m)^paged +(vm\d) +Protected`).FindAllStringSubmatch(out, -1) {
			seen[m[1]]++
		}
		m := next.FindStringSubmatch(out)
		if m == nil {
			assert.Equal(t, 3, pages, "the last page says nothing follows: %s", out)
			break
		}
		args = strings.Fields(m[1])
	}
	assert.Equal(t, map[string]int{"vm0": 1, "vm1": 1, "vm2": 1, "vm3": 1, "vm4": 1}, seen, "every item once")

	_, err := k.starter("list", "--vault", "paged", "--page", "not a token!")
	assert.ErrorContains(t, err, "is not a page token that list printed")
	_, err = k.starter("list", "--page-size", "0")
	assert.ErrorContains(t, err, "--page-size 0: list 1 to 10000 items a page")
}

// TestWithoutUSERTheOperatingSystemNamesTheOperator: the audit says who
// acted even when $USER is unset, and a critical operation with no name at
// all is refused before anything is sent.
func TestWithoutUSERTheOperatingSystemNamesTheOperator(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	t.Setenv("USER", "")
	me, err := user.Current()
	require.NoError(t, err)
	k.mustJSON("protect", "--vault", "vault1", "--item", "vm1", "--source", src)
	st := k.mustJSON("stop", "--vault", "vault1", "--item", "vm1")
	last := st.Audit[len(st.Audit)-1]
	assert.Equal(t, "stop/"+me.Username, last.Operation+"/"+last.RequestedBy, "named after the operating system's user")

	currentUser = func() (*user.User, error) { return nil, errors.New("no such user") }
	t.Cleanup(func() { currentUser = user.Current })
	_, err = k.starter("delete", "--vault", "vault1", "--item", "vm1", "--yes")
	assert.ErrorContains(t, err, "delete is a critical operation and must say who asks: neither $USER nor the operating system names you, so give --requested-by")
	_, err = k.starter("vault", "approve", "--vault", "vault1", "--request", "r-1")
	assert.ErrorContains(t, err, "vault approve is a critical operation and must say who asks")
	assert.Equal(t, protocol.ProtectionStopped, k.mustJSON("status", "--vault", "vault1", "--item", "vm1").ProtectionState, "nothing was sent")
	out, err := k.starter("resume", "--vault", "vault1", "--item", "vm1")
	require.NoError(t, err, "an operation that is not critical goes as anonymous: %s", out)
}

// TestListingAVaultThatDoesNotExistSaysSo: "No items." is for a vault that
// exists and holds none.
func TestListingAVaultThatDoesNotExistSaysSo(t *testing.T) {
	k := startCluster(t)
	src := writeSource(t)
	k.mustJSON("protect", "--vault", "vault1", "--item", "vm1", "--source", src)
	_, err := k.starter("list", "--vault", "nope")
	assert.ErrorContains(t, err, "vault nope does not exist: a vault exists once an item of it is protected")
	out, err := k.starter("list", "--vault", "vault1", "--state", "Purged")
	require.NoError(t, err, out)
	assert.Contains(t, out, "No items.")
}

// TestAMistypedFlagIsSuggestedItsName, as a mistyped command is.
func TestAMistypedFlagIsSuggestedItsName(t *testing.T) {
	k := startCluster(t)
	for args, want := range map[string]string{
		"vault set-soft-delete --vault v --retention 30": "unknown flag: --retention; did you mean --retention-days?",
		"protect --vault v --item i --sorce /tmp":        "unknown flag: --sorce; did you mean --source?",
		"status --vault v --item i --frobnicate":         "unknown flag: --frobnicate; starter status --help lists its flags",
	} {
		_, err := k.starter(strings.Fields(args)...)
		assert.EqualError(t, err, want, args)
	}
}

// TestAPurgedItemAndOneProtectedAgainUnderItsNameAreToldApart by their
// runs, and by when the first was purged.
func TestAPurgedItemAndOneProtectedAgainUnderItsNameAreToldApart(t *testing.T) {
	k := startClusterWith(t, protocol.Settings{Dev: true, SoftDeleteRetention: 2 * time.Second})
	src := writeSource(t)
	k.mustJSON("protect", "--vault", "vault1", "--item", "vm1", "--source", src)
	k.mustJSON("delete", "--vault", "vault1", "--item", "vm1")
	var purged []listed
	require.Eventually(t, func() bool {
		out, err := k.starter("list", "--vault", "vault1", "--state", "Purged", "--json")
		return err == nil && json.Unmarshal([]byte(out), &purged) == nil && len(purged) == 1
	}, 30*time.Second, 200*time.Millisecond)
	k.mustJSON("protect", "--vault", "vault1", "--item", "vm1", "--source", src)
	var living []listed
	require.Eventually(t, func() bool {
		out, err := k.starter("list", "--vault", "vault1", "--json")
		return err == nil && json.Unmarshal([]byte(out), &living) == nil && len(living) == 1
	}, 20*time.Second, 200*time.Millisecond)
	assert.NotEqual(t, purged[0].RunID, living[0].RunID)
	assert.NotEmpty(t, purged[0].PurgedAt)
	assert.Empty(t, living[0].PurgedAt)
	out, err := k.starter("list", "--vault", "vault1", "--state", "Purged")
	require.NoError(t, err)
	assert.Contains(t, out, purged[0].PurgedAt+"  purged")
	assert.Contains(t, out, purged[0].RunID[:12])
}

// TestARefusalIsSaidInTheStartersWords: the vault says requestedBy, the
// starter --requested-by, by the refusal's code, not by its sentence.
func TestARefusalIsSaidInTheStartersWords(t *testing.T) {
	k := startCluster(t)
	k.mustJSON("protect", "--vault", "vault5", "--item", "vm1", "--source", writeSource(t))
	out, err := k.starter("vault", "enable-mua", "--vault", "vault5", "--approvers", "alice,bob", "--requested-by", "alice")
	require.NoError(t, err, out)
	_, err = k.starter("delete", "--vault", "vault5", "--item", "vm1", "--requested-by", "anonymous")
	assert.EqualError(t, err, "delete refused: say who you are with --requested-by NAME (not anonymous, system or scheduler), so that someone else can approve; nothing was changed")
	// The API says it with the field's name.
	err = items.Execute(t.Context(), k.c, client.UpdateWorkflowOptions{WorkflowID: protocol.WorkflowID("vault5", "vm1"), UpdateName: protocol.UpdateDelete,
		Args: []any{protocol.Request{}}}, nil)
	assert.ErrorContains(t, err, "name yourself in requestedBy")
}
