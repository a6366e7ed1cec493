package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/s3test"
	"recoveryvault/internal/signingtest"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// TestUnknownAddressesAreA404Page: unknown vaults, items, operations and
// pages get a page that says so, never a stack trace.
func TestUnknownAddressesAreA404Page(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	alice := k.operator("alice")
	for path, says := range map[string]string{
		"/vaults/nosuchvault":                "There is no vault nosuchvault.",
		"/vaults/vault1/items/nosuchitem":    "There is no item nosuchitem in vault vault1: protect it first.",
		"/vaults/..%2f..%2fetc/items/passwd": "There is no vault",
		"/vaults/vault1/items/vm1/extra":     "There is no page at this address.",
		"/favicon.ico":                       "There is no page at this address.",
	} {
		code, body := alice.get(path)
		assert.Equal(t, http.StatusNotFound, code, path)
		assert.Contains(t, body, says, path)
		assert.Contains(t, body, `<html lang="en">`, "a page of the console")
		assert.NotContains(t, body, "goroutine", path)
	}
	code, body, _ := alice.post("/vaults/vault1/items/vm1/purge", url.Values{})
	assert.Equal(t, http.StatusNotFound, code, "no such operation")
	assert.Contains(t, body, `An item has no operation &#34;purge&#34;`)
	code, _, _ = alice.post("/vaults/vault1/items/nosuchitem/stop", url.Values{})
	assert.Equal(t, http.StatusNotFound, code)
	code, _, _ = alice.post("/vaults/vault1/deleteVault", url.Values{})
	assert.Equal(t, http.StatusNotFound, code, "the console does not delete vaults")
	code, _ = alice.get("/vaults/vault1?page=not-base64!")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, protocol.Protected, k.status("vault1", "vm1").ProtectionState)
}

// TestRestoreIsRefusedInTheWorkflowsOwnWords: a target that is not empty,
// or an item that is soft-deleted, refuses the restore; what was typed
// stays in the form and nothing is written.
func TestRestoreIsRefusedInTheWorkflowsOwnWords(t *testing.T) {
	k := startCluster(t, Options{})
	src := k.protect("vault1", "vm1")
	alice := k.operator("alice")
	item := "/vaults/vault1/items/vm1"
	rp := k.status("vault1", "vm1").RecoveryPoints[0].ID

	full := t.TempDir()
	precious := filepath.Join(full, "precious.txt")
	require.NoError(t, os.WriteFile(precious, []byte("keep me"), 0o600))
	code, body, _ := alice.post(item+"/restore", url.Values{"recoveryPointId": {rp}, "targetPath": {full}})
	assert.Equal(t, http.StatusConflict, code, "refused for its target")
	assert.Contains(t, body, full+" is a directory that is not empty: restore into an absent or empty directory, so that nothing is overwritten; nothing was written")
	assert.Contains(t, body, `value="`+full+`"`, "the path typed stays in the form")
	entries, err := os.ReadDir(full)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing was written next to what was there")
	kept, err := os.ReadFile(precious)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(kept))

	code, body, _ = alice.post(item+"/restore", url.Values{"recoveryPointId": {rp}, "targetPath": {"relative/path"}})
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, `Restore to &#34;relative/path&#34; is not an absolute path`, "said with the form's label")

	target := filepath.Join(t.TempDir(), "restored")
	code, _, loc := alice.post(item+"/restore", url.Values{"recoveryPointId": {rp}, "targetPath": {target}})
	require.Equal(t, http.StatusSeeOther, code)
	assertDone(t, loc, item, "restore", "")
	restored, err := os.ReadFile(filepath.Join(target, "etc", "config"))
	require.NoError(t, err)
	original, err := os.ReadFile(filepath.Join(src, "etc", "config"))
	require.NoError(t, err)
	assert.Equal(t, original, restored)

	k.update("vault1", "vm1", protocol.UpdateDelete, protocol.Request{RequestedBy: "bob"})
	other := filepath.Join(t.TempDir(), "other")
	code, body, _ = alice.post(item+"/restore", url.Values{"recoveryPointId": {rp}, "targetPath": {other}})
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "item vm1 is soft-deleted: undelete it before restoring")
	assert.NoDirExists(t, other)
}

// TestBackupItemsPageThroughThousands: items come a page at a time from
// visibility, with the count of all, and the state filter holds across
// pages.
func TestBackupItemsPageThroughThousands(t *testing.T) {
	k := startCluster(t, Options{PageSize: 2})
	want := map[string]protocol.State{}
	for i := range 5 {
		id := fmt.Sprintf("vm%d", i)
		k.protect("vault1", id)
		want[id] = protocol.Protected
	}
	k.update("vault1", "vm1", protocol.UpdateDelete, protocol.Request{})
	k.update("vault1", "vm3", protocol.UpdateDelete, protocol.Request{})
	k.update("vault1", "vm4", protocol.UpdateDelete, protocol.Request{})
	want["vm1"], want["vm3"], want["vm4"] = protocol.SoftDeleted, protocol.SoftDeleted, protocol.SoftDeleted
	k.visible("vault1", want)
	alice := k.operator("alice")

	rowPattern := regexp.MustCompile(`data-item="([^"]+)" data-state="([^"]+)"`)
	nextPattern := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	walk := func(path string) (map[string]string, []string) {
		seen, captions := map[string]string{}, []string(nil)
		for path != "" {
			code, body := alice.get(path)
			require.Equal(t, http.StatusOK, code, path)
			rows := rowPattern.FindAllStringSubmatch(body, -1)
			assert.LessOrEqual(t, len(rows), 2, "a page holds at most PageSize items")
			for _, r := range rows {
				assert.NotContains(t, seen, r[1], "no item twice")
				seen[r[1]] = r[2]
			}
			captions = append(captions, regexp.MustCompile(`<caption>([^<]+)</caption>`).FindStringSubmatch(body)[1])
			path = ""
			if m := nextPattern.FindStringSubmatch(body); m != nil {
				path = strings.ReplaceAll(m[1], "&amp;", "&")
			}
		}
		return seen, captions
	}
	all, captions := walk("/vaults/vault1")
	assert.Len(t, all, 5)
	assert.Equal(t, []string{"Items 1–2 of 5", "Items 3–4 of 5", "Items 5–5 of 5"}, captions)
	deleted, captions := walk("/vaults/vault1?state=SoftDeleted")
	assert.Equal(t, map[string]string{"vm1": "SoftDeleted", "vm3": "SoftDeleted", "vm4": "SoftDeleted"}, deleted)
	assert.Equal(t, []string{"Soft deleted items 1–2 of 3", "Soft deleted items 3–3 of 3"}, captions)
}

// TestApproversDecideOnTheVaultsPage: under multi-user authorization a
// delete from the console waits; only another approver is offered Approve,
// and approving carries the delete out.
func TestApproversDecideOnTheVaultsPage(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	var vs vault.VaultStatus
	require.NoError(t, executeUpdate(k, protocol.VaultWorkflowID("vault1"), protocol.UpdateEnableMua,
		protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, ApprovalWindow: "1h", RequestedBy: "alice"}, &vs))
	alice, bob, eve := k.operator("alice"), k.operator("bob"), k.operator("eve")

	code, _, loc := alice.post("/vaults/vault1/items/vm1/delete", url.Values{"confirmName": {"vm1"}, "reason": {"retired"}})
	require.Equal(t, http.StatusSeeOther, code)
	assertDone(t, loc, "/vaults/vault1/items/vm1", "delete", "r-1")
	_, body := alice.get(loc)
	assert.Contains(t, body, "The delete waits for approval: request r-1.")
	assert.Equal(t, protocol.Protected, k.status("vault1", "vm1").ProtectionState, "nothing deleted yet")

	_, body = alice.get("/vaults/vault1")
	assert.Contains(t, body, `data-request="r-1"`)
	assert.NotContains(t, body, "Approve r-1", "the requester cannot approve")
	assert.Contains(t, body, "Withdraw r-1")
	_, body = eve.get("/vaults/vault1")
	assert.NotContains(t, body, "Approve r-1", "not an approver")
	assert.NotContains(t, body, "Reject r-1")

	code, body, _ = eve.post("/vaults/vault1/approve", url.Values{"requestId": {"r-1"}})
	assert.Equal(t, http.StatusConflict, code, "a forged approval is the vault's to refuse")
	assert.Contains(t, body, "eve is not an approver of vault vault1")

	_, body = bob.get("/vaults/vault1?done=approve&request=r-1")
	assert.NotContains(t, body, "Request r-1 approved.", "an address alone says nothing was done")
	require.Contains(t, body, "Approve r-1")
	code, _, loc = bob.post("/vaults/vault1/approve", url.Values{"requestId": {"r-1"}})
	require.Equal(t, http.StatusSeeOther, code)
	_, body = bob.get(loc)
	assert.Contains(t, body, "Request r-1 approved.")
	assert.NotContains(t, body, "Approved</strong> by bob. approved by bob", "a decided request says who once")
	require.Eventually(t, func() bool { return k.status("vault1", "vm1").ProtectionState == protocol.SoftDeleted },
		30*time.Second, 100*time.Millisecond)
}

// TestDeleteWithSoftDeleteDisabledWarnsAndPurges: the confirmation says
// the data will not be recoverable, the flash says it was purged, and the
// purged item, its row and the deleted vault still have their pages.
func TestDeleteWithSoftDeleteDisabledWarnsAndPurges(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	var vs vault.VaultStatus
	require.NoError(t, executeUpdate(k, protocol.VaultWorkflowID("vault1"), protocol.UpdateSetSoftDelete,
		protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "admin"}, &vs))
	alice := k.operator("alice")
	item := "/vaults/vault1/items/vm1"

	_, body := alice.get(item)
	assert.Contains(t, body, "Soft delete is disabled for vault vault1")
	assert.NotContains(t, body, "during which Undelete recovers every recovery point")

	code, _, loc := alice.post(item+"/delete", url.Values{"confirmName": {"vm1"}, "reason": {"gone"}})
	require.Equal(t, http.StatusSeeOther, code)
	assertDone(t, loc, item, "deletedAndPurged", "")
	require.Eventually(t, func() bool { return k.status("vault1", "vm1").ProtectionState == protocol.Purged },
		30*time.Second, 100*time.Millisecond)
	code, body = alice.get(loc)
	require.Equal(t, http.StatusOK, code, "a purged item still has its page")
	assert.Contains(t, body, "Backup data deleted and purged at once")
	assert.Contains(t, body, "state-Purged")
	assert.Contains(t, body, "No actions: the item's backup data has been purged.")
	assert.NotContains(t, body, `action="`+item+`/`, "nothing is offered")

	// Visibility shows the purge a moment after the workflow has made it.
	require.Eventually(t, func() bool {
		_, body = alice.get("/vaults/vault1?state=Purged")
		return strings.Contains(body, `data-item="vm1"`)
	}, 30*time.Second, 100*time.Millisecond)
	// The purged row shows its final status: its last backup, no points.
	assert.Regexp(t, `data-item="vm1" data-state="Purged">[\s\S]*?icon-purged[\s\S]*?Last backup">20\d\d-[\s\S]*?Recovery points">0<`, body)
	assert.Contains(t, body, "Purged items 1–1 of 1")
	_, body = alice.get("/vaults/vault1")
	assert.Contains(t, body, "No items.", "All is the items that hold data")

	require.NoError(t, executeUpdate(k, protocol.VaultWorkflowID("vault1"), protocol.UpdateDeleteVault,
		protocol.Request{RequestedBy: "admin"}, &vs))
	code, body = alice.get("/vaults/vault1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "This vault has been deleted.")
}

// TestTheConsoleSendsNoUnsignedCriticalActionToASignedVault: a delete or a
// decision posted anyway is refused by the console, and nothing reaches
// the workflows.
func TestTheConsoleSendsNoUnsignedCriticalActionToASignedVault(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("signed", "vm1")
	alice, bob := signingtest.New(t, "alice@example.com"), signingtest.New(t, "bob@example.com")
	k.signedVault("signed", alice, bob)
	op := k.operator("bob@example.com")
	code, body, _ := op.post("/vaults/signed/items/vm1/delete", url.Values{"confirmName": {"vm1"}, "reason": {"retired"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "Vault signed requires signed critical operations, and the console holds no one&#39;s key")
	code, body, _ = op.post("/vaults/signed/approve", url.Values{"requestId": {"r-1"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "requires signed approvals")
	st := k.status("signed", "vm1")
	assert.Equal(t, protocol.Protected, st.ProtectionState)
	for _, e := range st.Audit {
		assert.NotEqual(t, "delete", e.Operation, "nothing reached the item")
	}
	var vs vault.VaultStatus
	v, err := k.c.QueryWorkflow(t.Context(), protocol.VaultWorkflowID("signed"), "", protocol.QueryVaultStatus)
	require.NoError(t, err)
	require.NoError(t, v.Get(&vs))
	for _, e := range vs.Audit {
		assert.NotContains(t, []string{protocol.UpdateApprove, protocol.UpdateReject}, e.Operation, "nothing reached the vault")
	}
}

// TestAnItemOnALockedBucketSaysHowItsObjectsAreKept: the item's page says
// the store's object lock and until when every object is kept.
func TestAnItemOnALockedBucketSaysHowItsObjectsAreKept(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "backups", true)
	srv.Setenv(t)
	k := startClusterOn(t, Options{}, "s3://backups/console")
	k.protect("vault1", "vm1")
	code, body := k.operator("alice").get("/vaults/vault1/items/vm1")
	require.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `<dt>In the store</dt><dd>object lock COMPLIANCE; every object kept until 20\d\d-`, body)
}

// TestTheUndeleteBannerSaysWhatTheUndeleteUndid, whatever the address
// says: a soft delete undone, or a delete cancelled while it waited.
func TestTheUndeleteBannerSaysWhatTheUndeleteUndid(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	undelete := protocol.AuditEntry{Time: at, Operation: protocol.UpdateUndelete, RequestedBy: "alice", Outcome: protocol.OutcomeAccepted}
	waited := []protocol.AuditEntry{{Time: at.Add(-time.Minute), Operation: protocol.UpdateDelete, RequestedBy: "alice", Outcome: protocol.OutcomeWaiting}, undelete}
	through := []protocol.AuditEntry{{Time: at.Add(-2 * time.Minute), Operation: protocol.UpdateDelete, RequestedBy: "alice", Outcome: protocol.OutcomeWaiting},
		{Time: at.Add(-time.Minute), Operation: protocol.UpdateDelete, RequestedBy: "alice", Outcome: protocol.OutcomeAccepted}, undelete}
	for _, done := range []string{deleteCancelled, protocol.UpdateUndelete} {
		r := httptest.NewRequest(http.MethodGet, "/vaults/v/items/i?"+url.Values{"done": {done}, "at": {at.Format(time.RFC3339Nano)}}.Encode(), nil)
		assert.Contains(t, itemFlash(r, waited), "cancelled: nothing was deleted", done)
		assert.Contains(t, itemFlash(r, through), "Undeleted: the purge is cancelled", "the waiting delete went through before the undelete (%s)", done)
	}
}
